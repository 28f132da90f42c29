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
      events.jsonl    the events the live view shows, one JSON object a line: what `toysup watch` and the TUI follow
      heartbeat.json  host and pid of the process training the run, its last beat (every 5 s) and progress
      lock            host and pid of the one process allowed to train the run (it holds a lock on this file)
      stop            present while the run is asked to stop (`toysup stop`, the TUI)
      output.log      a detached run's output (`toysup run --detach`, launched from the TUI)

What each table holds is decided in engine/run_format.py; this module writes and
reads the files. While a run is going, curves and features of finished chunks sit
in ``parts/``; they are gathered into curves.csv and features.csv when the run
ends, whatever its status. results.csv is rewritten (atomically) after every chunk.
A run's status is :func:`run_status`'s, never run.json's raw word.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import engine
from engine.errors import RunDataError, UserError
from engine.run_format import (  # noqa: F401  (the run format's cells are the store's too)
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
from engine.runlog import liveness, read_heartbeat
from engine.spec import Spec, read_preset, resolve

if TYPE_CHECKING:
    from engine.train import ChunkResult

RUNS_ENV = "TOYSUP_RUNS_DIR"
# What run_status() answers: run.json's word, except that a 'running' run whose process is gone was
# killed, and a missing or unreadable run.json (or an unknown word in it) is damaged.
HEARTBEAT_KEY = "heartbeat"  # in Run.info() of a running run: heartbeat.json's contents (never written to run.json)
STATUSES = ("completed", "running", "interrupted", "failed", "killed", "damaged")


def runs_dir(option: str | Path | None = None) -> Path:
    """``--runs-dir`` if given, else $TOYSUP_RUNS_DIR, else ./runs."""
    if option:
        return Path(option).expanduser()
    env = os.environ.get(RUNS_ENV)
    return Path(env).expanduser() if env else Path("runs")


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write via a temporary file, fsync and rename: readers see the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))  # text as UTF-8, newlines as given
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """A run's CSV file as header and rows; RunDataError when it cannot be read or is malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDataError(f"{path.name} cannot be read: {exc}") from None
    return parse_csv(text, path.name)


def now_iso() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "sweep"


@dataclass
class Run:
    """A run folder, for writing (``Run.create``) or reading (``Run.open``)."""

    path: Path

    # --- creating and writing -------------------------------------------------------------

    @classmethod
    def create(cls, root: Path, spec: Spec, device: str, chunks: int, extra: dict[str, Any] | None = None) -> Run:
        """Make a fresh folder (never reusing one) with config.toml and a 'running' run.json."""
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
        (path / "weights").mkdir()
        (path / "parts").mkdir()
        atomic_write(path / "config.toml", spec.to_toml())
        info = {
            "id": path.name,
            "name": spec.name,
            "model": spec.model,
            "status": "running",
            "started": now_iso(),
            "ended": None,
            "device": device,
            "host": socket.gethostname(),
            "versions": {
                "toysup": engine.__version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
            "command": " ".join(sys.argv),
            "pid": os.getpid(),
            "instances": spec.n_instances,
            "instances_done": 0,
            "chunks": chunks,
            "chunks_done": 0,
            "instance_steps_done": 0,
            "wall_time_s": 0.0,
            "instance_steps_per_s": 0.0,
            "error": "",
            **(extra or {}),
        }
        run.write_info(info)
        return run

    def write_info(self, info: dict[str, Any]) -> None:
        kept = {k: v for k, v in info.items() if k != HEARTBEAT_KEY}  # heartbeat.json's, read by info()
        atomic_write(self.path / "run.json", json.dumps(kept, indent=2) + "\n")

    def update_info(self, **changes: Any) -> dict[str, Any]:
        info = self.info()
        info.update(changes)
        self.write_info(info)
        return info

    def write_results(self, columns: list[str], rows: list[dict[str, Any]]) -> None:
        atomic_write(self.path / "results.csv", csv_text(columns, sorted(rows, key=lambda r: r["instance"])))

    def write_chunk(self, spec: Spec, result: ChunkResult, rows: list[dict[str, Any]]) -> None:
        """A trained chunk: its curves, features and weights as parts, and its rows added to ``rows``
        (the results stored so far), which results.csv is then rewritten with."""
        chunk = result.chunk
        weights = dict(result.weights)
        weights["instance"] = torch.tensor([i.index for i in chunk.instances], dtype=torch.int64)
        if result.snapshot_steps:
            for name, values in result.snapshots.items():
                weights[f"{name}.snapshots"] = values
            weights["snapshot_steps"] = torch.tensor(result.snapshot_steps).expand(len(chunk), -1)
        self.write_part(chunk.index, curve_csv(spec, result), feature_csv(spec, result), weights)
        rows.extend(result_rows(spec, result))
        self.write_results(result_columns(spec), rows)

    def write_error_log(self, text: str) -> None:
        """error.log: the traceback of a failed run."""
        atomic_write(self.path / "error.log", text)

    def write_part(self, chunk: int, curves: str, features: str, weights: dict[str, torch.Tensor]) -> None:
        """A finished chunk's curves, per-feature rows and weights."""
        atomic_write(self.path / "parts" / f"curves-{chunk:04d}.csv", curves)
        atomic_write(self.path / "parts" / f"features-{chunk:04d}.csv", features)
        target = self.path / "weights" / f"chunk-{chunk:04d}.safetensors"
        tmp = target.with_name(f".{target.name}.tmp")
        save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)

    def gather_parts(self) -> None:
        """Concatenate the chunk parts into curves.csv and features.csv, then drop the parts."""
        parts = self.path / "parts"
        if not parts.is_dir():
            return
        for table in ("curves", "features"):
            files = sorted(parts.glob(f"{table}-*.csv"))
            atomic_write(self.path / f"{table}.csv", _concat_csv(files))
        for f in parts.iterdir():
            f.unlink()
        parts.rmdir()

    def write_checkpoint(self, chunk: int, instances: list[int], tensors: dict[str, torch.Tensor],
                         meta: dict[str, int]) -> None:
        """The training state of a chunk in progress: checkpoints/chunk-NNNN.safetensors, replaced atomically
        (one file per chunk, since chunks may train side by side on a cluster)."""
        folder = self.path / "checkpoints"
        folder.mkdir(exist_ok=True)
        target = folder / f"chunk-{chunk:04d}.safetensors"
        tmp = target.with_name(f".{target.name}.tmp")
        data = {**tensors, "instance": torch.tensor(instances, dtype=torch.int64)}
        save_file({k: v.contiguous() for k, v in data.items()}, str(tmp), metadata={k: str(v) for k, v in meta.items()})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)

    def read_checkpoints(self) -> list[tuple[int, list[int], dict[str, torch.Tensor], dict[str, int]]]:
        """The checkpoints of chunks cut short: each one's chunk number, instances, tensors and step counters."""
        from safetensors import safe_open

        found = []
        for path in sorted((self.path / "checkpoints").glob("chunk-*.safetensors")):
            with safe_open(str(path), framework="pt") as f:
                meta = {k: int(v) for k, v in (f.metadata() or {}).items()}
            tensors = load_file(str(path))
            found.append((int(path.stem.split("-")[1]), [int(i) for i in tensors.pop("instance")], tensors, meta))
        return found

    def clear_checkpoint(self, chunk: int) -> None:
        (self.path / "checkpoints" / f"chunk-{chunk:04d}.safetensors").unlink(missing_ok=True)

    def drop_unrecorded_chunks(self, done: set[int]) -> None:
        """Before resuming: remove the parts and weights of chunks whose instances results.csv lacks
        (a kill between writing a chunk's files and its rows); those instances train again."""
        for path in sorted((self.path / "weights").glob("chunk-*.safetensors")):
            instances = {int(i) for i in load_file(str(path))["instance"]}
            if not instances <= done:
                index = path.stem.split("-")[1]
                path.unlink()
                for table in ("curves", "features"):
                    (self.path / "parts" / f"{table}-{index}.csv").unlink(missing_ok=True)

    def reopen_parts(self) -> None:
        """Before resuming: move the gathered curves.csv and features.csv back into parts/, so the
        next gather_parts() includes them beside the new chunks' parts."""
        parts = self.path / "parts"
        parts.mkdir(exist_ok=True)
        for table in ("curves", "features"):
            gathered = self.path / f"{table}.csv"
            if gathered.is_file():
                os.replace(gathered, parts / f"{table}-0000-before-resume.csv")

    # --- reading --------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path) -> Run:
        if not (path / "run.json").is_file() and not (path / "config.toml").is_file():
            raise UserError(f"{path} is not a run folder (no run.json)")
        return cls(path)

    @property
    def id(self) -> str:
        return self.path.name

    def info(self) -> dict[str, Any]:
        """run.json, or a 'damaged' stand-in when it is missing or unreadable."""
        try:
            info = json.loads((self.path / "run.json").read_text(encoding="utf-8"))
            if not isinstance(info, dict):
                raise ValueError("run.json is not an object")
            if info.get("status") == "running":  # whether it still is: see run_status()
                info[HEARTBEAT_KEY] = read_heartbeat(self.path)
            return info
        except (OSError, ValueError) as exc:
            return {"id": self.id, "name": "?", "status": "damaged", "error": f"run.json: {exc}"}

    def status(self) -> str:
        """One of :data:`STATUSES` (see :func:`run_status`)."""
        return run_status(self.info())

    def spec(self) -> Spec:
        """The run's resolved spec from config.toml (RunDataError if it is missing or not a valid spec)."""
        path = self.path / "config.toml"
        if not path.is_file():
            raise RunDataError(f"run {self.id} is damaged: config.toml is missing")
        try:
            return resolve(read_preset(str(path)), source=str(path))
        except UserError as exc:
            raise RunDataError(f"run {self.id} is damaged: {exc}") from None

    def results(self) -> tuple[list[str], list[dict[str, Any]]]:
        """results.csv's header and rows as stored (both empty before the first chunk finishes).
        engine.results.Results adds each row's sweep point and the joins to the other tables."""
        path = self.path / "results.csv"
        if not path.is_file():
            return [], []
        return read_csv(path)

    def table_path(self, table: str) -> Path:
        return self.path / f"{table}.csv"

    def table_text(self, table: str) -> str:
        """results, curves or features as CSV text (live runs: gathered from the parts)."""
        if table not in TABLES:
            raise UserError(f"no table {table!r}: expected {', '.join(TABLES)}")
        path = self.table_path(table)
        try:
            if path.is_file():
                return path.read_text(encoding="utf-8")
            if table != "results":
                files = sorted((self.path / "parts").glob(f"{table}-*.csv"))
                if files:
                    return _concat_csv(files)
        except (OSError, UnicodeDecodeError) as exc:
            raise RunDataError(f"{table}.csv of run {self.id} cannot be read: {exc}") from None
        raise RunDataError(f"run {self.id} has no {table} table yet")

    def table(self, table: str) -> tuple[list[str], list[dict[str, Any]]]:
        """results, curves or features as header and rows (RunDataError if absent or malformed)."""
        return parse_csv(self.table_text(table), f"{table}.csv")

    def stored_chunks(self) -> list[int]:
        """The numbers of the chunks whose weights are stored (so finished), in order."""
        return sorted(int(p.stem.split("-")[1]) for p in (self.path / "weights").glob("chunk-*.safetensors"))

    def weights(self) -> Iterator[dict[str, torch.Tensor]]:
        """Each chunk's weights (with its ``instance`` index tensor), in chunk order."""
        for path in sorted((self.path / "weights").glob("chunk-*.safetensors")):
            try:
                tensors = load_file(str(path))
            except (OSError, SafetensorError) as exc:
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


def _concat_csv(files: list[Path]) -> str:
    """CSV files with one header: the first non-empty file's (a run cut before any chunk has empty tables)."""
    out: list[str] = []
    for f in files:
        lines = f.read_text(encoding="utf-8").splitlines(keepends=True)
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


def process_alive(info: dict[str, Any]) -> bool:
    """Whether the process training a 'running' run is alive: its host and pid in run.json and its heartbeat
    (which :meth:`Run.info` adds) decide together, see :func:`engine.runlog.liveness`."""
    return liveness(info, info.get(HEARTBEAT_KEY))


def run_status(info: dict[str, Any]) -> str:
    """A run's status from its run.json: one of :data:`STATUSES`. A 'running' run whose process is
    gone (or whose heartbeat stopped) was killed; an unreadable run.json (see :meth:`Run.info`) or an
    unknown word is damaged."""
    status = info.get("status")
    if status == "running":
        return "running" if process_alive(info) else "killed"
    return status if status in STATUSES and status != "killed" else "damaged"


def export_text(run: Run, table: str = "results") -> str:
    """A table as CSV with a leading run_id column, so exported rows say where they came from."""
    return with_run_id(run.table_text(table), run.id)


def export(run: Run, target: Path, table: str = "results") -> int:
    """Write :func:`export_text` to ``target`` atomically (``toysup export -o`` and the TUI's export);
    returns the number of rows. A target that is a folder, in a missing folder or unwritable is a UserError."""
    if target.is_dir():
        raise UserError(f"{target} is a directory: give a file name")
    if not target.parent.exists():
        raise UserError(f"{target}: folder {target.parent} does not exist")
    text = export_text(run, table)
    try:
        atomic_write(target, text)
    except OSError as exc:
        raise UserError(f"{target}: cannot be written: {exc.strerror or exc}") from None
    return max(text.count("\n") - 1, 0)


def with_run_id(text: str, run_id: str) -> str:
    """Prefix a CSV table with a run_id column, so exported rows say where they came from."""
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    cell = csv_text(["x"], [{"x": run_id}]).splitlines()[1]
    return "".join([f"run_id,{lines[0]}", *(f"{cell},{line}" for line in lines[1:])])
