"""Asking a run that trains to stop, from any process: a stop file its trainer polls, and SIGTERM to the process
that holds its lock.

Apart from engine/runlog.py (the trainer's side: its log, heartbeat and the stop file it polls) because it
asks the lock (engine/lock.py) who holds the run, and the lock reads the heartbeat from the log's module.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

from toysup.engine import safe_fs
from toysup.engine.lock import RunLock
from toysup.engine.runlog import STOP_FILE, valid_pid


def request_stop(run_dir: Path, host: Any, pid: Any) -> str:
    """Ask the run training in ``run_dir`` to stop: a stop file it polls (works across hosts on a shared
    filesystem; written with the no-follow atomic write, so a link named ``stop`` is replaced, never written
    through) and SIGTERM to its process, but only to a process that provably trains the run: on this host,
    pid above 1, and holding the run's lock (the kernel's lock table says so, not run.json). Returns how it
    was asked, for a message. ``host`` and ``pid`` are run.json's (a file's: anything)."""
    try:
        safe_fs.atomic_write(Path(run_dir) / STOP_FILE, f"{socket.gethostname()} {os.getpid()} {time.time()}\n")
    except OSError as exc:
        return f"could not ask it to stop: the stop file cannot be written ({exc.strerror or exc})"
    if host == socket.gethostname() and isinstance(pid, int) and valid_pid(pid) and pid != os.getpid():
        holder = RunLock(Path(run_dir)).holding_pid()
        if holder == pid:
            try:
                os.kill(pid, signal.SIGTERM)
                return f"sent SIGTERM to process {pid}"
            except OSError:
                pass
        return (f"left a stop file only: process {pid} does not hold the run's lock, so it is not signalled; "
                "the run's trainer stops when it sees the file")
    where = str(host)[:80] if isinstance(host, str) else "?"
    return f"asked it to stop (a stop file its process on {where} looks for)"
