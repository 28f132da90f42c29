"""File operations that a hostile or damaged run folder cannot turn against the files around it.

A run folder may come from anywhere (copied off a GPU box, shared, synced), so the
store never follows a symbolic link inside it: a file is opened with O_NOFOLLOW and
must be a regular file, a folder must be a real folder, a temporary is created
exclusively (never through a planted link), and deletion removes regular files only.
Errors are OSErrors; the store turns them into RunDataError naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # opening a FIFO must not wait for a writer (it is refused after)
SMALL_FILE = 16 * 2**20  # run.json, manifest.json, heartbeat.json, lock, stop: far larger is not ours


def _refused(path: Path, why: str) -> OSError:
    return OSError(errno.ELOOP, why, str(path))


def check_folder(path: Path) -> bool:
    """Whether ``path`` is a real folder; False if it does not exist; OSError if it is a link or a file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(mode):
        raise _refused(path, "is a symbolic link")
    if not stat.S_ISDIR(mode):
        raise _refused(path, "is not a folder")
    return True


def is_regular(path: Path) -> bool:
    """Whether ``path`` is a regular file itself (not a link to one)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """A descriptor on ``path`` opened without following a link and without blocking, checked to be a
    regular file: OSError for a link, a folder, a FIFO, a socket or a device (nothing is read or written)."""
    try:
        fd = os.open(path, flags | _NOFOLLOW | _NONBLOCK, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.EMLINK and os.path.islink(path)):
            raise _refused(path, "is a symbolic link") from None
        if exc.errno == errno.EISDIR:
            raise _refused(path, "is not a regular file (a folder)") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _refused(path, "is not a regular file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path: Path, limit: int | None = None, offset: int = 0) -> bytes:
    """A regular file's bytes from ``offset``, opened without following a link (OSError for a link, a FIFO,
    a device); more than ``limit`` bytes is an OSError (EFBIG), so a huge file cannot exhaust memory."""
    fd = open_regular(path)
    try:
        if limit is not None and os.fstat(fd).st_size - offset > limit:
            raise OSError(errno.EFBIG, f"is larger than {limit:,} bytes", str(path))
        if offset:
            os.lseek(fd, offset, os.SEEK_SET)
        chunks = []
        total = 0
        while block := os.read(fd, 1 << 20):
            chunks.append(block)
            total += len(block)
            if limit is not None and total > limit:  # grown while read
                raise OSError(errno.EFBIG, f"is larger than {limit:,} bytes", str(path))
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: Path, limit: int | None = None) -> str:
    """A regular file as UTF-8 text (UnicodeDecodeError if it is not)."""
    return read_bytes(path, limit).decode("utf-8")


def open_append(path: Path) -> int:
    """A descriptor appending to ``path`` (created if missing), never through a link nor to a FIFO or device
    (OSError): events.jsonl and output.log, which a hostile folder may have replaced by links."""
    return open_regular(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)


def open_log(path: Path) -> int:
    """A log of the run for appending (events.jsonl, output.log): a link there is replaced by a new file
    (its target is never written); a FIFO, device or folder there gives -1 (no log) rather than a process
    blocked on it or a run refused for it."""
    try:
        return open_append(path)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        if os.path.islink(path):
            os.unlink(path)
            return open_append(path)
    return -1


def unlink_entry(path: Path) -> bool:
    """Remove the name ``path`` if it is a regular file or a link (the link itself, never its target); a
    folder, FIFO or device is left alone. Whether something was removed."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
        return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return True


def atomic_write(path: Path, data: str | bytes, sync: bool = True, mode: int | None = None) -> None:
    """Write via a temporary file, fsync and rename: readers see the old or the new file, never half.

    The temporary is created exclusively (a link planted under its name is never followed) and
    removed again if anything fails (a full disk, an interrupt), so no half file is left behind.
    The rename replaces ``path`` itself, never what a link there points to. ``sync`` False skips the
    fsync (the heartbeat: frequent, and worthless after a crash anyway); ``mode`` sets the new file's
    permission bits exactly (export keeps an existing file's), else 0644 less the umask.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    unlink_entry(tmp)  # a leftover of an earlier process with our pid, or a link planted under its name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644 if mode is None else 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(data if isinstance(data, bytes) else data.encode("utf-8"))  # text as UTF-8, newlines as given
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_file(path: Path) -> bool:
    """Delete ``path`` if it is a regular file (a link, folder or device is left alone); whether it was."""
    if not is_regular(path):
        return False
    os.unlink(path)
    return True
