"""Rules of the code base that a machine checks: the engine stands without the terminal front end."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

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
    at = readme.index("# install, then lint (ruff), type-check (mypy) and run the tests")
    command = readme[at + 1]
    assert "ruff check ." in command and "mypy" in command and "pytest" in command
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
