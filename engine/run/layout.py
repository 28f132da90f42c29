"""A run folder's layout: one folder per run, plain files, every write atomic. The files::

    runs/<YYYYmmdd-HHMMSS>-<name>/
      config.toml     the resolved spec; `toysup run <folder>/config.toml` repeats the run
      run.json        status, start and end time, device, host, pid, versions, wall time, throughput, error
      results.csv     instance, seed, point, <swept parameters>, <metrics>, diverged
      curves.csv      instance, step, loss, <curve columns>
      features.csv    instance, feature, <feature columns>
      weights/chunk-NNNN.safetensors       instance, <weights>; with snapshots=N also <weight>.snapshots, snapshot_steps
      checkpoints/chunk-NNNN.safetensors   while a chunk trains: instance, its weights, optimiser state, curves so far
      error.log       a failed run's traceback
      manifest.json   per stored chunk: its instances, and the row counts, sizes and sha256 of its files
      events.jsonl    the events the live view shows, one JSON object a line: what `toysup watch` and the TUI follow
      heartbeat.json  host and pid of the process training the run, its last beat (every 5 s) and progress
      lock            host and pid of the one process allowed to train the run (it holds a lock on this file)
      fence           the lock's generation: a writer whose lock was broken finds a newer one and stops
      stop            present while the run is asked to stop (`toysup stop`, the TUI)
      output.log      a detached run's output (`toysup run --detach`, launched from the TUI)

What each table holds is decided in engine/run_format.py; engine/run/ writes and reads the files, one job
a module: this one (the layout, the names the store gives its files, file access that never follows a link),
then reader, integrity, writer and recovery (each adds its methods to :class:`engine.run.folder.Run`),
catalogue and export; record.py is run.json, status.py the run's status, config.py config.toml read back.
While a run is going, curves and features of finished chunks sit in ``parts/``; they are gathered into
curves.csv and features.csv when the run ends, whatever its status. results.csv is rewritten (atomically)
after every chunk. A run's status is :meth:`Run.status`'s (engine/run/status.py), never run.json's raw word.

A run folder may be damaged or hostile (it travels between machines): the store
never follows a symbolic link inside it and deletes only regular files of its own
naming (engine/safe_fs.py); every file it cannot read or that disagrees with
manifest.json makes the run ``damaged`` (with :meth:`Run.problem` saying why), and
resume trains again whatever it cannot verify (engine/manifest.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from toysup.engine import safe_fs, settings
from toysup.engine.errors import RunDataError, UserError
from toysup.engine.run_format import parse_csv

if TYPE_CHECKING:
    import torch

RUNS_ENV = "TOYSUP_RUNS_DIR"

# The names the store gives the files it may delete; nothing else in a run folder is ever removed.
PART_NAME = re.compile(r"(results|curves|features)-(\d{4,})(-before-resume)?\.csv")
WEIGHTS_NAME = re.compile(r"chunk-(\d{4,})\.safetensors")
TEMPORARY_NAME = re.compile(r"\..+\.(\d+\.)?tmp")
MANIFEST_BYTES = 512 * 2**20  # ~100 bytes an instance: room for the 5,000,000 a spec allows


def atomic_write(path: Path, data: str | bytes, sync: bool = True, mode: int | None = None) -> None:
    """The run package's one way to write a file (engine/safe_fs.py's atomic, no-follow write). Every module
    of the package writes through ``layout.atomic_write``, so a test can fail all of its writes at once."""
    safe_fs.atomic_write(path, data, sync, mode)


def runs_dir(option: str | Path | None = None) -> Path:
    """``--runs-dir`` if given, else $TOYSUP_RUNS_DIR, else config.toml's runs_dir, else ./runs; UserError for a
    path no file system takes (a part over 255 bytes, the whole over 4,095), which would otherwise fail at its first
    use."""
    path = settings.runs_dir(option)
    parts = [os.fsencode(part) for part in path.parts]
    if len(os.fsencode(path)) > 4095 or any(len(part) > 255 for part in parts):
        where = "--runs-dir" if option else "the runs directory ($TOYSUP_RUNS_DIR or config.toml)"
        raise UserError(f"{where} is not a usable path: too long ({len(str(path)):,} characters; at most 255 "
                        "bytes a part and 4,095 in all)")
    return path


def why(exc: BaseException) -> str:
    """An OSError or decoding error as a few words (no path: the caller names the file)."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """A run's CSV file as header and rows; RunDataError when it cannot be read or is malformed."""
    try:
        text = safe_fs.read_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDataError(f"{path.name} cannot be read: {why(exc)}") from None
    return parse_csv(text, path.name)


def now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "sweep"


def load_safetensors(data: bytes) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file's bytes. torch is imported only where tensors are read, made or
    stored: listing runs and reading their tables needs none."""
    from safetensors.torch import load  # deferred: loads torch, which listings never need

    return load(data)


def save_safetensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.torch import save  # deferred: loads torch, which listings never need

    return save(tensors, metadata=metadata)


def first_instance(text: str) -> int:
    """The instance of a CSV piece's first row (pieces are gathered in instance order)."""
    lines = text.splitlines()
    try:
        return int(lines[1].split(",", 1)[0]) if len(lines) > 1 else -1
    except ValueError:
        return -1


def chunk_number(name: str, pattern: re.Pattern[str]) -> int | None:
    found = pattern.fullmatch(name)
    return int(found.group(2 if pattern is PART_NAME else 1)) if found else None


def concat_csv(texts: list[str]) -> str:
    """CSV texts with one header: the first non-empty one's (a run cut before any chunk has empty tables)."""
    out: list[str] = []
    for text in texts:
        lines = text.splitlines(keepends=True)
        out.extend(lines if not out else lines[1:])
    return "".join(out)


@dataclass
class RunFolder:
    """A run folder's path and safe access to the files inside it (never through a link). Each job on top
    is its own module (reader, integrity, writer, recovery); :class:`engine.run.folder.Run` has them all."""

    path: Path

    @classmethod
    def open(cls, path: Path) -> Self:
        """An existing run folder; UserError for a path that is not one, or is a link (never followed)."""
        if os.path.islink(path):
            raise UserError(f"{path} is a symbolic link: give the run folder it points to")
        if not (path / "run.json").is_file() and not (path / "config.toml").is_file():
            raise UserError(f"{path} is not a run folder (no run.json)")
        return cls(path)

    @property
    def id(self) -> str:
        return self.path.name

    # --- files and folders inside the run, never through a link ----------------------------------

    def folder(self, name: str) -> Path:
        """A subfolder of the run (parts, weights, checkpoints); RunDataError if it is a link or a file."""
        path = self.path / name
        try:
            safe_fs.check_folder(path)
        except OSError as exc:
            raise RunDataError(f"run {self.id} is damaged: {name}/ {exc.strerror}: refused") from None
        return path

    def _files(self, name: str, pattern: re.Pattern[str]) -> list[Path]:
        """The regular files of subfolder ``name`` named as the store names them, sorted."""
        folder = self.folder(name)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if pattern.fullmatch(p.name) and safe_fs.is_regular(p))

    def _read(self, relative: str) -> bytes:
        """A file of the run by its relative path (RunDataError naming it if missing, a link or unreadable)."""
        parent, _, _ = relative.rpartition("/")
        path = (self.folder(parent) if parent else self.path) / relative.rpartition("/")[2]
        try:
            return safe_fs.read_bytes(path)
        except OSError as exc:
            raise RunDataError(f"{relative} of run {self.id} cannot be read: {why(exc)}") from None

    def _read_text(self, relative: str) -> str:
        data = self._read(relative)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RunDataError(f"{relative} of run {self.id} cannot be read: {why(exc)}") from None

    def _write(self, relative: str, data: str | bytes) -> None:
        parent, _, name = relative.rpartition("/")
        folder = self.folder(parent) if parent else self.path
        if parent and not folder.is_dir():
            folder.mkdir()
        atomic_write(folder / name, data)

    def _remove(self, relative: str) -> None:
        """Delete a file of the store's own naming, if it is a regular file in a real folder."""
        parent, _, name = relative.rpartition("/")
        folder = self.folder(parent) if parent else self.path
        safe_fs.remove_file(folder / name)
