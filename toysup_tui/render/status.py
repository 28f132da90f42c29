"""How the front end shows a status: one colour per run :class:`Status` for every view (the runs table, the
results header, the report, the live view), and the live view's own transient states.

The live view shows a run before it has a status (its process is starting) and while a stop is on its way;
those states belong to the view, never to the run, so they are a separate enum (:class:`LiveState`). A run's
own status always comes from engine/run/status.py.
"""

from __future__ import annotations

from enum import StrEnum

from toysup.engine.run.status import Status


class LiveState(StrEnum):
    """What the live view shows instead of the run's status, while the run has none or it is not yet news."""

    STARTING = "starting"  # the trainer is being launched: no run folder yet
    CANCELLING = "cancelling"  # a stop was asked for; the run says interrupted once it has stopped
    LAUNCH_FAILED = "error"  # the trainer never started a run (its one line says why)


STYLE: dict[str, str] = {
    Status.COMPLETED: "green",
    Status.RUNNING: "cyan",
    Status.INTERRUPTED: "magenta",
    Status.FAILED: "red",
    Status.KILLED: "red",
    Status.DAMAGED: "bold red",
    LiveState.STARTING: "cyan",
    LiveState.CANCELLING: "yellow",
    LiveState.LAUNCH_FAILED: "red",
}


def status_style(state: Status | LiveState | str) -> str:
    """The rich style of a status (or live state); none for anything else."""
    return STYLE.get(state, "")
