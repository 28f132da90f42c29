"""A stop keeps the chunk in training: `toysup stop`, SIGINT, SIGTERM and SIGHUP on a real one-chunk run at
about half way; each resume starts from the saved step and ends as the uninterrupted run, byte for byte."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch

from toysup.engine import events as ev
from toysup.engine import stopping
from toysup.engine.models import get_model
from toysup.engine.plan import plan
from toysup.engine.progress import kept_text, live_text
from toysup.engine.run import layout
from toysup.engine.run.catalogue import list_runs
from toysup.engine.run.folder import Run
from toysup.engine.run.record import RunRecord
from toysup.engine.runlog import STALE_S
from toysup.engine.runner import resume_sweep, run_sweep
from toysup.engine.train import train_chunk

from helpers import assert_same_results, assert_user_error, invoke, make_spec, run_options, run_toysup, toysup_command

# One chunk of 4 instances, a few seconds of training on one core: its log (a progress event a second)
# shows it in its middle.
STEPS = 10000
SPEC = make_spec({"steps": STEPS, "batch_size": 64, "eval_batch_size": 256, "seeds": 4})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_sweep(SPEC, tmp_path_factory.mktemp("whole"), run_options()).run_dir


def progress_steps(folder: Path) -> list[int]:
    """The steps of the progress events in the run's log so far (the newest session's)."""
    lines = (folder / "events.jsonl").read_text().splitlines() if (folder / "events.jsonl").exists() else []
    starts = [i for i, line in enumerate(lines) if '"type":"run_started"' in line]
    return [json.loads(line)["step"] for line in lines[starts[-1] if starts else 0:]
            if line.endswith("}") and '"type":"progress"' in line]


def start_and_wait_for(runs: Path, preset: Path, step: int) -> tuple[subprocess.Popen[str], Path]:
    """A foreground `toysup run` of SPEC, once its log shows it at ``step`` or beyond."""
    proc = subprocess.Popen([*toysup_command(), "run", str(preset), "--runs-dir", str(runs), "--device", "cpu", "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list_runs(runs)
        if found and any(s >= step for s in progress_steps(found[0].path)):
            return proc, found[0].path
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError(f"the run never got to step {step}")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["toysup stop", signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_half_way_keeps_the_step_and_resumes_to_the_uninterrupted_run(
        tmp_path: Path, uninterrupted: Path, how: str | signal.Signals):
    preset = tmp_path / "sweep.toml"
    preset.write_text(SPEC.to_toml())
    proc, folder = start_and_wait_for(tmp_path / "runs", preset, STEPS // 3)
    proc.send_signal(signal.SIGSTOP)  # frozen where it is, so the stop lands there however loaded the machine
    try:
        if isinstance(how, str):
            stopper = subprocess.Popen([*toysup_command(), "stop", str(folder)], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "200"})
            deadline = time.monotonic() + 60
            while not (folder / "stop").exists():  # it leaves the stop file, then sends SIGTERM
                assert stopper.poll() is None and time.monotonic() < deadline, stopper.communicate()
                time.sleep(0.01)
        else:
            proc.send_signal(how)
    finally:
        proc.send_signal(signal.SIGCONT)
    _, stderr = proc.communicate(timeout=60)
    if isinstance(how, str):
        out, err = stopper.communicate(timeout=60)
        assert stopper.returncode == 0 and "is interrupted; kept step" in out, out + err
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "interrupted" and info["chunks_done"] == 0
    (kept,) = info["checkpoints"]
    step = kept["step"]
    assert STEPS // 3 <= step < STEPS and kept["steps"] == STEPS  # the step it stopped at (no periodic one yet)
    assert step == max(progress_steps(folder))  # its last event names the step that was saved
    if how != signal.SIGHUP:  # a hangup sends the rest of the output to /dev/null
        assert f"kept step {step:,}/{STEPS:,} of its chunk" in stderr
    listed = invoke("runs", "--runs-dir", tmp_path / "runs", env={"COLUMNS": "200"})
    assert f"kept step {step:,}/{STEPS:,}" in listed.stdout

    events: list[ev.Event] = []
    done = resume_sweep(folder, run_options(), emit=events.append)
    assert done.status == "completed"
    first = next(e for e in events if isinstance(e, ev.Progress))
    assert first.step == step and first.instance_steps_done == step * 4  # it says where it continues from
    assert_same_results(uninterrupted, folder)
    a, b = Run(uninterrupted).instance_weights(3), Run(folder).instance_weights(3)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert Run(folder).read_checkpoints() == [] and Run(folder).record().checkpoints == []


# --- fencing: a trainer that wakes after its lock was broken commits nothing --------------------------------

TWO_CHUNKS = make_spec({"steps": 2000, "batch_size": 64, "eval_batch_size": 256, "seeds": 4},
                       {"feature_probability": [1.0, 0.1]})
FOUR_INSTANCES = 4 * get_model("relu_output").bytes_per_instance(TWO_CHUNKS.instances()[0].config)


@pytest.mark.slow
def test_a_stale_writer_woken_after_a_forced_resume_is_refused_and_no_row_is_lost(tmp_path: Path):
    """SIGSTOP the trainer after chunk 0, age its heartbeat past the stale limit, `resume --force`, SIGCONT
    the original: the resume completes the run, the original stops with one line and writes nothing."""
    whole = run_sweep(TWO_CHUNKS, tmp_path / "whole", run_options(max_memory_bytes=FOUR_INSTANCES)).run_dir
    preset = tmp_path / "sweep.toml"
    preset.write_text(TWO_CHUNKS.to_toml())
    runs = tmp_path / "runs"
    budget = str(FOUR_INSTANCES / 1024**3)
    proc = subprocess.Popen([*toysup_command(), "run", str(preset), "--runs-dir", str(runs), "--device", "cpu",
                             "--max-memory", budget, "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while not ((found := list_runs(runs)) and found[0].record().chunks_done):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(signal.SIGSTOP)
        folder = found[0].path
        beat = json.loads((folder / "heartbeat.json").read_text())
        (folder / "heartbeat.json").write_text(json.dumps({**beat, "time": beat["time"] - STALE_S - 60}))

        forced = run_toysup("resume", folder, "--force", "--device", "cpu", "--max-memory", budget, "-q")
        assert forced.returncode == 0, forced.stderr
    finally:
        proc.send_signal(signal.SIGCONT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "Traceback" not in stderr, stderr
    (line,) = stderr.strip().splitlines()
    assert "was taken over by process" in line and "without writing" in line, line
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "completed" and info["instances_done"] == 8
    assert_same_results(whole, folder)
    assert Run(folder).problem(deep=True) == ""


# --- a full disk, an unreadable run.json -------------------------------------------------------------------

SMALL = make_spec({"steps": 200, "batch_size": 64, "eval_batch_size": 256, "seeds": 2})


def test_a_disk_that_fills_for_good_marks_the_run_failed_in_one_line(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch):
    """From the first chunk's weights on, every write fails (run.json's too): the run still reads failed
    with the reason, the CLI says so in one line (exit 1), and a resume once there is room completes it."""
    whole = run_sweep(SMALL, tmp_path / "whole", run_options()).run_dir
    preset = tmp_path / "sweep.toml"
    preset.write_text(SMALL.to_toml())
    real, full = layout.atomic_write, []

    def write(path: Path, data: str | bytes) -> None:
        if full or path.parent.name == "weights":
            full.append(path.name)
            raise OSError(errno.ENOSPC, "No space left on device", str(path.with_name(f".{path.name}.7.tmp")))
        real(path, data)

    with monkeypatch.context() as mp:
        mp.setattr(layout, "atomic_write", write)
        result = invoke("run", preset, "--runs-dir", tmp_path / "runs", "--device", "cpu", "-q")
    assert result.exit_code == 1 and "Traceback" not in result.stdout + result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "run failed: disk full while writing chunk-0000.safetensors: No space left on device" in line, line
    assert "run.json" in full  # the ending could not be written the usual way...
    (run,) = list_runs(tmp_path / "runs")
    info = json.loads((run.path / "run.json").read_text())  # ...and was written over run.json's own bytes
    assert info["status"] == "failed" and info["error"].startswith("disk full") and info["model"] == "relu_output"
    assert run.status() == "failed"
    done = resume_sweep(run.path, run_options())
    assert done.status == "completed"
    assert_same_results(whole, run.path)


@pytest.mark.parametrize("damage", [b"", b"{not json", b"\xff\xfe", b"[1, 2]"])
def test_resume_refuses_a_run_json_it_cannot_read_and_writes_nothing(tmp_path: Path, damage: bytes):
    run = run_sweep(SMALL, tmp_path, run_options(), should_stop=lambda: True)
    assert run.status == "interrupted"
    (run.run_dir / "run.json").write_bytes(damage)
    before = {p.name: p.read_bytes() for p in run.run_dir.iterdir() if p.is_file()}
    result = invoke("resume", run.run_dir, "--device", "cpu")
    assert_user_error(result.exit_code, result.stderr, result.stdout, "run.json", "cannot be resumed",
                      "left as it is")
    assert {p.name: p.read_bytes() for p in run.run_dir.iterdir() if p.is_file()} == before  # lock included


def test_a_refused_resume_of_a_completed_run_leaves_its_lock_alone(tmp_path: Path):
    run = run_sweep(SMALL, tmp_path, run_options())
    lock = run.run_dir / "lock"
    lock.write_text("elsewhere 12345\n")
    result = invoke("resume", run.run_dir, "--device", "cpu")
    assert_user_error(result.exit_code, result.stderr, result.stdout, "already completed")
    assert lock.read_text() == "elsewhere 12345\n"


# --- progress and `latest` that tell the truth ---------------------------------------------------------------


def fake_training_run(root: Path) -> Run:
    """A run folder as a trainer leaves it half way through its one chunk: run.json running (this process),
    a fresh heartbeat at step 100 of 200, nothing stored yet."""
    outcome = run_sweep(SMALL, root, run_options(), should_stop=lambda: True)
    run = Run(outcome.run_dir)
    run.update_record(status="running", pid=os.getpid(), host=socket.gethostname())
    (run.path / "heartbeat.json").write_text(json.dumps({
        "host": socket.gethostname(), "pid": os.getpid(), "time": time.time(), "interval_s": 5.0,
        "instance_steps_done": 200, "instance_steps": 400, "elapsed_s": 2.0, "chunks": 1, "chunks_done": 0,
        "training": {"0": [100, 200]}}))
    assert run.status() == "running" and not run.stored_chunks()
    return run


def test_a_run_training_its_first_chunk_is_shown_as_far_as_it_is_and_never_read_as_empty(tmp_path: Path):
    import toysup

    runs = tmp_path / "runs"
    older = run_sweep(SMALL, runs, run_options())  # `latest` is the newest run, never an older finished one
    time.sleep(1.1)  # the run ids' time stamps are to the second
    live = fake_training_run(runs)
    listed = invoke("runs", "--runs-dir", runs, env={"COLUMNS": "200"})
    (row,) = [line for line in listed.stdout.splitlines() if line.startswith(live.id)]
    assert "running" in row and "step 100/200 (50%) · ETA 0:02" in row, row
    for command in (["report"], ["export"], ["export", "--table", "curves"], ["export", "-o", tmp_path / "x.csv"]):
        result = invoke(*command, "latest", "--runs-dir", runs)
        line = assert_user_error(result.exit_code, result.stderr, result.stdout, f"run {live.id} is still training",
                                 "step 100/200 (50%)", "toysup watch")
        assert result.stdout == "" and not (tmp_path / "x.csv").exists(), line
    run = toysup.open_run("latest", runs)
    assert run.id == live.id != older.run_dir.name
    for read in (run.results, run.curves, run.points, lambda: run.weights(0)):
        with pytest.raises(toysup.UserError, match="still training"):
            read()


# --- in process: a signal mid-step, a stop during the final evaluation ----------------------------------------


def test_a_signal_mid_step_lets_the_step_finish_and_saves_it():
    """A SIGINT handled by engine.stopping while a chunk trains raises nothing there and then: the loop ends
    the step, checkpoints it and raises KeyboardInterrupt; outside training the signal raises at once."""
    (chunk,) = plan(SMALL, torch.device("cpu"))
    saved: list[int] = []
    steps_seen: list[int] = []

    def emit(event: ev.Event) -> None:
        if isinstance(event, ev.Progress):
            steps_seen.append(event.step)
            if len(steps_seen) == 1:
                stopping.handle(signal.SIGINT, None)  # as the signal would, between two bytecodes of the loop

    previous = signal.signal(signal.SIGINT, stopping.handle)
    try:
        with pytest.raises(KeyboardInterrupt):
            train_chunk(chunk, torch.device("cpu"), emit=emit, checkpoint=lambda state: saved.append(state.step))
        with pytest.raises(KeyboardInterrupt):
            stopping.handle(signal.SIGINT, None)  # no run training: Ctrl-C is Ctrl-C
    finally:
        signal.signal(signal.SIGINT, previous)
    assert saved == [steps_seen[-1]] and steps_seen[-1] >= steps_seen[0] and not stopping.requested()


def test_a_stop_during_the_final_evaluation_saves_the_trained_state(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch):
    whole = run_sweep(SMALL, tmp_path / "whole", run_options()).run_dir
    model = get_model("relu_output")
    real = model.metrics

    def interrupted(self, weights):  # a Ctrl-C in the middle of the evaluation
        raise KeyboardInterrupt

    monkeypatch.setattr(model, "metrics", interrupted)
    cut = run_sweep(SMALL, tmp_path / "cut", run_options())
    assert cut.status == "interrupted"
    assert Run(cut.run_dir).record().checkpoints == [{"chunk": 0, "step": 200, "steps": 200, "instances": 2}]
    monkeypatch.setattr(model, "metrics", real)
    events: list[ev.Event] = []
    assert resume_sweep(cut.run_dir, run_options(), emit=events.append).status == "completed"
    assert [e.step for e in events if isinstance(e, ev.Progress)] == [200]  # evaluated, not trained again
    assert_same_results(whole, cut.run_dir)


def test_progress_and_kept_words_count_steps_and_chunks_and_survive_odd_values():
    beat = {"instance_steps_done": 200, "instance_steps": 400, "elapsed_s": 2.0, "chunks": 7, "chunks_done": 3,
            "training": {"3": [500, 2000]}}
    assert live_text(beat) == "3/7 chunks, chunk 3 at step 500/2,000 · 50% · ETA 0:02"
    assert live_text({**beat, "chunks": 1, "chunks_done": 0}) == "step 500/2,000 (25%) · ETA 0:02"
    # a resumed session's rate counts only what it trained itself: 100 of its 200 instance-steps in 2 s
    assert live_text({**beat, "instance_steps_resumed": 100}).endswith("ETA 0:04")
    assert kept_text(RunRecord(chunks=7, chunks_done=3, checkpoints=[{"chunk": 3, "step": 500, "steps": 2000}])) \
        == "3/7 chunks and chunk 3 at step 500/2,000"
    assert kept_text(RunRecord(chunks=1, chunks_done=0, checkpoints=[])).startswith("nothing")
    for odd in ({"training": {"0": "x"}, "chunks": "many"}, {"training": [1], "instance_steps": float("nan")},
                {"training": {"0": [5, 2]}, "chunks": True}):
        live_text(odd)  # a heartbeat from anywhere is shown, or not, never a crash
        kept_text(RunRecord(checkpoints=[odd, {"step": -1, "steps": 3}], chunks=odd.get("chunks")))  # type: ignore[arg-type]
