"""Shared helpers for the engine and headless-CLI tests.

Torch runs on one thread here: the suite runs under ``pytest -n 2`` on small
machines, and two workers with two torch threads each on two cores spin against
each other (measured: 30x slower). Subprocesses get ``OMP_NUM_THREADS=1`` too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from engine.plan import plan
from engine.spec import Spec, resolve
from engine.train import ChunkResult, train_chunk

torch.set_num_threads(1)
# ...and so does every run the tests start without --threads, in this process or a child (the automatic count
# would otherwise take whatever cores look idle for a moment and then spin against the other worker).
os.environ["OMP_NUM_THREADS"] = "1"

DATA = Path(__file__).parent / "data"
TINY_PRESET = DATA / "tiny.toml"
CPU = torch.device("cpu")

# What a user mistake must look like: exit code 2, one "error:" line on stderr, no traceback.
EXIT_USAGE = 2


# --- specs and training ---------------------------------------------------------------------


def make_spec(params: dict[str, Any] | None = None, sweep: dict[str, Any] | None = None,
              model: str = "relu_output", **overrides: Any) -> Spec:
    """A spec from Python dicts, the way a preset file would give them; a swept name wins over a fixed one."""
    fixed = {k: v for k, v in (params or {}).items() if k not in (sweep or {})}
    data: dict[str, Any] = {"name": "test", "model": model, "params": fixed}
    if sweep:
        data["sweep"] = dict(sweep)
    return resolve(data, **overrides)


def train_all(spec: Spec, max_memory: int | None = None) -> list[ChunkResult]:
    """Train every chunk of ``spec`` on the CPU."""
    return [train_chunk(chunk, CPU) for chunk in plan(spec, CPU, max_memory)]


def by_instance(results: list[ChunkResult]) -> dict[int, dict[str, Any]]:
    """Each instance's config, final weights, metrics and loss curve, keyed by its sweep index."""
    out = {}
    for result in results:
        for i, inst in enumerate(result.chunk.instances):
            out[inst.index] = {
                "config": inst.config,
                "weights": {k: v[i] for k, v in result.weights.items()},
                "metrics": {k: v[i] for k, v in result.metrics.items()},
                "features": {k: v[i] for k, v in result.features.items()},
                "curve": result.curves[i],
            }
    return out


# --- the command line -----------------------------------------------------------------------


def invoke(*args: Any, env: dict[str, str] | None = None):
    """Run ``toysup ARGS`` in-process with Typer's CliRunner (stdout and stderr kept apart).

    $TOYSUP_RUNS_DIR from the caller's environment is hidden unless ``env`` sets it.
    """
    from toysup_tui.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], env={"TOYSUP_RUNS_DIR": None, **(env or {})})


def toysup_command() -> list[str]:
    """The installed ``toysup`` entry point next to this interpreter, or the module as a fallback."""
    script = Path(sys.executable).with_name("toysup")
    return [str(script)] if script.exists() else [sys.executable, "-m", "toysup_tui.cli"]


def run_toysup(*args: Any, env: dict[str, str] | None = None, cwd: Path | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real ``toysup`` in a subprocess."""
    full_env = {k: v for k, v in os.environ.items() if k != "TOYSUP_RUNS_DIR"}
    full_env.update(OMP_NUM_THREADS="1", NO_COLOR="1", COLUMNS="200")
    full_env.update(env or {})
    return subprocess.run([*toysup_command(), *[str(a) for a in args]], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


def snapshot(path: Path) -> dict[str, tuple[int, int]] | None:
    """Every file under ``path`` with its size and mtime, or None if ``path`` does not exist."""
    if not path.exists():
        return None
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))}


def assert_user_error(exit_code: int, stderr: str, stdout: str, *fragments: str) -> str:
    """The contract for a user's mistake; returns the error line."""
    assert exit_code == EXIT_USAGE, f"exit {exit_code}\nstdout: {stdout}\nstderr: {stderr}"
    assert "Traceback" not in stderr + stdout
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    line = lines[0]
    assert line.startswith("error:"), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    """A runs directory that does not exist yet."""
    return tmp_path / "runs"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished run of the tiny preset, shared read-only by the tests that inspect its files."""
    root = tmp_path_factory.mktemp("tiny") / "runs"
    result = invoke("run", TINY_PRESET, "--runs-dir", root, "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.stderr
    (run_dir,) = root.iterdir()
    assert result.stdout.strip() == str(run_dir)
    return run_dir
