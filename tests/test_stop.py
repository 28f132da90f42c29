"""A stop keeps the chunk in training: `toysup stop`, SIGINT, SIGTERM and SIGHUP on a real one-chunk run at
about half way; each resume starts from the saved step and ends as the uninterrupted run, byte for byte."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from engine import events as ev
from engine.runner import resume_sweep, run_sweep
from engine.store import Run, list_runs

from helpers import assert_same_results, make_spec, run_toysup, toysup_command

# One chunk of 4 instances, about 3 s of training on one loaded core: long enough to stop in its middle.
SPEC = make_spec({"steps": 3000, "batch_size": 64, "eval_batch_size": 256, "seeds": 4})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_sweep(SPEC, tmp_path_factory.mktemp("whole"), device="cpu").run_dir


def progress_steps(folder: Path) -> list[int]:
    """The steps of the progress events in the run's log so far (the newest session's)."""
    lines = (folder / "events.jsonl").read_text().splitlines() if (folder / "events.jsonl").exists() else []
    starts = [i for i, line in enumerate(lines) if '"type":"run_started"' in line]
    return [json.loads(line)["step"] for line in lines[starts[-1] if starts else 0:]
            if line.endswith("}") and '"type":"progress"' in line]


def start_and_wait_for_half(runs: Path, preset: Path) -> tuple[subprocess.Popen[str], Path]:
    """A foreground `toysup run` of SPEC, once its log shows it past a third of its steps."""
    proc = subprocess.Popen([*toysup_command(), "run", str(preset), "--runs-dir", str(runs), "--device", "cpu", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list_runs(runs)
        if found and any(step >= 1000 for step in progress_steps(found[0].path)):
            return proc, found[0].path
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("the run never got a third of the way")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["toysup stop", signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_half_way_keeps_the_step_and_resumes_to_the_uninterrupted_run(
        tmp_path: Path, uninterrupted: Path, how: str | signal.Signals):
    preset = tmp_path / "sweep.toml"
    preset.write_text(SPEC.to_toml())
    proc, folder = start_and_wait_for_half(tmp_path / "runs", preset)
    if isinstance(how, str):
        stopped = run_toysup("stop", folder)
        assert stopped.returncode == 0, stopped.stderr
        assert "interrupted" in stopped.stdout
    else:
        proc.send_signal(how)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "interrupted" and info["chunks_done"] == 0
    (kept,) = info["checkpoints"]
    step = kept["step"]
    assert 1000 <= step < 3000 and kept["steps"] == 3000  # the step it stopped at, not the last periodic one
    assert step == max(progress_steps(folder))  # its last event names the step that was saved
    if how != signal.SIGHUP:  # a hangup sends the rest of the output to /dev/null
        assert f"kept step {step:,}/3,000 of its chunk" in stderr
    listed = run_toysup("runs", "--runs-dir", tmp_path / "runs")
    assert f"kept step {step:,}/3,000" in listed.stdout

    events: list[ev.Event] = []
    done = resume_sweep(folder, device="cpu", emit=events.append)
    assert done.status == "completed"
    first = next(e for e in events if isinstance(e, ev.Progress))
    assert first.step == step and first.instance_steps_done == step * 4  # it says where it continues from
    assert_same_results(uninterrupted, folder)
    a, b = Run(uninterrupted).instance_weights(3), Run(folder).instance_weights(3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert Run(folder).read_checkpoints() == [] and Run(folder).info()["checkpoints"] == []
