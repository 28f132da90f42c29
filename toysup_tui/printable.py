"""Text from a run folder, shown as text: never as Rich markup, never as terminal control sequences.

Run folders come from anywhere (engine/safe_fs.py), so a folder name, a run.json ``name``, an
error message or a path may hold ``[/]`` (Rich markup), ANSI escapes that would restyle or rewrite
the terminal, or a newline that would forge a row in ``toysup runs``. :func:`printable` spells
every control character (C0, DEL, C1, and the Unicode line separators and bidirectional overrides)
as a visible escape, as Python's ``repr`` does; :func:`shown` also escapes Rich markup.
"""

from __future__ import annotations

import re

from rich.console import Console
from rich.markup import escape
from rich.text import Text

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _spelled(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: object, keep_newlines: bool = False) -> str:
    """``value`` as text with its control characters spelled out (``\\x1b``, ``\\n``); ``keep_newlines``
    leaves line breaks of multi-line text (a preset's description) as they are."""
    text = str(value)
    if keep_newlines:
        return "\n".join(_CONTROL.sub(_spelled, line) for line in text.split("\n"))
    return _CONTROL.sub(_spelled, text)


def shown(value: object, keep_newlines: bool = False) -> str:
    """``value`` safe to embed in Rich markup: :func:`printable`, then markup escaped."""
    return escape(printable(value, keep_newlines))


_UNITS = re.compile(r"toysup [\w-]+ \S+|\S+")  # a command with its argument (a run id) breaks as one word


def print_line(console: Console, markup: str) -> None:
    """Print a line that holds run ids, paths or commands to copy. Piped: one unbroken line (a script or a
    log reads it whole). On a terminal: wrapped at spaces only, never inside an id, and never between
    ``toysup CMD`` and its argument (soft wrapping would leave the terminal to cut it at its edge, and Rich's
    own wrapping splits a command from its id)."""
    text = console.render_str(markup)
    if not console.is_terminal:
        console.print(text, soft_wrap=True)
        return
    lines = []
    for part in text.split("\n"):
        plain, breaks, start = part.plain, [], 0
        for unit in _UNITS.finditer(plain):
            if unit.end() - start > console.width and unit.start() > start:
                breaks.append(unit.start())
                start = unit.start()
        for piece in part.divide(breaks):
            piece.rstrip()
            lines.append(piece)
    console.print(Text("\n").join(lines), soft_wrap=True)
