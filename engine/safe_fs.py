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


def read_bytes(path: Path) -> bytes:
    """A regular file's bytes, opened without following a link (OSError for a link, a FIFO, a device)."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refused(path, "is a symbolic link") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _refused(path, "is not a regular file")
        chunks = []
        while block := os.read(fd, 1 << 20):
            chunks.append(block)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_text(path: Path) -> str:
    """A regular file as UTF-8 text (UnicodeDecodeError if it is not)."""
    return read_bytes(path).decode("utf-8")


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write via a temporary file, fsync and rename: readers see the old or the new file, never half.

    The temporary is created exclusively (a link planted under its name is never followed) and
    removed again if anything fails (a full disk, an interrupt), so no half file is left behind.
    The rename replaces ``path`` itself, never what a link there points to.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        remove_file(tmp)  # a leftover of an earlier process with our pid
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode("utf-8"))  # text as UTF-8, newlines as given
            f.flush()
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
