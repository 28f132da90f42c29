"""Crash reports: an unexpected exception (a bug, not a user's mistake) becomes a file and one line.

The terminal gets one line naming the file; the file holds what a bug report needs: the traceback (without
local values, which may hold a user's data), the versions of toysup, Python, torch and Textual, and the
command line. Reports go to ``platformdirs.user_state_dir("toysup")/crashes`` (``~/.local/state/toysup`` on
Linux), or under $TOYSUP_STATE_DIR.
"""

from __future__ import annotations

import os
import platform
import sys
import time
import traceback
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

STATE_ENV = "TOYSUP_STATE_DIR"
PACKAGES = ("toysup", "torch", "textual", "typer", "rich")


def state_dir() -> Path:
    """$TOYSUP_STATE_DIR, else the OS's state directory for toysup."""
    given = os.environ.get(STATE_ENV)
    if given:
        return Path(given).expanduser()
    from platformdirs import user_state_dir  # deferred: unused when $TOYSUP_STATE_DIR is set

    return Path(user_state_dir("toysup"))


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def report_text(exc: BaseException, argv: list[str]) -> str:
    """The report: command line, versions, then the traceback as Python prints it (names and lines, no values)."""
    lines = [f"toysup crash report, {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
             "command: " + " ".join(argv),
             f"python: {sys.version.split()[0]} ({platform.platform()})"]
    lines += [f"{name}: {_version(name)}" for name in PACKAGES]
    lines.append("")
    lines += traceback.format_exception(exc)
    return "\n".join(line.rstrip("\n") for line in lines) + "\n"


def write_report(exc: BaseException, argv: list[str] | None = None) -> Path | None:
    """Write ``exc``'s report to a new file under the state directory; None if it cannot be written."""
    text = report_text(exc, ["toysup", *(sys.argv[1:] if argv is None else argv)])
    folder = state_dir() / "crashes"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = folder / f"crash-{stamp}-{os.getpid()}.txt"
        with open(path, "x", encoding="utf-8") as f:  # never over an existing file, nor through a link
            f.write(text)
    except OSError:
        return None
    return path


def crash_line(exc: BaseException, path: Path | None) -> str:
    """The one line the terminal gets."""
    where = f"; report written to {path}" if path else "; the crash report could not be written"
    return f"toysup crashed on an unexpected {type(exc).__name__}{where} (please attach it to a bug report)"
