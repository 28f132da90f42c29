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

import errno
import fcntl
import os
import socket
import stat
from pathlib import Path
from typing import Any

from toysup.engine import safe_fs
from toysup.engine.errors import UserError
from toysup.engine.runlog import liveness, read_heartbeat, valid_pid

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
        try:  # never through a link (it would truncate the link's target), never a FIFO, device or folder
            fd = safe_fs.open_regular(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            why = exc.strerror or str(exc)
            if exc.errno == errno.ELOOP:  # safe_fs's refusal: a link, a FIFO, a device, a folder
                raise UserError(f"run {self.path.parent.name} is damaged: its lock {why}: refused") from None
            raise UserError(f"run {self.path.parent.name} cannot be locked for training: {self.path}: {why}") from None
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
            host, pid = safe_fs.read_text(self.path, 4096).split()
            return {"host": host, "pid": int(pid)}
        except (OSError, ValueError):
            return {}

    def holding_pid(self) -> int | None:
        """The pid of the process on this host that holds the flock on the run's lock file, from the kernel's
        lock table (/proc/locks), or None: no one holds it, the file is not a regular file, or the table
        cannot be read (not Linux). Unlike the pid the files name, this cannot be forged by editing them."""
        try:
            st = os.lstat(self.path)
            if not stat.S_ISREG(st.st_mode):
                return None
            table = _proc_locks()
        except OSError:
            return None
        inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        for line in table.splitlines():
            fields = line.split()
            if "->" in fields:  # a waiter, not a holder
                continue
            if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == inode:
                with_pid = int(fields[4]) if fields[4].isdigit() else None
                return with_pid if valid_pid(with_pid) else None
        return None

    def stale(self, holder: dict[str, Any]) -> bool:
        """Whether the holder is gone or frozen: its pid dead on this host, or the run's heartbeat stopped. On
        this host the pid is the kernel's (:meth:`holding_pid`), not the file's, which anyone could edit."""
        heartbeat = read_heartbeat(self.path.parent)
        kernel = self.holding_pid()  # the lock's real holder on this host beats what the file says
        if kernel is not None:
            return not liveness({"host": socket.gethostname(), "pid": kernel}, heartbeat)
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


def _proc_locks() -> str:
    """/proc/locks (a proc file reports size 0, so it is read as it is, not through safe_fs's size check)."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            return f.read(64 * 2**20)
    except OSError as exc:
        raise OSError(exc.errno or errno.ENOENT, "no lock table") from None
