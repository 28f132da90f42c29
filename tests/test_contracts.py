"""Rules of the code base that a machine checks: the engine stands without the terminal front end, in layers
without import cycles."""

from __future__ import annotations

import ast
import json
import os
import pkgutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Set
from pathlib import Path

import grimp

from toysup import engine

TERMINAL_LIBRARIES = ("rich", "textual", "typer", "plotext", "textual_plotext")
# The analysis layer: the numbers behind every report, table and chart, for any front end.
ANALYSIS = ("aggregate", "columns", "geometry", "orientation", "phase", "selection", "series")


def engine_modules() -> list[str]:
    """Every module of the engine package, subpackages included."""
    found = pkgutil.walk_packages(engine.__path__, prefix="toysup.engine.")
    return sorted(["toysup.engine", *(m.name for m in found)])


def test_the_engine_imports_no_terminal_library_and_no_front_end():
    """In a fresh interpreter, importing every engine module (executors and models too) loads neither a
    terminal library nor toysup_tui: notebooks, Ray workers and other front ends use the engine alone."""
    modules = engine_modules()
    expected = ("executors.ray_cluster", "models.sae", "runner", "run.folder")
    assert {f"toysup.engine.{m}" for m in expected} <= set(modules)
    assert {f"toysup.engine.analysis.{m}" for m in ANALYSIS} <= set(modules)
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
    at = readme.index("# install, then lint (ruff), check the engine's layers (lint-imports), type-check (mypy) and "
                      "run the tests")
    command = readme[at + 1]
    assert "ruff check . && lint-imports &&" in command and "mypy" in command and "pytest" in command
    ci = (root / ".ci" / "run").read_text().splitlines()
    assert ci.count(command) == 1 and ci[-1] == command  # its last line: its exit code is CI's
    assert sum("venv" in line for line in ci if not line.lstrip().startswith("#")) == 1  # one venv, made once
    assert "mkdocs build --strict" in command  # the documentation site builds without a warning
    for page in ("docs/getting-started.md", "docs/contributing/index.md"):  # the pages that repeat it
        assert command in (root / page).read_text().splitlines(), page


def test_plotext_is_drawn_from_one_module():
    """Charts are drawn in toysup_tui/render/charts.py only (the TUI's chart widget hosts its canvas),
    so a change of chart library touches one place; no screen or report imports plotext itself."""
    root = Path(__file__).parent.parent / "toysup_tui"
    allowed = {root / "render" / "charts.py", root / "widgets" / "chart.py"}
    importers = {p for p in root.rglob("*.py")
                 if any(line.strip().startswith(("import plotext", "from plotext", "from textual_plotext"))
                        for line in p.read_text().splitlines())}
    assert importers and importers <= allowed, sorted(str(p) for p in importers - allowed)


# --- fast to open: the listings and the TUI's first screen do not import torch ----------------------------

def _fresh_python(probe: str, timeout: float = 120) -> list[str]:
    """Run ``probe`` in a fresh interpreter with this tree first on the path; its output's lines."""
    source = os.path.dirname(os.path.dirname(engine.__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "80", "NO_COLOR": "1"}
    env.pop("TOYSUP_RUNS_DIR", None)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_the_listings_do_not_import_torch(tmp_path):
    """`toysup runs` (with a run to list), `watch` (of a finished run), `presets`, `presets --long`, `params`
    and `params MODEL` read declarations and run folders only: torch (seconds to import) stays unloaded."""
    from helpers import make_fixture_run

    run = make_fixture_run(tmp_path / "runs")
    root = str(tmp_path / "runs")
    for args in (["runs", "--runs-dir", root], ["watch", run.id, "--runs-dir", root], ["presets"],
                 ["presets", "--long"], ["params"], ["params", "sae"], ["params", "relu_output_phase"],
                 ["params", "sae_hidden"], ["params", "compute"], ["params", "incidental"], ["params", "tms-intro"]):
        probe = ("import sys\nfrom toysup_tui import cli\n"
                 f"sys.argv = ['toysup', *{args!r}]\n"
                 "try:\n    cli.main()\nexcept SystemExit as exc:\n    code = exc.code\n"
                 "print('exit', code, 'torch', 'torch' in sys.modules)\n")
        lines = _fresh_python(probe)
        assert lines[-1] == "exit 0 torch False", (args, lines[-5:])
        if args[0] == "runs":
            assert any(run.id in line for line in lines)


def test_the_tui_paints_its_first_screen_before_importing_torch(tmp_path):
    """The presets screen is composed and filled before torch is imported, and torch is then imported
    in a worker thread (never on the thread that paints), so the form and results open without a wait."""
    probe = """
import asyncio, sys, threading
from pathlib import Path
from textual.widgets import DataTable
from toysup_tui.app import ToysupApp
from toysup_tui.screens.presets import PresetsScreen

print("imported", "torch" in sys.modules)
app = ToysupApp(Path(sys.argv[1]) / "runs", presets_dir=Path(sys.argv[1]) / "presets")
seen = []

class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not seen:
            screen = app.screen
            rows = screen.query_one(DataTable).row_count if isinstance(screen, PresetsScreen) else 0
            seen.append((type(screen).__name__, rows, threading.current_thread() is threading.main_thread()))
        return None

sys.meta_path.insert(0, Watch())

async def main():
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()
        screen, rows, main_thread = seen[0] if seen else ("never", 0, False)
        print("first", screen, rows > 0, "main thread" if main_thread else "worker thread")
        print("loaded", "torch" in sys.modules)

asyncio.run(main())
"""
    lines = _fresh_python(probe.replace("sys.argv[1]", repr(str(tmp_path))))
    assert lines[-3:] == ["imported False", "first PresetsScreen True worker thread", "loaded True"], lines


def test_every_model_kind_names_the_class_that_trains_it():
    """Each registered declaration's ``implementation`` is a trainer of that very kind (a subclass of the
    declaration and of ToyModel), so the torch-free registry and training can never disagree."""
    from toysup.engine.models import MODELS, ToyModel, get_model

    for kind, declared in MODELS.items():
        trainer = get_model(kind)
        assert issubclass(trainer, declared) and issubclass(trainer, ToyModel), kind
        assert trainer.kind == kind and trainer.param_table() == declared.param_table()


# --- layers: lint-imports checks the contracts; these check what it cannot -----------------------------------

def _import_graph(package: str) -> dict[str, set[str]]:
    """Each module of ``package`` (a dotted name) and the modules of that package it imports, counting every
    import statement: module level, inside functions and under TYPE_CHECKING (grimp reads them all)."""
    graph = grimp.build_graph(package.split(".")[0], cache_dir=None)
    modules = {m for m in graph.modules if m == package or m.startswith(package + ".")}
    return {m: set(graph.find_modules_directly_imported_by(m)) & modules for m in modules}


def _engine_graph() -> dict[str, set[str]]:
    return _import_graph("toysup.engine")


def circles(edges: Mapping[str, Set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def test_circles_finds_every_import_circle_and_only_those():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"f"}, "f": {"e"}, "g": {"a"}}
    assert circles(edges) == [["a", "b", "c"], ["e", "f"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_engines_import_graph_has_no_circle():
    """No engine module reaches itself through imports, not even through a function-level or TYPE_CHECKING
    import (which keep a circle from failing at import time but not from tying the modules together). A new
    circle fails here with its modules' names: move the code to its layer (docs/contributing)."""
    found = circles(_engine_graph())
    assert not found, "import circles in the engine: " + "; ".join(", ".join(c) for c in found)


def test_the_front_ends_import_graph_has_no_circle():
    """The same for the terminal front end (toysup_tui): a screen never imports the app that opens it (host.py
    declares what the screens use of the app), and no function-level import hides a circle."""
    graph = _import_graph("toysup_tui")
    assert {"toysup_tui.app", "toysup_tui.host", "toysup_tui.screens.base", "toysup_tui.cli"} <= set(graph)
    assert "toysup_tui.screens.base" in graph["toysup_tui.screens.presets"]  # the graph has the screens' edges
    found = circles(graph)
    assert not found, "import circles in toysup_tui: " + "; ".join(", ".join(c) for c in found)


def test_the_app_implements_everything_its_screens_use():
    """host.py declares what the screens use of the app (mypy checks that they use nothing else); ToysupApp
    overrides each of those methods and sets each declared attribute, so no screen reaches a stub."""
    from toysup_tui.app import ToysupApp
    from toysup_tui.host import ToysupHost

    methods = [n for n, v in vars(ToysupHost).items() if callable(v) and not n.startswith("__")]
    assert {"launch", "open_results"} <= set(methods)
    assert [n for n in methods if getattr(ToysupApp, n) is getattr(ToysupHost, n)] == []
    app = ToysupApp(Path("runs"), presets_dir=Path("presets"))
    assert all(hasattr(app, n) for n in ToysupHost.__annotations__), ToysupHost.__annotations__


def test_every_engine_module_is_in_a_layer():
    """The layers contract (pyproject.toml) names every engine module or a package holding it; the two
    packages it cannot name (their modules sit in different layers) import nothing themselves."""
    config = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["tool"]["importlinter"]
    contract = next(c for c in config["contracts"] if c["id"] == "engine-layers")
    declared = {f"toysup.engine.{name.strip()}" for layer in contract["layers"]
                for name in layer.replace("|", ":").split(":")}
    graph = _engine_graph()
    unplaced = sorted(m for m in graph if not any(m == d or m.startswith(d + ".") for d in declared))
    assert unplaced == ["toysup.engine", "toysup.engine.analysis"]
    assert all(graph[m] == set() for m in unplaced)


def test_every_function_level_import_says_why_it_waits():
    """An import inside a function is for torch or a slow or optional dependency (Ray, Triton, scipy, pandas),
    or, in the front end, for a command that alone needs it (the CLI starts fast, torch and Textual load late),
    and its line says so ("deferred: ..."); never to hide an import circle (the tests above find those)."""
    root = Path(engine.__file__).parent
    front_end = Path(__file__).parent.parent / "toysup_tui"
    silent = []
    for path in sorted([*root.rglob("*.py"), root.parent / "progress.py", *front_end.rglob("*.py")]):
        lines = path.read_text().splitlines()
        if "# deferred imports: a command's own (module docstring)" in lines:  # cli.py: one per command
            continue
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                silent += [f"{path.parent.name}/{path.name}:{inner.lineno}" for inner in ast.walk(node)
                           if isinstance(inner, (ast.Import, ast.ImportFrom))
                           and "# deferred" not in lines[inner.lineno - 1]]
    assert silent == []
