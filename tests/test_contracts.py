"""Rules of the code base that a machine checks: the engine stands without the terminal front end."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys

import engine

TERMINAL_LIBRARIES = ("rich", "textual", "typer", "plotext", "textual_plotext")


def engine_modules() -> list[str]:
    """Every module of the engine package, subpackages included."""
    found = pkgutil.walk_packages(engine.__path__, prefix="engine.")
    return sorted(["engine", *(m.name for m in found)])


def test_the_engine_imports_no_terminal_library_and_no_front_end():
    """In a fresh interpreter, importing every engine module (executors and models too) loads neither a
    terminal library nor toysup_tui: notebooks, Ray workers and other front ends use the engine alone."""
    modules = engine_modules()
    assert {"engine.executors.ray_cluster", "engine.models.sae", "engine.runner", "engine.store"} <= set(modules)
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
