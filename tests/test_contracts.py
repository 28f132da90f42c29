"""Rules of the code base that a machine checks: the engine stands without the terminal front end."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import engine

TERMINAL_LIBRARIES = ("rich", "textual", "typer", "plotext", "textual_plotext")
# The analysis layer: the numbers behind every report, table and chart, for any front end.
ANALYSIS = ("aggregate", "columns", "geometry", "orientation", "phase", "selection", "series")


def engine_modules() -> list[str]:
    """Every module of the engine package, subpackages included."""
    found = pkgutil.walk_packages(engine.__path__, prefix="engine.")
    return sorted(["engine", *(m.name for m in found)])


def test_the_engine_imports_no_terminal_library_and_no_front_end():
    """In a fresh interpreter, importing every engine module (executors and models too) loads neither a
    terminal library nor toysup_tui: notebooks, Ray workers and other front ends use the engine alone."""
    modules = engine_modules()
    assert {"engine.executors.ray_cluster", "engine.models.sae", "engine.runner", "engine.store"} <= set(modules)
    assert {f"engine.analysis.{m}" for m in ANALYSIS} <= set(modules)
    probe = ("import importlib, json, sys\n"
             f"for name in {modules!r}:\n"
             "    importlib.import_module(name)\n"
             "print(json.dumps(sorted(sys.modules)))\n")
    source = os.path.dirname(os.path.dirname(engine.__file__))  # the tree this test imported
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    forbidden = [m for m in loaded if m.split(".")[0] in (*TERMINAL_LIBRARIES, "toysup_tui")]
    assert forbidden == [], f"importing the engine loads {forbidden}"


def test_ci_runs_the_readmes_test_command_verbatim():
    """A newcomer's test command and CI's are one line: what passes in CI passes for them."""
    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text().splitlines()
    at = readme.index("# install, then lint (ruff), type-check (mypy) and run the tests")
    command = readme[at + 1]
    assert "ruff check ." in command and "mypy" in command and "pytest" in command
    ci = (root / ".ci" / "run").read_text().splitlines()
    assert ci.count(command) == 1 and ci[-1] == command  # its last line: its exit code is CI's
    assert sum("venv" in line for line in ci if not line.lstrip().startswith("#")) == 1  # one venv, made once


def test_plotext_is_drawn_from_one_module():
    """Charts are drawn in toysup_tui/render/charts.py only (the TUI's chart widget hosts its canvas),
    so a change of chart library touches one place; no screen or report imports plotext itself."""
    root = Path(__file__).parent.parent / "toysup_tui"
    allowed = {root / "render" / "charts.py", root / "widgets" / "chart.py"}
    importers = {p for p in root.rglob("*.py")
                 if any(line.strip().startswith(("import plotext", "from plotext", "from textual_plotext"))
                        for line in p.read_text().splitlines())}
    assert importers and importers <= allowed, sorted(str(p) for p in importers - allowed)
