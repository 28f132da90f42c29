"""A run folder is untrusted input: links, FIFOs, wrong shapes, same-size corruption, markup and terminal
escapes in its data, forged pids; and the bad arguments that used to crash or hang a command."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from toysup.engine import runlog, safe_fs
from toysup.engine.errors import SpecError, UserError
from toysup.engine.events import from_json
from toysup.engine.lock import RunLock
from toysup.engine.run.catalogue import list_runs
from toysup.engine.run.export import with_run_id
from toysup.engine.run.folder import Run
from toysup.engine.runlog import LogReader, liveness
from toysup.engine.runner import run_sweep
from toysup.engine.stop_request import request_stop

from helpers import assert_user_error, invoke, make_fixture_run, make_spec, run_options

PARAMS = {"n_features": 5, "n_hidden": 2, "steps": 40, "batch_size": 32, "eval_batch_size": 64, "seeds": 2}
OUTSIDE = "precious, not the run's\n"
HERE = socket.gethostname()


def within(seconds: float, call: Callable[[], Any]) -> Any:
    """``call()``'s result, failing the test if it blocks longer than ``seconds`` (a FIFO opened for reading)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = call()
        except BaseException as exc:  # handed to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"blocked for more than {seconds} s"
    if "error" in box:
        raise box["error"]
    return box["value"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A completed run (with manifest and gathered tables) and an interrupted one after its first chunk."""
    root = tmp_path_factory.mktemp("trained")
    spec = make_spec(PARAMS, {"feature_probability": [1.0, 0.1]})
    completed = run_sweep(spec, root / "completed", run_options()).run_dir
    finished: list[object] = []
    one = 2 * 4 * 1024  # small enough for chunks of a few instances
    interrupted = run_sweep(spec, root / "interrupted", run_options(max_memory_bytes=one),
                            emit=lambda e: finished.append(e) if type(e).__name__ == "ChunkFinished" else None,
                            should_stop=lambda: bool(finished)).run_dir
    assert Run(interrupted).status() == "interrupted"
    return {"completed": completed, "interrupted": interrupted}


def copy_run(source: Path, root: Path) -> Path:
    target = root / "runs" / source.name
    shutil.copytree(source, target, symlinks=True)
    return target


def outside_file(tmp_path: Path) -> Path:
    target = tmp_path / "precious.txt"
    target.write_text(OUTSIDE)
    os.chmod(target, 0o644)
    return target


def running_info(run_dir: Path, pid: int, beat: float | str | None = None) -> None:
    """Make run.json say 'running' by ``pid`` on this host, with a heartbeat at ``beat`` (now if None)."""
    info = json.loads((run_dir / "run.json").read_text())
    info.update(status="running", host=HERE, pid=pid)
    (run_dir / "run.json").write_text(json.dumps(info))
    (run_dir / "heartbeat.json").write_text(json.dumps({"host": HERE, "pid": pid,
                                                        "time": time.time() if beat is None else beat}))


def test_a_run_folder_that_is_a_link_is_neither_listed_nor_opened(trained, tmp_path):
    """A link in the runs directory could point anywhere (another user's runs, a folder that keeps changing):
    it is not a run, whatever it points to; `runs` lists the real one only and `report` refuses the link."""
    real = copy_run(trained["completed"], tmp_path)
    link = real.parent / "20990101-000000-forged"
    link.symlink_to(real, target_is_directory=True)
    assert [r.id for r in list_runs(real.parent)] == [real.name]
    listed = invoke("runs", "--runs-dir", real.parent, "--json")
    assert [r["run_id"] for r in json.loads(listed.stdout)] == [real.name]
    for ref in ("20990101", str(link)):  # by name (its prefix) and by path
        result = invoke("report", ref, "--runs-dir", real.parent)
        assert result.exit_code == 2 and "20990101-000000-forged" not in result.stdout
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    with pytest.raises(UserError, match="symbolic link"):
        Run.open(link)


# --- links named as the run's own files: nothing outside the run is written ------------------------------------


@pytest.mark.parametrize("name", ["events.jsonl", "stop", ".heartbeat.json.{pid}.tmp", ".run.json.{pid}.tmp",
                                  ".manifest.json.{pid}.tmp"])
def test_a_resume_never_writes_through_a_link_named_as_its_files(name, trained, tmp_path):
    # The temporary names carry the writer's pid: filled in here, not in the ids, which must be the same in
    # every xdist worker (each collects the tests itself).
    name = name.format(pid=os.getpid())
    run_dir = copy_run(trained["interrupted"], tmp_path)
    target = outside_file(tmp_path)
    (run_dir / name).unlink(missing_ok=True)
    (run_dir / name).symlink_to(target)
    result = invoke("resume", run_dir, "-q", "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    assert target.read_text() == OUTSIDE
    assert Run(run_dir).status() == "completed"
    for command in (("runs", "--runs-dir", run_dir.parent), ("report", run_dir), ("export", run_dir),
                    ("stop", run_dir, "--wait", "0"), ("watch", run_dir, "-q")):
        assert "Traceback" not in invoke(*command).stderr
    assert target.read_text() == OUTSIDE


def test_a_lock_that_is_a_link_a_folder_or_a_fifo_refuses_resume_in_one_line(trained, tmp_path):
    target = outside_file(tmp_path)
    for make in (lambda p: p.symlink_to(target), lambda p: p.mkdir(), lambda p: os.mkfifo(p)):
        run_dir = copy_run(trained["interrupted"], tmp_path / str(len(list(tmp_path.iterdir()))))
        (run_dir / "lock").unlink(missing_ok=True)
        make(run_dir / "lock")
        result = invoke("resume", run_dir, "-q", "--device", "cpu")  # opened without blocking (or this hangs)
        assert_user_error(result.exit_code, result.stderr, result.stdout, "lock")
        assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"
        for command in (("runs", "--runs-dir", run_dir.parent), ("report", run_dir), ("export", run_dir),
                        ("stop", run_dir, "--wait", "0"), ("resume", run_dir, "--force")):
            assert "Traceback" not in invoke(*command).stderr
        assert target.read_text() == OUTSIDE


def test_a_run_folder_that_cannot_be_written_refuses_resume_in_one_line(trained, tmp_path, monkeypatch):
    run_dir = copy_run(trained["interrupted"], tmp_path)
    before = (run_dir / "run.json").read_bytes()
    real = safe_fs.atomic_write

    def read_only(path: Path, data: str | bytes, **kwargs: Any) -> None:
        if path.parent == run_dir:  # as a read-only folder answers, even to root
            raise PermissionError(13, "Permission denied", str(path.with_name(f".{path.name}.tmp")))
        real(path, data, **kwargs)

    monkeypatch.setattr(safe_fs, "atomic_write", read_only)
    monkeypatch.setattr("toysup.engine.run.layout.atomic_write", read_only)
    result = invoke("resume", run_dir, "-q", "--device", "cpu")
    assert_user_error(result.exit_code, result.stderr, result.stdout, "Permission denied")
    assert (run_dir / "run.json").read_bytes() == before


def test_stop_and_logs_replace_a_link_never_write_through_it(trained, tmp_path):
    run_dir = copy_run(trained["completed"], tmp_path)
    target = outside_file(tmp_path)
    (run_dir / "stop").symlink_to(target)
    request_stop(run_dir, "elsewhere", 12345)
    assert safe_fs.is_regular(run_dir / "stop") and target.read_text() == OUTSIDE
    for name in ("output.log", "events.jsonl"):  # detach._redirect and RunLog open them with open_log
        (run_dir / name).unlink(missing_ok=True)
        (run_dir / name).symlink_to(target)
        fd = safe_fs.open_log(run_dir / name)
        os.write(fd, b"a line of output\n")
        os.close(fd)
        assert safe_fs.is_regular(run_dir / name) and target.read_text() == OUTSIDE


def test_export_refuses_links_keeps_a_files_mode_and_quotes_line_breaks(trained, tmp_path):
    run_dir = copy_run(trained["completed"], tmp_path)
    target = outside_file(tmp_path)
    link = tmp_path / "out.csv"
    link.symlink_to(target)
    result = invoke("export", run_dir, "-o", link)
    assert_user_error(result.exit_code, result.stderr, result.stdout, "symbolic link")
    assert link.is_symlink() and target.read_text() == OUTSIDE
    stdout_link = tmp_path / "stdout"
    stdout_link.symlink_to("/proc/self/fd/1")
    result = invoke("export", run_dir, "-o", stdout_link)
    assert_user_error(result.exit_code, result.stderr, result.stdout, "symbolic link")
    assert stdout_link.is_symlink()
    private = tmp_path / "private.csv"
    private.write_text("old\n")
    os.chmod(private, 0o600)
    assert invoke("export", run_dir, "-o", private).exit_code == 0
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and private.read_text().startswith("run_id,")
    exported = with_run_id('instance,choice\n0,"a\rb"\n1,"=1+1"\n', "run\r=2+2")
    assert exported == 'run_id,instance,choice\n"run\r=2+2",0,"a\rb"\n"run\r=2+2",1,\'=1+1\n'


# --- FIFOs never block a reader ------------------------------------------------------------------------------


def test_fifos_in_a_run_folder_block_no_command(trained, tmp_path):
    run_dir = copy_run(trained["interrupted"], tmp_path)
    running_info(run_dir, os.getpid())
    for name in ("heartbeat.json", "events.jsonl", "stop"):
        os.unlink(run_dir / name) if os.path.lexists(run_dir / name) else None
        os.mkfifo(run_dir / name)
    assert within(10, lambda: Run(run_dir).status()) == "running"  # our pid, no readable heartbeat
    assert within(10, lambda: LogReader(run_dir).read()) == []
    assert within(10, lambda: invoke("runs", "--runs-dir", run_dir.parent)).exit_code == 0
    shown = within(20, lambda: invoke("stop", run_dir, "--wait", "0"))  # replaces the stop FIFO with a file
    assert "Traceback" not in shown.stderr and safe_fs.is_regular(run_dir / "stop")
    (run_dir / "heartbeat.json").unlink()  # (the test's own write would block on the FIFO)
    gone = subprocess.Popen(["true"])
    gone.wait()
    running_info(run_dir, gone.pid)  # a dead pid: killed, resumable
    (run_dir / "heartbeat.json").unlink()
    os.mkfifo(run_dir / "heartbeat.json")
    (run_dir / "stop").unlink()
    os.mkfifo(run_dir / "stop")
    result = invoke("resume", run_dir, "-q", "--device", "cpu")  # (in the main thread: it installs signal handlers)
    assert result.exit_code == 0, result.stderr
    assert Run(run_dir).status() == "completed"


# --- wrong shapes, same-size corruption, CSV that is not CSV: damaged, naming the file ---------------------------


@pytest.mark.parametrize("change, field", [({"pid": 2**70}, "pid"), ({"pid": 0}, "pid"), ({"pid": -1}, "pid"),
                                           ({"resumed": "x"}, "resumed"), ({"resumed": 1e400}, "resumed"),
                                           ({"wall_time_s": float("nan")}, "wall_time_s"),
                                           ({"instances": [1]}, "instances")])
def test_a_run_json_field_of_the_wrong_shape_is_damage_naming_it(change, field, trained, tmp_path):
    run_dir = copy_run(trained["completed"], tmp_path)
    info = {**json.loads((run_dir / "run.json").read_text()), **change}
    (run_dir / "run.json").write_text(json.dumps(info))
    run = Run(run_dir)
    assert run.status() == "damaged" and field in run.problem()
    for command in (("runs", "--runs-dir", run_dir.parent), ("report", run_dir)):
        result = invoke(*command, env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "Traceback" not in result.stdout + result.stderr
        assert "damaged" in result.stdout


@pytest.mark.parametrize("manifest, why", [('{"chunks":{"0000":5}}', "chunk 0000"),
                                           ("[" * 50_000 + "]" * 50_000, "manifest.json"),
                                           ('{"chunks":{"x":{"instances":[],"files":{}}}}', "chunk number"),
                                           (None, "tables")], ids=["chunk-5", "deep", "key", "tables-outside"])
def test_a_manifest_of_the_wrong_shape_is_damage_and_reads_nothing_outside(manifest, why, trained, tmp_path):
    run_dir = copy_run(trained["completed"], tmp_path)
    if manifest is None:  # a table path out of the run: report used to read and hash it
        data = json.loads((run_dir / "manifest.json").read_text())
        secret = tmp_path / "x"
        secret.write_text("secret\n")
        data["tables"] = {"../../x": {"size": 7, "sha256": "0" * 64}}
        manifest = json.dumps(data)
    (run_dir / "manifest.json").write_text(manifest)
    run = Run(run_dir)
    assert run.status() == "damaged"
    assert why in run.problem() and "manifest.json" in run.problem()
    result = invoke("report", run_dir, env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("name", ["results.csv", "weights/chunk-0000.safetensors"])
def test_same_size_corruption_is_damage_in_runs_as_in_report(name, trained, tmp_path):
    run_dir = copy_run(trained["completed"], tmp_path)
    path = run_dir / name
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 16] = b"\x00" * 16 if name.endswith(".csv") else os.urandom(16)
    path.write_bytes(bytes(data))
    assert list_runs(run_dir.parent)[0].status() == "damaged"
    runs = invoke("runs", "--runs-dir", run_dir.parent, env={"COLUMNS": "200"})
    report = invoke("report", run_dir, env={"COLUMNS": "200"})
    for shown in (runs.stdout, report.stdout):
        assert "damaged" in shown and name in " ".join(shown.split()) and "completed" not in shown


@pytest.mark.parametrize("cell", ["x" * (129 * 1024), "a\rb"], ids=["129KiB", "bare-CR"])
def test_results_csv_that_the_csv_module_refuses_is_damage_not_a_crash(cell, tmp_path):
    run = make_fixture_run(tmp_path / "runs")  # no manifest: the CSV itself is what is read
    text = (run.path / "results.csv").read_text().splitlines(keepends=True)
    first = text[1].split(",")
    first[-1] = cell + "\n"
    (run.path / "results.csv").write_text(text[0] + ",".join(first) + "".join(text[2:]), newline="")
    assert run.status() == "damaged" and "results.csv" in run.problem()
    for command in (("runs", "--runs-dir", tmp_path / "runs"), ("report", run.path)):
        result = invoke(*command, env={"COLUMNS": "200"})
        assert result.exit_code == 0 and "Traceback" not in result.stdout + result.stderr


def test_events_of_the_wrong_shape_are_skipped():
    for line in ('{"type":"notice","message":5}', '{"type":"progress","chunk":"0","step":1,"steps":2,'
                 '"instance_steps_done":1,"elapsed_s":1}', '["notice"]',
                 '{"type":"run_finished","status":"x","run_dir":"d","wall_time_s":"fast","instance_steps_per_s":1}'):
        with pytest.raises((ValueError, TypeError, KeyError)):
            from_json(line)


# --- heartbeats from the future, liveness, watch ----------------------------------------------------------------


@pytest.mark.parametrize("beat", [time.time() + 10**6, float("nan"), float("inf"), "soon"],
                         ids=["future", "nan", "inf", "text"])
def test_a_heartbeat_in_the_future_or_not_a_finite_time_is_stale(beat, trained, tmp_path):
    me = {"host": HERE, "pid": os.getpid()}
    assert not liveness(me, {"time": beat}) and not liveness({"host": "elsewhere", "pid": 5}, {"time": beat})
    run_dir = copy_run(trained["completed"], tmp_path)
    running_info(run_dir, os.getpid(), beat=beat)
    assert Run(run_dir).status() == "killed"
    result = within(30, lambda: invoke("watch", run_dir, "-q"))
    assert result.exit_code == 1 and "killed" in result.stdout


# --- stop signals only the process that holds the run's lock -----------------------------------------------------


def test_stop_never_signals_a_process_that_does_not_hold_the_lock(trained, tmp_path):
    run_dir = copy_run(trained["completed"], tmp_path)
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        running_info(run_dir, bystander.pid, beat=time.time() + 3600)  # a forged heartbeat from the future, too
        how = request_stop(run_dir, HERE, bystander.pid)
        running_info(run_dir, bystander.pid)
        result = invoke("stop", run_dir, "--wait", "0")
        time.sleep(0.2)
        assert bystander.poll() is None, "an unrelated process was signalled"
        assert "stop file only" in how and "stop file only" in " ".join(result.stdout.split())
    finally:
        bystander.kill()
        bystander.wait()
    killed: list[tuple[int, int]] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runlog.os, "kill", lambda pid, sig: killed.append((pid, sig)))
        for pid in (0, -1, 1, 2**70, os.getpid()):
            request_stop(run_dir, HERE, pid)
    assert all(sig == 0 for _, sig in killed)


HOLDER = """
import sys, time
from pathlib import Path
from toysup.engine.lock import RunLock
lock = RunLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
time.sleep(60)
"""


def test_stop_signals_the_lock_holder_and_force_breaks_no_live_lock_whatever_the_files_say(trained, tmp_path):
    run_dir = copy_run(trained["completed"], tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert RunLock(run_dir).holding_pid() == holder.pid
        (run_dir / "lock").write_text(f"{HERE} 99999999\n")  # the file's word: a dead pid; the kernel's: alive
        running_info(run_dir, holder.pid, beat=time.time())
        with pytest.raises(UserError, match="alive"):
            RunLock(run_dir).acquire(force=True)
        assert "sent SIGTERM" in request_stop(run_dir, HERE, holder.pid)
        assert holder.wait(10) == -signal.SIGTERM
    finally:
        holder.kill()
        holder.wait()
    assert RunLock(run_dir).holding_pid() is None


# --- run data shown as text ----------------------------------------------------------------------------------------


def test_names_with_line_breaks_escapes_and_markup_are_shown_as_text(tmp_path):
    root = tmp_path / "runs[/]"
    forged = "20990101-000000-forged   completed   4"
    for folder, name in [(f"20250101-000000-a\n{forged}", "plain"),
                         ("20250101-000001-\x1b[31mred\x1b[0m", "\x1b]0;title\x07[/]"),
                         ("20250101-000002-[bold]x", "[/]")]:
        run = make_fixture_run(root, run_id=folder)
        run.update_record(name=name)
        config = (run.path / "config.toml").read_text()
        assert 'description = "' in config
        (run.path / "config.toml").write_text(config.replace('description = "', 'description = "[/] ', 1))
    result = invoke("runs", "--runs-dir", root, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert not any(line.startswith("20990101") for line in result.stdout.splitlines())
    assert "\\n20990101" in result.stdout and "\\x1b[31mred" in result.stdout
    for run in list_runs(root):
        shown = invoke("report", run.path, env={"COLUMNS": "200"})
        assert shown.exit_code == 0 and "Traceback" not in shown.stderr and "\x1b" not in shown.stdout
    empty = tmp_path / "empty[/]"
    assert "no runs in" in invoke("runs", "--runs-dir", empty).stdout
    error = invoke("report", "no-such-run", "--runs-dir", root)
    assert_user_error(error.exit_code, error.stderr, error.stdout, "no run")
    assert "\x1b" not in error.stderr


def test_the_progress_printer_and_a_preset_name_show_markup_as_text(tmp_path):
    from rich.console import Console

    from toysup.engine import events as ev
    from toysup_tui.progress import ProgressSink

    console = Console(record=True, width=200, color_system=None)
    sink = ProgressSink(console, quiet=False)
    for event in (ev.RunStarted("[/]", "[/]", "[/]", "[bold]", 1, 1, 10), ev.Notice("[/] \x1b[2J"),
                  ev.RunFinished("[/]", "[/]", 1.0, 1.0)):
        sink(event)
    text = console.export_text()
    assert "[/]" in text and "\x1b" not in text and "\\x1b[2J" in text
    preset = tmp_path / "ev[-]il.toml"
    preset.write_text('name = "ev[/]il"\ndescription = "[/]"\nmodel = "relu_output"\n')
    result = invoke("run", preset, "--dry-run", "--device", "cpu")
    assert result.exit_code == 0 and "ev[/]il" in result.stdout


# --- bad arguments: one line, exit 2 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args, fragment", [
    (("run", "tms-intro", "--dry-run", "--sweep", "steps=lin:nan:10:3"), "finite"),
    (("run", "tms-intro", "--dry-run", "--sweep", "steps=lin:1:inf:3"), "finite"),
    (("run", "tms-intro", "--dry-run", "--max-memory", "1e300"), "--max-memory"),
    (("run", "p" * 400, "--dry-run"), "preset"),
    (("runs", "--runs-dir", "r" * 5000), "--runs-dir"),
    (("run", "tms-intro", "--runs-dir", "r" * 5000), "--runs-dir"),
    (("bench", "--n-features", "100000000", "--instances", "30"), "n_features"),
])
def test_bad_arguments_are_one_line_and_exit_2(args, fragment):
    result = invoke(*args)
    assert_user_error(result.exit_code, result.stderr, result.stdout, fragment)


def test_report_width_and_tui_device_are_checked(tmp_path):
    run = make_fixture_run(tmp_path)
    result = invoke("report", run.path, "--width", str(10**21))  # ("1e21" is Click's own error: see main())
    assert_user_error(result.exit_code, result.stderr, result.stdout, "--width")
    import torch

    if not torch.cuda.is_available():
        result = invoke("tui", "--device", "cuda", "--runs-dir", tmp_path)
        assert_user_error(result.exit_code, result.stderr, result.stdout, "CUDA")


def test_a_dry_run_of_a_million_instances_is_computed_not_listed(monkeypatch):
    import torch

    from toysup.engine.plan import plan, plan_shapes
    from toysup.engine.spec import Spec, load

    for sweeps, seeds, memory, slots in ((["n_features=5,10,20", "feature_probability=0.1,0.3"], 3, None, 1),
                                         (["feature_probability=0.1,0.3", "batch_size=64,128"], 3, 10_000, 3),
                                         ([], 5, 1, 1)):
        spec = load("tms-intro", ["seed_mode=independent"], sweeps, seeds)
        expected = [(c.index, len(c), c.config) for c in plan(spec, torch.device("cpu"), memory, slots=slots)]
        got = [(c.index, len(c), c.config) for c in plan_shapes(spec, torch.device("cpu"), memory, slots=slots)]
        assert got == expected

    def refuse(self: Spec) -> None:
        raise AssertionError("the dry run listed the instances")

    monkeypatch.setattr(Spec, "instances", refuse)
    started = time.monotonic()
    result = invoke("run", "tms-intro", "--dry-run", "--json", "--device", "cpu", "--seeds", "500", "--sweep",
                    "feature_probability=lin:0.01:1:1000", "--sweep", "n_features=5,10")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["instances"] == 1_000_000
    assert time.monotonic() - started < 10


# --- a Ray address served by HTTP/2 that is not Ray --------------------------------------------------------------


def h2_frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


@contextlib.contextmanager
def h2_server(reply: bytes):
    """A localhost HTTP/2 speaker: its SETTINGS, then ``reply`` to whatever request comes."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                held.append(conn)
                conn.recv(65536)
                conn.sendall(h2_frame(4, 0, 0) + reply)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for conn in held:
            conn.close()


NOT_FOUND = h2_frame(1, 0x4, 1, b"\x8d") + h2_frame(0, 0x1, 1, b"not found")  # :status 404, a body
GRPC_STATUS = h2_frame(1, 0x5, 1, b"\x88\x00\x0bgrpc-status\x0216")  # trailers only: UNAUTHENTICATED
GRPC_MESSAGE = h2_frame(1, 0x4, 1, b"\x88") + h2_frame(0, 0, 1, b"\x00\x00\x00\x00\x02\x0a\x00")
UNIMPLEMENTED = h2_frame(1, 0x5, 1, b"\x88\x00\x0bgrpc-status\x0212")


@pytest.mark.parametrize("reply, ray", [(NOT_FOUND, False), (UNIMPLEMENTED, False),
                                        (GRPC_STATUS, True), (GRPC_MESSAGE, True)],
                         ids=["http2-404", "grpc-unimplemented", "grpc-unauthenticated", "grpc-reply"])
def test_the_ray_handshake_tells_ray_from_another_http2_server(reply, ray):
    from toysup.engine.executors.ray_cluster import _check_reachable

    with h2_server(reply) as address:
        started = time.monotonic()
        if ray:
            _check_reachable(address)
        else:
            with pytest.raises(SpecError, match="not Ray"):
                _check_reachable(address)
        assert time.monotonic() - started < 8
