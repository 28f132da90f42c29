"""A run's status: the one enum, the one function that derives it, and the exit code each status gives.

run.json holds the word its trainer last wrote (``running`` while it trains, then ``completed``,
``interrupted`` or ``failed``); what a run *is* also depends on whether that trainer still lives and whether
its files hold what run.json and manifest.json say. Every command, screen and the Python API ask
:func:`status_of` (through :meth:`engine.run.folder.Run.status`), so they never disagree. The words are the
ones on disk and in every output: Status is a ``StrEnum``, so a member prints, compares and serialises as
its word.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toysup.engine.run.record import RunRecord


class Status(StrEnum):
    COMPLETED = "completed"
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    FAILED = "failed"
    KILLED = "killed"  # run.json says running, but its process is gone (never written)
    DAMAGED = "damaged"  # run.json unreadable or of an unknown word, or its files disagree with it

    @property
    def resumable(self) -> bool:
        """Stopped before finishing: ``toysup resume`` finishes it."""
        return self in RESUMABLE

    @property
    def stopped_early(self) -> bool:
        """Training or stopped before finishing: what it has is part of the sweep."""
        return self is Status.RUNNING or self in RESUMABLE

    @classmethod
    def parse(cls, word: str) -> Status:
        """The status a word names; DAMAGED for any other (a word from a file or an event is anything)."""
        try:
            return cls(word)
        except ValueError:
            return cls.DAMAGED


STATUSES = tuple(s.value for s in Status)  # completed, running, interrupted, failed, killed, damaged
RESUMABLE = frozenset({Status.INTERRUPTED, Status.FAILED, Status.KILLED})
WRITTEN = frozenset({Status.COMPLETED, Status.RUNNING, Status.INTERRUPTED, Status.FAILED})  # run.json's words

# Exit codes of every command that ends with a run (run, resume, watch, a detached trainer) and the CLI's own.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def exit_code(status: Status | str) -> int:
    """0 completed, 130 interrupted, 1 anything else (failed, killed, damaged, still running)."""
    return {Status.COMPLETED: EXIT_OK, Status.INTERRUPTED: EXIT_INTERRUPTED}.get(Status.parse(status), EXIT_FAILED)


def status_of(record: RunRecord, problem: Callable[[], str] | None = None) -> Status:
    """The status of a run with this run.json (and, given, the one-line ``problem`` of its files).

    A 'running' run whose process is gone (or whose heartbeat stopped, engine/runlog.py) was killed; an
    unreadable run.json, a word it never holds (``killed`` included) or a ``problem`` is damaged. A running
    run's files are not checked: they are still being written."""
    if record.damage or record.status not in WRITTEN:
        return Status.DAMAGED
    if record.status == Status.RUNNING:
        # The CLI imports this module for its exit codes at start-up, before its SIGTERM handler is in
        # place (toysup_tui/cli.py main), and only a running run's status needs the run log's liveness check.
        from toysup.engine.runlog import liveness  # deferred: see above (start-up time)

        return Status.RUNNING if liveness({"host": record.host, "pid": record.pid}, record.heartbeat) \
            else Status.KILLED
    status = Status(record.status)
    return Status.DAMAGED if problem is not None and problem() else status
