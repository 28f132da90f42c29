"""The runs in a runs directory: listing them newest first and finding one by path, name or prefix. A run
folder is a real folder: a link in the runs directory is neither listed nor opened (it could point anywhere,
and a folder that travels between machines may hold one)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from toysup.engine.errors import UserError
from toysup.engine.run.folder import Run
from toysup.engine.run.layout import RUNS_ENV


def is_run_folder(path: Path) -> bool:
    """A real folder (not a link to one) holding run.json or config.toml."""
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return False
    except OSError:
        return False
    return os.path.lexists(path / "run.json") or os.path.lexists(path / "config.toml")


def list_runs(root: Path) -> list[Run]:
    """Run folders under ``root``, newest first (by folder name, which starts with the time)."""
    if not root.is_dir():
        return []
    runs = [Run(p) for p in root.iterdir() if is_run_folder(p)]
    return sorted(runs, key=_created, reverse=True)


def _created(run: Run) -> tuple[str, int, str]:
    """Sort key: the folder's time stamp, then, for runs started in the same second (whose names
    alone would sort alphabetically), when their config.toml was written."""
    try:
        written = os.lstat(run.path / "config.toml").st_mtime_ns
    except OSError:
        written = 0
    return run.id[:15], written, run.id


def find_run(root: Path, ref: str) -> Run:
    """A run by path, by folder name, by unique prefix of it, or ``latest``; a path that is a link to a folder is
    refused (a run folder is never opened through a link)."""
    path = Path(ref).expanduser()
    if os.path.islink(path) and path.is_dir():
        raise UserError(f"{ref} is a symbolic link: give the run folder it points to")
    if is_run_folder(path):
        return Run(path)
    runs = list_runs(root)
    if ref in ("latest", "last") and runs:
        return runs[0]
    exact = [r for r in runs if r.id == ref]
    if exact:
        return exact[0]
    matches = [r for r in runs if r.id.startswith(ref) or ref in r.id]
    if len(matches) == 1:
        return matches[0]
    if not runs:
        raise UserError(f"no run {ref!r}: {root} holds no runs (set --runs-dir or {RUNS_ENV})")
    if matches:
        raise UserError(f"run {ref!r} is ambiguous: matches {', '.join(r.id for r in matches[:5])}")
    raise UserError(f"no run {ref!r} in {root}; newest: {', '.join(r.id for r in runs[:3])} (or 'latest')")
