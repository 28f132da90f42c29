"""``toysup report --save``: the terminal report, as it looks, in a file (Rich's recording console).

HTML and SVG keep the colours of a truecolor terminal; text is the plain characters.
"""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from toysup.engine.errors import UserError
from toysup.engine.run.folder import Run
from toysup_tui.report import print_report

FORMATS = {".html": "html", ".htm": "html", ".svg": "svg", ".txt": "text"}
DEFAULT_WIDTH = 120


def save_report(path: Path, run: Run, x: str | None = None, width: int | None = None,
                best_of: int | None = None, phase_selection: str = "best", iqr: bool = False) -> None:
    """Render the report on a recording console ``width`` columns wide (default 120) and write it as the suffix
    says; an unknown suffix or an unwritable file is a UserError."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"--save {path}: cannot tell the format from {path.suffix or 'no suffix'!r}: name the "
                        "file .html, .svg or .txt")
    plain = kind == "text"
    console = Console(record=True, file=io.StringIO(), width=width or DEFAULT_WIDTH, force_terminal=not plain,
                      color_system=None if plain else "truecolor", highlight=False)
    print_report(console, run, x=x, best_of=best_of, phase_selection=phase_selection, iqr=iqr)
    try:
        if kind == "html":
            console.save_html(str(path))
        elif kind == "svg":
            console.save_svg(str(path), title=f"toysup report {run.id}")
        else:
            console.save_text(str(path))
    except OSError as exc:
        raise UserError(f"--save {path}: cannot write: {exc.strerror or exc}") from None
