"""Fixtures shared by the test files (helpers they import live in helpers.py).

Torch runs on one thread here: the suite runs under ``pytest -n 2`` on small
machines, and two workers with two torch threads each on two cores spin against
each other (measured: 30x slower). Subprocesses get ``OMP_NUM_THREADS=1`` too.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from rich.style import Style

# The fused Triton kernel's tests (test_triton_kernel.py) run under Triton's interpreter on a CPU-only machine.
# Triton reads this when it is first imported (its own library functions are decorated then), so it is set here,
# before any test imports it; nothing else in the suite runs Triton code on a CPU, so no other test changes.
if not torch.cuda.is_available() and "triton" not in sys.modules:
    os.environ.setdefault("TRITON_INTERPRET", "1")

from helpers import TINY_PRESET, invoke


def pytest_configure(config: pytest.Config) -> None:
    torch.set_num_threads(1)
    # ...and so does every run the tests start without --threads, in this process or a child (the automatic
    # count would otherwise take whatever cores look idle for a moment and then spin against the other worker).
    os.environ["OMP_NUM_THREADS"] = "1"
    # The user's own config.toml and presets (and TOYSUP_DEVICE and the like) stay out of the tests: an empty
    # config directory of their own, which tests that need one replace.
    from toysup.engine.preset_sources import PRESETS_ENV
    from toysup.engine.settings import RUNS_DIR, SETTINGS, env_name

    for name in [PRESETS_ENV, *(env_name(s) for s in SETTINGS if s != RUNS_DIR)]:
        os.environ.pop(name, None)
    os.environ["TOYSUP_CONFIG_DIR"] = tempfile.mkdtemp(prefix="toysup-config-")
    os.environ["TOYSUP_STATE_DIR"] = tempfile.mkdtemp(prefix="toysup-state-")  # crash reports (toysup_tui/crash.py)


@pytest.fixture(autouse=True)
def full_colour_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test sees a truecolor terminal without NO_COLOR, whatever the shell running pytest has (TERM=xterm
    means 16 colours, where charts draw markers): a test that wants fewer colours sets them itself."""
    monkeypatch.setenv("COLORTERM", "truecolor")
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture(autouse=True)
def fresh_rich_styles() -> Iterator[None]:
    """Rich keeps a Style's escape codes on the object whatever console first rendered it (Style._ansi), and
    Style.parse and the style sums are lru-cached, so a test that renders at 16 colours would hand its codes to
    a later truecolor one in the same worker. Dropping the caches after each test gives the next fresh Styles."""
    yield
    for name in dir(Style):
        cached = getattr(Style, name, None)
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()


@pytest.fixture
def tui_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A runs directory and a user presets directory, and one torch thread for worker processes."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path / "runs", tmp_path / "presets"


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
