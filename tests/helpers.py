"""What several test files share: specs and training, the command line, the contracts for user errors
and for repeated runs, and the fixture run folder with hand-made weights.

Test files import this module (``from helpers import ...``); conftest.py holds only fixtures.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import torch
from typer.testing import CliRunner, Result

from toysup.engine import metrics as M
from toysup.engine.models import Hyper, ToyModel, get_model
from toysup.engine.models.relu_output import superposition_metrics
from toysup.engine.options import GIB, RunOptions
from toysup.engine.plan import plan
from toysup.engine.rng import CounterRNG
from toysup.engine.run.folder import Run
from toysup.engine.run_format import csv_text, result_columns
from toysup.engine.spec import Spec, resolve
from toysup.engine.train import ChunkResult, curve_schedule, train_chunk

DATA = Path(__file__).parent / "data"
TINY_PRESET = DATA / "tiny.toml"
CPU = torch.device("cpu")

# What a user mistake must look like: exit code 2, one "error:" line on stderr, no traceback.
EXIT_USAGE = 2


# --- specs and training ---------------------------------------------------------------------


def make_spec(params: dict[str, Any] | None = None, sweep: dict[str, Any] | None = None,
              model: str = "relu_output", **overrides: Any) -> Spec:
    """A spec from Python dicts, the way a preset file would give them; a swept name wins over a fixed one."""
    fixed = {k: v for k, v in (params or {}).items() if k not in (sweep or {})}
    data: dict[str, Any] = {"name": "test", "model": model, "params": fixed}
    if sweep:
        data["sweep"] = dict(sweep)
    return resolve(data, **overrides)


def train_all(spec: Spec, max_memory: int | None = None, step_path: str = "eager") -> list[ChunkResult]:
    """Train every chunk of ``spec`` on the CPU, with the eager or the compiled step (engine/fused.py)."""
    return [train_chunk(chunk, CPU, step_path=step_path) for chunk in plan(spec, CPU, max_memory)]


def run_options(max_memory_bytes: int | None = None, **fields: Any) -> RunOptions:
    """Run options for a test: the CPU unless ``device`` is given; ``max_memory_bytes`` is the chunk budget in
    bytes (tests size chunks by what an instance takes, as engine.plan counts it) rather than in GiB."""
    if max_memory_bytes is not None:
        fields["max_memory"] = max_memory_bytes / GIB
    return RunOptions(**{"device": "cpu", **fields})


def by_instance(results: list[ChunkResult]) -> dict[int, dict[str, Any]]:
    """Each instance's config, final weights, metrics and loss curve, keyed by its sweep index."""
    out = {}
    for result in results:
        for i, inst in enumerate(result.chunk.instances):
            out[inst.index] = {
                "config": inst.config,
                "weights": {k: v[i] for k, v in result.weights.items()},
                "metrics": {k: v[i] for k, v in result.metrics.items()},
                "features": {k: v[i] for k, v in result.features.items()},
                "curve": result.curves[i],
            }
    return out


# --- the command line -----------------------------------------------------------------------


def invoke(*args: Any, env: dict[str, str | None] | None = None) -> Result:
    """Run ``toysup ARGS`` in-process with Typer's CliRunner (stdout and stderr kept apart).

    $TOYSUP_RUNS_DIR from the caller's environment is hidden unless ``env`` sets it.
    """
    from toysup_tui import cli

    # Rich fixes a console's width from $COLUMNS when the console is made (cli's are made at import), so a test
    # that asks for COLUMNS would otherwise get whatever the first test of its xdist worker had: set it per call
    # (None: measured again from the environment CliRunner sets up).
    columns = (env or {}).get("COLUMNS")
    for console in (cli.out, cli.err):
        console.width = int(columns) if columns else None  # type: ignore[assignment]
    return CliRunner().invoke(cli.app, [str(a) for a in args], env={"TOYSUP_RUNS_DIR": None, **(env or {})})


def toysup_command() -> list[str]:
    """The installed ``toysup`` entry point next to this interpreter, or the module as a fallback."""
    script = Path(sys.executable).with_name("toysup")
    return [str(script)] if script.exists() else [sys.executable, "-m", "toysup_tui.cli"]


def run_toysup(*args: Any, env: dict[str, str] | None = None, cwd: Path | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real ``toysup`` in a subprocess."""
    full_env = {k: v for k, v in os.environ.items() if k != "TOYSUP_RUNS_DIR"}
    full_env.update(OMP_NUM_THREADS="1", NO_COLOR="1", COLUMNS="200")
    full_env.update(env or {})
    return subprocess.run([*toysup_command(), *[str(a) for a in args]], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


def folder_state(path: Path) -> dict[str, tuple[int, int]] | None:
    """Every file under ``path`` with its size and mtime, or None if ``path`` does not exist."""
    if not path.exists():
        return None
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*"))}


def assert_user_error(exit_code: int, stderr: str, stdout: str, *fragments: str) -> str:
    """The contract for a user's mistake; returns the error line."""
    assert exit_code == EXIT_USAGE, f"exit {exit_code}\nstdout: {stdout}\nstderr: {stderr}"
    assert "Traceback" not in stderr + stdout
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {stderr!r}"
    line = lines[0]
    assert line.startswith("error:"), line
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


# --- repeated runs (the same machine: bit for bit) ------------------------------------------


def sorted_csv(path: Path) -> list[str]:
    """A CSV file's header, then its rows sorted (chunks may finish in any order)."""
    lines = path.read_text().splitlines()
    return [lines[0], *sorted(lines[1:])]


def assert_same_results(a: Path, b: Path) -> None:
    """Two run folders hold the same results, curves and features, digit for digit."""
    assert (a / "results.csv").read_text() == (b / "results.csv").read_text()
    for table in ("curves.csv", "features.csv"):
        assert sorted_csv(a / table) == sorted_csv(b / table)


# --- a run folder with fixed contents ---------------------------------------------------------
#
# The results screens and their snapshots show this run. Its weights are made by hand on a grid
# of 1/1024: exact in float32, so W W^T (two hidden dimensions) is exact on every machine. What is
# computed from them (metrics, features) may differ in its last bits on another machine's BLAS;
# ``nudge`` moves every such float by one unit in the last place, so a test can show that no
# screen depends on those bits.

FIXTURE_ID = "20240102-030405-fixture"
WEIGHT_GRID = 1024

Nudge = Literal["up", "down", "mixed"] | None


def fixture_spec() -> Spec:
    return resolve({
        "name": "fixture",
        "description": "n=5 features in m=2 dimensions at three densities (fixed, hand-made weights)",
        "model": "relu_output",
        "params": {"n_features": 5, "n_hidden": 2, "importance_decay": 0.9, "steps": 1000, "seeds": 4},
        "sweep": {"feature_probability": "1,0.1,0.01"},
    }, source="fixture")


def _rotate(W: torch.Tensor, degrees: float) -> torch.Tensor:
    a = math.radians(degrees)
    R = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return W @ R.T


def fixture_weights(p: float, seed: int) -> torch.Tensor:
    """Dense: two orthogonal features; p=0.1: two antipodal pairs; sparse: a pentagon of norms 1.15 down
    to 1.11 (so that its largest feature is not a tie); seed s turned by 4 + 9 s degrees.

    Rounded to the 1/1024 grid, so that the rotation's last bits (libm, BLAS) do not reach the file.
    The angles are chosen so that what the screens show of them holds when the float32 alignment
    they come from is up to 8 ulps off (arccos is steep near 0 degrees: an ulp there is 7e-5
    degrees), and none sits on an edge of the orientation histogram's 5-degree bins.
    """
    if p >= 1:
        W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.02, 0.01], [0.01, -0.02], [0.0, 0.01]])
    elif p >= 0.1:
        W = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [0.03, 0.02]])
    else:
        W = torch.tensor([[(1.15 - 0.01 * k) * math.cos(2 * math.pi * k / 5),
                           (1.15 - 0.01 * k) * math.sin(2 * math.pi * k / 5)] for k in range(5)])
    return torch.round(_rotate(W, 4.0 + 9.0 * seed) * WEIGHT_GRID) / WEIGHT_GRID


def nudged(values: torch.Tensor, nudge: Nudge, seed: int = 0) -> torch.Tensor:
    """Each float moved by one unit in the last place of its dtype: all up, all down, or each either way
    (``mixed``, a fixed pattern per ``seed``). Integral values (counts, flags, exact zeros) stay: the
    same on every machine. ``None``: unchanged."""
    if nudge is None or not values.is_floating_point():
        return values
    if nudge == "mixed":
        coin = torch.randint(0, 2, values.shape, generator=torch.Generator().manual_seed(seed))
        sign = (2 * coin - 1).to(values.dtype)
    else:
        sign = torch.full_like(values, 1.0 if nudge == "up" else -1.0)
    moved = torch.nextafter(values, sign * math.inf)
    return torch.where(values == values.round(), values, moved)


def _nudged_float(value: float, nudge: Nudge, seed: int) -> float:
    """A hand-made number as a float32 result one unit in the last place off, as training would give it."""
    return value if nudge is None else float(nudged(torch.tensor([value]), nudge, seed)[0])


def make_fixture_run(root: Path, run_id: str = FIXTURE_ID, nudge: Nudge = None) -> Run:
    """A completed run of :func:`fixture_spec` with metrics computed from hand-made weights; with
    ``nudge``, the weights and every float computed or stored from them are one ulp off (see
    :func:`nudged`), as another machine might compute them."""
    spec = fixture_spec()
    run = Run.create(root, spec, device="cpu", chunks=1)
    instances = spec.instances()
    W = nudged(torch.stack([fixture_weights(inst.config["feature_probability"], inst.seed) for inst in instances]),
               nudge, seed=1)
    b = nudged(torch.tensor([[-0.2 if inst.config["feature_probability"] < 0.1 else 0.0] * 5 for inst in instances]),
               nudge, seed=2)
    # Hand-made weights have no loss to ablate against: the weights-only represented rule; no dropout, so no
    # privileged basis (empty neuron counts), and none collapsed.
    count = len(instances)
    computed = {k: nudged(v, nudge, seed=3).tolist()
                for k, v in superposition_metrics(W, torch.full((count,), 0.5), M.represented_by_norm(W),
                                                  torch.zeros(count, dtype=torch.bool)).items()}
    computed["collapsed"] = [False] * count
    computed["trivial_loss"] = [math.nan] * count  # no evaluation batch: an empty cell
    columns = result_columns(spec)
    rows = []
    for inst in instances:
        p = inst.config["feature_probability"]
        row: dict[str, Any] = {"instance": inst.index, "seed": inst.seed, "point": inst.point,
                              "feature_probability": p}
        for name in columns[4:]:
            value = computed[name][inst.index] if name in computed else 0
            row[name] = "" if isinstance(value, float) and math.isnan(value) else value  # as result_rows writes it
        # Not round numbers: their medians and quartiles would sit on a rounding boundary of the tables.
        row["loss"] = _nudged_float(0.08 * p + 0.0011 * math.sqrt(inst.seed + 2), nudge, inst.index)
        rows.append(row)
    curve_rows = [{"instance": inst.index, "step": s,
                   "loss": _nudged_float(0.02 + 0.3 * math.exp(-s / (100 + 50 * inst.point)), nudge, s)}
                  for inst in instances for s in curve_schedule(1000)]
    norms, dims, inter = (nudged(t, nudge, seed=4 + k) for k, t in enumerate(
        (M.feature_norms(W), M.feature_dimensionality(W), M.interference(W))))
    feature_rows = [{"instance": i, "feature": f, "norm": norms[i, f].item(), "dimensionality": dims[i, f].item(),
                     "interference": inter[i, f].item(), "bias": b[i, f].item(), "importance": 0.9**f}
                    for i in range(len(instances)) for f in range(5)]
    run.write_part(0, csv_text(["instance", "step", "loss"], curve_rows),
                   csv_text(["instance", "feature", "norm", "dimensionality", "interference", "bias", "importance"],
                            feature_rows),
                   {"W": W, "b": b, "instance": torch.arange(len(instances))})
    run.write_results(columns, rows)
    run.gather_parts()
    target = root / run_id
    run.path.rename(target)
    run = Run(target)
    run.update_record(id=run_id, status="completed", started="2024-01-02T03:04:05+00:00",
                    ended="2024-01-02T03:04:17+00:00", host="fixture", command="fixture", instances_done=len(rows),
                    chunks_done=1, instance_steps_done=12000, wall_time_s=12.0, instance_steps_per_s=1000.0)
    return run


def model_for(kind: str, params: dict[str, Any], seeds: list[int]) -> ToyModel:
    """A model of ``kind`` on the CPU for one instance per seed, its parameters resolved as a sweep file's."""
    spec = resolve({"model": kind, "params": params})
    configs = [{**spec.params, "seed": s} for s in seeds]
    cpu = torch.device("cpu")
    return get_model(kind)(Hyper(configs, cpu), CounterRNG(torch.tensor(seeds), cpu))


def assert_step_matches_autograd(model: ToyModel) -> None:
    """The model's own loss and gradients (a hand-written or compiled backward) equal autograd's on its loss, to
    float32 round-off, at two steps, with biases spread so the ReLU mask has both sides."""
    weights = model.init_weights()
    weights["b"] = torch.linspace(-0.2, 0.1, weights["b"].numel()).view_as(weights["b"])
    for step in (1, 2):
        loss, grads = model.loss_and_grads(weights, step)
        ref_loss, ref_grads = ToyModel.loss_and_grads(model, {k: w.clone() for k, w in weights.items()}, step)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-7)
        for name in ref_grads:
            torch.testing.assert_close(grads[name], ref_grads[name], rtol=1e-4, atol=1e-7)
        assert any(g.abs().sum() > 0 for g in grads.values())
