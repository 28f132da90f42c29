"""toysup for Python and notebooks: ``import toysup; run = toysup.open_run("latest")``.

A thin name for :mod:`toysup.engine.api` (``run_sweep`` adds a progress bar: toysup/progress.py); importing it
loads no terminal library. The engine itself is
the subpackage ``toysup.engine`` (the repository's ``engine/`` folder) and the terminal front end is
``toysup_tui``. The API's names load on first use (PEP 562), so ``import toysup.engine.params`` (which
runs this file first) stays as fast as the CLI's completion needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toysup.engine import __version__
    from toysup.engine.api import Run, has_pandas, list_runs, open_run
    from toysup.engine.errors import RunDataError, ToysupError, UserError
    from toysup.engine.options import RunOptions
    from toysup.progress import run_sweep

_HOMES = {
    "__version__": "toysup.engine",
    **dict.fromkeys(("Run", "has_pandas", "list_runs", "open_run"), "toysup.engine.api"),
    "run_sweep": "toysup.progress",  # the engine's run_sweep with the notebook bar, which the engine cannot import
    **dict.fromkeys(("RunDataError", "ToysupError", "UserError"), "toysup.engine.errors"),
    "RunOptions": "toysup.engine.options",
}

__all__ = ["Run", "RunDataError", "RunOptions", "ToysupError", "UserError", "__version__", "has_pandas", "list_runs",
           "open_run", "run_sweep"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'toysup' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
