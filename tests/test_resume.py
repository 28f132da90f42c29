"""Interrupt a run (in process, SIGINT, SIGKILL), resume it, and get an uninterrupted run's results."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from toysup.engine.errors import SpecError
from toysup.engine.models import get_model
from toysup.engine.options import RunOptions
from toysup.engine.run.catalogue import list_runs
from toysup.engine.run.folder import Run
from toysup.engine.runner import resume_sweep, run_sweep

from helpers import assert_same_results, invoke, make_spec, run_options, toysup_command

PARAMS = {"steps": 400, "batch_size": 64, "eval_batch_size": 256, "seeds": 10}
SWEEP = {"feature_probability": [1.0, 0.3, 0.1, 0.03]}
# bytes: 16 instances per chunk, so 40 instances make 3 chunks
BUDGET = 16 * get_model("relu_output").bytes_per_instance(make_spec(PARAMS, SWEEP).instances()[0].config)


def test_resume_after_an_in_process_stop_matches_an_uninterrupted_run(tmp_path: Path):
    spec = make_spec(PARAMS, SWEEP)
    whole = run_sweep(spec, tmp_path / "whole", run_options(max_memory_bytes=BUDGET))
    chunks_seen: list[int] = []

    def stop_after_first_chunk() -> bool:
        return bool(chunks_seen)

    def sink(event) -> None:
        if type(event).__name__ == "ChunkFinished":
            chunks_seen.append(event.chunk)

    cut = run_sweep(spec, tmp_path / "cut", run_options(max_memory_bytes=BUDGET), emit=sink,
                    should_stop=stop_after_first_chunk)
    assert cut.status == "interrupted"
    assert json.loads((cut.run_dir / "run.json").read_text())["instances_done"] == 16
    done = resume_sweep(cut.run_dir, run_options(max_memory_bytes=BUDGET))
    assert done.status == "completed"
    assert_same_results(whole.run_dir, cut.run_dir)
    info = json.loads((cut.run_dir / "run.json").read_text())
    assert info["status"] == "completed" and info["resumed"] == 1 and info["instances_done"] == 40
    with pytest.raises(SpecError, match="already completed"):
        resume_sweep(cut.run_dir, run_options())


def start_run(runs: Path, preset: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*toysup_command(), "run", str(preset), "--runs-dir", str(runs), "--device", "cpu",
                             "--max-memory", str(BUDGET / 1024**3), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def first_chunk_recorded(runs: Path) -> Path | None:
    """The run folder once run.json counts a stored chunk (results.csv is written a moment before run.json: a
    signal in between would leave run.json's count at 0)."""
    found = list_runs(runs)
    if found and (found[0].path / "results.csv").exists() and found[0].record().instances_done:
        return found[0].path
    return None


def wait_for_first_chunk(runs: Path, proc: subprocess.Popen, timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        folder = first_chunk_recorded(runs)
        if folder is not None:
            return folder
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.05)
    raise AssertionError("the first chunk never finished")


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGHUP, signal.SIGKILL])
def test_a_real_run_killed_mid_way_resumes_to_the_uninterrupted_results(tmp_path: Path, how: signal.Signals):
    """Ctrl-C and a hangup (a closed terminal, a dropped SSH connection) stop the run cleanly; SIGKILL cannot."""
    spec = make_spec({**PARAMS, "steps": 3000}, SWEEP)
    preset = tmp_path / "sweep.toml"
    preset.write_text(spec.to_toml())
    whole = run_sweep(spec, tmp_path / "whole", run_options(max_memory_bytes=BUDGET))

    runs = tmp_path / "runs"
    proc = start_run(runs, preset)
    folder = wait_for_first_chunk(runs, proc)
    proc.send_signal(how)
    code = proc.wait(timeout=30)
    info = json.loads((folder / "run.json").read_text())  # run.json is whole whatever the moment of death
    if how in (signal.SIGINT, signal.SIGHUP):
        assert code == 130 and info["status"] == "interrupted"
        assert (folder / "curves.csv").exists()
    else:
        assert code == -signal.SIGKILL and info["status"] == "running"
        listed = subprocess.run([*toysup_command(), "runs", "--runs-dir", str(runs)], capture_output=True,
                                text=True, env={**os.environ, "COLUMNS": "200"})
        assert "killed" in listed.stdout  # run.json says running, but its process is gone
    assert 16 <= info["instances_done"] < 40

    resumed = subprocess.run([*toysup_command(), "resume", str(folder), "--device", "cpu", "-q"],
                             capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((folder / "run.json").read_text())["status"] == "completed"
    assert_same_results(whole.run_dir, folder)
    assert not list(folder.rglob(".*.tmp"))  # no temporary file left behind by the killed process


@pytest.mark.slow
def test_a_hangup_stops_a_resume_as_an_interruption(tmp_path: Path):
    """SIGHUP to a foreground ``toysup resume`` keeps the chunks it finished and leaves the run resumable."""
    spec = make_spec({**PARAMS, "steps": 3000}, SWEEP)
    preset = tmp_path / "sweep.toml"
    preset.write_text(spec.to_toml())
    runs = tmp_path / "runs"
    proc = start_run(runs, preset)
    folder = wait_for_first_chunk(runs, proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    before = json.loads((folder / "run.json").read_text())["instances_done"]

    resume = subprocess.Popen([*toysup_command(), "resume", str(folder), "--device", "cpu",
                               "--max-memory", str(BUDGET / 1024**3), "-q"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while json.loads((folder / "run.json").read_text())["instances_done"] == before:
        assert resume.poll() is None and time.monotonic() < deadline, "the resume stored no chunk"
        time.sleep(0.05)
    resume.send_signal(signal.SIGHUP)
    assert resume.wait(timeout=30) == 130
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "interrupted" and info["resumed"] == 1
    assert before < info["instances_done"] < 40


@pytest.mark.slow
def test_a_run_whose_terminal_closed_stops_cleanly(tmp_path: Path):
    """A closed terminal: the run's progress bar writes to a pseudo-terminal whose other end is gone (writes fail
    with EIO) when the hangup arrives; the run still ends interrupted with its finished chunks, exit 130."""
    spec = make_spec({**PARAMS, "steps": 3000}, SWEEP)
    preset = tmp_path / "sweep.toml"
    preset.write_text(spec.to_toml())
    runs = tmp_path / "runs"
    master, slave = os.openpty()
    proc = subprocess.Popen([*toysup_command(), "run", str(preset), "--runs-dir", str(runs), "--device", "cpu",
                             "--max-memory", str(BUDGET / 1024**3)], stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "TERM": "xterm"}, start_new_session=True)
    os.close(slave)
    os.set_blocking(master, False)
    deadline = time.monotonic() + 60
    while first_chunk_recorded(runs) is None:
        assert proc.poll() is None and time.monotonic() < deadline, "the first chunk never finished"
        with contextlib.suppress(BlockingIOError, OSError):
            os.read(master, 1 << 16)  # the terminal reads what the run draws, or the run would block
        time.sleep(0.05)
    os.close(master)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=30) == 130
    (folder,) = runs.iterdir()
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "interrupted" and 16 <= info["instances_done"] < 40


def test_an_out_of_memory_chunk_is_halved_and_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """CUDA memory is not available here: a chunk of more than 8 instances raises torch's OutOfMemoryError
    instead, as a too-large chunk would on a GPU."""
    import torch

    import toysup.engine.executors.base as executor_base
    from toysup.engine.events import Notice

    spec = make_spec(PARAMS, SWEEP)
    whole = run_sweep(spec, tmp_path / "whole", run_options())
    real = executor_base.train_chunk

    def small_memory(chunk, *args, **kwargs):
        if len(chunk) > 8:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(chunk, *args, **kwargs)

    monkeypatch.setattr(executor_base, "train_chunk", small_memory)
    notices: list[str] = []
    split = run_sweep(spec, tmp_path / "split", run_options(),
                      emit=lambda e: notices.append(e.message) if isinstance(e, Notice) else None)
    assert split.status == "completed"
    assert notices and "out of memory in chunk 0 (40 instances)" in notices[0]
    assert_same_results(whole.run_dir, split.run_dir)


@pytest.mark.parametrize("compile", ["off", "on"])
def test_a_chunk_cut_short_continues_from_its_checkpoint(tmp_path: Path, compile: str):
    spec = make_spec({**PARAMS, "steps": 4000, "snapshots": 3}, SWEEP)
    options = RunOptions(device="cpu", compile=compile)
    whole = run_sweep(spec, tmp_path / "whole", options)
    ticks: list[int] = []

    def sink(event) -> None:
        if type(event).__name__ == "Progress":
            ticks.append(event.step)

    cut = run_sweep(spec, tmp_path / "cut", options.with_values(checkpoint_every=1e-9), emit=sink,
                    should_stop=lambda: len(ticks) >= 3)
    path = "compiled" if compile == "on" else "eager"
    assert Run(cut.run_dir).record().step == Run(whole.run_dir).record().step == path
    assert cut.status == "interrupted" and len({*ticks}) >= 3 and ticks[-1] < 4000
    saved = Run(cut.run_dir).read_checkpoints()
    assert len(saved) == 1 and saved[0][1].step == ticks[-1]  # the step the stop ended at was saved
    resumed_steps: list[int] = []
    # resume continues on the recorded path, whatever --compile says now
    other = RunOptions(device="cpu", compile="off" if compile == "on" else "on")
    done = resume_sweep(cut.run_dir, other,
                        emit=lambda e: resumed_steps.append(e.step) if type(e).__name__ == "Progress" else None)
    assert done.status == "completed" and Run(cut.run_dir).record().step == path
    assert resumed_steps[0] == ticks[-1] == min(resumed_steps)  # it went on from the stop, not from step 1
    assert_same_results(whole.run_dir, cut.run_dir)
    assert Run(cut.run_dir).read_checkpoints() == []
    a, b = Run(whole.run_dir).instance_weights(7), Run(cut.run_dir).instance_weights(7)
    assert all(torch.equal(a[k], b[k]) for k in a)  # weights and snapshots, bit for bit


def test_damaged_run_folders_are_reported_not_fatal(tmp_path: Path):
    spec = make_spec({**PARAMS, "steps": 50, "seeds": 2}, SWEEP)
    runs = tmp_path / "runs"
    good = run_sweep(spec, runs, run_options()).run_dir
    truncated = run_sweep(spec, runs, run_options()).run_dir
    (truncated / "run.json").write_text('{"status": "compl')  # cut mid-write by hand
    missing = run_sweep(spec, runs, run_options()).run_dir
    (missing / "results.csv").unlink()
    (missing / "config.toml").unlink()

    listed = invoke("runs", "--runs-dir", runs, env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "damaged" in listed.stdout and good.name in listed.stdout
    for folder in (truncated, missing):
        shown = invoke("report", folder, env={"COLUMNS": "200"})
        assert shown.exit_code == 0, shown.stderr
        assert "Traceback" not in shown.stdout + shown.stderr
    assert "config.toml is missing" in " ".join(invoke("report", missing, env={"COLUMNS": "200"}).stdout.split())
    with pytest.raises(SpecError, match=r"damaged|missing"):
        resume_sweep(missing, run_options())
