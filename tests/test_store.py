"""The run store and the local runner: folders, files, statuses (engine/run/, engine/runner.py)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from toysup.engine import events as ev
from toysup.engine.errors import RunDataError, SpecError, UserError
from toysup.engine.executors import base as executor_base
from toysup.engine.models import get_model
from toysup.engine.run import layout
from toysup.engine.run.catalogue import find_run, list_runs
from toysup.engine.run.export import export, with_run_id
from toysup.engine.run.folder import Run
from toysup.engine.run.layout import atomic_write, read_csv, runs_dir
from toysup.engine.run.record import SCHEMA
from toysup.engine.run.status import STATUSES, Status, exit_code
from toysup.engine.run_format import csv_text, format_value, parse_value, result_columns
from toysup.engine.runner import run_sweep
from toysup.engine.train import curve_schedule

from helpers import by_instance, make_spec, run_options, train_all

TINY = {"n_features": 5, "n_hidden": 2, "steps": 60, "batch_size": 32, "eval_batch_size": 128, "seeds": 2}
METRICS = ["loss", "features_represented", "dims_per_feature", "orientation_angle_deg", "axis_alignment",
           "polysemantic_neurons", "monosemantic_neurons", "max_feature_norm", "collapsed"]


def tiny_spec(name: str = "tiny", **params):
    return dataclasses.replace(make_spec({**TINY, **params}, {"feature_probability": [1.0, 0.1]}), name=name)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A completed run_sweep of a 4-instance spec, with the events it emitted."""
    root = tmp_path_factory.mktemp("store") / "runs"
    events: list[ev.Event] = []
    spec = tiny_spec()
    outcome = run_sweep(spec, root, run_options(), emit=events.append)
    return spec, outcome, Run(outcome.run_dir), events


# --- small pieces --------------------------------------------------------------------------------


def test_runs_dir_prefers_the_option_then_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("TOYSUP_RUNS_DIR", raising=False)
    assert runs_dir(None) == Path("runs")
    monkeypatch.setenv("TOYSUP_RUNS_DIR", str(tmp_path / "env"))
    assert runs_dir(None) == tmp_path / "env"
    assert runs_dir(tmp_path / "opt") == tmp_path / "opt"


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write(tmp_path / "a.txt", "hello\n")
    atomic_write(tmp_path / "b.bin", b"\x00\x01")
    atomic_write(tmp_path / "a.txt", "again\n")
    assert (tmp_path / "a.txt").read_text() == "again\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


@pytest.mark.parametrize("value, text", [
    (True, "true"), (False, "false"), (3, "3"), (0.1, "0.1"), (1e-9, "1e-09"), (0.123456789012, "0.123456789"),
    ("adam", "adam"), ("", ""),
])
def test_csv_cells_format_and_parse_back(value, text):
    assert format_value(value) == text
    back = parse_value(text)
    assert back == (pytest.approx(value, rel=1e-8) if isinstance(value, float) else value)
    assert type(back) is type(value)


def test_csv_text_round_trips_through_read_csv(tmp_path):
    rows = [{"instance": 1, "seed": 0, "optimizer": "sgd", "loss": 0.25, "collapsed": False},
            {"instance": 0, "seed": 1, "optimizer": "adam", "loss": "", "collapsed": True}]
    path = tmp_path / "t.csv"
    path.write_text(csv_text(["instance", "seed", "optimizer", "loss", "collapsed"], rows))
    header, back = read_csv(path)
    assert header == ["instance", "seed", "optimizer", "loss", "collapsed"]
    assert back == rows


def test_with_run_id_prefixes_every_row():
    text = "instance,loss\n0,0.5\n1,0.25\n"
    assert with_run_id(text, "20260101-000000-x") == (
        "run_id,instance,loss\n20260101-000000-x,0,0.5\n20260101-000000-x,1,0.25\n")
    assert with_run_id("", "x") == ""


# --- a finished run -------------------------------------------------------------------------------


def test_run_sweep_completes_and_writes_every_file(finished):
    _, outcome, run, _ = finished
    assert outcome.status == "completed" and outcome.error == ""
    names = sorted(p.name for p in run.path.iterdir())
    assert names == ["config.toml", "curves.csv", "events.jsonl", "features.csv", "fence", "heartbeat.json", "lock",
                     "manifest.json", "results.csv", "run.json", "weights"]
    assert [p.name for p in (run.path / "weights").iterdir()] == ["chunk-0000.safetensors"]
    assert not list(run.path.rglob(".*.tmp"))


def test_results_columns_and_rows(finished):
    spec, _, run, _ = finished
    header, rows = run.results()
    assert header == result_columns(spec)
    assert header[:4 + len(METRICS)] == ["instance", "seed", "point", "feature_probability", *METRICS]
    extra = [c.name for c in get_model(spec.model).columns][len(METRICS):]
    assert header[4 + len(METRICS):] == [*extra, "diverged"]  # a model's own columns, then the divergence flag
    assert [(r["instance"], r["seed"], r["point"], r["feature_probability"]) for r in rows] == [
        (0, 0, 0, 1.0), (1, 1, 0, 1.0), (2, 0, 1, 0.1), (3, 1, 1, 0.1)]
    for r in rows:
        assert r["loss"] > 0
        assert isinstance(r["collapsed"], bool)
        assert r["features_represented"] in range(6)
        assert r["diverged"] is False


def test_results_match_training_the_spec_directly(finished):
    spec, _, run, _ = finished
    direct = by_instance(train_all(spec))
    _, rows = run.results()
    for r in rows:
        metrics = direct[r["instance"]]["metrics"]
        assert r["loss"] == pytest.approx(float(metrics["loss"]), rel=1e-8)
        assert r["dims_per_feature"] == pytest.approx(float(metrics["dims_per_feature"]), rel=1e-8)
        assert r["features_represented"] == int(metrics["features_represented"])
        stored = run.instance_weights(r["instance"])
        assert torch.equal(stored["W"], direct[r["instance"]]["weights"]["W"])
        assert torch.equal(stored["b"], direct[r["instance"]]["weights"]["b"])


def test_weights_file_holds_the_chunk_with_its_instance_index(finished):
    _, _, run, _ = finished
    tensors = load_file(str(run.path / "weights" / "chunk-0000.safetensors"))
    assert tensors["instance"].tolist() == [0, 1, 2, 3]
    assert tensors["W"].shape == (4, 5, 2) and tensors["b"].shape == (4, 5)
    with pytest.raises(RunDataError, match="no weights for instance 9"):
        run.instance_weights(9)


def test_curves_and_features_tables(finished):
    _, _, run, _ = finished
    header, curves = run.table("curves")
    assert header[:3] == ["instance", "step", "loss"]
    for k in range(4):
        assert [r["step"] for r in curves if r["instance"] == k] == curve_schedule(TINY["steps"])
    header, features = run.table("features")
    assert header == ["instance", "feature", "norm", "dimensionality", "interference", "bias", "importance",
                      "ablation_gain", "ablation_gain_se", "represented"]
    assert [(r["instance"], r["feature"]) for r in features] == [(i, f) for i in range(4) for f in range(5)]
    norms = run.instance_weights(2)["W"].norm(dim=-1).tolist()
    assert [r["norm"] for r in features if r["instance"] == 2] == pytest.approx(norms, rel=1e-6)


def test_run_json_records_the_run(finished):
    _, outcome, run, _ = finished
    info = json.loads((run.path / "run.json").read_text())
    assert info["id"] == run.id and info["name"] == "tiny" and info["model"] == "relu_output"
    assert info["status"] == "completed" and info["error"] == ""
    assert info["device"] == "cpu"
    assert set(info["versions"]) >= {"toysup", "torch", "python"}
    assert info["versions"]["torch"] == torch.__version__
    assert info["instances"] == info["instances_done"] == 4
    assert info["chunks"] == info["chunks_done"] == 1
    assert info["instance_steps_done"] == 4 * TINY["steps"]
    assert info["wall_time_s"] > 0 and info["instance_steps_per_s"] > 0
    assert info["started"] <= info["ended"]
    assert outcome.instance_steps_per_s > 0


def test_config_toml_reads_back_as_the_spec(finished):
    spec, _, run, _ = finished
    assert run.spec() == spec


def test_run_sweep_emits_events_in_order(finished):
    _, outcome, run, events = finished
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "RunStarted" and kinds[1] == "ChunkStarted"
    assert kinds[-2:] == ["ChunkFinished", "RunFinished"]
    assert set(kinds[2:-2]) == {"Progress", "Phase"}
    # training steps, then the chunk's evaluation in its three parts, then writing (engine.events.Phase)
    phases = [(e.phase, e.done) for e in events if isinstance(e, ev.Phase)]
    assert phases == [("evaluating", 0), ("evaluating", 1), ("evaluating", 2), ("evaluating", 3), ("writing", 0)]
    assert kinds.index("Phase") > max(k for k, name in enumerate(kinds) if name == "Progress")
    assert events[0].run_id == run.id and events[0].instances == 4 and events[0].instance_steps == 4 * TINY["steps"]
    assert events[-1].status == "completed" and events[-1].run_dir == str(outcome.run_dir)


# --- interrupted and failed runs ----------------------------------------------------------------


def two_chunks(spec):
    per_instance = get_model(spec.model).bytes_per_instance(spec.instances()[0].config)
    return 2 * per_instance  # 4 instances -> chunks of 2


def test_an_interrupted_run_keeps_its_finished_chunks(tmp_path):
    spec = tiny_spec()
    seen: list[ev.Event] = []
    outcome = run_sweep(spec, tmp_path, run_options(max_memory_bytes=two_chunks(spec)), emit=seen.append,
                        should_stop=lambda: any(isinstance(e, ev.ChunkFinished) for e in seen))
    assert outcome.status == "interrupted"
    run = Run(outcome.run_dir)
    record = run.record()
    assert record.status == "interrupted" and record.chunks == 2 and record.chunks_done == 1
    assert record.instances_done == 2
    _, rows = run.results()
    assert [r["instance"] for r in rows] == [0, 1]
    assert {r["instance"] for r in run.table("curves")[1]} == {0, 1}
    assert not (run.path / "parts").exists()


def test_a_failed_run_records_the_error(tmp_path, monkeypatch):
    real = executor_base.train_chunk

    def flaky(chunk, *args, **kwargs):
        if chunk.index == 1:
            raise RuntimeError("boom")
        return real(chunk, *args, **kwargs)

    monkeypatch.setattr(executor_base, "train_chunk", flaky)
    spec = tiny_spec()
    outcome = run_sweep(spec, tmp_path, run_options(max_memory_bytes=two_chunks(spec)))
    assert outcome.status == "failed" and outcome.error == "RuntimeError: boom"
    run = Run(outcome.run_dir)
    assert run.record().status == "failed" and run.record().error == "RuntimeError: boom"
    assert "Traceback" in (run.path / "error.log").read_text()
    assert [r["instance"] for r in run.results()[1]] == [0, 1]


def test_bad_device_fails_before_anything_is_written(tmp_path):
    with pytest.raises(SpecError, match="cuda:99"):  # a valid name, but no machine has a hundredth GPU
        run_sweep(tiny_spec(), tmp_path / "runs", run_options(device="cuda:99"))
    assert not (tmp_path / "runs").exists()


def test_runs_directory_that_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(SpecError, match="cannot be created"):
        Run.create(tmp_path / "file" / "runs", tiny_spec(), "cpu", 1)


# --- live runs, listing and finding -------------------------------------------------------------


def test_a_live_run_serves_tables_from_its_parts(tmp_path):
    run = Run.create(tmp_path, tiny_spec(), "cpu", chunks=2)
    assert run.record().status == "running"
    with pytest.raises(RunDataError, match="has no results table yet"):
        run.table_text("results")
    with pytest.raises(RunDataError, match="has no curves table yet"):
        run.table_text("curves")
    run.write_part(0, "instance,step,loss\n0,1,0.5\n", "instance,feature\n0,0\n", {"W": torch.zeros(1, 5, 2)})
    run.write_part(1, "instance,step,loss\n1,1,0.25\n", "instance,feature\n1,0\n", {"W": torch.ones(1, 5, 2)})
    assert run.table_text("curves") == "instance,step,loss\n0,1,0.5\n1,1,0.25\n"
    run.gather_parts()
    assert (run.path / "curves.csv").read_text() == "instance,step,loss\n0,1,0.5\n1,1,0.25\n"
    assert (run.path / "features.csv").read_text() == "instance,feature\n0,0\n1,0\n"
    assert not (run.path / "parts").exists()


def test_a_damaged_run_json_reads_as_damaged(tmp_path):
    run = Run.create(tmp_path, tiny_spec(), "cpu", chunks=1)
    (run.path / "run.json").write_text("{not json")
    record = run.record()
    assert record.status == "damaged" and "run.json" in record.error and record.damage == record.error


def test_run_status_is_one_of_six(tmp_path):
    import subprocess
    import sys

    run = Run.create(tmp_path, tiny_spec(), "cpu", chunks=1)
    assert run.status() == "running"  # this process wrote it and still runs
    for word in ("interrupted", "failed"):
        run.update_record(status=word)
        assert run.status() == word
    run.update_record(status="completed")  # but no results.csv rows: the word alone is not trusted
    assert run.status() == "damaged" and "results.csv: 0 rows" in run.problem()
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run.update_record(status="running", pid=int(gone.stdout))
    assert run.status() == "killed"
    run.update_record(host="another-host")
    assert run.status() == "running"  # not ours to check: taken at its word
    run.update_record(status="killed")
    assert run.status() == "damaged"  # never written: not a word run.json holds
    (run.path / "run.json").write_text("{not json")
    assert run.status() == "damaged"
    assert STATUSES == ("completed", "running", "interrupted", "failed", "killed", "damaged")
    assert run.status() is Status.DAMAGED and json.dumps({"s": Status.KILLED}) == '{"s": "killed"}'


def test_every_status_has_one_exit_code_and_one_colour_and_the_live_view_keeps_its_own_states():
    from toysup_tui.render.status import LiveState, status_style

    assert [exit_code(s) for s in Status] == [0, 1, 130, 1, 1, 1]  # the CLI help: 0 ok, 1 failed, 130 interrupted
    assert exit_code("nonsense") == 1 and Status.parse("nonsense") is Status.DAMAGED
    assert all(status_style(s) for s in [*Status, *LiveState])
    assert not {s.value for s in LiveState} & set(STATUSES)  # a view's transient state is never a run's status
    assert [s for s in Status if s.resumable] == [Status.INTERRUPTED, Status.FAILED, Status.KILLED]


def test_run_json_is_one_typed_record_and_old_ones_still_open(finished, tmp_path):
    """run.json says its schema; one without it (every run before the field) is version 1 and opens as it is;
    fields this toysup does not know survive a rewrite; a newer schema is damage in one line, never a guess."""
    _, _, run, _ = finished
    written = json.loads((run.path / "run.json").read_text())
    assert written["schema"] == SCHEMA == 1 and "heartbeat" not in written and "damage" not in written
    old = Run(tmp_path / run.id)
    old.path.mkdir()
    for name in ("config.toml", "results.csv", "curves.csv", "features.csv", "manifest.json"):
        (old.path / name).write_bytes((run.path / name).read_bytes())
    (old.path / "weights").mkdir()
    for path in (run.path / "weights").iterdir():
        (old.path / "weights" / path.name).write_bytes(path.read_bytes())
    before = {k: v for k, v in written.items() if k != "schema"}
    (old.path / "run.json").write_text(json.dumps({**before, "from_a_newer_toysup": {"x": [1]}}))
    record = old.record()
    assert record.schema == 1 and record.instances_done == 4 and record.versions == written["versions"]
    assert old.status() == "completed" and old.problem() == ""
    old.update_record(error="")
    assert json.loads((old.path / "run.json").read_text())["from_a_newer_toysup"] == {"x": [1]}
    (old.path / "run.json").write_text(json.dumps({**written, "schema": 2}))
    assert old.status() == "damaged"
    assert old.problem() == "run.json: schema 2 is newer than this toysup reads (1): upgrade toysup to open it"
    with pytest.raises(TypeError):  # a misspelt field is a bug, not a new key in the file
        run.record().with_changes(instance_done=3)


def test_export_writes_the_table_with_a_run_id_column(finished, tmp_path):
    _, _, run, _ = finished
    target = tmp_path / "out.csv"
    assert export(run, target, "features") == 4 * 5
    lines = target.read_text().splitlines()
    stored = (run.path / "features.csv").read_text().splitlines()[0].split(",")
    swept = [a.name for a in run.spec().axes]
    assert lines[0].split(",") == ["run_id", "instance", "point", "seed", *swept, *stored[1:]]  # joined (export_tables)
    assert all(line.startswith(run.id + ",") for line in lines[1:])
    with pytest.raises(UserError, match="is a directory"):
        export(run, tmp_path)
    with pytest.raises(UserError, match=r"folder .*missing does not exist"):
        export(run, tmp_path / "missing" / "out.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_a_truncated_table_is_damaged_data(finished, tmp_path):
    import shutil

    _, _, run, _ = finished
    copy = Run(Path(shutil.copytree(run.path, tmp_path / run.id)))
    text = (copy.path / "results.csv").read_text()
    (copy.path / "results.csv").write_text(text[:-20])  # cut inside the last row
    with pytest.raises(RunDataError, match=r"results\.csv line 5 has"):
        copy.results()
    (copy.path / "weights" / "chunk-0000.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(RunDataError, match=r"chunk-0000\.safetensors of run .* cannot be read"):
        copy.instance_weights(0)
    (copy.path / "config.toml").write_text("model = 3\n")
    with pytest.raises(RunDataError, match="is damaged: unknown model 3"):
        copy.spec()


def test_reading_a_run_back_does_not_resolve_its_config_as_a_preset(tmp_path, monkeypatch):
    """config.toml is read back as the spec it was written from: no preset resolution, no per-point checks (a
    newer toysup's tighter rule or a parameter it dropped must not lock an old run out); a hostile sweep is
    still refused by its size before any axis is expanded."""
    from toysup.engine import spec as spec_module

    spec = make_spec(TINY, {"feature_probability": "log:0.01:1:5"})
    run = Run.create(tmp_path, spec, "cpu", chunks=1)

    def refuse(*args, **kwargs):
        raise AssertionError("the preset grammar ran")

    monkeypatch.setattr(spec_module, "resolve", refuse)
    monkeypatch.setattr(spec_module, "_check_combinations", refuse)
    assert run.spec() == spec and run.spec().points() == spec.points()
    text = (run.path / "config.toml").read_text()
    (run.path / "config.toml").write_text(text.replace("[params]\n", "[params]\nretired_option = 3\n"))
    assert run.spec() == spec
    (run.path / "config.toml").write_text(text.replace('"log:0.01:1:5"', '"lin:0:1:1000000000"'))
    with pytest.raises(RunDataError, match="is damaged: the sweep has more than"):
        run.spec()


def test_list_runs_newest_first_even_within_one_second(tmp_path):
    created = []
    for name in ("zzz", "mmm", "aaa", "aaa"):
        created.append(Run.create(tmp_path, tiny_spec(name), "cpu", 1))
        time.sleep(0.02)  # apart by more than a coarse file-system clock tick, still within about a second
    assert [r.id for r in list_runs(tmp_path)] == [r.id for r in reversed(created)]
    assert list_runs(tmp_path / "missing") == []


def test_find_run(tmp_path):
    with pytest.raises(SpecError, match="holds no runs"):
        find_run(tmp_path, "latest")
    first = Run.create(tmp_path, tiny_spec("alpha"), "cpu", 1)
    second = Run.create(tmp_path, tiny_spec("beta"), "cpu", 1)
    (tmp_path / "not-a-run").mkdir()
    assert find_run(tmp_path, "latest").id == second.id
    assert find_run(tmp_path, first.id).id == first.id
    assert find_run(tmp_path, "alpha").id == first.id
    assert find_run(tmp_path, str(second.path)).id == second.id
    with pytest.raises(SpecError, match="is ambiguous"):
        find_run(tmp_path, first.id[:8])
    with pytest.raises(SpecError, match="no run 'gamma'"):
        find_run(tmp_path, "gamma")
    with pytest.raises(SpecError, match="no run 'not-a-run'"):
        find_run(tmp_path, "not-a-run")


# --- the documented run format -----------------------------------------------------------------------

RUN_FOLDER_PAGE = Path(__file__).resolve().parent.parent / "docs" / "reference" / "run-folder.md"


def documented_files(text: str) -> dict[str, str]:
    """The file list that starts with ``runs/<YYYYmmdd-HHMMSS>-<name>/``: each file and what it holds."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "runs/<YYYYmmdd-HHMMSS>-<name>/")
    files = {}
    for line in lines[start + 1:]:
        if not line.strip() or line.strip().startswith("`"):
            break
        name, description = line.split(maxsplit=1)
        files[name] = description
    return files


def documented_columns(description: str, expand: dict[str, list[str]]) -> list[str]:
    return [name for cell in description.split(", ") for name in expand.get(cell, [cell])]


def test_the_docs_and_the_store_describe_the_run_folder_alike():
    section = RUN_FOLDER_PAGE.read_text(encoding="utf-8")
    assert documented_files(section) == documented_files(layout.__doc__ or "")
    assert list(documented_files(section)) == [
        "config.toml", "run.json", "results.csv", "curves.csv", "features.csv", "weights/chunk-NNNN.safetensors",
        "checkpoints/chunk-NNNN.safetensors", "error.log", "manifest.json", "events.jsonl", "heartbeat.json", "lock",
        "fence", "stop", "output.log"]


@pytest.mark.parametrize("model, params, sweep", [
    ("relu_output", {**TINY, "snapshots": 2}, {"feature_probability": [1.0, 0.1]}),
    ("incidental", {"n_features": 4, "n_hidden": 4, "steps": 30, "batch_size": 16, "seeds": 1, "snapshots": 2},
     {"l1": [0.0, 0.01], "lr": [0.001, 0.01]}),
])
def test_a_run_writes_the_documented_columns_and_tensors(model, params, sweep, tmp_path):
    spec = make_spec(params, sweep, model=model)
    outcome = run_sweep(spec, tmp_path, run_options())
    assert outcome.status == "completed", outcome.error
    declared = get_model(model)
    expand = {"<swept parameters>": list(sweep), "<metrics>": [c.name for c in declared.columns],
              "<curve columns>": [c.name for c in declared.curve_columns],
              "<feature columns>": [c.name for c in declared.feature_columns]}
    files = documented_files(layout.__doc__ or "")
    for table in ("results", "curves", "features"):
        header = (outcome.run_dir / f"{table}.csv").read_text().splitlines()[0].split(",")
        assert header == documented_columns(files[f"{table}.csv"], expand), table
    assert files["weights/chunk-NNNN.safetensors"] == \
        "instance, <weights>; with snapshots=N also <weight>.snapshots, snapshot_steps"
    tensors = load_file(str(outcome.run_dir / "weights" / "chunk-0000.safetensors"))
    weights = {k for k in tensors if k not in ("instance", "snapshot_steps") and not k.endswith(".snapshots")}
    assert "instance" in tensors and "snapshot_steps" in tensors and weights
    assert set(tensors) == {"instance", "snapshot_steps", *weights, *(f"{w}.snapshots" for w in weights)}
