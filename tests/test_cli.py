"""The headless command line end to end on a tiny preset (toysup_tui/cli.py).

Most calls go through Typer's CliRunner; a few run the real ``toysup`` entry point in a subprocess.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from toysup.engine.run_format import result_columns
from toysup.engine.spec import bundled_presets, load

from helpers import TINY_PRESET, assert_user_error, folder_state, invoke, run_toysup

RESULT_COLUMNS = ["instance", "seed", "point", "feature_probability", "loss", "features_represented",
                  "dims_per_feature", "orientation_angle_deg", "axis_alignment", "polysemantic_neurons",
                  "monosemantic_neurons", "max_feature_norm", "collapsed"]
FAST = ["-s", "steps=30", "--device", "cpu"]  # for runs whose numbers the test does not read


def csv_rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def only_run(root: Path) -> Path:
    (run_dir,) = [p for p in root.iterdir() if p.is_dir()]
    return run_dir


def preset_copy(tmp_path: Path, name: str) -> Path:
    """The tiny preset under another name."""
    path = tmp_path / f"{name}.toml"
    path.write_text(TINY_PRESET.read_text().replace('name = "tiny"', f'name = "{name}"'))
    return path


# --- toysup run ----------------------------------------------------------------------------------


def test_run_writes_a_complete_run_folder(tiny_run):
    names = sorted(p.name for p in tiny_run.iterdir())
    assert names == ["config.toml", "curves.csv", "events.jsonl", "features.csv", "fence", "heartbeat.json", "lock",
                     "manifest.json", "results.csv", "run.json", "weights"]
    assert tiny_run.name.endswith("-tiny")
    weights = load_file(str(tiny_run / "weights" / "chunk-0000.safetensors"))
    assert weights["W"].shape == (4, 5, 2) and weights["instance"].tolist() == [0, 1, 2, 3]


def test_results_csv_has_the_documented_columns(tiny_run):
    rows = csv_rows((tiny_run / "results.csv").read_text())
    header = rows[0]
    assert header[:len(RESULT_COLUMNS)] == RESULT_COLUMNS
    spec = load(str(TINY_PRESET))
    assert header == result_columns(spec)
    assert [r[:4] for r in rows[1:]] == [["0", "0", "0", "1"], ["1", "1", "0", "1"], ["2", "0", "1", "0.1"],
                                         ["3", "1", "1", "0.1"]]


def test_curves_and_features_csv(tiny_run):
    curves = csv_rows((tiny_run / "curves.csv").read_text())
    assert curves[0][:3] == ["instance", "step", "loss"]
    assert {r[0] for r in curves[1:]} == {"0", "1", "2", "3"}
    assert max(int(r[1]) for r in curves[1:]) == 200
    features = csv_rows((tiny_run / "features.csv").read_text())
    assert features[0][:3] == ["instance", "feature", "norm"]
    assert len(features) == 1 + 4 * 5


def test_run_json_records_status_device_versions_and_speed(tiny_run):
    info = json.loads((tiny_run / "run.json").read_text())
    assert info["status"] == "completed"
    assert info["device"] == "cpu"
    assert info["versions"]["torch"] == torch.__version__ and info["versions"]["toysup"]
    assert info["versions"]["python"]
    assert info["wall_time_s"] > 0
    assert info["instance_steps_per_s"] > 0
    assert info["instances"] == info["instances_done"] == 4


def test_config_toml_repeats_the_run_identically(tiny_run, tmp_path):
    # A real subprocess: the installed entry point, run on the run's own config.toml.
    again = run_toysup("run", tiny_run / "config.toml", "--runs-dir", tmp_path, "--device", "cpu", "--quiet")
    assert again.returncode == 0, again.stderr
    repeat = only_run(tmp_path)
    assert again.stdout.strip() == str(repeat)
    for table in ("results.csv", "curves.csv", "features.csv"):
        assert (repeat / table).read_text() == (tiny_run / table).read_text(), table
    first = load_file(str(tiny_run / "weights" / "chunk-0000.safetensors"))
    second = load_file(str(repeat / "weights" / "chunk-0000.safetensors"))
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert (repeat / "config.toml").read_text() == (tiny_run / "config.toml").read_text()


def test_run_with_sweep_seeds_and_set_and_json(runs_dir):
    result = invoke("run", TINY_PRESET, "--sweep", "lr=0.001,0.01", "--seeds", "3", "-s", "feature_probability=0.5",
                    "-s", "steps=40", "--json", "--runs-dir", runs_dir, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "completed" and summary["instances"] == summary["instances_done"] == 6
    run_dir = only_run(runs_dir)
    assert summary["run_dir"] == str(run_dir) and summary["id"] == run_dir.name
    assert [p["lr"] for p in summary["points"]] == [0.001, 0.01]
    assert all(p["seeds"] == 3 for p in summary["points"])
    assert set(summary["points"][0]["loss"]) == {"median", "q25", "q75"}
    rows = csv_rows((run_dir / "results.csv").read_text())
    assert rows[0][:4] == ["instance", "seed", "point", "lr"]  # -s removed the feature_probability axis
    assert [tuple(r[1:4]) for r in rows[1:]] == [(s, p, lr) for p, lr in (("0", "0.001"), ("1", "0.01"))
                                                  for s in ("0", "1", "2")]
    config = (run_dir / "config.toml").read_text()
    assert "feature_probability = 0.5" in config and "steps = 40" in config


def test_default_run_prints_a_summary(runs_dir):
    result = invoke("run", TINY_PRESET, *FAST, "--runs-dir", runs_dir)
    assert result.exit_code == 0, result.stderr
    run_dir = only_run(runs_dir)
    assert f"run {run_dir.name}" in result.stdout and "completed" in result.stdout
    assert "median over seeds" in result.stdout


def test_dry_run_writes_nothing(runs_dir):
    result = invoke("run", TINY_PRESET, "--dry-run", "--runs-dir", runs_dir)
    assert result.exit_code == 0, result.stderr
    assert "2 point(s) x 2 seed(s) = 4 instances" in result.stdout
    assert "sweep feature_probability (list): 1, 0.1" in result.stdout
    assert not runs_dir.exists()


def test_dry_run_json(runs_dir):
    result = invoke("run", TINY_PRESET, "--dry-run", "--json", "--sweep", "steps=10,20", "--runs-dir", runs_dir)
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["instances"] == 8 and plan["points"] == 4 and plan["seeds"] == 2
    assert plan["axes"] == {"feature_probability": [1.0, 0.1], "steps": [10, 20]}
    assert plan["instance_steps"] == 4 * 10 + 4 * 20
    assert sorted(c["steps"] for c in plan["chunks"]) == [10, 20]
    assert not runs_dir.exists()


def test_quiet_prints_only_the_run_folder(runs_dir):
    result = invoke("run", TINY_PRESET, *FAST, "--quiet", "--runs-dir", runs_dir)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{only_run(runs_dir)}\n"
    assert result.stderr == ""


def test_runs_dir_from_the_environment_and_the_option(tmp_path):
    from_env, from_option = tmp_path / "env-runs", tmp_path / "option-runs"
    result = invoke("run", TINY_PRESET, *FAST, "-q", env={"TOYSUP_RUNS_DIR": str(from_env)})
    assert result.exit_code == 0, result.stderr
    assert only_run(from_env)
    result = invoke("run", TINY_PRESET, *FAST, "-q", "--runs-dir", from_option, env={"TOYSUP_RUNS_DIR": str(from_env)})
    assert result.exit_code == 0, result.stderr
    assert only_run(from_option)
    assert len(list(from_env.iterdir())) == 1
    listed = invoke("runs", env={"TOYSUP_RUNS_DIR": str(from_env)})
    assert only_run(from_env).name in listed.stdout


# --- toysup runs, presets, report, export -----------------------------------------------------------


def test_runs_lists_newest_first(tmp_path, runs_dir):
    for name in ("zeta", "alpha", "mid"):
        result = invoke("run", preset_copy(tmp_path, name), *FAST, "-q", "--runs-dir", runs_dir)
        assert result.exit_code == 0, result.stderr
    listed = invoke("runs", "--runs-dir", runs_dir)
    assert listed.exit_code == 0
    ids = {p.name.rsplit("-", 1)[1]: p.name for p in runs_dir.iterdir()}
    positions = [listed.stdout.index(ids[name]) for name in ("mid", "alpha", "zeta")]
    assert positions == sorted(positions), listed.stdout


def test_runs_with_no_runs(runs_dir):
    result = invoke("runs", "--runs-dir", runs_dir)
    assert result.exit_code == 0
    assert "no runs" in result.stdout
    assert not runs_dir.exists()


def test_runs_watch_prints_the_table_again_only_when_it_changes(tmp_path, tiny_run, monkeypatch):
    """Piped, `runs --watch` prints the table once, then again only after a change (here a second run
    appearing between refreshes); Ctrl-C between refreshes ends it with exit code 0."""
    import time

    root = tmp_path / "runs"
    shutil.copytree(tiny_run, root / tiny_run.name)
    second = "20991231-235959-later"
    sleeps = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            shutil.copytree(tiny_run, root / second)
        if len(sleeps) == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(time, "sleep", sleep)
    result = invoke("runs", "--watch", "--interval", "0.5", "--runs-dir", root, env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.stderr
    assert sleeps == [0.5] * 4
    assert result.stdout.count(tiny_run.name[:15]) == 2  # printed on the first refresh and after the change
    assert result.stdout.count(second[:15]) == 1
    assert result.stdout.index(second[:15]) > result.stdout.index(tiny_run.name[:15])


def test_runs_watch_in_a_real_process_stops_cleanly_on_ctrl_c(tmp_path, tiny_run):
    """The real command, piped: the table comes at once, and SIGINT ends the watch with exit code 0 and no
    traceback."""
    import os
    import signal
    import subprocess

    from helpers import toysup_command

    root = tmp_path / "runs"
    shutil.copytree(tiny_run, root / tiny_run.name)
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    with subprocess.Popen([*toysup_command(), "runs", "--watch", "--interval", "0.1", "--runs-dir", str(root)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        shown = [proc.stdout.readline() for _ in range(3)]  # header, rule, the run's row: the table was printed
        proc.send_signal(signal.SIGINT)
        rest, stderr = proc.stdout.read(), proc.stderr.read()
        proc.wait(timeout=30)
    stdout = "".join(shown) + rest
    assert shown[0].split()[:1] == ["run"], stdout
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert tiny_run.name[:15] in stdout and stdout.count(tiny_run.name[:15]) == 1


def test_runs_watch_with_json_is_a_usage_error(tmp_path):
    result = invoke("runs", "--watch", "--json", "--runs-dir", tmp_path)
    assert_user_error(result.exit_code, result.stderr, result.stdout, "--json", "--watch")


def test_params_of_a_preset_shows_its_model_with_the_presets_own_values():
    """`params tms-intro` (a preset, not a model): relu_output's parameters, with the preset's fixed values,
    its sweep, and "default" where it keeps the model's default."""
    result = invoke("params", "tms-intro", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    assert "preset tms-intro (relu_output" in result.stdout
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:5]]
            for line in result.stdout.splitlines() if line.startswith("│") and line.split("│")[1].strip()}
    assert rows["importance_decay"] == ["1.0", "0.9", "a number in (0, 10]"]
    assert rows["steps"][:2] == ["5000", "8000"]
    assert rows["feature_probability"][1] == "sweep log:1:0.01:7"
    assert rows["dropout"][1] == "default"
    model = invoke("params", "relu_output", env={"COLUMNS": "200"})
    assert model.exit_code == 0 and "preset" not in model.stdout.splitlines()[2]  # a model: no preset column


def test_params_of_neither_a_model_nor_a_preset_names_both_lists():
    result = invoke("params", "tms-intr")
    message = assert_user_error(result.exit_code, result.stderr, result.stdout, "unknown model or preset",
                                "relu_output", "tms-intro")
    assert "sae_hidden" in message and "dropout-basis" in message


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "piped"])
def test_hints_never_break_inside_a_run_id_at_80_columns(tmp_path, monkeypatch, terminal):
    """`watch` and `report` of an interrupted run with a long id, at 80 columns: on a terminal, lines wrap
    only at spaces (the terminal would otherwise break them at its edge, inside the id), so
    `toysup resume ID` keeps its id whole on one line; piped, each hint is one unbroken line."""
    from rich.cells import cell_len
    from rich.console import Console

    from toysup_tui import cli

    from helpers import make_fixture_run

    run_id = "20261206-195939-dropout-basis-with-a-longer-name"
    run = make_fixture_run(tmp_path / "runs", run_id=run_id)
    run.update_record(status="interrupted", instances_done=3, instances=10)
    for name in ("out", "err"):
        console = Console(width=80, force_terminal=terminal, color_system=None, highlight=False,
                          stderr=name == "err")
        monkeypatch.setattr(cli, name, console)
    result = invoke("watch", run_id, "--runs-dir", tmp_path / "runs")
    assert result.exit_code == 130, result.stderr
    report = invoke("report", run_id, "--runs-dir", tmp_path / "runs")
    assert report.exit_code == 0, report.stderr
    for text in (result.stderr, report.stdout):
        lines = text.splitlines()
        (hint,) = [line for line in lines if "toysup resume" in line]
        assert f"toysup resume {run_id}" in hint, text
        if terminal:  # only a single word longer than the terminal (the run's folder) may overflow it
            assert all(cell_len(line) <= 80 or " " not in line.strip() for line in lines), text
            assert cell_len(hint) <= 80
    assert terminal or cell_len(hint) > 80  # piped: never wrapped at all


def test_a_finished_run_tells_its_end_and_folder_once(tmp_path, runs_dir):
    """Piped, a tiny run prints its completion (status, rate) and its folder once each: the progress sink
    leaves the end to the summary."""
    result = invoke("run", TINY_PRESET, *FAST, "--runs-dir", runs_dir, env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.stderr
    run = only_run(runs_dir)
    lines = result.stdout.splitlines()
    assert [line for line in lines if "completed" in line] == [
        next(line for line in lines if line.startswith(f"run {run.name} completed: 4/4 instances"))]
    assert sum(str(run) in line for line in lines) == 1, result.stdout


def test_an_interrupted_run_tells_its_end_once_with_the_sessions_rate(tmp_path, runs_dir, monkeypatch):
    """Ctrl-C in the middle of the only chunk (no chunk finished, so run.json's rate is 0): one
    "interrupted" line on stdout with the rate the session measured, not 0; the folder once on stdout and
    once in the resume command; exit 130."""
    import re
    import signal

    from toysup.engine import events as ev
    from toysup.engine import stopping
    from toysup_tui import progress

    call = progress.ProgressSink.__call__

    def stop_at_the_first_progress(self, event):
        call(self, event)
        if isinstance(event, ev.Progress):
            stopping.handle(signal.SIGINT, None)

    monkeypatch.setattr(progress.ProgressSink, "__call__", stop_at_the_first_progress)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        result = invoke("run", TINY_PRESET, "-s", "steps=20000", "--device", "cpu", "--runs-dir", runs_dir,
                        env={"COLUMNS": "120"})
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    assert result.exit_code == 130, result.stdout + result.stderr
    run = only_run(runs_dir)
    lines = result.stdout.splitlines()
    (end,) = [line for line in lines if "interrupted" in line.replace(str(runs_dir), "")]  # (the path says it)
    rate = re.search(r"([\d,]+) instance-steps/s", end)
    assert end.startswith(f"run {run.name} interrupted: 0/4 instances") and rate, end
    assert int(rate.group(1).replace(",", "")) > 0, end
    assert sum(str(run) in line for line in lines) == 1, result.stdout
    (hint,) = result.stderr.splitlines()
    assert hint.startswith("interrupted: kept step ") and hint.endswith(f"continue with: toysup resume {run}")


def test_presets_lists_the_bundled_presets():
    result = invoke("presets")
    assert result.exit_code == 0, result.stderr
    names = list(bundled_presets())
    assert len(names) >= 4
    for name in names:
        assert name in result.stdout


def test_report_shows_the_run(tiny_run):
    result = invoke("report", tiny_run.name, "--runs-dir", tiny_run.parent)
    assert result.exit_code == 0, result.stderr
    assert tiny_run.name in result.stdout


def assert_joined_export(exported_text: str, run_dir: Path, table: str) -> None:
    """An export of a stored table: run_id, instance, point, seed and the swept parameters first (from results.csv,
    by instance), then the table's own columns with the stored cells, booleans as 1/0."""
    exported = list(csv.DictReader(io.StringIO(exported_text)))
    original = list(csv.DictReader(io.StringIO((run_dir / f"{table}.csv").read_text())))
    results = {r["instance"]: r for r in csv.DictReader(io.StringIO((run_dir / "results.csv").read_text()))}
    head = ["run_id", "instance", "point", "seed", "feature_probability"]
    header = next(csv.reader(io.StringIO(exported_text)))
    assert header == head + [c for c in original[0] if c not in head]
    assert len(exported) == len(original) and {r["run_id"] for r in exported} == {run_dir.name}
    assert not {"true", "false"} & {v for r in exported for v in r.values()}  # booleans one way: 1/0
    typed = {"true": "1", "false": "0"}
    for got, want in zip(exported, original):
        assert {k: got[k] for k in want} == {k: typed.get(v, v) for k, v in want.items()}
        assert [got[k] for k in head[2:]] == [results[got["instance"]][k] for k in head[2:]]


@pytest.mark.parametrize("table", ["results", "curves", "features"])
def test_export_to_stdout_adds_a_run_id_column(tiny_run, table):
    result = invoke("export", "latest", "--table", table, "--runs-dir", tiny_run.parent)
    assert result.exit_code == 0, result.stderr
    assert_joined_export(result.stdout, tiny_run, table)


@pytest.mark.parametrize("table", ["results", "curves", "features"])
def test_export_to_a_file(tiny_run, tmp_path, table):
    target = tmp_path / f"{table}.csv"
    result = invoke("export", tiny_run, "--table", table, "-o", target)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert f"wrote {table} of {tiny_run.name} to {target}" in result.stderr
    on_stdout = invoke("export", tiny_run, "--table", table).stdout
    assert target.read_text() == on_stdout
    assert_joined_export(target.read_text(), tiny_run, table)


def test_export_by_unique_part_of_the_id(tiny_run):
    result = invoke("export", "tiny", "--runs-dir", tiny_run.parent)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[1].startswith(f"{tiny_run.name},0,0,")


# --- user mistakes: one line, exit code 2, nothing written ----------------------------------------


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


RUN_MISTAKES = [
    pytest.param(["tms-intr"], ["unknown preset 'tms-intr'", "did you mean 'tms-intro'", "tms-sparsity"],
                 id="unknown-preset"),
    pytest.param(["tms-intr", "--dry-run"], ["unknown preset 'tms-intr'"], id="unknown-preset-dry-run"),
    pytest.param(["{tiny}", "-s", "n_featurs=3"], ["unknown parameter 'n_featurs'", "did you mean 'n_features'",
                                                    "valid:", "feature_probability"], id="unknown-parameter"),
    pytest.param(["{tiny}", "--sweep", "lrate=0.1,0.2"], ["unknown parameter 'lrate'"], id="unknown-swept-parameter"),
    pytest.param(["{tiny}", "-s", "feature_probability=0"], ["feature_probability=0 is out of range", "(0, 1]"],
                 id="probability-0"),
    pytest.param(["{tiny}", "-s", "feature_probability=1.5"], ["feature_probability=1.5 is out of range", "(0, 1]"],
                 id="probability-1.5"),
    pytest.param(["{tiny}", "-s", "dropout=1.0"], ["dropout=1 is out of range", "[0, 1)"], id="dropout-1"),
    pytest.param(["{tiny}", "-s", "lr=-0.001"], ["lr=-0.001 is out of range", "(0, 100]"], id="negative-lr"),
    pytest.param(["{tiny}", "-s", "steps=0"], ["steps=0 is out of range", "[1, 10000000]"], id="steps-0"),
    pytest.param(["{tiny}", "-s", "steps=abc"], ["steps='abc' is not valid", "an integer"], id="steps-abc"),
    pytest.param(["{tiny}", "-s", "optimizer=rmsprop"], ["one of adam, adamw, sgd"], id="bad-choice"),
    pytest.param(["{tiny}", "--seeds", "0"], ["seeds=0 is out of range"], id="seeds-0"),
    pytest.param(["{tiny}", "--sweep", "feature_probability=lin:1:2"], ["is malformed", "lin:START:STOP:NUM"],
                 id="lin-two-parts"),
    pytest.param(["{tiny}", "--sweep", "feature_probability=log:0:1:3"], ["log ranges need positive START and STOP"],
                 id="log-from-zero"),
    pytest.param(["{tiny}", "--sweep", "optimizer=adam,,sgd"], ["optimizer", "is malformed"], id="empty-list-item"),
    pytest.param(["{tiny}", "--sweep", "feature_probability=0.5,2"], ["feature_probability=2 is out of range"],
                 id="swept-value-out-of-range"),
    pytest.param(["{tiny}", "-s", "steps"], ["-s 'steps' is malformed: expected key=value"], id="set-without-equals"),
    pytest.param(["{tiny}", "--sweep", "lr"], ["--sweep 'lr' is malformed: expected key=value"],
                 id="sweep-without-equals"),
    pytest.param(["{tiny}", "--device", "tpu"], ["--device 'tpu' is not valid", "auto, cpu, cuda or cuda:N"],
                 id="unknown-device"),
    pytest.param(["{tiny}", "--max-memory", "-1"], ["--max-memory"], id="negative-memory"),
    pytest.param(["{dir}/missing.toml"], ["does not exist"], id="missing-preset-file"),
    pytest.param(["{dir}/[draft]/missing.toml"], ["[draft]/missing.toml does not exist"], id="path-with-brackets"),
    pytest.param(["{broken}"], ["broken.toml", "line 3"], id="malformed-toml"),
    pytest.param(["{unknown_key}"], ["unknown key 'stepz'", "valid keys"], id="unknown-top-level-key"),
    pytest.param(["{unknown_param}"], ["unknown parameter 'stepz'", "did you mean 'steps'"],
                 id="unknown-key-in-params"),
    pytest.param(["{both}"], ["lr is both in [params] and [sweep]"], id="params-and-sweep"),
    pytest.param(["{tiny}", "--backend", "slurm"], ["--backend 'slurm'", "one of local, ray"], id="unknown-backend"),
    pytest.param(["{tiny}", "--address", "head:6379"], ["--address is for --backend ray"], id="address-locally"),
    pytest.param(["{tiny}", "--backend", "ray", "--gpus-per-chunk", "2"], ["--gpus-per-chunk 2", "(0, 1]"],
                 id="gpus-per-chunk-over-one"),
    pytest.param(["{tiny}", "--backend", "ray", "--address", "127.0.0.1:1"], ["--address 127.0.0.1:1",
                 "no Ray cluster answers there"], id="ray-address-unreachable"),
    pytest.param(["{tiny}", "--backend", "ray", "--address", "head"], ["--address 'head' is not valid", "HOST:PORT"],
                 id="ray-address-without-port"),
    pytest.param(["{tiny}", "--backend", "ray", "--device", "cuda:1"], ["--device 'cuda:1'", "auto, cpu or cuda"],
                 id="ray-device-index"),
]


@pytest.fixture
def bad_presets(tmp_path: Path) -> dict[str, str]:
    return {
        "tiny": str(TINY_PRESET),
        "dir": str(tmp_path),
        "broken": str(write(tmp_path, "broken.toml", 'name = "broken"\n[params]\nsteps = = 3\n')),
        "unknown_key": str(write(tmp_path, "unknown-key.toml", 'name = "x"\nstepz = 3\n')),
        "unknown_param": str(write(tmp_path, "unknown-param.toml", "[params]\nstepz = 3\n")),
        "both": str(write(tmp_path, "both.toml", '[params]\nlr = 0.01\n[sweep]\nlr = "0.01,0.1"\n')),
    }


@pytest.mark.parametrize("args, fragments", RUN_MISTAKES)
def test_run_mistakes_are_one_clear_line(args, fragments, bad_presets, runs_dir):
    args = [a.format(**bad_presets) for a in args]
    result = invoke("run", *args, "--runs-dir", runs_dir)
    assert_user_error(result.exit_code, result.stderr, result.stdout, *fragments)
    assert result.stdout == ""
    assert not runs_dir.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("extra", [[], ["--dry-run"]])
def test_cuda_without_cuda_is_one_clear_line(runs_dir, extra):
    result = invoke("run", TINY_PRESET, "--device", "cuda", *extra, "--runs-dir", runs_dir)
    assert_user_error(result.exit_code, result.stderr, result.stdout, "--device cuda", "CUDA is not available",
                      "--device cpu or auto")
    assert not runs_dir.exists()


def test_a_mistake_in_a_real_subprocess(runs_dir):
    done = run_toysup("run", "tms-intr", "--runs-dir", runs_dir)
    assert_user_error(done.returncode, done.stderr, done.stdout, "unknown preset 'tms-intr'",
                      "did you mean 'tms-intro'")
    assert not runs_dir.exists()


@pytest.fixture
def copied_run(tiny_run, tmp_path) -> Path:
    """A runs directory holding a copy of the tiny run, to check that mistakes leave it alone."""
    root = tmp_path / "runs"
    shutil.copytree(tiny_run, root / tiny_run.name)
    return root


STORE_MISTAKES = [
    pytest.param(["export", "latest", "--table", "bogus"], ["--table 'bogus' is not valid",
                                                            "results, curves or features"], id="bad-table"),
    pytest.param(["export", "nosuchrun"], ["no run 'nosuchrun'", "latest"], id="export-unknown-run"),
    pytest.param(["report", "nosuchrun"], ["no run 'nosuchrun'", "latest"], id="report-unknown-run"),
    pytest.param(["export", "latest", "-o", "{tmp}/missing/out.csv"], ["does not exist"], id="export-missing-folder"),
    pytest.param(["export", "latest", "-o", "{tmp}"], ["is a directory"], id="export-to-a-directory"),
]


@pytest.mark.parametrize("args, fragments", STORE_MISTAKES)
def test_report_and_export_mistakes_are_one_clear_line(args, fragments, copied_run, tmp_path):
    before = folder_state(copied_run)
    args = [a.format(tmp=tmp_path) for a in args]
    result = invoke(*args, "--runs-dir", copied_run)
    assert_user_error(result.exit_code, result.stderr, result.stdout, *fragments)
    assert folder_state(copied_run) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


@pytest.mark.parametrize("command", ["report", "export"])
def test_report_and_export_with_no_runs(command, runs_dir):
    result = invoke(command, "latest", "--runs-dir", runs_dir)
    assert_user_error(result.exit_code, result.stderr, result.stdout, "holds no runs", "TOYSUP_RUNS_DIR")
    assert not runs_dir.exists()


# --- tables that fit the terminal: runs and run --dry-run at 80 and 120 columns ------------------------------

HOSTILE_NAME = "[bold]名前[/] " + "an-extremely-long-preset-name-" * 5  # markup, double-width, no room


def _hostile_runs(root: Path) -> dict[str, str]:
    """A completed run, and an interrupted one with a long id and a hostile name: id -> its progress text."""
    from helpers import make_fixture_run

    done = make_fixture_run(root)
    long_id = "20240103-030405-" + "an-extremely-long-preset-name-" * 4 + "x"
    cut = make_fixture_run(root, run_id=long_id)
    cut.update_record(name=HOSTILE_NAME, status="interrupted", instances_done=3, instances=10)
    return {done.id: str(done.record().instances), long_id: "3/10"}


@pytest.mark.parametrize("width", [80, 120])
def test_runs_fits_the_terminal_and_keeps_id_status_and_progress(tmp_path, width):
    """`toysup runs` at 80 and 120 columns: no line wider than the terminal; the run id (at least its
    timestamp, the unique part report accepts), status and progress of every run are there, whole."""
    from rich.cells import cell_len

    runs = _hostile_runs(tmp_path / "runs")
    done = run_toysup("runs", "--runs-dir", tmp_path / "runs", env={"COLUMNS": str(width)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert all(cell_len(line) <= width for line in lines), "\n".join(lines)
    header = lines[0].split()
    assert header[:1] == ["run"] and "status" in header and ("instances" in header or "inst." in header), lines[0]
    for run_id, progress in runs.items():
        (row,) = [line for line in lines if line.startswith(run_id[:15])]
        assert progress in row.split(), row
        assert ("completed" if "/" not in progress else "interrupted") in row.split(), row
    fixture_row = next(line for line in lines if line.startswith("20240102"))
    assert fixture_row.split()[0] == "20240102-030405-fixture"  # a short id is never cut
    long_row = next(line for line in lines if line.startswith("20240103"))
    assert long_row.split()[0].endswith("…")  # a long one is ellipsized, not wrapped or folded mid-word
    if width >= 120:
        assert "preset" in header and "fixture" in done.stdout


@pytest.mark.parametrize("width", [80, 120])
def test_dry_run_fits_the_terminal(width):
    """`toysup run --dry-run` at 80 and 120 columns: the chunk table keeps chunk, instances, steps and
    memory, shows the structural parameters that differ between chunks as columns as room allows and
    those shared by every chunk on a wrapped line; nothing wider than the terminal."""
    from rich.cells import cell_len

    done = run_toysup("run", "tms-intro", "--dry-run", "--device", "cpu", "--sweep", "n_hidden=2,3",
                      "--sweep", "eval_batch_size=100,4096", env={"COLUMNS": str(width)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert all(cell_len(line) <= width for line in lines), "\n".join(lines)
    (head,) = [line for line in lines if line.startswith("chunk")]
    assert head.split()[:4] == ["chunk", "instances", "steps", "memory"] and "n_hidden" in head
    assert any(line.split()[-2:] == ["3", "_size"] or "eval_batch" in line for line in lines)  # header() lines
    shared = " ".join(lines[lines.index(next(line for line in lines if line.startswith("every chunk:"))):])
    assert "n_features=5" in shared and "activation=relu" in shared and "steps=" not in shared
    rows = [line.split() for line in lines if line.split()[:1] and line.split()[0].isdigit()]
    assert len(rows) == 4 and all(row[4] == "MB" for row in rows)
