"""Escaping text for Textual markup.

Textual's markup parser reads any ``[`` as a possible tag, so a range such as
``[0, 1)`` or an error message with brackets can swallow the closing tag after
it; a backslash before every ``[`` makes it literal.
"""

from __future__ import annotations

from toysup_tui.printable import printable


def esc(text: object) -> str:
    """``text`` made safe to embed in Textual markup: control characters spelled out (a run folder's name
    may hold terminal escapes, see toysup_tui/printable.py), every ``[`` literal."""
    return printable(text, keep_newlines=True).replace("[", "\\[")
