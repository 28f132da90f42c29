"""A chunk's checkpoint (engine/checkpoint.py): one typed training state, encoded and decoded by one pair of
functions and written and read by the run store, in the key layout every earlier version wrote, so that a run
interrupted before this module existed still resumes to an uninterrupted run's results."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from toysup.engine import train
from toysup.engine.checkpoint import TrainingState, decode_checkpoint, encode_checkpoint
from toysup.engine.errors import RunDataError
from toysup.engine.events import Event, Progress
from toysup.engine.models import get_model
from toysup.engine.run.folder import Run
from toysup.engine.runner import resume_sweep, run_sweep
from toysup.engine.spec import Spec, load

from helpers import assert_same_results, run_options


def a_state() -> TrainingState:
    g = torch.Generator().manual_seed(0)
    return TrainingState(
        instances=[4, 5, 7], step=12, optimizer_steps=12, reported=3,
        weights={"W": torch.randn(3, 5, 2, generator=g), "b": torch.randn(3, 5, generator=g)},
        first_moments={"W": torch.randn(3, 5, 2, generator=g)}, second_moments={"W": torch.rand(3, 5, 2, generator=g)},
        curves=torch.tensor([[0.5, 0.25, float("nan")]] * 3), curve_extra={"l1": torch.ones(3, 3)},
        diverged=torch.tensor([False, True, False]), snapshots={"W": torch.randn(3, 2, 5, 2, generator=g)})


def same_state(a: TrainingState, b: TrainingState) -> bool:
    def same(x: dict[str, torch.Tensor], y: dict[str, torch.Tensor]) -> bool:
        return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)

    return ((a.instances, a.step, a.optimizer_steps, a.reported) == (b.instances, b.step, b.optimizer_steps, b.reported)
            and same(a.weights, b.weights) and same(a.first_moments, b.first_moments)
            and same(a.second_moments, b.second_moments) and torch.equal(a.curves.isnan(), b.curves.isnan())
            and torch.equal(a.curves.nan_to_num(), b.curves.nan_to_num()) and same(a.curve_extra, b.curve_extra)
            and torch.equal(a.diverged, b.diverged) and same(a.snapshots, b.snapshots))


def test_a_state_saved_is_the_state_loaded_in_the_old_key_layout(tmp_path: Path) -> None:
    run = Run(tmp_path)
    path = tmp_path / "checkpoints" / "chunk-0003.safetensors"
    state = a_state()
    run.write_checkpoint(3, state)
    [(chunk, loaded)] = run.read_checkpoints()
    assert chunk == 3 and same_state(loaded, state)
    assert set(load_file(path)) == {"instance", "w.W", "w.b", "m.W", "v.W", "curves", "extra.l1", "diverged", "snap.W"}
    assert metadata(path) == {"step": "12", "t": "12", "reported": "3"}
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left beside it


def metadata(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + size])["__metadata__"]


@pytest.mark.parametrize("damage", ["cut", "no counters", "no curves", "not safetensors"])
def test_a_damaged_checkpoint_is_one_run_data_error(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "chunk-0000.safetensors"
    path.write_bytes(encode_checkpoint(a_state()))
    if damage == "cut":
        path.write_bytes(path.read_bytes()[:-40])
    elif damage == "no counters":
        save_file(load_file(path), path, metadata={"step": "3"})
    elif damage == "no curves":
        save_file({k: v for k, v in load_file(path).items() if k != "curves"}, path, metadata=metadata(path))
    else:
        path.write_text("not a checkpoint")
    with pytest.raises(RunDataError, match=r"checkpoint chunk-0000\.safetensors"):
        decode_checkpoint(path.read_bytes(), path.name)


def old_layout(path: Path, spec: Spec) -> None:
    """Rewrite a run's checkpoint by hand, with safetensors alone, in the layout every version before
    engine/checkpoint.py wrote (train.py's key prefixes, the store's ``instance`` and counters), after checking
    that the file holds exactly that layout."""
    tensors = load_file(path)
    weights = {k[2:] for k in tensors if k.startswith("w.")}
    named = {p: {k[len(p) + 1:] for k in tensors if k.startswith(p + ".")} for p in ("m", "v", "extra", "snap")}
    assert set(tensors) == {"instance", "curves", "diverged", *(f"w.{w}" for w in weights),
                            *(f"{p}.{n}" for p, names in named.items() for n in names)}
    assert weights and named["m"] == named["v"] and named["m"] <= weights  # Adam's moments of the trained weights
    assert named["snap"] == (weights if spec.params["snapshots"] else set())
    assert named["extra"] == {c.name for c in get_model(spec.model).curve_columns}
    counters = metadata(path)
    assert counters.keys() == {"step", "t", "reported"}
    path.unlink()
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=counters)


@pytest.mark.parametrize("preset,sets", [
    ("tms-intro", ["steps=60", "snapshots=3", "batch_size=32", "eval_batch_size=64"]),
    ("incidental-l1", ["steps=60", "batch_size=32", "eval_batch_size=64"]),  # curve columns: extra.<name>
])
def test_a_checkpoint_written_in_the_old_layout_resumes_to_the_uninterrupted_results(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, preset: str, sets: list[str]) -> None:
    """A run cut short with its chunk's checkpoint on disk in the layout written before the typed state
    (Adam's moments, snapshots, a model's curve columns) resumes from that checkpoint's step, bit for bit
    an uninterrupted run (the same machine)."""
    monkeypatch.setattr(train, "PROGRESS_INTERVAL_S", 0.0)  # a progress event (and a stop check) every step
    spec = load(preset, sets=sets, seeds=1)
    whole = run_sweep(spec, tmp_path / "whole", run_options(threads=1))
    ticks: list[int] = []
    cut = run_sweep(spec, tmp_path / "cut", run_options(threads=1, checkpoint_every=1e-9),
                    emit=lambda e: ticks.append(e.step) if isinstance(e, Progress) else None,
                    should_stop=lambda: len(ticks) >= 25)
    assert cut.status == "interrupted" and Run(cut.run_dir).record().chunks_done == 0
    [path] = (cut.run_dir / "checkpoints").iterdir()
    old_layout(path, spec)
    resumed: list[Event] = []
    done = resume_sweep(cut.run_dir, run_options(threads=1), emit=resumed.append)
    assert done.status == "completed", done.error
    steps = [e.step for e in resumed if isinstance(e, Progress)]
    assert steps[0] == ticks[-1] == 25  # it went on from the checkpoint, not from step 1
    assert_same_results(whole.run_dir, cut.run_dir)
    for instance in range(spec.n_instances):
        a, b = Run(whole.run_dir).instance_weights(instance), Run(cut.run_dir).instance_weights(instance)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
