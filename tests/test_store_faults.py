"""Faults and hostile folders: a kill at every write, links out of the run folder, damaged files, a full disk."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
import torch

from toysup.engine import runlog
from toysup.engine.errors import RunDataError, UserError
from toysup.engine.models import get_model
from toysup.engine.run import export as run_export
from toysup.engine.run import layout
from toysup.engine.run.catalogue import list_runs
from toysup.engine.run.folder import Run
from toysup.engine.runner import resume_sweep, run_sweep

from helpers import TINY_PRESET as TINY
from helpers import assert_user_error, invoke, make_spec, run_options

PARAMS = {"n_features": 5, "n_hidden": 2, "steps": 40, "batch_size": 32, "eval_batch_size": 64, "seeds": 2}
SWEEP = {"feature_probability": [1.0, 0.3, 0.1]}
TABLE_FILES = ("results.csv", "curves.csv", "features.csv")


def spec():
    return make_spec(PARAMS, SWEEP)


def two_per_chunk() -> int:
    """--max-memory in bytes for chunks of two instances: 6 instances make 3 chunks."""
    return 2 * get_model("relu_output").bytes_per_instance(spec().instances()[0].config)


class Killed(BaseException):
    """A kill -9 at a write: nothing after it runs but ``finally`` blocks."""


def faulty_writes(monkeypatch: pytest.MonkeyPatch, at: int | None, fault: type[BaseException]) -> list[str]:
    """Make store's atomic write number ``at`` (1-based) fail half-way: its temporary is written, then
    ``fault`` is raised before the rename, as a kill would leave it. Returns the names written."""
    written: list[str] = []
    real = layout.atomic_write

    def write(path: Path, data: str | bytes) -> None:
        written.append(path.name)
        if len(written) == at:
            (path.parent / f".{path.name}.{os.getpid()}.tmp").write_bytes(b"half")
            raise fault
        real(path, data)

    monkeypatch.setattr(layout, "atomic_write", write)
    return written


def assert_same_files(a: Path, b: Path) -> None:
    """The tables of two runs byte for byte, the weights of every instance bit for bit, and no stray files."""
    for name in TABLE_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ra, rb = Run(a), Run(b)
    for instance in range(spec().n_instances):
        wa, wb = ra.instance_weights(instance), rb.instance_weights(instance)
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)

    def files(p: Path) -> set[str]:
        return {str(f.relative_to(p)) for f in p.rglob("*") if f.name not in ("run.json", "manifest.json")}
    assert files(a) == files(b)


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """An uninterrupted run, and how many atomic writes it made."""
    with pytest.MonkeyPatch.context() as mp:
        written = faulty_writes(mp, None, Killed)
        outcome = run_sweep(spec(), tmp_path_factory.mktemp("whole"), run_options(max_memory_bytes=two_per_chunk()))
    assert outcome.status == "completed"
    return outcome.run_dir, len(written)


def finish(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Resume until completed: first with a fault at the resume's second write, then without faults."""
    monkeypatch.setattr(runlog, "liveness", lambda holder, heartbeat: False)  # the "killed" process was this one
    with monkeypatch.context() as mp:
        faulty_writes(mp, 2, Killed)
        with contextlib.suppress(Killed):
            resume_sweep(run_dir, run_options(max_memory_bytes=two_per_chunk()))
    if Run(run_dir).status() != "completed":
        assert resume_sweep(run_dir, run_options(max_memory_bytes=two_per_chunk())).status == "completed"


@pytest.mark.parametrize("fault", [Killed, KeyboardInterrupt])
def test_a_fault_at_every_write_then_resume_gives_the_uninterrupted_files(fault, whole, tmp_path, monkeypatch):
    reference, writes = whole
    assert writes > 15  # config, run.json, every chunk's pieces, weights, manifest, results, the gathering
    for at in range(1, writes + 1):
        root = tmp_path / f"{fault.__name__}-{at}"
        with monkeypatch.context() as mp:
            names = faulty_writes(mp, at, fault)
            try:
                outcome = run_sweep(spec(), root, run_options(max_memory_bytes=two_per_chunk()))
                assert outcome.status == "interrupted" and fault is KeyboardInterrupt, names
            except (Killed, KeyboardInterrupt):
                pass
        folders = list(root.iterdir())
        if names[-1] in ("config.toml",) or not folders:
            # Cut while the folder was made: an interrupt removes it, a kill leaves no run to list.
            assert fault is Killed or not folders
            assert list_runs(root) == []
            continue
        (run_dir,) = folders
        assert Run(run_dir).status() != "completed", names
        finish(run_dir, monkeypatch)
        assert_same_files(reference, run_dir)


# --- damaged files: re-trained by resume, reported by the readers -------------------------------------------


def damage_cases() -> dict[str, object]:
    def cut_half(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[:len(data) // 2])

    return {
        "results emptied": lambda d: (d / "results.csv").write_text(""),
        "results cut mid-row": lambda d: cut_half(d / "results.csv"),
        "curves duplicated": lambda d: (d / "curves.csv").write_text(
            (d / "curves.csv").read_text() + "".join((d / "curves.csv").read_text().splitlines(True)[1:])),
        "features not UTF-8": lambda d: (d / "features.csv").write_bytes(
            b"\xff\xfe" + (d / "features.csv").read_bytes()),
        "weights garbled": lambda d: (d / "weights" / "chunk-0001.safetensors").write_bytes(b"\x00" * 40),
        "weights cut": lambda d: cut_half(d / "weights" / "chunk-0000.safetensors"),
        "weights removed": lambda d: (d / "weights" / "chunk-0002.safetensors").unlink(),
        "manifest garbled": lambda d: (d / "manifest.json").write_text("{"),
    }


@pytest.mark.parametrize("case", list(damage_cases()))
def test_damaged_files_are_reported_then_trained_again(case, whole, tmp_path, monkeypatch):
    reference, _ = whole
    outcome = run_sweep(spec(), tmp_path, run_options(max_memory_bytes=two_per_chunk()))
    damage_cases()[case](outcome.run_dir)  # type: ignore[operator]
    run = Run(outcome.run_dir)
    if case != "manifest garbled":
        assert run.status() == "damaged" or run.problem(deep=True), case
    listed = invoke("runs", "--runs-dir", tmp_path, env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "Traceback" not in listed.stdout + listed.stderr
    shown = invoke("report", outcome.run_dir, env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "Traceback" not in shown.stdout + shown.stderr
    if case != "manifest garbled":
        assert "damaged" in shown.stdout
    exported = invoke("export", outcome.run_dir, "--table", "features")
    assert "Traceback" not in exported.stdout + exported.stderr
    run.update_record(status="interrupted")  # resume trains whatever it cannot verify
    assert resume_sweep(outcome.run_dir, run_options(max_memory_bytes=two_per_chunk())).status == "completed"
    assert run.status() == "completed" and run.problem(deep=True) == ""
    assert_same_files(reference, outcome.run_dir)


def test_a_completed_run_with_half_its_results_is_damaged(tmp_path):
    run_dir = run_sweep(spec(), tmp_path, run_options()).run_dir
    lines = (run_dir / "results.csv").read_text().splitlines(True)
    (run_dir / "results.csv").write_text("".join(lines[:4]))
    run = Run(run_dir)
    assert run.status() == "damaged" and "results.csv" in run.problem()
    listed = invoke("runs", "--runs-dir", tmp_path, env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "damaged" in listed.stdout
    assert "3 rows, but the run completed 6 instances" in " ".join(listed.stdout.split())
    assert "damaged" in invoke("report", run_dir, env={"COLUMNS": "200"}).stdout
    with pytest.raises(RunDataError, match=r"results\.csv"):
        run_export.export_text(run, "results")


def test_unreadable_checkpoints_are_dropped_not_fatal(tmp_path):
    run_dir = run_sweep(spec(), tmp_path, run_options()).run_dir
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "chunk-0000.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbled")
    assert Run(run_dir).read_checkpoints() == []
    assert not (run_dir / "checkpoints" / "chunk-0000.safetensors").exists()


# --- hostile folders: links out, markup in names, unknown statuses ------------------------------------------


def interrupted_run(root: Path) -> Path:
    finished: list[object] = []

    def sink(event: object) -> None:
        if type(event).__name__ == "ChunkFinished":
            finished.append(event)

    outcome = run_sweep(spec(), root, run_options(max_memory_bytes=two_per_chunk()), emit=sink,
                        should_stop=lambda: bool(finished))
    assert outcome.status == "interrupted"
    return outcome.run_dir


def test_parts_as_a_link_out_of_the_folder_deletes_nothing_outside(tmp_path):
    run_dir = interrupted_run(tmp_path / "runs")
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "curves-0000.csv").write_text("mine\n")
    (outside / "thesis.txt").write_text("mine\n")
    import shutil

    if (run_dir / "parts").exists():
        shutil.rmtree(run_dir / "parts")
    (run_dir / "parts").symlink_to(outside)
    result = invoke("resume", run_dir)
    assert_user_error(result.exit_code, result.stderr, result.stdout, "parts/", "symbolic link")
    assert sorted(p.name for p in outside.iterdir()) == ["curves-0000.csv", "thesis.txt"]
    assert (outside / "curves-0000.csv").read_text() == "mine\n"
    assert Run(run_dir).status() == "damaged"
    assert "symbolic link" in Run(run_dir).problem()


def test_a_linked_error_log_is_replaced_never_written_through(tmp_path):
    run_dir = interrupted_run(tmp_path / "runs")
    target = tmp_path / "precious.txt"
    target.write_text("mine\n")
    (run_dir / "error.log").symlink_to(target)
    Run(run_dir).write_error_log("Traceback ...\n")
    assert target.read_text() == "mine\n"
    assert not (run_dir / "error.log").is_symlink() and (run_dir / "error.log").read_text() == "Traceback ...\n"


def test_linked_tables_and_weights_are_not_read(tmp_path):
    run_dir = run_sweep(spec(), tmp_path / "runs", run_options()).run_dir
    secret = tmp_path / "secret.csv"
    secret.write_text("instance,step,loss\n0,1,0.5\n")
    (run_dir / "curves.csv").unlink()
    (run_dir / "curves.csv").symlink_to(secret)
    with pytest.raises(RunDataError, match=r"curves\.csv.*symbolic link"):
        Run(run_dir).table_text("curves")
    assert Run(run_dir).status() == "damaged"


def hostile_folders(root: Path) -> list[Path]:
    """Run folders a received archive might hold: markup in names, unknown words, wrong types, garbage."""
    made = []
    good = run_sweep(spec(), root, run_options()).run_dir
    made.append(good)
    for i, changes in enumerate([{"name": "[/]"}, {"name": "[bold]loud[/bold]"}, {"status": "exploded"},
                                 {"status": ["list"]}, {"wall_time_s": "fast", "instances": "[/]"},
                                 {"device": "[link=http://x]d[/link]", "started": 5}]):
        folder = root / f"20250101-00000{i}-hostile"
        folder.mkdir()
        (folder / "config.toml").write_bytes((good / "config.toml").read_bytes())
        info = {**json.loads((good / "run.json").read_text()), **changes, "id": folder.name}
        (folder / "run.json").write_text(json.dumps(info))
        made.append(folder)
    binary = root / "20250102-000000-binary"
    binary.mkdir()
    (binary / "run.json").write_bytes(b"\xff\xfe\x00garbage")
    (binary / "config.toml").write_bytes(b"\xff\xfe")
    deep = root / "20250102-000001-deep"
    deep.mkdir()
    (deep / "run.json").write_text("[" * 100_000 + "]" * 100_000)
    (deep / "config.toml").write_text("x = " + "[" * 100_000 + "]" * 100_000)
    listed = root / "20250102-000002-listed"
    listed.mkdir()
    (listed / "run.json").write_text("[1, 2]")
    return [*made, binary, deep, listed]


def test_runs_lists_damaged_and_hostile_folders_and_exits_0(tmp_path):
    folders = hostile_folders(tmp_path)
    result = invoke("runs", "--runs-dir", tmp_path, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for folder in folders:
        assert folder.name in result.stdout
    from rich.console import Console

    from toysup_tui.render.tables import runs_table

    wide = Console(width=300, record=True, color_system=None)
    wide.print(runs_table(list_runs(tmp_path), wide.width))
    shown = wide.export_text()
    assert "[/]" in shown and "[bold]loud[/bold]" in shown  # shown as text, not taken as styling
    assert result.stdout.count("damaged") >= 5
    assert "unknown status 'exploded'" in " ".join(result.stdout.split())
    for folder in folders:
        shown = invoke("report", folder, env={"COLUMNS": "200"})
        assert shown.exit_code == 0 and "Traceback" not in shown.stdout + shown.stderr, folder


# --- a full disk and odd export targets ----------------------------------------------------------------------


def disk_full_at(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    real = layout.atomic_write

    def write(path: Path, data: str | bytes) -> None:
        if path.name == name:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(layout, "atomic_write", write)


def test_a_full_disk_while_creating_a_run_leaves_no_folder(tmp_path, monkeypatch):
    disk_full_at(monkeypatch, "run.json")
    with pytest.raises(UserError, match=r"No space left"):
        run_sweep(spec(), tmp_path, run_options())
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_mid_run_is_recorded_in_run_json(tmp_path, monkeypatch):
    disk_full_at(monkeypatch, "manifest.json")  # the first chunk cannot be stored, nor error.log written
    real = layout.atomic_write

    def write(path: Path, data: str | bytes) -> None:
        if path.name == "error.log":
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(layout, "atomic_write", write)
    outcome = run_sweep(spec(), tmp_path, run_options())
    assert outcome.status == "failed" and "No space left" in outcome.error
    info = json.loads((outcome.run_dir / "run.json").read_text())
    assert info["status"] == "failed" and "No space left" in info["error"]


def test_atomic_write_leaves_no_temporary_on_a_full_disk(tmp_path, monkeypatch):
    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        layout.atomic_write(tmp_path / "out.csv", "a,b\n")
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_a_fifo_and_neutralises_formulas(tmp_path):
    run_dir = run_sweep(spec(), tmp_path / "runs", run_options()).run_dir
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    result = invoke("export", run_dir, "-o", fifo)
    assert_user_error(result.exit_code, result.stderr, result.stdout, "not a regular file")
    assert fifo.exists() and not fifo.is_file()
    assert run_export.neutralised("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    for cell in ("+1+2", "-x", "@SUM(A1)", "\tcmd", "\rcmd"):
        assert run_export.neutralised(cell) == "'" + cell
    for cell in ("-0.5", "-1e-05", "+3", "-inf", "plain", ""):
        assert run_export.neutralised(cell) == cell
    exported = run_export.with_run_id("instance,choice,loss\n0,=1+2,-0.25\n", "=run")
    assert exported == "run_id,instance,choice,loss\n'=run,0,'=1+2,-0.25\n"


# --- curves do not depend on the chunking --------------------------------------------------------------------


def test_one_instance_chunks_record_the_same_curves_as_the_default_chunking(whole, tmp_path):
    reference, _ = whole  # two instances per chunk
    one = get_model("relu_output").bytes_per_instance(spec().instances()[0].config)
    single = run_sweep(spec(), tmp_path / "one", run_options(max_memory_bytes=one)).run_dir
    default = run_sweep(spec(), tmp_path / "default", run_options()).run_dir
    assert len(Run(single).stored_chunks()) == 6 and len(Run(default).stored_chunks()) == 1
    for name in TABLE_FILES:
        assert (single / name).read_bytes() == (default / name).read_bytes() == (reference / name).read_bytes()


# --- a Ray address that is not Ray --------------------------------------------------------------------------


@pytest.mark.parametrize("reply", [b"HTTP/1.1 400 Bad Request\r\n\r\n", b"\x00" * 64, None])
def test_a_ray_address_served_by_something_else_is_refused_within_seconds(reply, tmp_path):
    import socket
    import threading
    import time

    pytest.importorskip("ray")
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    held: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                held.append(conn)  # None: accept and say nothing, as a stuck service would
                if reply is not None:
                    conn.recv(1024)
                    conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    started = time.monotonic()
    try:
        result = invoke("run", TINY, "--runs-dir", tmp_path / "runs", "--backend", "ray",
                        "--address", f"127.0.0.1:{port}")
    finally:
        server.close()
        for conn in held:
            conn.close()
    assert time.monotonic() - started < 15
    assert_user_error(result.exit_code, result.stderr, result.stdout, f"127.0.0.1:{port}", "Ray")
    assert not (tmp_path / "runs").exists()


def test_sigterm_at_the_very_start_of_a_run_exits_130(tmp_path):
    import signal
    import subprocess
    import time

    from helpers import toysup_command

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("TOYSUP_RUNS_DIR", None)
    proc = subprocess.Popen([*toysup_command(), "run", TINY, "--runs-dir", str(tmp_path), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    time.sleep(0.8)  # importing torch and the engine: before the run's own handler is in place
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
