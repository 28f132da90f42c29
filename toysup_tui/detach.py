"""Start a sweep (or a resume) that outlives whoever started it: ``toysup run --detach`` and the TUI.

The trainer runs in its own session (``start_new_session``: its own process group, no controlling
terminal), stdin from /dev/null, so closing the terminal, losing SSH or quitting the TUI leaves it
training. It publishes its progress to its run folder (engine/runlog.py), where any viewer follows it.

The launcher must learn the run's folder, which the trainer creates: until then the child's stdout is a
pipe to the launcher, on which it writes one JSON line (``{"type": "started", "run_dir": ...}`` or
``{"type": "error", "message": ...}``); then it points stdout and stderr at ``output.log`` in the run
folder. The launcher waits for that line at most :data:`START_WAIT_S` seconds and then lets go; if the
launcher dies first, the child carries on all the same. A trainer that ends (or closes the pipe) without the
line is reported at once, by its exit status and last line of output, never as a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toysup.engine import safe_fs
from toysup.engine.errors import SpecError, UserError
from toysup.engine.options import RunOptions
from toysup.engine.run.status import EXIT_INTERRUPTED, EXIT_USAGE, exit_code

START_WAIT_S = 90.0  # importing torch and planning take seconds; a folder not made by then is reported
EXIT_WAIT_S = 5.0  # a pipe closed without a report: how long the launcher waits for the trainer's exit status
POLL_S = 0.25  # how often the launcher checks, while it waits, whether the trainer has ended
OUTPUT_LOG = "output.log"
NICE = 5  # the interface process keeps its priority; training yields to it on a busy machine


@dataclass
class WorkerError:
    """A user error the trainer reported before any run folder was made (bad device, unwritable runs dir)."""

    message: str


@dataclass(frozen=True)
class Launch:
    """A new sweep to train: everything the trainer needs, sent as one JSON document."""

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
            raise SpecError(f"the launch request is not valid: {exc}") from None
        if not isinstance(options, dict):
            raise SpecError("the launch request is not valid: options must be an object")
        return cls(str(spec), Path(runs_dir), RunOptions.from_dict(options), nice)


@dataclass(frozen=True)
class Resume:
    """Finish an interrupted, failed or killed run, detached."""

    run_dir: Path
    options: RunOptions = field(default_factory=RunOptions)
    force: bool = False

    def to_json(self) -> str:
        return json.dumps({"resume": str(self.run_dir), "options": self.options.to_dict(), "force": self.force})


Request = Launch | Resume


def _read_request(text: str) -> Request:
    data = json.loads(text)
    if isinstance(data, dict) and "resume" in data:
        return Resume(Path(data["resume"]), RunOptions.from_dict(data.get("options") or {}), bool(data.get("force")))
    return Launch.from_json(text)


# --- launcher side ---------------------------------------------------------------------------------


def start(request: Request, wait_s: float = START_WAIT_S) -> Path:
    """Start ``request`` detached and return its run folder once the trainer has made (or reopened) it.

    A user error the trainer meets before training (a bad device, a run already being trained) is raised
    here as UserError, with the trainer's own message; so is a trainer that ends, or closes its output,
    without a report (with its exit status), or stays silent for ``wait_s`` seconds. No process is signalled.
    """
    fd, request_path = tempfile.mkstemp(prefix="toysup-launch-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(request.to_json())
    try:
        child = subprocess.Popen(
            _trainer_command(request_path),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    except OSError:
        Path(request_path).unlink(missing_ok=True)
        raise
    # The reaper holds Popen's waitpid lock until the child exits, so child.poll() says None all that time
    # (even for a child already gone): the exit status is read from child.returncode or child.wait(timeout).
    threading.Thread(target=child.wait, name="toysup-reap", daemon=True).start()  # no zombie left behind
    assert child.stdout is not None
    deadline = time.monotonic() + wait_s
    lines: list[str] = []
    try:
        for line in _lines(child.stdout, deadline, lambda: child.returncode is not None):
            report = _report(line)
            if report is None:
                lines.append(line)
            elif report["type"] == "started":
                return Path(report["run_dir"])
            else:
                raise UserError(report["message"])
    finally:
        child.stdout.close()
    silent_too_long = time.monotonic() >= deadline
    code = _exit_status(child, 0.0 if silent_too_long else EXIT_WAIT_S)
    last = next((line for line in reversed(lines) if line), "")
    if code is not None:
        Path(request_path).unlink(missing_ok=True)  # it may have died before reading it
        raise UserError(f"the detached run {_ended(code)} before it reported its folder"
                        + (f": {last}" if last else ""))
    if silent_too_long:
        raise UserError(f"the detached run (pid {child.pid}) did not report its folder within {wait_s:.0f} s; it may "
                        f"still start (see toysup runs)")
    raise UserError(f"the detached run (pid {child.pid}) closed its output without reporting its folder and is still "
                    f"running (see toysup runs)" + (f": {last}" if last else ""))


def _trainer_command(request_path: str) -> list[str]:
    """The detached trainer's command line (a function, so a test can start a child that misbehaves)."""
    return [sys.executable, "-m", "toysup_tui.detach", request_path]


def _report(line: str) -> dict[str, str] | None:
    """The trainer's report in ``line`` (started with its folder, or an error with its message); None for any
    other line (a warning, a traceback), which is kept to explain a trainer that ends without a report."""
    if not line.startswith("{"):
        return None
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kind = data.get("type")
    if kind == "started" and isinstance(data.get("run_dir"), str):
        return {"type": kind, "run_dir": data["run_dir"]}
    if kind == "error" and isinstance(data.get("message"), str):
        return {"type": kind, "message": data["message"]}
    return None


def _exit_status(child: subprocess.Popen[bytes], wait_s: float) -> int | None:
    """The child's exit status, waiting at most ``wait_s`` seconds for it; None while it runs."""
    try:
        return child.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        return None


def _ended(code: int) -> str:
    """How a child ended, from its Popen return code (minus a signal's number when a signal killed it)."""
    if code >= 0:
        return f"exited with code {code}"
    with contextlib.suppress(ValueError):
        return f"was killed by {signal.Signals(-code).name}"
    return f"was killed by signal {-code}"


def _lines(stream: Any, deadline: float, exited: Callable[[], bool]) -> Iterator[str]:
    """Lines from a pipe until it closes, ``deadline`` (a time.monotonic) passes, or ``exited()`` says its
    writer has ended and nothing is left to read (a process it started may hold the pipe open)."""
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            gone = exited()  # asked before reading: all a process wrote is in the pipe by the time it has ended
            if not selector.select(0 if gone else min(left, POLL_S)):
                if gone:
                    break
                continue
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                yield line.decode("utf-8", "replace").strip()
    if buffer:
        yield buffer.decode("utf-8", "replace").strip()


# --- trainer side ------------------------------------------------------------------------------------


class _Handshake:
    """The event sink of a detached trainer: at RunStarted, tell the launcher the folder, then write to it."""

    def __init__(self) -> None:
        self.announced = False

    def __call__(self, event: Any) -> None:
        from toysup.engine.events import RunStarted  # deferred: only the detached worker needs it

        if isinstance(event, RunStarted) and not self.announced:
            self.announced = True
            _say({"type": "started", "run_dir": event.run_dir, "run_id": event.run_id})
            _redirect(Path(event.run_dir) / OUTPUT_LOG)

    def error(self, message: str) -> None:
        """To the launcher while it waits; after that to output.log (a trainer whose lock was broken)."""
        if not self.announced:
            _say({"type": "error", "message": message})
        else:
            with contextlib.suppress(OSError):
                print(f"error: {message}", file=sys.stderr, flush=True)


def _say(data: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # the launcher may be gone: the run goes on
        sys.stdout.write(json.dumps(data) + "\n")
        sys.stdout.flush()


def _redirect(path: Path) -> None:
    """stdout and stderr to ``path`` (appended: a resumed run keeps its earlier sessions' output)."""
    with contextlib.suppress(OSError):
        sys.stdout.flush()
        sys.stderr.flush()
    fd = safe_fs.open_log(path)  # never through a link planted as output.log, never a FIFO
    if fd < 0:
        fd = os.open(os.devnull, os.O_WRONLY)
    for target in (1, 2):
        os.dup2(fd, target)
    os.close(fd)


def main(argv: list[str]) -> int:
    """Train the request in file ``argv[0]`` (removed once read); exit 0, 1 failed, 2 user error, 130."""
    from toysup.engine import stopping  # deferred: only the detached worker needs it

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # no terminal to lose: a stray hangup is not a stop
    signal.signal(signal.SIGINT, stopping.handle)  # the step in progress finishes and is checkpointed
    signal.signal(signal.SIGTERM, stopping.handle)
    handshake = _Handshake()
    try:
        path = Path(argv[0])
        text = path.read_text(encoding="utf-8")
        path.unlink(missing_ok=True)
        request = _read_request(text)
        if isinstance(request, Launch) and request.nice > 0:
            with contextlib.suppress(OSError):
                os.nice(request.nice)
        from toysup.engine.runner import resume_sweep, run_sweep  # deferred: loads torch, only in the worker

        if isinstance(request, Resume):
            outcome = resume_sweep(request.run_dir, request.options, emit=handshake, force=request.force)
        else:
            from toysup.engine.spec import resolve  # deferred: only the detached worker needs it

            spec = resolve(tomllib.loads(request.spec_toml), source=str(request.runs_dir))
            outcome = run_sweep(spec, request.runs_dir, request.options, emit=handshake)
    except UserError as exc:
        handshake.error(str(exc))
        return EXIT_USAGE
    except (OSError, ValueError, IndexError, tomllib.TOMLDecodeError) as exc:
        handshake.error(f"the launch request cannot be read: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return exit_code(outcome.status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
