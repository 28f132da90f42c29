"""Exporting a run's tables: CSV with a run_id column, joined and typed (engine/export_tables.py), every cell a
spreadsheet would take for a formula neutralised, written atomically to a target that is a regular file."""

from __future__ import annotations

import csv
import io
import os
import re
import stat
from pathlib import Path

from toysup.engine.errors import RunDataError, UserError
from toysup.engine.export_tables import joined_text
from toysup.engine.run import layout
from toysup.engine.run.folder import Run


def export_text(run: Run, table: str = "results") -> str:
    """A table as CSV with a leading run_id column, so exported rows say where they came from, joined and typed
    (engine/export_tables.py: instance, point, seed and the swept parameters in every table; booleans 1/0). A
    table that disagrees with the run's manifest (cut or edited) is refused with what is wrong."""
    text = run.table_text(table)
    problem = run.problem(deep=True)
    if problem and problem.startswith(f"{table}.csv"):
        raise RunDataError(f"run {run.id} is damaged: {problem}")
    return with_run_id(joined_text(run, table, text), run.id)


def export(run: Run, target: Path, table: str = "results") -> int:
    """Write :func:`export_text` to ``target`` atomically (``toysup export -o`` and the TUI's export);
    returns the number of rows. A target that is a link (``/proc/self/fd/1`` too), a folder, a FIFO or
    device, in a missing folder or unwritable is a UserError; an existing file keeps its permission bits;
    a failed write (a full disk) leaves the target as it was and no temporary."""
    mode = _export_target_mode(target)
    text = export_text(run, table)
    try:
        layout.atomic_write(target, text, mode=mode)
    except OSError as exc:
        raise UserError(f"{target}: cannot be written: {exc.strerror or exc}") from None
    return max(text.count("\n") - 1, 0)


def _export_target_mode(target: Path) -> int | None:
    """An existing export target's permission bits (None for a new file); UserError for a target that is
    not a regular file of its own: replacing a link would surprise, writing through one would harm."""
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise UserError(f"{target}: cannot be written: {exc.strerror or exc}") from None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise UserError(f"{target} is a symbolic link: give the file it points to, or another name")
        if stat.S_ISDIR(st.st_mode):
            raise UserError(f"{target} is a directory: give a file name")
        if not stat.S_ISREG(st.st_mode):
            raise UserError(f"{target} is not a regular file (a FIFO, socket or device): give a file name")
    if not target.parent.is_dir():
        raise UserError(f"{target}: folder {target.parent} does not exist")
    return None if st is None else stat.S_IMODE(st.st_mode)


# A cell starting with one of these is a formula to a spreadsheet (OWASP's CSV injection list).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralised(cell: str) -> str:
    """A CSV cell safe to open in a spreadsheet: one starting with a formula character gets a leading
    single quote, as OWASP advises; a number (``-0.5``, ``-inf``) is left as it is."""
    if not cell.startswith(FORMULA_START):
        return cell
    try:
        float(cell)
        return cell
    except ValueError:
        return "'" + cell


def with_run_id(text: str, run_id: str) -> str:
    """Prefix a CSV table with a run_id column, so exported rows say where they came from; every text
    cell that a spreadsheet would take for a formula is :func:`neutralised`, then every cell holding a CR
    or LF is quoted (:func:`csv_line`)."""
    if not text:
        return text
    reader = csv.reader(io.StringIO(text))
    out: list[str] = []
    try:
        header = next(reader, None)
        if header is None:
            return ""
        out.append(csv_line(["run_id", *(neutralised(c) for c in header)]))
        run_cell = neutralised(run_id)
        out.extend(csv_line([run_cell, *(neutralised(c) for c in row)]) for row in reader)
    except csv.Error as exc:
        raise RunDataError(f"run {run_id} is damaged: its table is not CSV (line {reader.line_num}: {exc})") from None
    return "".join(out)


_SPECIAL = re.compile(r'[,"\r\n]')


def csv_line(cells: list[str]) -> str:
    """One CSV line: a cell holding a comma, a quote, a CR or an LF is quoted (quotes doubled). The csv
    module's writer quotes only the characters of its line terminator, so with ``\\n`` a bare CR went out
    unquoted and a spreadsheet read the text after it as the next row's cells."""
    return ",".join(f'"{c.replace(chr(34), chr(34) * 2)}"' if _SPECIAL.search(c) else c for c in cells) + "\n"
