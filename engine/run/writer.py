"""Writing a run folder: creating it, run.json, each trained chunk's pieces and weights and its manifest entry,
the gathering of the parts when the run ends, and the checkpoint of a chunk in training. Every write is
atomic and never through a link (engine/run/layout.py)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import platform
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from toysup import engine
from toysup.engine import safe_fs
from toysup.engine.checkpoint import TrainingState, encode_checkpoint
from toysup.engine.errors import UserError
from toysup.engine.manifest import Chunk as StoredChunk
from toysup.engine.manifest import Manifest, digest
from toysup.engine.run import layout
from toysup.engine.run.integrity import RunChecks
from toysup.engine.run.layout import (
    PART_NAME,
    TEMPORARY_NAME,
    concat_csv,
    first_instance,
    now_iso,
    save_safetensors,
    slug,
    why,
)
from toysup.engine.run.record import RunRecord
from toysup.engine.run.status import Status
from toysup.engine.run_format import TABLES, csv_text, curve_csv, feature_csv, result_columns, result_rows
from toysup.engine.spec import Spec

if TYPE_CHECKING:
    import torch

    from toysup.engine.train import ChunkResult


class RunWriter(RunChecks):
    """The writing side of a run folder (what the process that trains it calls)."""

    @classmethod
    def create(cls, root: Path, spec: Spec, device: str, chunks: int, extra: dict[str, Any] | None = None) -> Self:
        """Make a fresh folder (never reusing one) with config.toml and a 'running' run.json. If the
        folder cannot be completed (a full disk), what was made of it is removed again."""
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"runs directory {root} cannot be created: {exc.strerror}") from None
        if not os.access(root, os.W_OK):
            raise UserError(f"runs directory {root} is not writable")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{slug(spec.name)}"
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
            layout.atomic_write(path / "config.toml", spec.to_toml())
            run.write_record(run._first_record(spec, device, chunks, extra))
        except BaseException as exc:
            run._remove_unfinished()
            if isinstance(exc, OSError):
                raise UserError(f"run folder under {root} cannot be written: {why(exc)}") from None
            raise
        return run

    def _first_record(self, spec: Spec, device: str, chunks: int, extra: dict[str, Any] | None) -> RunRecord:
        import torch  # deferred: listings and tables never need torch

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
        layout.atomic_write(self.path / "run.json", record.text())

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
        layout.atomic_write(self.path / "results.csv", csv_text(columns, sorted(rows, key=lambda r: r["instance"])))

    def write_chunk(self, spec: Spec, result: ChunkResult, rows: list[dict[str, Any]]) -> None:
        """A trained chunk: its results, curves, features and weights as parts, then its entry in
        manifest.json, then its rows added to ``rows`` (the results stored so far), which results.csv
        is rewritten with. A kill before the manifest names the chunk has it trained again."""
        import torch  # deferred: listings and tables never need torch

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
        layout.atomic_write(self.path / "error.log", text)

    def write_part(self, chunk: int, curves: str, features: str, weights: dict[str, torch.Tensor]) -> bytes:
        """A finished chunk's curves, per-feature rows and weights; returns the weights file's bytes."""
        self._write(f"parts/curves-{chunk:04d}.csv", curves)
        self._write(f"parts/features-{chunk:04d}.csv", features)
        blob = save_safetensors({k: v.contiguous() for k, v in weights.items()})
        self._write(f"weights/chunk-{chunk:04d}.safetensors", blob)
        return blob

    def write_manifest(self, manifest: Manifest) -> None:
        layout.atomic_write(self.path / "manifest.json", manifest.to_json())

    def gather_parts(self) -> None:
        """Concatenate the chunk parts into curves.csv and features.csv (in instance order, so the tables
        do not depend on which chunk trained when), record them in the manifest, then drop the parts."""
        parts = self._files("parts", PART_NAME)
        if not parts and not self.folder("parts").is_dir():
            return
        texts = {p: self._read_text(f"parts/{p.name}") for p in parts}
        for table in ("curves", "features"):
            mine = [p for p in parts if p.name.startswith(f"{table}-")]
            ordered = sorted(mine, key=lambda p: (first_instance(texts[p]), p.name))
            layout.atomic_write(self.path / f"{table}.csv", concat_csv([texts[p] for p in ordered]))
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

    def write_checkpoint(self, chunk: int, state: TrainingState) -> None:
        """The training state of a chunk in progress: checkpoints/chunk-NNNN.safetensors, replaced atomically
        (one file per chunk, since chunks may train side by side on a cluster)."""
        self._write(f"checkpoints/chunk-{chunk:04d}.safetensors", encode_checkpoint(state))

    def clear_checkpoint(self, chunk: int) -> None:
        self._remove(f"checkpoints/chunk-{chunk:04d}.safetensors")
