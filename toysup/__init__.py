"""toysup for Python and notebooks: ``import toysup; run = toysup.open_run("latest")``.

A thin name for :mod:`engine.api` (the engine and the terminal front end are the
packages ``engine`` and ``toysup_tui``); importing it loads no terminal library.
"""

from engine import __version__
from engine.api import Run, has_pandas, list_runs, open_run, run_sweep
from engine.errors import RunDataError, ToysupError, UserError

__all__ = [
    "Run",
    "RunDataError",
    "ToysupError",
    "UserError",
    "__version__",
    "has_pandas",
    "list_runs",
    "open_run",
    "run_sweep",
]
