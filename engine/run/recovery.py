"""Crash recovery before a resume: keep exactly the stored chunks whose files match manifest.json and the
checkpoints that can be read; everything else is removed and its instances train again."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from toysup.engine import safe_fs
from toysup.engine.checkpoint import TrainingState, decode_checkpoint
from toysup.engine.errors import RunDataError, UserError
from toysup.engine.manifest import PIECES, Manifest, matches, segment
from toysup.engine.run.layout import (
    PART_NAME,
    TEMPORARY_NAME,
    WEIGHTS_NAME,
    chunk_number,
    load_safetensors,
)
from toysup.engine.run.writer import RunWriter
from toysup.engine.run_format import parse_csv, result_columns
from toysup.engine.spec import Spec

if TYPE_CHECKING:
    pass



class RunRecovery(RunWriter):
    """A run folder that can be put back in a resumable state."""

    def read_checkpoints(self) -> list[tuple[int, TrainingState]]:
        """The checkpoints of chunks cut short: each one's chunk number and training state. A checkpoint that
        cannot be read (cut mid-write by hand, garbled) is removed: its chunk trains from the start."""
        found = []
        for path in self._files("checkpoints", WEIGHTS_NAME):
            try:
                state = decode_checkpoint(self._read(f"checkpoints/{path.name}"), path.name)
            except RunDataError:
                safe_fs.remove_file(path)
                continue
            found.append((int(path.stem.split("-")[1]), state))
        return found

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
            if chunk_number(name, PART_NAME) not in good or name.endswith("-before-resume.csv"):
                safe_fs.remove_file(path)
        for name, path in weights.items():
            if chunk_number(name, WEIGHTS_NAME) not in good:
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
