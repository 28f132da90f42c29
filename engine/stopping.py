"""A stop that lets the step in progress finish, so that stopping never throws away training.

Ctrl-C, SIGTERM and SIGHUP used to raise KeyboardInterrupt wherever the trainer was, in the middle
of an optimiser step as often as not, so the chunk in training could not be saved and was lost. The
front ends install :func:`handle` for those signals instead. While a run trains (inside
:func:`deferred`), a signal only sets a flag; the training loop looks at it after every step, writes
a checkpoint of the chunk in training and then raises KeyboardInterrupt, which the runner records as
``interrupted``. Outside a run (importing torch, connecting to a cluster, planning), and inside
:func:`raising` (a chunk's final evaluation, which changes no training state), the signal raises
KeyboardInterrupt at once, as Python's own SIGINT handler does.

Signals are delivered to the main thread; the flag is a plain global, so a loop in another thread
sees it too.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

_deferring = 0  # depth of deferred() sections open now
_requested = False  # a signal arrived while deferring and has not been acted on yet


def handle(signum: int = 0, frame: Any = None) -> None:
    """The signal handler: ask the run to stop at its next step, or raise KeyboardInterrupt when no run
    is training."""
    global _requested
    if _deferring:
        _requested = True
        return
    raise KeyboardInterrupt


def requested() -> bool:
    """Whether a stop signal arrived while the run was training (cheap: looked at after every step)."""
    return _requested


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """While open, stop signals set :func:`requested` instead of raising; the outermost one forgets the
    request when it closes (the run it was meant for has ended)."""
    global _deferring, _requested
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring:
            _requested = False


@contextlib.contextmanager
def on_interrupt() -> Iterator[None]:
    """SIGINT handled by :func:`handle` while open (a notebook's stop button, Ctrl-C in a script), and put
    back as it was afterwards; nothing changes outside the main thread, where signals cannot be handled."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def raising() -> Iterator[None]:
    """Inside a :func:`deferred` section, a stretch that a stop may cut short at any point (it changes no
    state that a checkpoint holds): a stop already requested, or one arriving meanwhile, raises
    KeyboardInterrupt."""
    global _deferring
    saved, _deferring = _deferring, 0
    try:
        if _requested:
            raise KeyboardInterrupt
        yield
    finally:
        _deferring = saved
