"""Refusals that must come before any work: sweep sizes read from the grammar, hostile preset files."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from toysup.engine.errors import SpecError
from toysup.engine.spec import load, read_preset, resolve


@pytest.mark.parametrize("expr", ["lin:0.01:1:100000000", "log:0.001:1:10000000000"])
def test_a_huge_axis_is_refused_before_it_is_expanded(expr):
    began = time.perf_counter()
    with pytest.raises(SpecError, match=r"one run holds at most 5,000,000"):
        load("tms-intro", sweeps=[f"feature_probability={expr}"])
    # Expanding 1e8 values took minutes and gigabytes; reading the grammar takes microseconds.
    assert time.perf_counter() - began < 2.0


def test_the_product_of_axes_and_seeds_is_what_is_bounded():
    with pytest.raises(SpecError, match=r"3,000 feature_probability x 2,000 importance_decay x 1 seeds"):
        load("tms-intro", sweeps=["feature_probability=lin:0.01:1:3000", "importance_decay=lin:0.5:1:2000"],
             seeds=1)
    # Just under the bound passes the size check (and is then expanded as usual).
    spec = load("tms-intro", sweeps=["feature_probability=lin:0.01:1:500"], seeds=2)
    assert spec.n_instances == 1000


def test_an_overridden_axis_does_not_count_towards_the_size():
    spec = load("tms-intro", sets=["feature_probability=0.1"], seeds=3)
    assert spec.n_instances == 3 * spec.n_points


@pytest.mark.parametrize("key", ["name", "description", "expected"])
def test_text_keys_must_be_strings(key):
    with pytest.raises(SpecError, match=rf"{key} must be a string, not list"):
        resolve({"model": "relu_output", key: ["a"]})


def test_a_deeply_nested_toml_file_is_one_error_not_a_recursion_traceback(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    with pytest.raises(SpecError, match="nested too deeply"):
        read_preset(str(path))


# --- the command line: Click's own usage errors and small gaps, one line each ----------------------


def _entry_point(*args: str) -> subprocess.CompletedProcess[str]:
    """The real entry point (toysup_tui.cli:main), as the installed ``toysup`` script runs it."""
    code = "import sys; from toysup_tui.cli import main; sys.argv[0] = 'toysup'; main()"
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize(("args", "expected"), [
    (["run", "--seeds", "abc"], "toysup run: Invalid value for '--seeds'"),
    (["run", "--no-such-flag"], "toysup run: No such option: --no-such-flag"),
    (["no-such-command"], "No such command 'no-such-command'"),
    (["report", "--width", "-5"], "--width -5 is not valid: expected 20 to 10,000 columns"),
])
def test_usage_errors_from_the_entry_point_are_one_line(args, expected, tmp_path):
    done = _entry_point(*args, "--runs-dir", str(tmp_path / "runs")) if args[0] != "no-such-command" else \
        _entry_point(*args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], done.stderr
    assert not (tmp_path / "runs").exists()


def test_runs_dir_that_is_a_file_is_a_mistake_not_an_empty_list(tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("x", encoding="utf-8")
    done = _entry_point("runs", "--runs-dir", str(afile))
    assert done.returncode == 2 and "is a file, not a directory of runs" in done.stderr
    assert afile.read_text(encoding="utf-8") == "x"


@pytest.mark.parametrize("columns", [80, 120])
def test_presets_fit_the_terminal_one_line_each(columns):
    from toysup.engine.spec import bundled_presets

    done = subprocess.run([sys.executable, "-c", "import sys; from toysup_tui.cli import main; "
                           "sys.argv[0] = 'toysup'; main()", "presets"], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": str(columns)}, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= columns
    names = list(bundled_presets())
    # One line per preset (plus title, header, rule and caption), each naming its preset.
    assert len(lines) <= len(names) + 7
    for name in names:
        assert sum(line.lstrip().startswith(name + " ") for line in lines) == 1, name
    assert ("relu_output" in done.stdout) == (columns >= 100)


def test_presets_long_gives_the_full_text():
    from toysup.engine.spec import load

    done = _entry_point("presets", "--long")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    spec = load("tms-intro")
    assert " ".join(spec.expected.split()) in text and " ".join(spec.description.split()) in text
