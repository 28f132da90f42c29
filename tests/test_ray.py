"""The Ray backend on a local Ray instance of 2 CPUs: same results as local, worker loss, stop and resume.

Every test here shares one Ray instance (started once, in one pytest-xdist worker: the
``ray`` xdist group), as a user's driver would share a cluster.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import ray
import torch

from toysup.engine import events as ev
from toysup.engine.errors import SpecError
from toysup.engine.executors import make_executor
from toysup.engine.executors.ray_cluster import RayExecutor
from toysup.engine.run.folder import Run
from toysup.engine.runner import resume_sweep, run_sweep

from helpers import TINY_PRESET, assert_same_results, assert_user_error, invoke, make_spec, run_options, run_toysup

pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.slow]

PARAMS = {"steps": 300, "batch_size": 64, "eval_batch_size": 256, "seeds": 6}
SWEEP = {"feature_probability": [1.0, 0.3, 0.1, 0.03]}
BUDGET = 155_000  # bytes: 9 instances per chunk, so 24 instances make 3 chunks (9, 9, 6)


@pytest.fixture(scope="module")
def cluster() -> str:
    """A local Ray instance with 2 CPUs; yields its address for drivers in other processes."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = make_spec(PARAMS, SWEEP)
    outcome = run_sweep(spec, tmp_path_factory.mktemp("local"), run_options(threads=1))
    assert outcome.status == "completed"
    return outcome.run_dir


def train_task_pids() -> list[int]:
    """Ray workers now running a chunk (Ray titles a task's process ray::<function>)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().startswith(b"ray::_train_task"):
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def test_the_ray_backend_gives_the_local_backends_results(cluster: str, local_run: Path, tmp_path: Path):
    events: list[ev.Event] = []
    spec = make_spec(PARAMS, SWEEP)
    outcome = run_sweep(spec, tmp_path, run_options(threads=1), executor=RayExecutor(), emit=events.append)
    assert outcome.status == "completed", outcome.error
    assert_same_results(local_run, outcome.run_dir)
    here, there = Run(local_run), Run(outcome.run_dir)
    for instance in (0, 13, 23):
        for name, tensor in here.instance_weights(instance).items():
            assert torch.equal(torch.as_tensor(tensor), torch.as_tensor(there.instance_weights(instance)[name]))
    record = there.record()
    assert record.backend == "ray" and record.device == "ray: 2 x cpu" and record.chunks_done == 2
    assert record.ray_version == ray.__version__ and record.address == ""
    # The sweep fits one chunk's memory but is cut in two, one per CPU slot, and both train at once.
    started = [e for e in events if isinstance(e, ev.ChunkStarted)]
    assert sorted(e.chunk for e in started) == [0, 1]
    progress = [e for e in events if isinstance(e, ev.Progress)]
    assert progress[-1].instance_steps_done == 24 * PARAMS["steps"]  # run-wide totals, as from a local run
    assert [e.instance_steps_done for e in progress] == sorted(e.instance_steps_done for e in progress)


def test_a_worker_killed_mid_chunk_is_retried_and_the_run_completes(cluster: str, local_run: Path,
                                                                    tmp_path: Path):
    # Chunks of a few seconds each: the kill must land while its chunk trains. Events reach the driver
    # through the hub (polled every 0.2 s), so the kill follows the first chunk's start event, and on a
    # fast idle machine 3,000 steps (about a second a chunk) could end before a later trigger arrived.
    spec = make_spec({**PARAMS, "steps": 10_000}, SWEEP)
    whole = run_sweep(spec, tmp_path / "local", run_options(threads=1))
    killed: list[int] = []
    started: list[ev.ChunkStarted] = []

    def kill_one_worker(event: ev.Event) -> None:
        if isinstance(event, ev.ChunkStarted):
            started.append(event)
            if not killed:
                os.kill(int(event.worker.rsplit(":", 1)[1]), signal.SIGKILL)
                killed.append(event.chunk)

    outcome = run_sweep(spec, tmp_path / "ray", run_options(threads=1), executor=RayExecutor(max_retries=2),
                        emit=kill_one_worker)
    assert killed, f"no worker was killed ({outcome.status} {outcome.error})"
    assert outcome.status == "completed", outcome.error
    # Two chunks; the one whose worker died started again, on another worker.
    assert sorted(e.chunk for e in started) == sorted([0, 1, killed[0]])
    again = [e.worker for e in started if e.chunk == killed[0]]
    assert len(set(again)) == 2 and all(w.rsplit(":", 1)[1] != str(os.getpid()) for w in again)
    assert_same_results(whole.run_dir, outcome.run_dir)


def test_an_interrupted_ray_run_resumes_like_a_local_one(cluster: str, tmp_path: Path):
    """Stopped with a chunk stored and chunks cut short (checkpointed by way of the driver) or not begun."""
    spec = make_spec({**PARAMS, "steps": 2000}, SWEEP)
    whole = run_sweep(spec, tmp_path / "local", run_options(threads=1))
    finished: list[int] = []
    folder: list[Path] = []

    def watch(event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            folder.append(Path(event.run_dir))
        if isinstance(event, ev.ChunkFinished):
            finished.append(event.chunk)

    def cut_short() -> bool:
        saved = {int(p.stem.split("-")[1]) for p in (folder[0] / "checkpoints").glob("chunk-*.safetensors")}
        return bool(finished) and bool(saved - set(finished))

    outcome = run_sweep(spec, tmp_path / "ray", run_options(threads=1, max_memory_bytes=BUDGET, checkpoint_every=1e-9),
                        executor=RayExecutor(), emit=watch, should_stop=cut_short)
    assert outcome.status == "interrupted"
    run = Run(outcome.run_dir)
    assert run.record().chunks == 3 and 6 <= run.record().instances_done <= 18  # chunks of 9, 9 and 6
    saved = [c for c in run.read_checkpoints() if c[0] not in finished]
    assert saved
    assert not _wait_for(train_task_pids, present=False)  # nothing left training on the cluster

    steps: dict[int, list[int]] = {}
    resumed = resume_sweep(outcome.run_dir, run_options(threads=1), executor=RayExecutor(),
                           emit=lambda e: steps.setdefault(e.chunk, []).append(e.step)
                           if isinstance(e, ev.Progress) else None)
    assert resumed.status == "completed", resumed.error
    assert run.record().resumed == 1 and run.read_checkpoints() == []
    for index, state in saved:
        assert min(steps[index]) == state.step  # each chunk cut short went on from its checkpoint (and says so)
    assert_same_results(whole.run_dir, outcome.run_dir)


def _wait_for(probe: Callable[[], list[int]], present: bool = True, timeout: float = 10.0) -> list[int]:
    """Poll ``probe`` until its list is non-empty (``present``) or empty; returns its last answer."""
    deadline = time.monotonic() + timeout
    found = probe()
    while bool(found) != present and time.monotonic() < deadline:
        time.sleep(0.1)
        found = probe()
    return found


def test_the_cli_runs_on_an_existing_cluster_by_address(cluster: str, tmp_path: Path):
    """A driver in another process joins the cluster; the engine's code travels with the job."""
    local = run_toysup("run", TINY_PRESET, "--device", "cpu", "--threads", "1", "--runs-dir", tmp_path / "local",
                       "-q", timeout=300)
    assert local.returncode == 0, local.stderr
    remote = run_toysup("run", TINY_PRESET, "--backend", "ray", "--address", cluster, "--runs-dir", tmp_path / "ray",
                        "-q", timeout=300)
    assert remote.returncode == 0, remote.stderr
    assert Run(Path(remote.stdout.strip())).record().address == cluster
    assert_same_results(Path(local.stdout.strip()), Path(remote.stdout.strip()))


def test_without_ray_the_backend_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, runs_dir: Path):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(SpecError, match=r'pip install "toysup\[ray\]"'):
        make_executor("ray").open("auto", None)
    result = invoke("run", "tms-intro", "--backend", "ray", "--runs-dir", runs_dir)
    assert_user_error(result.exit_code, result.stderr, result.stdout, "--backend ray needs Ray",
                      'pip install "toysup[ray]"')
    assert not runs_dir.exists()  # nothing written


def test_the_tuis_detached_launch_streams_a_ray_runs_events(cluster: str, tmp_path: Path):
    """The TUI launches sweeps through toysup_tui.detach; with the ray backend its events are the local ones."""
    import json

    from toysup.engine.options import RunOptions
    from toysup.engine.runlog import follow
    from toysup_tui.detach import Launch, start

    spec = make_spec(PARAMS, SWEEP)
    run = Run(start(Launch(spec.to_toml(), tmp_path, RunOptions(device="cpu", backend="ray", address=cluster),
                           nice=0)))
    events = list(follow(run, poll_s=0.1, from_latest=False))
    assert run.status() == "completed"
    assert isinstance(events[0], ev.RunStarted) and events[0].device == "ray: 2 x cpu"
    assert {e.chunk for e in events if isinstance(e, ev.ChunkFinished)} == {0, 1}
    assert isinstance(events[-1], ev.RunFinished) and events[-1].status == "completed"
    info = json.loads((Path(events[-1].run_dir) / "run.json").read_text())
    assert info["backend"] == "ray" and info["options"]["address"] == cluster


def test_chunks_are_sized_to_the_clusters_gpus():
    """No GPU cluster here: the placement from a probe's answer and Ray's node table, as a GPU cluster gives them."""
    nodes = [{"NodeID": "head", "Resources": {"CPU": 0}},  # a head that trains nothing
             {"NodeID": "a", "Resources": {"CPU": 32, "GPU": 4}}, {"NodeID": "b", "Resources": {"CPU": 32, "GPU": 4}}]
    probe = {"node_id": "a", "device_name": "NVIDIA H100 80GB HBM3", "free_bytes": 80 * 2**30}
    executor = RayExecutor(gpus_per_chunk=0.25)
    executor._kind = "cuda"
    placement = executor._placement(nodes, probe)
    assert placement.slots == 32 and placement.budget == int(80 * 2**30 * 0.6 * 0.25)
    assert placement.description == "ray: 32 x NVIDIA H100 80GB HBM3" and placement.device.type == "cuda"
    assert placement.notes == ()  # the probe reported no torch version unlike this one
    skewed = executor._placement(nodes, {**probe, "torch": "2.5.1+cu124"})
    assert "workers run torch 2.5.1+cu124" in skewed.notes[0]

    executor = RayExecutor()
    executor._kind, executor._threads = "cpu", 4
    placement = executor._placement(nodes, {**probe, "device_name": "cpu", "free_bytes": 32 * 2**30})
    assert placement.slots == 16  # 32 CPUs / 4 threads on each of two nodes, none on the head
    assert placement.budget == int(32 * 2**30 * 0.6 / 8)  # the node's free RAM shared by its 8 chunks


def test_every_slot_gets_a_chunk_even_when_the_sweep_fits_one():
    from toysup.engine.plan import plan

    spec = make_spec(PARAMS, SWEEP)  # 24 instances of one shape
    chunks = plan(spec, torch.device("cpu"), budget=2**30, slots=5)
    assert [len(c) for c in chunks] == [5, 5, 5, 5, 4]
    assert [len(c) for c in plan(spec, torch.device("cpu"), budget=2**30)] == [24]
    assert [len(c) for c in plan(spec, torch.device("cpu"), max_memory=BUDGET, slots=2)] == [9, 9, 6]
