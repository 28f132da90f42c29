"""The background runner: a sweep in its own process, its events as JSON lines.

Why a process and not a thread: training is CPU-bound Python and torch work; in a
thread it would share the GIL with the interface (design.md measured ~10 ms p95
input lag for a thread against ~2 ms for a process on a 2-core box). A process
also survives an engine crash and is cancelled with a plain SIGINT, which
``run_sweep`` turns into an "interrupted" run that keeps its finished chunks.

Child side (``python -m toysup_tui.worker``, one :class:`Launch` as JSON on
stdin: the resolved spec as TOML, the runs directory and the run options as
data): one ``Event.to_json()`` per stdout line, or one ``{"type": "error",
"message": ...}`` line for a user error before the run starts (a bad option
included: the same message ``toysup run`` gives).

Parent side: :class:`SweepProcess` starts the child with asyncio (stdout and
stderr both piped, so nothing the child prints can draw over the screen) and
yields the decoded events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tomllib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import SpecError
from engine.options import RunOptions

ERROR_TYPE = "error"
NICE = 5  # the interface process keeps its priority; training yields to it on a busy machine
STDERR_LINES_KEPT = 40
# A progress event carries every instance's new loss points: 171 kB for dropout-highdim's first one, past asyncio's
# 64 KiB default, which stopped the reader and so, its pipe full, the worker. A longer line is skipped, not fatal.
LINE_LIMIT = 64 * 2**20


@dataclass
class WorkerError:
    """A user error the child reported before any run folder was made (bad device, unwritable runs dir)."""

    message: str


# --- child side ----------------------------------------------------------------------------


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _print_line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@dataclass(frozen=True)
class Launch:
    """What the worker is asked to run: everything it needs, sent as one JSON document on its stdin."""

    spec_toml: str
    runs_dir: Path
    options: RunOptions = field(default_factory=RunOptions)
    nice: int = NICE  # lower the training's CPU priority so the interface keeps answering at once

    def to_json(self) -> str:
        return json.dumps({"spec": self.spec_toml, "runs_dir": str(self.runs_dir), "options": self.options.to_dict(),
                           "nice": self.nice})

    @classmethod
    def from_json(cls, text: str) -> Launch:
        """The request, checked: options as ``toysup run`` checks them; SpecError if anything is wrong."""
        try:
            data = json.loads(text)
            spec, runs_dir = data["spec"], data["runs_dir"]
            options, nice = data.get("options") or {}, int(data.get("nice", NICE))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SpecError(f"the worker's request is not valid: {exc}") from None
        if not isinstance(options, dict):
            raise SpecError("the worker's request is not valid: options must be an object")
        return cls(str(spec), Path(runs_dir), RunOptions.from_dict(options), nice)


def main() -> int:
    """Run the :class:`Launch` read from stdin; exit 0 completed, 1 failed, 2 user error, 130 interrupted."""
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        launch = Launch.from_json(sys.stdin.read())
        if launch.nice > 0:
            with contextlib.suppress(OSError):
                os.nice(launch.nice)
        from engine.runner import run_sweep
        from engine.spec import resolve

        spec = resolve(tomllib.loads(launch.spec_toml), source="tui")
        outcome = run_sweep(spec, launch.runs_dir, launch.options, emit=lambda e: _print_line(e.to_json()))
    except SpecError as exc:
        _print_line(json.dumps({"type": ERROR_TYPE, "message": str(exc)}))
        return 2
    except KeyboardInterrupt:  # before the run folder existed: nothing to keep
        return 130
    return {"completed": 0, "interrupted": 130}.get(outcome.status, 1)


# --- parent side ---------------------------------------------------------------------------


class SweepProcess:
    """A running worker process, seen from the app's event loop."""

    def __init__(self, process: asyncio.subprocess.Process):
        self.process = process
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_LINES_KEPT)
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        self.cancel_requested = False

    @classmethod
    async def start(cls, launch: Launch) -> SweepProcess:
        """Spawn the worker and hand it the launch request; the caller then iterates :meth:`events`."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "toysup_tui.worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env, limit=LINE_LIMIT,
        )
        assert process.stdin is not None
        process.stdin.write(launch.to_json().encode("utf-8"))
        await process.stdin.drain()
        process.stdin.close()
        return cls(process)

    async def _drain_stderr(self) -> None:
        # Always read stderr: an unread pipe fills up and blocks the child.
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self.stderr_tail.append(raw.decode("utf-8", "replace").rstrip())

    async def events(self) -> AsyncIterator[Any]:
        """Engine events and :class:`WorkerError`s, until the child closes its stdout."""
        from engine.events import from_json

        stdout = self.process.stdout
        assert stdout is not None
        while True:
            try:
                raw = await stdout.readline()
            except ValueError:  # a line over LINE_LIMIT, dropped (readline has consumed it); the next one counts
                continue
            if not raw:
                return
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("{"):
                continue  # a stray print from a library: not ours
            try:
                data = json.loads(line)
                if data.get("type") == ERROR_TYPE:
                    yield WorkerError(str(data.get("message", "")))
                else:
                    yield from_json(line)
            except (ValueError, KeyError, TypeError):
                continue

    def cancel(self) -> None:
        """Ask the run to stop: SIGINT, which the engine records as an interrupted run."""
        self.cancel_requested = True
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()

    async def wait(self, timeout: float | None = None) -> int | None:
        """The exit code, or None if the process is still going after ``timeout`` seconds."""
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            return None
        await self._stderr_task
        return code

    @property
    def running(self) -> bool:
        return self.process.returncode is None


if __name__ == "__main__":
    sys.exit(main())
