"""``toysup.run_sweep``: the engine's run_sweep with a progress bar in a notebook or a Python shell.

tqdm's bar (its notebook widget under Jupyter, via ``tqdm.auto``) where tqdm is installed, else Rich's,
fed by the engine's events. It lives here, not in the engine, which knows nothing of terminals or notebooks
(the engine's API takes any event sink).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from toysup.engine import api
from toysup.engine import events as ev
from toysup.engine.errors import UserError
from toysup.engine.options import OPTION


def run_sweep(spec: str | Path | Mapping[str, Any] = "tms-intro", *, progress: bool = True,
              **keywords: Any) -> api.Run:
    """Train a sweep and return its run, as ``toysup run`` does: :func:`toysup.engine.api.run_sweep` (its
    keywords: params, sweep, seeds, runs_dir, options), showing a bar that names each phase unless
    ``progress`` is False. A run option given as a keyword (``device="cuda"``, as this function took before
    run options had one route) is one UserError line saying to pass it in ``options``."""
    misplaced = sorted(keywords.keys() & OPTION.keys())
    if misplaced:
        name = misplaced[0]
        raise UserError(f"{name} is a run option: pass options={{{name!r}: ...}} (or a toysup.RunOptions)")
    if not progress:
        return api.run_sweep(spec, **keywords)
    with NotebookBar() as bar:
        return api.run_sweep(spec, emit=bar, **keywords)


class NotebookBar:
    """An event sink and context manager: one bar over the run's instance-steps, its text naming the phase."""

    def __init__(self) -> None:
        self._bar: Any = None  # a tqdm bar, or a (rich Progress, task id) pair
        self._done = 0
        self._name = ""

    def __enter__(self) -> NotebookBar:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._bar is None:
            return
        if isinstance(self._bar, tuple):
            self._bar[0].stop()
        else:
            self._bar.close()
        self._bar = None

    def _open(self, total: int, name: str) -> None:
        try:
            from tqdm.auto import tqdm  # type: ignore[import-untyped]  # deferred: optional, and only once a run starts
        except ImportError:
            from rich.progress import Progress  # deferred: the fallback without tqdm

            progress = Progress()
            progress.start()
            self._bar = (progress, progress.add_task(name, total=total))
        else:
            self._bar = tqdm(total=total, desc=name, unit="inst-step", unit_scale=True)

    def _update(self, *, total: int | None = None, done: int | None = None, text: str | None = None) -> None:
        if self._bar is None:
            return
        if isinstance(self._bar, tuple):
            progress, task = self._bar
            progress.update(task, total=total, completed=done, description=text)
            return
        if total is not None:
            self._bar.total = total
        if done is not None:
            self._bar.update(done - self._done)
            self._done = done
        if text is not None:
            self._bar.set_description_str(text)

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            self._name = event.name
            self._open(event.instance_steps, event.name)
        elif isinstance(event, ev.RoundStarted):
            self._update(total=event.instance_steps)
        elif isinstance(event, ev.Progress):
            self._update(done=event.instance_steps_done)
        elif isinstance(event, ev.Phase):
            text = self._name if event.phase == "training" else f"{self._name}: chunk {event.chunk} {event.label()}"
            self._update(text=text)
        elif isinstance(event, ev.RunFinished):
            self._update(text=f"{self._name}: {event.status}")
            self.close()
