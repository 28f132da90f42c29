"""One writer per run: an advisory lock on ``lock`` in the run folder, held while a process trains the run.

Two ``toysup resume`` of one run started together used to both train and trip over each other's
temporary files. The lock is ``fcntl.flock`` on a file that also names its holder (host and pid), so a
refusal can say who holds it. The kernel drops a flock when its process dies, so a crashed run never
leaves a lock behind on its own host; what can be left is a holder that is alive but frozen, or one on
another host whose lock outlives it (NFS). Such a lock is stale when its holder's pid is dead here or its
heartbeat (engine/runlog.py) has stopped, and ``--force`` breaks it: the lock file is replaced, so the
frozen holder keeps a lock on a file no one else uses.

Fencing: a frozen holder may wake up (SIGCONT, a VM resumed, an NFS server back) after its lock was broken,
still believing it owns the run. So each holder takes a generation, one more than the last, recorded in
``fence`` in the run folder, and checks with :meth:`RunLock.check` before every commit (a chunk, a
checkpoint, run.json): a lock file that is no longer its own, or a fence naming a newer generation, means
another process owns the run now, and the old holder stops without writing (:class:`LockLost`).
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import Any

from engine import safe_fs
from engine.errors import UserError
from engine.runlog import liveness, read_heartbeat

LOCK_FILE = "lock"
FENCE_FILE = "fence"  # the generation of the newest holder of the lock


class LockLost(UserError):
    """This process's lock on a run was broken (``resume --force``): another process owns the run now."""


def read_fence(run_dir: Path) -> int:
    """The generation recorded in the run folder (0 when there is none or it cannot be read)."""
    try:
        text = safe_fs.read_text(Path(run_dir) / FENCE_FILE)
        return max(int(text.strip()), 0) if len(text) < 32 else 0
    except (OSError, ValueError):
        return 0


class RunLock:
    """The lock of one run folder; :meth:`acquire` takes it (or raises UserError), :meth:`release` lets go."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd = -1
        self.generation = 0  # this holder's fencing token, once acquired

    def acquire(self, force: bool = False) -> RunLock:
        """Take the lock without waiting. Held by another: UserError naming the holder, unless ``force``
        and the holder is stale, in which case the lock is broken and taken."""
        if self._try():
            return self
        holder = self.holder()
        if force and self.stale(holder):
            self.path.unlink(missing_ok=True)
            if self._try():
                return self
        who = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}"
        run_id = self.path.parent.name
        if force:
            raise UserError(f"run {run_id} is being trained by {who}, which is alive: stop it first "
                            f"(toysup stop {run_id})")
        raise UserError(f"run {run_id} is being trained by {who}: watch it (toysup watch {run_id}), stop it "
                        f"(toysup stop {run_id}), or break a stale lock with --force")

    def _try(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        # Locked the file that is at the path now? (a --force in another process may have replaced it)
        try:
            same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
        except OSError:
            same = False
        if not same:
            os.close(fd)
            return self._try()
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
            generation = read_fence(self.path.parent) + 1
            safe_fs.atomic_write(self.path.parent / FENCE_FILE, f"{generation}\n")
        except OSError as exc:  # a full disk or a read-only folder: nothing can be trained here
            os.close(fd)
            raise UserError(f"run {self.path.parent.name} cannot be locked for writing: "
                            f"{exc.strerror or exc}") from None
        self._fd, self.generation = fd, generation
        return True

    def held(self) -> bool:
        """Whether this process still owns the run: the lock file in the folder is the one it locked, and
        the fence names its generation (a stale holder whose lock was broken learns it here)."""
        if self._fd < 0:
            return False
        try:
            mine, there = os.fstat(self._fd), os.lstat(self.path)
        except OSError:
            return False
        same = (mine.st_ino, mine.st_dev) == (there.st_ino, there.st_dev)
        return same and read_fence(self.path.parent) == self.generation

    def check(self) -> None:
        """Raise :class:`LockLost` (one line naming the new holder) unless :meth:`held`."""
        if self.held():
            return
        holder = self.holder()
        who = f"process {holder.get('pid', '?')} on {holder.get('host', '?')}" if holder else "another process"
        raise LockLost(f"run {self.path.parent.name} was taken over by {who} (its lock was broken with "
                       f"resume --force): this process stops without writing to it")

    def holder(self) -> dict[str, Any]:
        """The host and pid written in the lock file (empty when unreadable)."""
        try:
            host, pid = self.path.read_text(encoding="utf-8").split()
            return {"host": host, "pid": int(pid)}
        except (OSError, ValueError):
            return {}

    def stale(self, holder: dict[str, Any]) -> bool:
        """Whether the holder is gone or frozen: its pid dead on this host, or the run's heartbeat stopped."""
        heartbeat = read_heartbeat(self.path.parent)
        if not holder:
            return True
        return not liveness(holder, heartbeat)

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = -1

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
