"""Reading a run folder: run.json's record, config.toml's spec, its tables, stored chunks, weights and manifest.
Every read is of a regular file inside the folder, never through a link (engine/run/layout.py); what cannot
be read is a RunDataError naming the file."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError

from toysup.engine import safe_fs
from toysup.engine.errors import RunDataError, UserError
from toysup.engine.manifest import Manifest
from toysup.engine.run import layout
from toysup.engine.run.config import CONFIG_BYTES, spec_from_config
from toysup.engine.run.layout import (
    MANIFEST_BYTES,
    PART_NAME,
    WEIGHTS_NAME,
    concat_csv,
    first_instance,
    load_safetensors,
    why,
)
from toysup.engine.run.record import INFO_BYTES, RunRecord, parse_record
from toysup.engine.run.status import Status
from toysup.engine.run_format import TABLES, parse_csv
from toysup.engine.runlog import read_heartbeat
from toysup.engine.spec import Spec

if TYPE_CHECKING:
    import torch



class RunReader(layout.RunFolder):
    """The reading side of a run folder."""

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
            damage = f"run.json: {'nested too deeply' if isinstance(exc, RecursionError) else why(exc)}"
            return RunRecord(id=self.id, status=Status.DAMAGED, error=damage, damage=damage)

    def spec(self) -> Spec:
        """The run's spec from config.toml, read back without the preset grammar (engine/run/config.py);
        RunDataError if it is missing, unreadable or not a spec."""
        path = self.path / "config.toml"
        if not path.exists():
            raise RunDataError(f"run {self.id} is damaged: config.toml is missing")
        try:
            text = safe_fs.read_text(path, CONFIG_BYTES)  # never through a link, never a FIFO
        except (OSError, UnicodeDecodeError) as exc:
            raise RunDataError(f"run {self.id} is damaged: config.toml cannot be read: {why(exc)}") from None
        try:
            return spec_from_config(text, source=str(path))
        except tomllib.TOMLDecodeError as exc:
            raise RunDataError(f"run {self.id} is damaged: config.toml is not TOML: {exc}") from None
        except (ValueError, UserError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise RunDataError(f"run {self.id} is damaged: {reason}") from None

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
                return concat_csv(sorted(texts, key=first_instance))
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
            raise RunDataError(f"manifest.json cannot be read: {why(exc)}") from None
        except RecursionError:
            raise RunDataError("manifest.json cannot be read: nested too deeply") from None
        except ValueError as exc:
            raise RunDataError(f"manifest.json cannot be read: {exc}") from None
