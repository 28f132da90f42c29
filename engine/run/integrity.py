"""Whether a run's files hold what run.json and manifest.json say (sizes, row counts, every file's sha256), in
one line naming the file that is wrong; a run whose files disagree is ``damaged`` (engine/run/status.py)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toysup.engine.adaptive import schedule
from toysup.engine.errors import RunDataError
from toysup.engine.run.reader import RunReader
from toysup.engine.run.record import RunRecord
from toysup.engine.run.status import STATUSES, Status, status_of
from toysup.engine.spec import Spec

if TYPE_CHECKING:

    pass


class RunChecks(RunReader):
    """A run folder that can say what is wrong with its files, and so its status."""

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


_HASHES: dict[tuple[int, int, int, int, int], str] = {}  # (dev, inode, size, mtime, ctime) -> sha256


def _sha256(path: Path, st: os.stat_result, read: Callable[[], bytes]) -> str:
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
    try:
        reached = schedule(spec, rows)
    except (KeyError, TypeError):  # a row without its point: not a run this toysup wrote
        return -1
    return len(reached.instances(spec)) if reached.finished else -1
