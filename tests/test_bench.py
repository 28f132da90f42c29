"""The benchmark: the engine's numerics against the tutorial-style reference (same init, same data, same
losses), the analytic FLOP count, the ladder's JSON, its thread policy, and out-of-memory rungs.
Tests named test_cuda_* run the CUDA code paths and are skipped without a GPU."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import toysup.engine.bench as bench
import toysup.engine.plan as engine_plan
from toysup.engine.bench import TutorialModel, bench_spec, ladder, parse_ladder, timed_paths
from toysup.engine.errors import SpecError
from toysup.engine.kinds.relu_output import flops_per_instance_step
from toysup.engine.models import Hyper, ToyModel, get_model
from toysup.engine.optim import BatchedOptimizer
from toysup.engine.plan import TORCH_DEFAULT_THREADS, configure_threads
from toysup.engine.rng import DATA, CounterRNG
from toysup.engine.train import train_chunk

from helpers import assert_user_error, invoke

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
TINY = {"n_features": 6, "n_hidden": 2, "batch_size": 16}


@pytest.fixture(autouse=True)
def one_thread():
    """The ladder sets torch's threads; put back the suite's one thread afterwards."""
    yield
    torch.set_num_threads(1)


def test_engine_step_matches_the_tutorial_reference_on_the_same_data():
    spec = bench_spec(instances=6, n=8, m=3, batch=64, steps=8, lr=3e-3)
    instances = spec.instances()
    cpu = torch.device("cpu")
    hp = Hyper([i.config for i in instances], cpu)
    model = get_model("relu_output")(hp, CounterRNG(torch.tensor([i.seed for i in instances]), cpu))
    weights = model.init_weights()
    optimizer = BatchedOptimizer("adam", weights, hp.tensor("lr"), hp.tensor("weight_decay"))

    importance = hp.tensor("importance_decay")[:, None] ** torch.arange(8)
    reference = TutorialModel(len(instances), 8, 3, hp.tensor("feature_probability"), importance, cpu)
    with torch.no_grad():
        reference.W.copy_(weights["W"].transpose(1, 2))  # ARENA's (instances, hidden, features)
    ref_optimizer = torch.optim.Adam(reference.parameters(), lr=3e-3)

    for step in range(1, 9):
        x = model._draw(DATA, step, torch.empty(len(instances), 64, 8))  # the engine's batch for this step
        loss, grads = model.loss_and_grads(weights, step)
        optimizer.step(grads)

        ref_optimizer.zero_grad()
        batch = x.transpose(0, 1)  # (batch, instances, features)
        out = reference(batch)
        per_instance = (reference.importance * (batch - out) ** 2).mean((0, 2))
        per_instance.sum().backward()
        ref_optimizer.step()
        torch.testing.assert_close(loss, per_instance.detach(), rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(weights["W"], reference.W.detach().transpose(1, 2), rtol=1e-3, atol=1e-5)


# --- the FLOP count ------------------------------------------------------------------------------


def test_flop_count_matches_a_hand_count():
    # n=2 features, m=1 hidden, batch B=3, so Bn = 6 values and Bnm = 6 products per matmul pass.
    data = 3 * 6  # scale, compare, select per value
    forward = 6 * 2 + 6 * 2 + 6 + 6  # x W, h W^T, + b, ReLU
    loss = 4 * 6  # out - x, square, * importance, sum
    backward = 2 * 6 + 6 + 6 * 2 + 2 * (6 * 2) + 2  # g, db, dh = g W, x^T dh and g^T h, their sum (nm = 2)
    adam = 14 * (2 + 2)  # W has nm = 2 parameters, b has n = 2
    assert flops_per_instance_step(2, 1, 3) == data + forward + loss + backward + adam == 190
    # The benchmark's default size: 1.27 MFLOP per instance-step, four fifths of it the matmuls.
    assert flops_per_instance_step(20, 5, 1024) == 1_271_540


def test_flop_count_matmuls_agree_with_torch_flop_counter():
    # torch counts the matmul FLOPs of the reference's forward and backward (einsum becomes bmm): they must be
    # the 10 B n m per instance-step that the analytic count charges to matmuls.
    instances, n, m, batch = 3, 7, 2, 11
    model = TutorialModel(instances, n, m, torch.full((instances,), 0.5), torch.ones(instances, n), torch.device("cpu"))
    x = model.generate_batch(batch)
    with FlopCounterMode(display=False) as counter:
        model.loss(model(x), x).backward()
    assert counter.get_total_flops() == instances * 10 * batch * n * m
    assert flops_per_instance_step(n, m, batch) - 10 * batch * n * m == 12 * batch * n + n * m + 14 * (n * m + n)


# --- the ladder -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "counts"), [
    ("30,300,3000,30000", [30, 300, 3000, 30000]),
    ("30k, 100_000", [30000, 100000]),
    ("7", [7]),
])
def test_parse_ladder(text: str, counts: list[int]):
    assert parse_ladder(text) == counts


@pytest.mark.parametrize("text", ["", "30,,300", "0", "-5", "1.5", "thirty"])
def test_parse_ladder_rejects_what_is_not_a_count(text: str):
    with pytest.raises(SpecError, match="--instances"):
        parse_ladder(text)


def test_ladder_json_carries_each_sides_rate_threads_gflops_and_peak_fraction():
    result = ladder([3, 5], device="cpu", threads=1, repeats=2, steps=3, **TINY)
    data = json.loads(json.dumps(result.to_dict()))  # plain JSON all the way down
    assert data["device"] == "cpu" and data["torch"] == torch.__version__ and data["mode"] == "equal"
    assert data["engine_threads"] == data["reference_threads"] == 1
    flops = data["flops_per_instance_step"]
    assert flops == flops_per_instance_step(6, 2, 16)
    peak = data["peak_gflops"]["1"]
    assert peak > 0.5  # any CPU multiplies a 2048^2 matrix faster than that
    assert [r["instances"] for r in data["rungs"]] == [3, 5]
    for rung in data["rungs"]:
        for name in ("engine", "reference"):
            side = rung[name]
            assert side["status"] == "ok" and side["threads"] == 1 and side["steps"] == 3
            assert len(side["samples"]) == 2 and side["instance_steps_per_s"] > 0
            assert side["gflops"] == pytest.approx(side["instance_steps_per_s"] * flops / 1e9, rel=1e-2, abs=1e-3)
            assert side["peak_fraction"] == pytest.approx(side["gflops"] / peak, rel=1e-2, abs=1e-5)
            assert side["warmup_s"] > 0 and side["peak_gpu_mb"] is None
        assert rung["ratio"] == pytest.approx(
            rung["engine"]["instance_steps_per_s"] / rung["reference"]["instance_steps_per_s"], abs=0.006)  # 2 places
        # the engine's other step paths timed beside it, and the final evaluation timed apart (every instance here)
        assert set(rung["paths"]) | {data["step_path"]} == set(timed_paths(torch.device("cpu")))
        for side in rung["paths"].values():
            assert side["status"] == "ok" and len(side["samples"]) == 2 and side["instance_steps_per_s"] > 0
        assert rung["evaluation_s"] > 0 and rung["evaluation_instances"] == rung["instances"]


def test_the_rates_time_training_only_and_the_evaluation_is_its_own_figure(monkeypatch):
    """The final evaluation (estimator, metrics, linear-region probe) runs once per rung, in evaluation_time, on
    a sample of the instances: never inside a training timing, where at 3,000 instances it cost minutes."""
    model = get_model("relu_output")
    calls = {"eval_loss": 0, "metrics": 0, "feature_metrics": 0}
    for name in calls:
        def counted(self, weights, name=name, original=getattr(model, name)):
            calls[name] += 1
            return original(self, weights)
        monkeypatch.setattr(model, name, counted)
    monkeypatch.setattr(bench, "measure_peak_gflops", lambda device: 1.0)  # not under test
    rung = ladder([10], device="cpu", threads=1, repeats=2, steps=2, compile="eager", all_paths=False,
                  **TINY).rungs[0]
    assert calls == {"eval_loss": 1, "metrics": 1, "feature_metrics": 1}
    assert rung.evaluation_instances == 10 and rung.evaluation_s is not None and rung.evaluation_s > 0


def test_a_reference_step_longer_than_the_target_is_not_warmed_up_again(monkeypatch):
    """Past TARGET_S a reference step is timed without a per-repeat warm-up step: 1 + 1 + repeats steps."""
    steps = []
    original = bench.ReferenceTrainer.step
    monkeypatch.setattr(bench.ReferenceTrainer, "step", lambda self: (steps.append(1), original(self)))
    monkeypatch.setattr(bench, "TARGET_S", 0.0)
    monkeypatch.setattr(bench, "measure_peak_gflops", lambda device: 1.0)  # not under test
    ladder([3], device="cpu", threads=1, repeats=3, compile="eager", all_paths=False, **TINY)
    assert len(steps) == 1 + 1 + 3  # make_reference's first step, the sizing step, one timed step per repeat


def test_both_sides_run_at_the_engines_threads_by_default():
    result = ladder([2], device="cpu", repeats=1, steps=1, **TINY)
    automatic = configure_threads(None, torch.device("cpu"))
    assert result.mode == "equal"
    assert result.engine_threads == result.reference_threads == automatic
    assert result.rungs[0].engine.threads == result.rungs[0].reference.threads == automatic
    assert set(result.peak_gflops) == {automatic}


def test_defaults_mode_runs_the_reference_at_torchs_default_threads():
    result = ladder([2], device="cpu", defaults=True, repeats=1, steps=1, **TINY)
    assert result.mode == "defaults"
    assert result.engine_threads == configure_threads(None, torch.device("cpu"))
    assert result.reference_threads == TORCH_DEFAULT_THREADS
    assert set(result.peak_gflops) == {result.engine_threads, TORCH_DEFAULT_THREADS}
    with pytest.raises(SpecError, match="--threads and --defaults"):
        ladder([2], device="cpu", threads=1, defaults=True, **TINY)


def test_a_reference_too_big_for_free_ram_is_reported_not_run(monkeypatch):
    monkeypatch.setattr(bench, "available_ram", lambda: 2**10)  # 1 KiB free: the reference needs about 27 KiB
    rung = ladder([4], device="cpu", threads=1, repeats=1, steps=2, **TINY).rungs[0]
    assert rung.engine.status == "ok" and rung.engine.instance_steps_per_s > 0
    assert rung.reference.status == "oom" and rung.reference.instance_steps_per_s is None
    assert rung.reference.samples == [] and "not run: needs about" in rung.reference.note
    assert rung.ratio is None


def test_a_side_out_of_memory_becomes_an_oom_rung_and_the_ladder_goes_on(monkeypatch):
    def exhausted(self, warmup, steps):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")

    monkeypatch.setattr(bench.ReferenceTrainer, "time", exhausted)
    result = ladder([3, 4], device="cpu", threads=1, repeats=1, steps=1, **TINY)
    assert [r.reference.status for r in result.rungs] == ["oom", "oom"]
    assert result.rungs[0].reference.note.startswith("CUDA out of memory")
    assert all(r.engine.status == "ok" for r in result.rungs)


def test_the_engine_side_is_cut_into_chunks_that_fit_the_memory_budget(monkeypatch):
    per_instance = get_model("relu_output").bytes_per_instance(bench_spec(1, 6, 2, 16, 1).instances()[0].config)
    monkeypatch.setattr(engine_plan, "memory_budget", lambda device: 2 * per_instance)
    rung = ladder([5], device="cpu", threads=1, repeats=1, steps=2, **TINY).rungs[0]
    assert rung.engine.chunks == 3 and rung.engine.status == "ok" and rung.engine.instance_steps_per_s > 0


@pytest.mark.parametrize(("usable", "idle", "threads"), [
    (2, 1.95, 2),  # an idle 2-core box: both cores
    (2, 1.0, 1),  # one core busy elsewhere: two threads would spin against it
    (2, 1.7, 1),  # a core 30% busy is not free
    (2, 0.0, 1),  # never fewer than one
    (4, 3.85, 4),
    (4, 7.9, 4),  # idle CPUs outside this process's affinity mask do not count
])
def test_automatic_threads_are_the_cores_left_idle(monkeypatch, usable: int, idle: float, threads: int):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(engine_plan, "usable_cores", lambda: usable)
    monkeypatch.setattr(engine_plan, "idle_cores", lambda: idle)
    assert engine_plan.automatic_threads(torch.device("cpu")) == threads
    assert engine_plan.automatic_threads(torch.device("cuda")) == 1  # one thread drives a GPU


def test_omp_num_threads_wins_over_the_automatic_count(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setattr(engine_plan, "idle_cores", lambda: pytest.fail("no need to look"))
    assert configure_threads(None, torch.device("cpu")) == 3 and torch.get_num_threads() == 3
    assert configure_threads(2, torch.device("cpu")) == 2  # --threads wins over both


def test_idle_cores_come_from_two_readings_of_the_cpu_times(monkeypatch):
    readings = iter([(1000, 5000), (1150, 5200)])  # (idle, total) jiffies over all CPUs: 150 of 200 idle
    monkeypatch.setattr(engine_plan, "_cpu_times", lambda: next(readings))
    monkeypatch.setattr(engine_plan.os, "cpu_count", lambda: 4)
    assert engine_plan.idle_cores(sample_s=0.0) == pytest.approx(3.0)


def test_idle_cores_without_proc_stat_use_the_load_average(monkeypatch):
    def missing():
        raise FileNotFoundError("/proc/stat")

    monkeypatch.setattr(engine_plan, "_cpu_times", missing)
    monkeypatch.setattr(engine_plan.os, "cpu_count", lambda: 8)
    monkeypatch.setattr(engine_plan.os, "getloadavg", lambda: (2.5, 1.0, 1.0), raising=False)
    assert engine_plan.idle_cores(sample_s=0.0) == pytest.approx(5.5)


@pytest.mark.parametrize("path", ["eager", "compiled"])
def test_results_do_not_depend_on_the_thread_count(path: str):
    # The automatic thread count follows the machine, so a run's numbers must not: 1 and 2 threads give the same
    # bits (elementwise passes split by element, each matmul stays on one thread's reduction order).
    (chunk,) = bench.engine_chunks(bench_spec(40, 20, 5, 256, steps=5), torch.device("cpu"))
    results = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        results.append(train_chunk(chunk, torch.device("cpu"), step_path=path))
    assert {r.step_path for r in results} == {path}
    for name in ("W", "b"):
        assert torch.equal(results[0].weights[name], results[1].weights[name])
    assert torch.equal(results[0].curves, results[1].curves)


# --- the command and the README's table -----------------------------------------------------------


def test_bench_command_prints_the_ladder_as_json():
    result = invoke("bench", "--instances", "3,4", "--n-features", 6, "--n-hidden", 2, "--batch-size", 16,
                    "--steps", 2, "--repeats", 1, "--device", "cpu", "--threads", 1, "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["instances"] for r in data["rungs"]] == [3, 4]
    assert data["engine_threads"] == data["reference_threads"] == 1


def test_bench_command_prints_a_table_with_gflops_and_share_of_peak():
    result = invoke("bench", "--instances", "3", "--n-features", 6, "--n-hidden", 2, "--batch-size", 16,
                    "--steps", 2, "--repeats", 1, "--device", "cpu", "--threads", 1, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    assert "threads: engine 1, reference 1 (equal)" in result.stdout
    assert "GFLOP/s" in result.stdout and "of peak" in result.stdout and "%" in result.stdout


@pytest.mark.parametrize(("args", "fragments"), [
    (["--instances", "30,x"], ["--instances '30,x' is not valid"]),
    (["--instances", "3", "--threads", "1", "--defaults"], ["--threads and --defaults exclude each other"]),
    (["--instances", "3", "--repeats", "0"], ["--repeats 0 is not valid"]),
    (["--instances", "3", "--device", "tpu"], ["--device 'tpu' is not valid"]),
])
def test_bench_user_errors_are_one_line(args: list[str], fragments: list[str]):
    result = invoke("bench", *args)
    assert_user_error(result.exit_code, result.stderr, result.stdout, *fragments)


def _ladder_script():
    path = Path(__file__).parents[1] / "benchmarks" / "ladder.py"
    spec = importlib.util.spec_from_file_location("ladder_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_table_is_rendered_from_the_json(monkeypatch):
    monkeypatch.setattr(bench, "available_ram", lambda: 2**10)
    data = ladder([3], device="cpu", threads=1, repeats=1, steps=2, **TINY).to_dict()
    data["rungs"].append({**data["rungs"][0], "instances": 30000})
    text = _ladder_script().markdown(data)
    assert "equal threads: engine 1, reference 1" in text and "GFLOP/s on 1 thread(s)" in text
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| instances | engine inst-steps/s | GFLOP/s | of peak |")
    assert rows[1].startswith("| 3 | ") and rows[2].startswith("| 30,000 | ")
    assert "| oom | - | - | - |" in rows[1]
    assert "3 instances, reference: not run: needs about" in text


# --- CUDA (skipped without a GPU) -----------------------------------------------------------------


@CUDA
def test_cuda_random_bits_equal_the_cpus():
    seeds = torch.tensor([0, 1, 12345, 2**31 - 1])
    cpu, gpu = CounterRNG(seeds, "cpu"), CounterRNG(seeds, "cuda")
    for stream, step, shape in ((DATA, 1, (64, 20)), (DATA, 777, (5, 3)), (0x30, 0, (20, 5))):
        assert torch.equal(cpu.bits(stream, step, shape), gpu.bits(stream, step, shape).cpu())


@CUDA
def test_cuda_analytic_gradients_match_autograd():
    spec = bench_spec(instances=5, n=7, m=3, batch=33, steps=2)
    configs = [i.config for i in spec.instances()]
    gpu = torch.device("cuda")
    model = get_model("relu_output")(Hyper(configs, gpu), CounterRNG(torch.arange(5), gpu))
    weights = model.init_weights()
    loss, grads = model.loss_and_grads(weights, 1)
    ref_loss, ref_grads = ToyModel.loss_and_grads(model, {k: w.clone() for k, w in weights.items()}, 1)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-7)
    for name in grads:
        torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-4, atol=1e-6)


@CUDA
def test_cuda_chunk_trains_like_the_cpu_and_alone_like_in_a_batch():
    (chunk,) = bench.engine_chunks(bench_spec(6, 8, 3, 64, steps=20), torch.device("cpu"))
    # Same random bits on both devices; only the matmuls' round-off differs, which 20 Adam steps can amplify
    # to about lr * 0.1. A wrong batch or gradient would be off by orders of magnitude more.
    on_cpu = train_chunk(chunk, torch.device("cpu"))
    on_gpu = train_chunk(chunk, torch.device("cuda"))
    torch.testing.assert_close(on_gpu.weights["W"], on_cpu.weights["W"], rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(on_gpu.curves, on_cpu.curves, rtol=1e-3, atol=1e-5)
    alone = train_chunk(bench.Chunk(0, chunk.model, chunk.instances[2:3]), torch.device("cuda"))
    torch.testing.assert_close(alone.weights["W"][0], on_gpu.weights["W"][2], rtol=1e-3, atol=1e-4)


@CUDA
def test_cuda_compiled_chunk_trains_like_the_cpu_and_alone_like_in_a_batch():
    (chunk,) = bench.engine_chunks(bench_spec(6, 8, 3, 64, steps=20), torch.device("cpu"))
    on_cpu = train_chunk(chunk, torch.device("cpu"), step_path="compiled")
    on_gpu = train_chunk(chunk, torch.device("cuda"), step_path="compiled")
    assert on_gpu.step_path == on_cpu.step_path == "compiled"
    torch.testing.assert_close(on_gpu.weights["W"], on_cpu.weights["W"], rtol=1e-3, atol=1e-4)
    alone = train_chunk(bench.Chunk(0, chunk.model, chunk.instances[2:3]), torch.device("cuda"), step_path="compiled")
    torch.testing.assert_close(alone.weights["W"][0], on_gpu.weights["W"][2], rtol=1e-3, atol=1e-4)


@CUDA
def test_cuda_ladder_reports_gpu_memory_and_the_gpu_peak():
    result = ladder([3, 50], device="cuda", repeats=1, steps=3, **TINY)
    assert result.device.startswith("cuda (")
    for rung in result.rungs:
        for side in (rung.engine, rung.reference):
            assert side.status == "ok" and side.peak_gpu_mb is not None and side.peak_gpu_mb > 0
    assert all(peak > 100 for peak in result.peak_gflops.values())  # any CUDA GPU passes 100 GFLOP/s in FP32
