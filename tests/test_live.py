"""Runs that outlive their terminal: the event log and heartbeat, liveness, the run lock, detached launches,
``toysup watch`` and ``toysup stop``, and the TUI attaching to a run another process trains.

The processes here are real: detached runs, launchers killed mid-way, concurrent resumes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable

from toysup.engine import events as ev
from toysup.engine import runlog
from toysup.engine.errors import UserError
from toysup.engine.lock import RunLock
from toysup.engine.options import RunOptions
from toysup.engine.run.catalogue import find_run
from toysup.engine.run.folder import Run
from toysup.engine.runlog import LogReader, RunLog, liveness
from toysup.engine.stop_request import request_stop
from toysup_tui import detach
from toysup_tui.app import ToysupApp
from toysup_tui.detach import Launch, start
from toysup_tui.screens.run import RunScreen
from toysup_tui.screens.runs import RunsScreen

from helpers import TINY_PRESET, assert_same_results, assert_user_error, invoke, make_fixture_run, run_toysup

SLOW = ("-s", "steps=2000", "--max-memory", "0.0000005")  # one instance a chunk: 4 chunks of ~a second each
# For tests that must stop a run before it ends: on an idle machine 2,000 steps take well under the second
# that `toysup stop` needs to start, so these chunks are 10x longer (a few seconds each).
SLOWER = ("-s", "steps=20000", "--max-memory", "0.0000005")


def wait_until(condition, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def forge_heartbeat(run: Run, age_s: float, host: str | None = None, pid: int | None = None) -> None:
    """A heartbeat.json as a run's process would write it, ``age_s`` seconds old."""
    (run.path / runlog.HEARTBEAT_FILE).write_text(json.dumps({
        "host": host or socket.gethostname(), "pid": pid or os.getpid(), "time": time.time() - age_s,
        "instance_steps_done": 50, "instance_steps": 200, "elapsed_s": 5.0}))


def detached(*args: str, runs: Path) -> Run:
    """``toysup run --detach`` of the tiny preset; returns its run, which trains in the background."""
    result = run_toysup("run", TINY_PRESET, "--runs-dir", runs, "--device", "cpu", "--detach", *args)
    assert result.returncode == 0, result.stderr
    run = find_run(runs, "latest")
    assert f"toysup watch {run.id}" in result.stdout
    return run


def wait_finished(run: Run, timeout: float = 90.0) -> str:
    wait_until(lambda: run.status() != "running", timeout, f"{run.id} to finish")
    pid = run.record().pid
    wait_until(lambda: not _alive(pid), 30, "its process to exit")
    return run.status()


async def wait_for_screen(pilot, app: ToysupApp, kind: type, timeout: float = 30.0) -> None:
    """Until ``kind`` is the app's screen, at most ``timeout`` seconds (a hung screen fails, not hangs)."""
    deadline = time.monotonic() + timeout
    while not isinstance(app.screen, kind):
        assert time.monotonic() < deadline, f"timed out waiting for {kind.__name__}"
        await pilot.pause(0.05)


def _alive(pid: object) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- the event log and the heartbeat -------------------------------------------------------------


def test_a_reader_never_sees_a_torn_record(tmp_path: Path):
    started = ev.RunStarted(run_id="r", run_dir=str(tmp_path), name="x", device="cpu", instances=2, chunks=1,
                            instance_steps=20)
    line = ev.ChunkStarted(chunk=0, instances=[0, 1], steps=10).to_json()
    (tmp_path / runlog.EVENTS_FILE).write_text(started.to_json() + "\n" + line[:17])
    reader = LogReader(tmp_path)
    assert reader.read() == [started]
    with open(tmp_path / runlog.EVENTS_FILE, "a") as f:
        f.write(line[17:] + "\nnot json\n")
    assert reader.read() == [ev.ChunkStarted(chunk=0, instances=[0, 1], steps=10)]
    assert reader.read() == []


def test_the_log_keeps_every_chunk_event_and_thins_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """4 progress events a second for a minute of two chunks: at most one a second is written, each chunk's last
    one always, and no loss point is lost; past CURVE_BYTES, progress goes on without loss points."""
    clock = [1000.0]
    monkeypatch.setattr(runlog.time, "monotonic", lambda: clock[0])
    sent: list[ev.Event] = []
    with RunLog(tmp_path) as log:
        sink = log.wrap(sent.append)
        sink(ev.RunStarted(run_id="r", run_dir=str(tmp_path), name="x", device="cpu", instances=4, chunks=2,
                           instance_steps=4 * 240))
        for chunk in (0, 1):
            sink(ev.ChunkStarted(chunk=chunk, instances=[2 * chunk, 2 * chunk + 1], steps=240))
            for step in range(1, 241):
                clock[0] += 0.25
                sink(ev.Progress(chunk=chunk, step=step, steps=240, instance_steps_done=2 * step, elapsed_s=0,
                                 curve_steps=[step], curve_losses=[[0.5, 0.25]]))
            sink(ev.ChunkFinished(chunk=chunk, elapsed_s=1.0))
        sink(ev.RunFinished(status="completed", run_dir=str(tmp_path), wall_time_s=1.0, instance_steps_per_s=1.0))
    assert len(sent) == 1 + 2 * (1 + 240 + 1) + 1  # the caller's own sink sees everything
    logged = LogReader(tmp_path, from_latest=False).read()
    progress = [e for e in logged if isinstance(e, ev.Progress)]
    assert [type(e).__name__ for e in logged if not isinstance(e, ev.Progress)] == [
        "RunStarted", "ChunkStarted", "ChunkFinished", "ChunkStarted", "ChunkFinished", "RunFinished"]
    assert 100 <= len(progress) <= 130  # one a second, not four
    for chunk in (0, 1):
        mine = [p for p in progress if p.chunk == chunk]
        assert mine[-1].step == 240
        assert [s for p in mine for s in p.curve_steps] == list(range(1, 241))
    heartbeat = runlog.read_heartbeat(tmp_path)
    assert heartbeat is not None and heartbeat["pid"] == os.getpid() and heartbeat["instance_steps"] == 960

    monkeypatch.setattr(runlog, "CURVE_BYTES", 0)
    with RunLog(tmp_path) as log:
        clock[0] += 10
        log.publish(ev.Progress(chunk=0, step=1, steps=2, instance_steps_done=2, elapsed_s=1, curve_steps=[1],
                                curve_losses=[[0.1, 0.2]]))
    (last,) = LogReader(tmp_path, from_latest=False).read()[-1:]
    assert isinstance(last, ev.Progress) and last.step == 1 and last.curve_steps == []


def test_liveness_from_host_pid_and_heartbeat():
    here, now = socket.gethostname(), time.time()
    fresh, stale = {"time": now - 5}, {"time": now - runlog.STALE_S - 1}
    me = {"host": here, "pid": os.getpid()}
    assert liveness(me, fresh, now) and liveness(me, None, now)
    assert not liveness(me, stale, now)  # a live pid whose heartbeat stopped: another process reuses it
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not liveness({"host": here, "pid": dead.pid}, fresh, now)
    elsewhere = {"host": "gpu-box-7.cluster", "pid": dead.pid}
    assert liveness(elsewhere, fresh, now) and not liveness(elsewhere, stale, now)


def test_a_run_whose_heartbeat_stopped_is_killed_and_one_on_another_host_is_not(tmp_path: Path):
    runs = tmp_path / "runs"
    run = make_fixture_run(runs)
    run.update_record(status="running", host=socket.gethostname(), pid=os.getpid())  # a live pid: this test
    forge_heartbeat(run, age_s=2)
    assert run.status() == "running"
    assert "heartbeat" not in json.loads((run.path / "run.json").read_text())  # never written into run.json
    forge_heartbeat(run, age_s=runlog.STALE_S + 60)
    assert run.status() == "killed"
    assert "killed" in invoke("runs", "--runs-dir", runs).stdout
    # A shared filesystem: the run trains on another host, whose pids mean nothing here.
    run.update_record(host="gpu-box-7.cluster", pid=999_999_999)
    forge_heartbeat(run, age_s=3, host="gpu-box-7.cluster", pid=999_999_999)
    assert run.status() == "running"
    listing = invoke("runs", "--runs-dir", runs).stdout
    assert "running" in listing and "killed" not in listing
    forge_heartbeat(run, age_s=runlog.STALE_S + 60, host="gpu-box-7.cluster", pid=999_999_999)
    assert run.status() == "killed"


def test_the_tui_browser_says_killed_when_the_heartbeat_stops_and_shows_progress_while_fresh(
        tmp_path: Path):
    runs = tmp_path / "runs"
    run = make_fixture_run(runs)
    run.update_record(status="running", host="gpu-box-7.cluster", pid=999_999_999)
    forge_heartbeat(run, age_s=1, host="gpu-box-7.cluster", pid=999_999_999)

    async def scenario() -> None:
        app = ToysupApp(runs, presets_dir=tmp_path / "presets", device="cpu")
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("b")
            await wait_for_screen(pilot, app, RunsScreen)
            table = app.screen.query_one(DataTable)
            assert table.get_cell(run.id, "status").plain == "running 25%"
            assert "25% · 10 inst-steps/s · ETA 0:15" in str(app.screen.query_one("#runs-status").render())
            forge_heartbeat(run, age_s=runlog.STALE_S + 60, host="gpu-box-7.cluster", pid=999_999_999)
            deadline = time.monotonic() + 10
            while table.get_cell(run.id, "status").plain != "killed":
                assert time.monotonic() < deadline
                await pilot.pause(0.1)

    asyncio.run(scenario())


# --- one writer per run ------------------------------------------------------------------------------


def test_a_second_resume_is_refused_and_a_stale_lock_needs_force(tmp_path: Path):
    runs = tmp_path / "runs"
    assert invoke("run", TINY_PRESET, "--runs-dir", runs, "--device", "cpu", "-q").exit_code == 0
    run = find_run(runs, "latest")
    run.update_record(status="interrupted")
    with RunLock(run.path).acquire():  # another process training it: this one, as far as the lock says
        result = run_toysup("resume", run.id, "--runs-dir", runs, "--device", "cpu")
        line = assert_user_error(result.returncode, result.stderr, result.stdout, "is being trained by process",
                                 "--force")
        assert str(os.getpid()) in line
        detached_resume = run_toysup("resume", run.id, "--runs-dir", runs, "--detach")  # the trainer refuses
        assert assert_user_error(detached_resume.returncode, detached_resume.stderr, detached_resume.stdout) == line
        forge_heartbeat(run, age_s=1)
        result = run_toysup("resume", run.id, "--runs-dir", runs, "--device", "cpu", "--force")
        assert_user_error(result.returncode, result.stderr, result.stdout, "which is alive")
        forge_heartbeat(run, age_s=runlog.STALE_S + 60)  # its holder froze: a stale lock, broken on request
        result = run_toysup("resume", run.id, "--runs-dir", runs, "--device", "cpu", "--force", "-q")
        assert result.returncode == 0, result.stderr
    assert run.status() == "completed"


# --- detached runs, watch, stop --------------------------------------------------------------------


def test_a_detached_launch_survives_its_launcher(tmp_path: Path):
    """The TUI's launch path (toysup_tui.detach) from a process that then loses its terminal and is killed."""
    runs = tmp_path / "runs"
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from toysup.engine.options import RunOptions\n"
        "from toysup.engine.spec import load\n"
        "from toysup_tui.detach import start\n"
        "from toysup_tui.detach import Launch\n"
        f"spec = load({str(TINY_PRESET)!r}, ['steps=1500'])\n"
        f"print(start(Launch(spec.to_toml(), Path({str(runs)!r}), RunOptions(device='cpu'))), flush=True)\n"
        "time.sleep(120)\n")
    launcher = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                                start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert launcher.stdout is not None
    run = Run(Path(launcher.stdout.readline().strip()))
    os.killpg(launcher.pid, signal.SIGHUP)  # what a closed terminal sends its session
    launcher.wait(timeout=10)
    assert run.status() == "running"
    assert wait_finished(run) == "completed"
    _, rows = run.results()
    assert len(rows) == 4
    assert (run.path / "output.log").is_file()


def test_a_launch_the_trainer_refuses_is_one_user_error(tmp_path: Path) -> None:
    """A spec the detached trainer cannot resolve comes back to the launcher as its own line, no run folder."""
    with pytest.raises(UserError) as refused:
        start(Launch('name = "x"\nmodel = "nope"\n', tmp_path / "runs", RunOptions(device="cpu")))
    message = str(refused.value)
    assert message.startswith("unknown model 'nope'; valid models: ") and "\n" not in message, message
    assert not any((tmp_path / "runs").glob("*/run.json"))


def misbehaving_trainer(monkeypatch: pytest.MonkeyPatch, code: str) -> list[str]:
    """Launches start ``python -c code`` instead of the trainer; the list gets each launch's request file."""
    requests: list[str] = []

    def command(request_path: str) -> list[str]:
        requests.append(request_path)
        return [sys.executable, "-c", code]

    monkeypatch.setattr(detach, "_trainer_command", command)
    return requests


@pytest.mark.parametrize(("code", "told"), [
    ("import sys; print('no torch here', file=sys.stderr); sys.exit(3)", "exited with code 3 before it reported its "
                                                                         "folder: no torch here"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "was killed by SIGKILL before it reported its folder"),
    # a process it started holds the pipe open: the trainer's own exit is what counts
    ("import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(15)']); sys.exit(4)",
     "exited with code 4 before it reported its folder"),
], ids=["exit", "killed", "pipe-held-open"])
def test_a_trainer_that_ends_without_a_report_is_told_by_how_it_ended(code: str, told: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Not as a trainer that did not report within 90 s: it is gone, and the launcher says so at once."""
    requests = misbehaving_trainer(monkeypatch, code)
    started = time.monotonic()
    with pytest.raises(UserError) as ended:
        start(Launch('name = "x"\n', tmp_path / "runs", RunOptions(device="cpu")))
    assert str(ended.value) == f"the detached run {told}"
    assert time.monotonic() - started < 10
    assert not Path(requests[0]).exists()  # never read by the trainer: the launcher removes it


def test_a_trainer_alive_without_a_report_is_told_apart_from_one_that_ended(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Silent for wait_s seconds: it may still start. Its output closed but it lives: said so, with its pid."""
    launch = Launch('name = "x"\n', tmp_path / "runs", RunOptions(device="cpu"))
    misbehaving_trainer(monkeypatch, "import time; time.sleep(15)")
    with pytest.raises(UserError, match=r"^the detached run \(pid \d+\) did not report its folder within 1 s; it may "
                                        r"still start \(see toysup runs\)$"):
        start(launch, wait_s=1.0)
    monkeypatch.setattr(detach, "EXIT_WAIT_S", 0.5)
    misbehaving_trainer(monkeypatch, "import os, time; print('closing', flush=True); os.close(1); os.close(2); "
                                     "time.sleep(15)")
    with pytest.raises(UserError, match=r"^the detached run \(pid \d+\) closed its output without reporting its "
                                        r"folder and is still running \(see toysup runs\): closing$"):
        start(launch)


def test_run_detach_matches_a_foreground_run(tmp_path: Path):
    assert invoke("run", TINY_PRESET, "--runs-dir", tmp_path / "fg", "--device", "cpu", "-q").exit_code == 0
    started = time.monotonic()
    run = detached(runs=tmp_path / "bg")
    assert time.monotonic() - started < 30  # it returns once the folder exists, not when training ends
    assert wait_finished(run) == "completed"
    assert_same_results(find_run(tmp_path / "fg", "latest").path, run.path)


def test_watch_follows_a_run_started_elsewhere_until_it_completes(tmp_path: Path):
    runs = tmp_path / "runs"
    run = detached(*SLOW, runs=runs)
    result = run_toysup("watch", run.id, "--runs-dir", runs)
    assert result.returncode == 0, result.stderr
    assert f"run {run.id}: 4 instances" in result.stdout
    assert "progress 100.0%" in result.stdout
    ends = [line for line in result.stdout.splitlines() if "completed" in line]  # the end, told once
    assert len(ends) == 1 and ends[0].startswith(f"run {run.id} is completed in "), result.stdout
    assert "instance-steps/s)" in ends[0] and ends[0] == result.stdout.splitlines()[-1]
    assert run.status() == "completed"
    again = run_toysup("watch", run.id, "--runs-dir", runs)  # nothing left to follow: its status, at once
    assert again.returncode == 0 and f"run {run.id} is completed" in again.stdout


def test_stop_leaves_a_run_interrupted_and_resume_matches_an_uninterrupted_run(tmp_path: Path):
    runs = tmp_path / "runs"
    run = detached(*SLOWER, runs=runs)
    wait_until(lambda: run.record().instances_done >= 1, 60, "a first chunk")
    result = run_toysup("stop", run.id, "--runs-dir", runs)
    assert result.returncode == 0, result.stderr
    assert "SIGTERM" in result.stdout and "is interrupted" in result.stdout
    assert wait_finished(run) == "interrupted"
    assert 1 <= run.record().instances_done < 4
    again = run_toysup("stop", run.id, "--runs-dir", runs)
    assert_user_error(again.returncode, again.stderr, again.stdout, "is not running")
    assert run_toysup("resume", run.id, "--runs-dir", runs, "-q").returncode == 0
    whole = invoke("run", TINY_PRESET, *SLOWER, "--runs-dir", tmp_path / "whole", "--device", "cpu", "-q")
    assert whole.exit_code == 0
    assert_same_results(find_run(tmp_path / "whole", "latest").path, run.path)


def test_a_stop_request_file_stops_a_run_on_another_host(tmp_path: Path):
    """Across hosts no signal reaches the run: the stop file in its folder does."""
    runs = tmp_path / "runs"
    run = detached(*SLOWER, runs=runs)
    wait_until(lambda: (run.path / runlog.HEARTBEAT_FILE).exists(), 60, "a heartbeat")
    how = request_stop(run.path, "gpu-box-7.cluster", run.record().pid)
    assert "stop file" in how
    assert wait_finished(run) == "interrupted"
    assert not (run.path / runlog.STOP_FILE).exists()


# --- the TUI attaches to a run another process trains ------------------------------------------------


def test_the_tui_attaches_to_a_run_started_by_toysup_run(tmp_path: Path):
    runs = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "toysup_tui.cli", "run", str(TINY_PRESET), *SLOWER, "--runs-dir",
                             str(runs), "--device", "cpu", "-q"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: runs.is_dir() and any(runs.iterdir()), 60, "the run folder")
        run = find_run(runs, "latest")
        wait_until(lambda: (run.path / runlog.EVENTS_FILE).exists(), 60, "the event log")

        async def scenario() -> None:
            app = ToysupApp(runs, presets_dir=tmp_path / "presets", device="cpu")
            async with app.run_test(size=(80, 24)) as pilot:
                await pilot.press("b")
                await wait_for_screen(pilot, app, RunsScreen)
                await pilot.press("enter")
                await wait_for_screen(pilot, app, RunScreen)
                live = app.screen.live
                seen: list[int] = []
                deadline = time.monotonic() + 60
                while len(set(seen)) < 3 and not live.finished:
                    assert time.monotonic() < deadline, "progress never moved"
                    seen.append(live.done_work)
                    await pilot.pause(0.2)
                assert sorted(seen) == seen and len(set(seen)) >= 3
                assert live.run_id == run.id and live.status == "running"
                assert str(live.total_work) in str(app.screen.query_one("#run-stats").render()).replace(",", "")
                await pilot.press("c")
                await pilot.pause(0.2)
                await pilot.press("y")  # stop it from here: the other process records it as interrupted
                deadline = time.monotonic() + 60
                while not live.finished:
                    assert time.monotonic() < deadline
                    await pilot.pause(0.1)
                assert live.status == "interrupted"

        asyncio.run(scenario())
        assert proc.wait(timeout=30) == 130
    finally:
        proc.kill()
        proc.wait()
    assert run.status() == "interrupted"
