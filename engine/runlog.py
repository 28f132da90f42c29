"""A run's own account of itself, in its folder, for any process to follow: an event log and a heartbeat.

Files (beside run.json)::

    events.jsonl    the events the live view uses (engine/events.py), one JSON object per line
    heartbeat.json  host, pid, time of the last beat, and the run's progress so far
    stop            present when someone asked the run to stop (``toysup stop``, the TUI)

Why a log and not a pipe: a pipe ties the run to the process that reads it, so a
closed terminal ended the sweep. A file in the run folder can be read by any
process, on any host that shares the folder, started at any time.

The log is written with one ``write()`` of one complete line per event (O_APPEND),
so a reader sees whole records; a final line without its newline is a record still
being written and is left for the next read. It stays small on long runs: run,
chunk, notice and finish events are always kept; progress events are thinned (at
most one per chunk per :func:`progress_interval`, which grows with the run's age)
and, once the file passes :data:`CURVE_BYTES`, carry no more loss points. A
dropped progress event's loss points go with the next one that is kept, and a
chunk's last progress event is always written before its ChunkFinished.

The heartbeat is written by a thread every :data:`HEARTBEAT_S` seconds while the
run trains: it says the process is alive (a long Ray connect or plan step emits
no events, and must not read as death). A heartbeat older than :data:`STALE_S`
means the process is gone or frozen: see :func:`liveness`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeGuard

from toysup.engine import events as ev
from toysup.engine import safe_fs

EVENTS_FILE = "events.jsonl"
HEARTBEAT_FILE = "heartbeat.json"
STOP_FILE = "stop"
HEARTBEAT_S = 5.0
STALE_S = 120.0  # 24 missed beats: a run whose heartbeat is older than this is taken for dead
CURVE_BYTES = 2 * 2**20  # past this log size, progress events are written without loss points
FOLLOW_POLL_S = 0.2
READ_BYTES = 8 * 2**20  # the most of events.jsonl one LogReader.read() takes in (the rest comes next call)
STOP_POLL_S = 0.5  # how often the training loop looks for a stop request


def progress_interval(age_s: float) -> float:
    """The least time between two kept progress events of one chunk, ``age_s`` into the run: one a
    second at first, then age/2000, so a run of T seconds keeps about 2000 * (1 + ln(T/2000)) per chunk."""
    return max(1.0, age_s / 2000.0)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """The no-follow atomic write (engine/safe_fs.py), unsynced: a link planted under the temporary's
    name is removed, never written through."""
    safe_fs.atomic_write(path, json.dumps(data) + "\n", sync=False)


class RunLog:
    """The publishing side, owned by the process that trains a run: wraps its event sink and stop check.

    Use as a context manager around the training loop; the heartbeat beats while it is open.
    """

    def __init__(self, run_dir: Path, owner: Callable[[], bool] = lambda: True) -> None:
        self.path = Path(run_dir)
        self.owner = owner  # whether this process still owns the run (engine/lock.py): a fenced one writes nothing
        self.started = time.monotonic()
        self._fd = -1
        self._kept: dict[int, float] = {}  # chunk -> when its last progress event was written
        self._held: dict[int, ev.Progress] = {}  # chunk -> its latest progress event not written yet
        self._progress: dict[str, Any] = {"instance_steps_done": 0, "instance_steps": 0, "elapsed_s": 0.0,
                                          "chunks": 0, "chunks_done": 0}
        self._training: dict[str, list[int]] = {}  # chunk in training -> [step, steps], for `toysup runs`
        self._stop_seen_at = 0.0
        self._beating = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunLog:
        safe_fs.unlink_entry(self.path / STOP_FILE)  # a request meant for an earlier session
        self._fd = safe_fs.open_log(self.path / EVENTS_FILE)
        self.beat()
        self._thread = threading.Thread(target=self._beat_loop, name="toysup-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._beating.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * HEARTBEAT_S)
        for event in list(self._held.values()):
            self._write(event)
        self._held.clear()
        self.beat()  # the last beat holds the final progress
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.owner():
            safe_fs.unlink_entry(self.path / STOP_FILE)

    # --- heartbeat ----------------------------------------------------------------------

    def beat(self) -> None:
        """Write heartbeat.json now: who trains the run, when it last beat, how far it is."""
        if not self.owner():
            return
        with contextlib.suppress(OSError):  # a full disk must not stop training: the run reads as stale
            _write_json_atomic(self.path / HEARTBEAT_FILE, {
                "host": socket.gethostname(), "pid": os.getpid(), "time": time.time(),
                "interval_s": HEARTBEAT_S, **self._progress, "training": dict(self._training)})

    def _beat_loop(self) -> None:
        while not self._beating.wait(HEARTBEAT_S):
            self.beat()

    # --- events -------------------------------------------------------------------------

    def wrap(self, emit: ev.EventSink) -> ev.EventSink:
        """A sink that publishes each event to the log, then hands it on to ``emit``."""

        def sink(event: ev.Event) -> None:
            self.publish(event)
            emit(event)

        return sink

    def publish(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            self._progress = {"instance_steps_done": 0, "instance_steps": event.instance_steps, "elapsed_s": 0.0,
                              "chunks": event.chunks, "chunks_done": event.chunks_done,
                              "instance_steps_resumed": event.instance_steps_resumed}
            self._training = {}
        elif isinstance(event, ev.RoundStarted):
            self._progress["instance_steps"] = event.instance_steps
        elif isinstance(event, ev.ChunkStarted):
            self._training[str(event.chunk)] = [0, event.steps]
        elif isinstance(event, ev.Progress):
            self._progress["instance_steps_done"] = event.instance_steps_done
            self._progress["elapsed_s"] = round(event.elapsed_s, 3)
            if str(event.chunk) in self._training:
                self._training[str(event.chunk)] = [event.step, event.steps]
            self._publish_progress(event)
            return
        elif isinstance(event, (ev.ChunkFinished, ev.Phase)):  # a chunk's held steps go before its next phase
            if isinstance(event, ev.ChunkFinished):
                self._training.pop(str(event.chunk), None)
                self._progress["chunks_done"] = self._progress.get("chunks_done", 0) + 1
            held = self._held.pop(event.chunk, None)
            if held is not None:
                self._write(held)
            if isinstance(event, ev.ChunkFinished):
                self._kept.pop(event.chunk, None)
        self._write(event)

    def _publish_progress(self, event: ev.Progress) -> None:
        held = self._held.pop(event.chunk, None)
        if held is not None:  # the loss points of the events not written travel with this one
            event = replace(event, curve_steps=held.curve_steps + event.curve_steps,
                            curve_losses=held.curve_losses + event.curve_losses)
        now = time.monotonic()
        if now - self._kept.get(event.chunk, -1e9) < progress_interval(now - self.started):
            self._held[event.chunk] = event
            return
        self._kept[event.chunk] = now
        self._write(event)

    def _write(self, event: ev.Event) -> None:
        if self._fd < 0:
            return
        if isinstance(event, ev.Progress) and event.curve_steps:
            try:
                if os.fstat(self._fd).st_size > CURVE_BYTES:
                    event = replace(event, curve_steps=[], curve_losses=[])
            except OSError:
                pass
        data = (event.to_json() + "\n").encode("utf-8")
        with contextlib.suppress(OSError):  # a full disk costs the followers an event, not the run
            os.write(self._fd, data)  # one write of a whole line: O_APPEND puts it after every earlier one

    # --- stop requests ------------------------------------------------------------------

    def stop_check(self, should_stop: Callable[[], bool]) -> Callable[[], bool]:
        """``should_stop`` or a stop request file in the run folder (looked for twice a second)."""

        def check() -> bool:
            if should_stop():
                return True
            now = time.monotonic()
            if now - self._stop_seen_at < STOP_POLL_S:
                return False
            self._stop_seen_at = now
            return safe_fs.is_regular(self.path / STOP_FILE)  # what toysup stop writes; a FIFO or link is not


        return check


# --- reading ----------------------------------------------------------------------------------

HEARTBEAT_BYTES = 64 * 1024


def read_heartbeat(run_dir: Path) -> dict[str, Any] | None:
    """heartbeat.json, or None when there is none (a run from before heartbeats, or not started) or it is
    not one: a link, a FIFO, over 64 KiB, not a JSON object."""
    try:
        data = json.loads(safe_fs.read_text(Path(run_dir) / HEARTBEAT_FILE, HEARTBEAT_BYTES))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


PID_MAX = 2**31 - 1  # the largest pid_t; a pid above it (or at most 1) names no process of a run


def valid_pid(pid: Any) -> bool:
    """Whether ``pid`` can be a trainer's: an int above 1 (0 and -1 mean process groups, 1 init)."""
    return type(pid) is int and 1 < pid <= PID_MAX


def _pid_alive(pid: int) -> bool:
    if not valid_pid(pid):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def beat_stale(heartbeat: dict[str, Any] | None, now: float | None = None) -> bool:
    """Whether a heartbeat says nothing fresh: its time older than :data:`STALE_S`, as far in the future
    (a forged or skewed clock must not keep a run 'running' forever), not a finite number, or missing from
    a heartbeat that exists. No heartbeat at all is not stale (a run from before heartbeats)."""
    if not heartbeat:
        return False
    now = time.time() if now is None else now
    beat = heartbeat.get("time")
    if not _finite(beat):
        return True
    return abs(now - beat) > STALE_S


def _finite(value: Any) -> TypeGuard[float]:
    """Whether a JSON value is a finite number (a bool is not)."""
    return type(value) in (int, float) and math.isfinite(value)


def liveness(info: dict[str, Any], heartbeat: dict[str, Any] | None, now: float | None = None) -> bool:
    """Whether the process training a 'running' run is alive, from run.json's host and pid and the heartbeat.

    On this host: a dead pid means killed; a live pid with a heartbeat older than :data:`STALE_S` is another
    process that reuses the pid (or a frozen one), so killed too. On another host (a shared filesystem) the
    pid means nothing here: a fresh heartbeat means running, a stale one killed. A run without any heartbeat
    (written before heartbeats existed) is judged by its pid alone, or taken at its word elsewhere.
    """
    stale = beat_stale(heartbeat, now)
    if info.get("host") == socket.gethostname() and type(info.get("pid")) is int:
        return _pid_alive(info["pid"]) and not stale
    return not stale


def progress_of(heartbeat: dict[str, Any] | None) -> tuple[float, float, float | None] | None:
    """A live run's fraction done, instance-steps per second and seconds left, from its heartbeat."""
    if not heartbeat:
        return None
    done, total = heartbeat.get("instance_steps_done"), heartbeat.get("instance_steps")
    elapsed = heartbeat.get("elapsed_s")
    if not all(_finite(x) and x >= 0 for x in (done, total, elapsed)) or not total:
        return None
    assert isinstance(done, (int, float)) and isinstance(total, (int, float)) and isinstance(elapsed, (int, float))
    resumed = heartbeat.get("instance_steps_resumed")  # work continued from checkpoints: not done this session
    trained = done - resumed if isinstance(resumed, (int, float)) and 0 <= resumed <= done else done
    rate = trained / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else None
    return min(done / total, 1.0), rate, eta


class LogReader:
    """Reads the events appended to a run's log since the last call; never a torn record.

    ``from_latest``: start at the last RunStarted in the log at the first read (a resumed run's log holds
    its earlier sessions too), so a viewer sees the session now training.
    """

    def __init__(self, run_dir: Path, from_latest: bool = True) -> None:
        self.path = Path(run_dir) / EVENTS_FILE
        self.offset = 0
        self.from_latest = from_latest
        self._partial = b""

    def read(self) -> list[ev.Event]:
        try:  # never through a link, never a FIFO; at most READ_BYTES a call
            fd = safe_fs.open_regular(self.path)
        except OSError:
            return []
        try:
            os.lseek(fd, self.offset, os.SEEK_SET)
            data = os.read(fd, READ_BYTES)
        except OSError:
            return []
        finally:
            os.close(fd)
        self.offset += len(data)
        data = self._partial + data
        cut = data.rfind(b"\n") + 1
        self._partial, data = data[cut:], data[:cut]
        lines = data.splitlines()
        if self.from_latest:
            self.from_latest = False
            starts = [i for i, line in enumerate(lines) if line.startswith(b'{"type":"run_started"')]
            if starts:
                lines = lines[starts[-1]:]
        found: list[ev.Event] = []
        for line in lines:
            try:
                found.append(ev.from_json(line.decode("utf-8")))
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                continue  # not a record of ours: skipped, as a viewer must never crash on a file
        return found


def follow(run: Any, poll_s: float = FOLLOW_POLL_S, from_latest: bool = True) -> Iterator[ev.Event]:
    """The events of a run (a :class:`engine.run.folder.Run`) as they are written, until the run ends.

    It ends once the run no longer reads as running and its RunFinished has been read (the runner records
    the ending in run.json just before it publishes RunFinished), or a second later without one (a killed
    run: nothing more will come).
    """
    reader = LogReader(run.path, from_latest)
    ended_at: float | None = None
    while True:
        batch = reader.read()
        yield from batch
        if batch and isinstance(batch[-1], ev.RunFinished) and not run.running():
            return
        if batch:
            continue
        if ended_at is None and not run.running():
            ended_at = time.monotonic()
        if ended_at is not None and time.monotonic() - ended_at > 1.0:
            return
        time.sleep(poll_s)
