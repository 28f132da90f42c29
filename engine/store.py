"""The run store: one folder per run, plain files, every write atomic. The files::

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

What each table holds is decided in engine/run_format.py; this module writes and
reads the files. While a run is going, curves and features of finished chunks sit
in ``parts/``; they are gathered into curves.csv and features.csv when the run
ends, whatever its status. results.csv is rewritten (atomically) after every chunk.
A run's status is :meth:`Run.status`'s (engine/run/status.py), never run.json's raw word.

A run folder may be damaged or hostile (it travels between machines): the store
never follows a symbolic link inside it and deletes only regular files of its own
naming (engine/safe_fs.py); every file it cannot read or that disagrees with
manifest.json makes the run ``damaged`` (with :meth:`Run.problem` saying why), and
resume trains again whatever it cannot verify (engine/manifest.py).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import os
import platform
import re
import socket
import stat
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from toysup import engine
from toysup.engine import safe_fs, settings
from toysup.engine.errors import RunDataError, UserError
from toysup.engine.export_tables import joined_text
from toysup.engine.manifest import PIECES, Manifest, digest, matches, segment
from toysup.engine.manifest import Chunk as StoredChunk
from toysup.engine.run.record import INFO_BYTES, RunRecord, parse_record
from toysup.engine.run.status import RESUMABLE, STATUSES, Status, status_of  # noqa: F401  (the store's statuses)
from toysup.engine.run_format import (  # noqa: F401  (the run format's cells are the store's too)
    TABLES,
    csv_text,
    curve_csv,
    feature_csv,
    format_value,
    parse_csv,
    parse_value,
    result_columns,
    result_rows,
)
from toysup.engine.runlog import read_heartbeat
from toysup.engine.spec import Spec, read_preset, resolve

if TYPE_CHECKING:
    import torch

    from toysup.engine.train import ChunkResult

RUNS_ENV = "TOYSUP_RUNS_DIR"

# The names the store gives the files it may delete; nothing else in a run folder is ever removed.
PART_NAME = re.compile(r"(results|curves|features)-(\d{4,})(-before-resume)?\.csv")
WEIGHTS_NAME = re.compile(r"chunk-(\d{4,})\.safetensors")
TEMPORARY_NAME = re.compile(r"\..+\.(\d+\.)?tmp")

atomic_write = safe_fs.atomic_write  # the store's one way to write a file (see engine/safe_fs.py)
MANIFEST_BYTES = 512 * 2**20  # ~100 bytes an instance: room for the 5,000,000 a spec allows


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


def _why(exc: BaseException) -> str:
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
        raise RunDataError(f"{path.name} cannot be read: {_why(exc)}") from None
    return parse_csv(text, path.name)


def now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "sweep"


def load_safetensors(data: bytes) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file's bytes. torch is imported only where tensors are read, made or
    stored: listing runs and reading their tables needs none."""
    from safetensors.torch import load

    return load(data)


def save_safetensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    from safetensors.torch import save

    return save(tensors, metadata=metadata)


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file's bytes (its header is JSON after an 8-byte length)."""
    (size,) = struct.unpack("<Q", data[:8])
    meta = json.loads(data[8:8 + size]).get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise ValueError("metadata is not an object")
    return meta


def _first_instance(text: str) -> int:
    """The instance of a CSV piece's first row (pieces are gathered in instance order)."""
    lines = text.splitlines()
    try:
        return int(lines[1].split(",", 1)[0]) if len(lines) > 1 else -1
    except ValueError:
        return -1


def _chunk_number(name: str, pattern: re.Pattern[str]) -> int | None:
    found = pattern.fullmatch(name)
    return int(found.group(2 if pattern is PART_NAME else 1)) if found else None


@dataclass
class Run:
    """A run folder, for writing (``Run.create``) or reading (``Run.open``)."""

    path: Path

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
            raise RunDataError(f"{relative} of run {self.id} cannot be read: {_why(exc)}") from None

    def _read_text(self, relative: str) -> str:
        data = self._read(relative)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RunDataError(f"{relative} of run {self.id} cannot be read: {_why(exc)}") from None

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

    # --- creating and writing -------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, spec: Spec, device: str, chunks: int, extra: dict[str, Any] | None = None) -> Run:
        """Make a fresh folder (never reusing one) with config.toml and a 'running' run.json. If the
        folder cannot be completed (a full disk), what was made of it is removed again."""
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"runs directory {root} cannot be created: {exc.strerror}") from None
        if not os.access(root, os.W_OK):
            raise UserError(f"runs directory {root} is not writable")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{_slug(spec.name)}"
        for attempt in range(1, 1000):
            path = root / (base if attempt == 1 else f"{base}-{attempt}")
            try:
                path.mkdir()  # atomic: two runs in the same second get distinct folders
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - a thousand runs of one name in one second
            raise UserError(f"could not create a run folder under {root}")
        run = cls(path)
        try:
            (path / "weights").mkdir()
            (path / "parts").mkdir()
            atomic_write(path / "config.toml", spec.to_toml())
            run.write_record(run._first_record(spec, device, chunks, extra))
        except BaseException as exc:
            run._remove_unfinished()
            if isinstance(exc, OSError):
                raise UserError(f"run folder under {root} cannot be written: {_why(exc)}") from None
            raise
        return run

    def _first_record(self, spec: Spec, device: str, chunks: int, extra: dict[str, Any] | None) -> RunRecord:
        import torch

        versions = {"toysup": engine.__version__, "torch": torch.__version__, "python": platform.python_version()}
        return RunRecord(id=self.path.name, name=spec.name, model=spec.model, status=Status.RUNNING,
                         started=now_iso(), device=device, host=socket.gethostname(), versions=versions,
                         command=" ".join(sys.argv), pid=os.getpid(), instances=spec.n_instances,
                         chunks=chunks).with_changes(**(extra or {}))

    def _remove_unfinished(self) -> None:
        """Undo a half-made folder: the files create() writes, its two subfolders, the folder."""
        for name in ("config.toml", "run.json"):
            with contextlib.suppress(OSError):
                safe_fs.remove_file(self.path / name)
        for entry in list(self.path.iterdir()) if self.path.is_dir() else []:
            if TEMPORARY_NAME.fullmatch(entry.name):
                with contextlib.suppress(OSError):
                    safe_fs.remove_file(entry)
        for folder in ("weights", "parts", ""):
            with contextlib.suppress(OSError):
                (self.path / folder).rmdir()

    def write_record(self, record: RunRecord) -> None:
        """run.json, atomically (the record's heartbeat is heartbeat.json's and is not written)."""
        atomic_write(self.path / "run.json", record.text())

    def rewrite_record_in_place(self, record: RunRecord) -> None:
        """Write ``record`` over run.json's own bytes, needing no new disk block: only if its compact JSON fits
        the file as it is (padded with spaces, which JSON ignores); OSError otherwise. Not atomic, so only the
        last resort of a run's ending on a full disk (the run then reads ``failed`` with its reason, not
        ``killed``)."""
        text = json.dumps(record.to_json(), separators=(",", ":")).encode("utf-8")
        fd = safe_fs.open_regular(self.path / "run.json", os.O_WRONLY)
        try:
            size = os.fstat(fd).st_size
            if len(text) + 1 > size:
                raise OSError(errno.ENOSPC, "run.json's new text does not fit its old bytes")
            os.pwrite(fd, text + b" " * (size - len(text) - 1) + b"\n", 0)
            os.fsync(fd)
        finally:
            os.close(fd)

    def update_record(self, **changes: Any) -> RunRecord:
        """run.json with some fields changed (by name; a misspelt one is a TypeError)."""
        record = self.record().with_changes(**changes)
        self.write_record(record)
        return record

    def write_results(self, columns: list[str], rows: list[dict[str, Any]]) -> None:
        atomic_write(self.path / "results.csv", csv_text(columns, sorted(rows, key=lambda r: r["instance"])))

    def write_chunk(self, spec: Spec, result: ChunkResult, rows: list[dict[str, Any]]) -> None:
        """A trained chunk: its results, curves, features and weights as parts, then its entry in
        manifest.json, then its rows added to ``rows`` (the results stored so far), which results.csv
        is rewritten with. A kill before the manifest names the chunk has it trained again."""
        import torch

        chunk = result.chunk
        weights = dict(result.weights)
        weights["instance"] = torch.tensor([i.index for i in chunk.instances], dtype=torch.int64)
        if result.snapshot_steps:
            for name, values in result.snapshots.items():
                weights[f"{name}.snapshots"] = values
            weights["snapshot_steps"] = torch.tensor(result.snapshot_steps).expand(len(chunk), -1)
        new_rows = result_rows(spec, result)
        columns = result_columns(spec)
        pieces = {"results": csv_text(columns, sorted(new_rows, key=lambda r: r["instance"])),
                  "curves": curve_csv(spec, result), "features": feature_csv(spec, result)}
        self._write(f"parts/results-{chunk.index:04d}.csv", pieces["results"])
        blob = self.write_part(chunk.index, pieces["curves"], pieces["features"], weights)
        files = {name: digest(text.encode("utf-8"), text.count("\n") - 1) for name, text in pieces.items()}
        files["weights"] = digest(blob)
        manifest = self.manifest() or Manifest()
        manifest.chunks[chunk.index] = StoredChunk([i.index for i in chunk.instances], files)
        self.write_manifest(manifest)
        rows.extend(new_rows)
        self.write_results(columns, rows)

    def write_error_log(self, text: str) -> None:
        """error.log: the traceback of a failed run (replacing a link there, never writing through it)."""
        atomic_write(self.path / "error.log", text)

    def write_part(self, chunk: int, curves: str, features: str, weights: dict[str, torch.Tensor]) -> bytes:
        """A finished chunk's curves, per-feature rows and weights; returns the weights file's bytes."""
        self._write(f"parts/curves-{chunk:04d}.csv", curves)
        self._write(f"parts/features-{chunk:04d}.csv", features)
        blob = save_safetensors({k: v.contiguous() for k, v in weights.items()})
        self._write(f"weights/chunk-{chunk:04d}.safetensors", blob)
        return blob

    def manifest(self) -> Manifest | None:
        """manifest.json, or None if the run has none (written before manifests) or it cannot be read."""
        try:
            return self.read_manifest()
        except RunDataError:
            return None

    def read_manifest(self) -> Manifest | None:
        """manifest.json as a typed record (engine/manifest.py), None if the run has none; RunDataError
        naming what is wrong when it is not a regular file, too big, or of the wrong shape."""
        if not os.path.lexists(self.path / "manifest.json"):
            return None
        try:
            return Manifest.from_json(safe_fs.read_text(self.path / "manifest.json", MANIFEST_BYTES))
        except (OSError, UnicodeDecodeError) as exc:
            raise RunDataError(f"manifest.json cannot be read: {_why(exc)}") from None
        except RecursionError:
            raise RunDataError("manifest.json cannot be read: nested too deeply") from None
        except ValueError as exc:
            raise RunDataError(f"manifest.json cannot be read: {exc}") from None

    def write_manifest(self, manifest: Manifest) -> None:
        atomic_write(self.path / "manifest.json", manifest.to_json())

    def gather_parts(self) -> None:
        """Concatenate the chunk parts into curves.csv and features.csv (in instance order, so the tables
        do not depend on which chunk trained when), record them in the manifest, then drop the parts."""
        parts = self._files("parts", PART_NAME)
        if not parts and not self.folder("parts").is_dir():
            return
        texts = {p: self._read_text(f"parts/{p.name}") for p in parts}
        for table in ("curves", "features"):
            mine = [p for p in parts if p.name.startswith(f"{table}-")]
            ordered = sorted(mine, key=lambda p: (_first_instance(texts[p]), p.name))
            atomic_write(self.path / f"{table}.csv", _concat_csv([texts[p] for p in ordered]))
        manifest = self.manifest()
        if manifest is not None:
            manifest.tables = {f"{t}.csv": digest(self._read(f"{t}.csv")) for t in TABLES
                               if safe_fs.is_regular(self.path / f"{t}.csv")}
            self.write_manifest(manifest)
        self._drop_parts()

    def _drop_parts(self) -> None:
        for path in self._files("parts", PART_NAME) + self._files("parts", TEMPORARY_NAME):
            safe_fs.remove_file(path)
        with contextlib.suppress(OSError):
            self.folder("parts").rmdir()  # left alone if anything not of ours is in it

    def write_checkpoint(self, chunk: int, instances: list[int], tensors: dict[str, torch.Tensor],
                         meta: dict[str, int]) -> None:
        """The training state of a chunk in progress: checkpoints/chunk-NNNN.safetensors, replaced atomically
        (one file per chunk, since chunks may train side by side on a cluster)."""
        import torch

        data = {**tensors, "instance": torch.tensor(instances, dtype=torch.int64)}
        blob = save_safetensors({k: v.contiguous() for k, v in data.items()},
                                metadata={k: str(v) for k, v in meta.items()})
        self._write(f"checkpoints/chunk-{chunk:04d}.safetensors", blob)

    def read_checkpoints(self) -> list[tuple[int, list[int], dict[str, torch.Tensor], dict[str, int]]]:
        """The checkpoints of chunks cut short: each one's chunk number, instances, tensors and step counters.
        A checkpoint that cannot be read (cut mid-write by hand, garbled) is removed: its chunk trains from
        the start."""
        found = []
        for path in self._files("checkpoints", WEIGHTS_NAME):
            try:
                data = self._read(f"checkpoints/{path.name}")
                meta = {k: int(v) for k, v in _safetensors_metadata(data).items()}
                tensors = load_safetensors(data)
                instances = [int(i) for i in tensors.pop("instance")]
            except (RunDataError, SafetensorError, ValueError, KeyError, struct.error, TypeError):
                safe_fs.remove_file(path)
                continue
            found.append((int(path.stem.split("-")[1]), instances, tensors, meta))
        return found

    def clear_checkpoint(self, chunk: int) -> None:
        self._remove(f"checkpoints/chunk-{chunk:04d}.safetensors")

    def recover(self, spec: Spec) -> tuple[list[dict[str, Any]], dict[int, list[int]]]:
        """Before resuming: keep exactly the stored chunks whose files match manifest.json; returns their
        results rows, and the chunks the manifest names that failed the check (number -> instances, so
        they train again as they were, under their own numbers). Everything else (a chunk cut between
        its writes, a damaged or missing file, rows duplicated or cut in half, a results.csv emptied) is
        removed and its instances train again.

        A chunk's pieces are looked for in parts/ and in the gathered tables alike, and put back in
        parts/ for the next gather_parts(); this is idempotent, so a kill during it is resumed too. A run
        without a manifest (written before manifests) is recovered by the results.csv it has.
        """
        manifest = self.manifest()
        if manifest is None and not (self.path / "manifest.json").exists() and self.stored_chunks():
            return self._recover_without_manifest(), {}
        manifest = manifest or Manifest()
        gathered = {t: self._gathered_text(t) for t in PIECES}
        parts = {p.name: p for p in self._files("parts", PART_NAME)}
        weights = {p.name: p for p in self._files("weights", WEIGHTS_NAME)}
        valid = set(range(spec.n_instances))
        good: dict[int, dict[str, str]] = {}
        bad: dict[int, list[int]] = {}
        seen: set[int] = set()
        for number, chunk in sorted(manifest.chunks.items()):
            members = set(chunk.instances)
            if not members or not members <= valid or members & seen or len(members) != len(chunk.instances):
                continue
            seen |= members
            bad[number] = chunk.instances
            name = f"chunk-{number:04d}.safetensors"
            if name not in weights or not matches(self._read(f"weights/{name}"), chunk.files.get("weights", {})):
                continue
            texts: dict[str, str] = {}
            for piece in PIECES:
                candidates = []  # the chunk's piece as parts/ holds it, then as cut from the gathered table
                part = parts.get(f"{piece}-{number:04d}.csv")
                if part is not None:
                    with contextlib.suppress(RunDataError):
                        candidates.append(self._read_text(f"parts/{part.name}"))
                table = gathered[piece]
                if table is not None:
                    candidates.append(segment(table, members))
                found = next((t for t in candidates if matches(t.encode("utf-8"), chunk.files.get(piece, {}))), None)
                if found is not None:
                    texts[piece] = found
            if len(texts) == len(PIECES):
                good[number] = texts
                del bad[number]
        # Put the good chunks' pieces in parts/, then forget (and remove) everything else, temporaries
        # of writes that were cut short included.
        for folder in ("", "parts", "weights", "checkpoints"):
            for path in self._files(folder, TEMPORARY_NAME) if folder else self._temporaries():
                safe_fs.remove_file(path)
        for number, texts in good.items():
            for piece, text in texts.items():
                self._write(f"parts/{piece}-{number:04d}.csv", text)
        for name, path in parts.items():
            if _chunk_number(name, PART_NAME) not in good or name.endswith("-before-resume.csv"):
                safe_fs.remove_file(path)
        for name, path in weights.items():
            if _chunk_number(name, WEIGHTS_NAME) not in good:
                safe_fs.remove_file(path)
        self.write_manifest(Manifest({n: manifest.chunks[n] for n in good}))
        for table in ("curves", "features"):
            self._remove(f"{table}.csv")
        rows = [row for number in sorted(good) for row in parse_csv(good[number]["results"], "results.csv")[1]]
        self.write_results(result_columns(spec), rows)
        return rows, bad

    def _temporaries(self) -> list[Path]:
        return sorted(p for p in self.path.iterdir() if TEMPORARY_NAME.fullmatch(p.name) and safe_fs.is_regular(p))

    def _gathered_text(self, table: str) -> str | None:
        """A gathered table's text, or None if it is missing or unreadable (its chunks are then looked for
        in parts/ alone)."""
        if not (self.path / f"{table}.csv").exists():
            return None
        try:
            return self._read_text(f"{table}.csv")
        except RunDataError:
            return None

    def _recover_without_manifest(self) -> list[dict[str, Any]]:
        """A run from before manifests: trust results.csv, drop the chunks it lacks rows for, move the
        gathered tables back into parts/."""
        try:
            _, rows = self.results()
        except RunDataError as exc:
            raise UserError(f"{exc}: it cannot be resumed") from None
        done = {r["instance"] for r in rows}
        for path in self._files("weights", WEIGHTS_NAME):
            try:
                instances = {int(i) for i in load_safetensors(self._read(f"weights/{path.name}"))["instance"]}
            except (RunDataError, SafetensorError, KeyError):
                instances = {-1}
            if not instances <= done:
                index = path.stem.split("-")[1]
                safe_fs.remove_file(path)
                for table in ("curves", "features"):
                    self._remove(f"parts/{table}-{index}.csv")
        parts = self.folder("parts")
        parts.mkdir(exist_ok=True)
        for table in ("curves", "features"):
            gathered = self.path / f"{table}.csv"
            if safe_fs.is_regular(gathered):
                os.replace(gathered, parts / f"{table}-0000-before-resume.csv")
        return rows

    # --- reading --------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path) -> Run:
        if not (path / "run.json").is_file() and not (path / "config.toml").is_file():
            raise UserError(f"{path} is not a run folder (no run.json)")
        return cls(path)

    @property
    def id(self) -> str:
        return self.path.name

    def record(self) -> RunRecord:
        """run.json as its typed record (engine/run/record.py), with heartbeat.json beside a 'running' one; a
        'damaged' stand-in when it is missing, not a regular file, too big, or has a field of the wrong shape
        (the stand-in's ``damage`` and ``error`` name it)."""
        try:
            record = parse_record(safe_fs.read_text(self.path / "run.json", INFO_BYTES))
            if record.status == Status.RUNNING:  # whether it still is: see engine/run/status.py
                record.heartbeat = read_heartbeat(self.path)
            return record
        except (OSError, ValueError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else _why(exc)
            return RunRecord(id=self.id, status=Status.DAMAGED, error=f"run.json: {why}", damage=f"run.json: {why}")

    def status(self) -> Status:
        """The run's :class:`Status` (engine/run/status.py): ``damaged`` too when :meth:`problem` finds one."""
        record = self.record()
        return status_of(record, lambda: self.problem(record))

    def running(self) -> bool:
        """Whether the run trains now (its process alive): what followers of its event log wait on."""
        return self.status() is Status.RUNNING

    def problem(self, record: RunRecord | None = None, deep: bool = True) -> str:
        """What is wrong with the run's files, in one line naming the file, or "" if nothing is.

        Sizes, row counts and every file's sha256 against manifest.json, so ``toysup runs`` and
        ``toysup report`` agree on same-size corruption too (a file's hash is remembered while it is
        unchanged: listing again is cheap). ``deep`` False skips the hashes. A live run is not checked:
        its files are still being written.
        """
        record = self.record() if record is None else record
        if record.status == Status.DAMAGED and record.error:
            return record.error
        if record.status not in STATUSES:
            return f"run.json: unknown status {record.status[:40]!r}"
        if status_of(record) is Status.RUNNING:
            return ""
        try:
            return self._problem(record, deep)
        except RunDataError as exc:
            return str(exc)

    def _problem(self, record: RunRecord, deep: bool) -> str:
        for name in ("parts", "weights", "checkpoints"):
            self.folder(name)
        if not (self.path / "config.toml").exists():
            return "config.toml is missing"
        try:
            spec = self.spec()
        except RunDataError as exc:
            return str(exc)
        _, rows = self.results()
        instances = {r.get("instance") for r in rows}
        if len(instances) != len(rows):
            return "results.csv: an instance appears twice"
        if record.status == Status.COMPLETED and len(rows) != (held := completed_instances(spec, rows)):
            if held < 0:
                return "results.csv: its rows do not finish the adaptive sweep's rounds, but the run completed"
            return f"results.csv: {len(rows)} rows, but the run completed {held} instances"
        manifest = self.read_manifest()
        if manifest is None:
            return ""
        for number, chunk in manifest.chunks.items():
            name = f"weights/chunk-{number:04d}.safetensors"
            if not os.path.lexists(self.path / name):
                return f"{name} is missing"
            if not self._matches(name, chunk.files.get("weights", {}), deep):
                return f"{name} does not match manifest.json (cut or changed)"
        for table, expected in manifest.tables.items():  # names of the gathered tables only (engine/manifest.py)
            if not os.path.lexists(self.path / table):
                return f"{table} is missing"
            if not self._matches(table, expected, deep):
                return f"{table} does not match manifest.json (cut or changed)"
        return ""

    def _matches(self, relative: str, expected: dict[str, Any], deep: bool) -> bool:
        """Whether a file of the run has the size (and, ``deep``, the sha256) manifest.json records. The hash
        of an unchanged file is remembered (:func:`_sha256`), so listing runs again costs a stat per file."""
        path = self.path / relative
        try:
            st = os.lstat(path)
        except OSError:
            return False
        if st.st_size != expected.get("size"):
            return False
        return not deep or _sha256(path, st, lambda: self._read(relative)) == expected.get("sha256")

    def spec(self) -> Spec:
        """The run's resolved spec from config.toml (RunDataError if it is missing or not a valid spec)."""
        path = self.path / "config.toml"
        if not path.exists():
            raise RunDataError(f"run {self.id} is damaged: config.toml is missing")
        try:
            safe_fs.read_bytes(path)  # a link or a FIFO is refused before the TOML reader opens it
            return resolve(read_preset(str(path)), source=str(path))
        except OSError as exc:
            raise RunDataError(f"run {self.id} is damaged: config.toml cannot be read: {_why(exc)}") from None
        except (UserError, RecursionError, UnicodeDecodeError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else _why(exc)
            raise RunDataError(f"run {self.id} is damaged: {why}") from None

    def results(self) -> tuple[list[str], list[dict[str, Any]]]:
        """results.csv's header and rows as stored (both empty before the first chunk finishes).
        engine.results.Results adds each row's sweep point and the joins to the other tables."""
        path = self.path / "results.csv"
        if not path.exists():
            return [], []
        return parse_csv(self._read_text("results.csv"), "results.csv")

    def table_path(self, table: str) -> Path:
        return self.path / f"{table}.csv"

    def table_text(self, table: str) -> str:
        """results, curves or features as CSV text (live runs: gathered from the parts)."""
        if table not in TABLES:
            raise UserError(f"no table {table!r}: expected {', '.join(TABLES)}")
        if self.table_path(table).exists():
            return self._read_text(f"{table}.csv")
        if table != "results":
            files = [p for p in self._files("parts", PART_NAME) if p.name.startswith(f"{table}-")]
            if files:
                texts = [self._read_text(f"parts/{p.name}") for p in files]
                return _concat_csv(sorted(texts, key=_first_instance))
        raise RunDataError(f"run {self.id} has no {table} table yet")

    def table(self, table: str) -> tuple[list[str], list[dict[str, Any]]]:
        """results, curves or features as header and rows (RunDataError if absent or malformed)."""
        return parse_csv(self.table_text(table), f"{table}.csv")

    def stored_chunks(self) -> list[int]:
        """The numbers of the chunks whose weights are stored (so finished), in order."""
        return [int(p.stem.split("-")[1]) for p in self._files("weights", WEIGHTS_NAME)]

    def weights(self) -> Iterator[dict[str, torch.Tensor]]:
        """Each chunk's weights (with its ``instance`` index tensor), in chunk order."""
        for path in self._files("weights", WEIGHTS_NAME):
            try:
                tensors = load_safetensors(self._read(f"weights/{path.name}"))
            except SafetensorError as exc:
                raise RunDataError(f"weights/{path.name} of run {self.id} cannot be read: {exc}") from None
            if "instance" not in tensors:
                raise RunDataError(f"weights/{path.name} of run {self.id} has no instance index")
            yield tensors

    def instance_weights(self, instance: int) -> dict[str, torch.Tensor]:
        for tensors in self.weights():
            hits = (tensors["instance"] == instance).nonzero()
            if len(hits):
                row = int(hits[0, 0])
                return {k: v[row] for k, v in tensors.items() if k != "instance"}
        raise RunDataError(f"run {self.id} has no weights for instance {instance}")


_HASHES: dict[tuple[int, int, int, int, int], str] = {}  # (dev, inode, size, mtime, ctime) -> sha256


def _sha256(path: Path, st: os.stat_result, read: Any) -> str:
    """The sha256 of the file ``st`` describes, from the cache while its identity, size and times are
    unchanged (an edit changes ctime, which no user can set back)."""
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key not in _HASHES:
        if len(_HASHES) > 100_000:
            _HASHES.clear()
        _HASHES[key] = hashlib.sha256(read()).hexdigest()
    return _HASHES[key]


def completed_instances(spec: Spec, rows: list[dict[str, Any]]) -> int:
    """How many instances a completed run holds: every one of a uniform sweep; the rounds an adaptive sweep
    reached with these rows (engine/adaptive.py), or -1 if those rows could not have ended it."""
    if spec.adaptive is None:
        return spec.n_instances
    from toysup.engine.adaptive import schedule

    try:
        reached = schedule(spec, rows)
    except (KeyError, TypeError):  # a row without its point: not a run this toysup wrote
        return -1
    return len(reached.instances(spec)) if reached.finished else -1


def _concat_csv(texts: list[str]) -> str:
    """CSV texts with one header: the first non-empty one's (a run cut before any chunk has empty tables)."""
    out: list[str] = []
    for text in texts:
        lines = text.splitlines(keepends=True)
        out.extend(lines if not out else lines[1:])
    return "".join(out)


def _is_run_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "run.json").exists() or (path / "config.toml").exists())
def list_runs(root: Path) -> list[Run]:
    """Run folders under ``root``, newest first (by folder name, which starts with the time)."""
    if not root.is_dir():
        return []
    runs = [Run(p) for p in root.iterdir() if _is_run_folder(p)]
    return sorted(runs, key=_created, reverse=True)


def _created(run: Run) -> tuple[str, int, str]:
    """Sort key: the folder's time stamp, then, for runs started in the same second (whose names
    alone would sort alphabetically), when their config.toml was written."""
    try:
        written = (run.path / "config.toml").stat().st_mtime_ns
    except OSError:
        written = 0
    return run.id[:15], written, run.id


def find_run(root: Path, ref: str) -> Run:
    """A run by path, by folder name, by unique prefix of it, or ``latest``."""
    path = Path(ref).expanduser()
    if _is_run_folder(path):
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
        atomic_write(target, text, mode=mode)
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
