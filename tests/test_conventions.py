"""The command line's conventions: --version, `toysup` alone, shell completion through Typer's own mechanism
(preset names, run ids, parameter names), `runs --json` and `--status`, flags shown as flags."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

from helpers import assert_user_error, invoke, make_fixture_run, run_toysup


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"toysup {version('toysup')}\n"


def test_toysup_alone_shows_the_help_and_succeeds() -> None:
    done = run_toysup()
    assert done.returncode == 0, done.stderr
    assert "Usage: toysup" in done.stdout and "compare" in done.stdout and "plot" in done.stdout
    assert done.stderr == ""


def test_help_shows_flags_as_flags_and_wraps_command_lines() -> None:
    run_help = invoke("run", "-h", env={"COLUMNS": "160"}).stdout
    quiet = next(line for line in run_help.splitlines() if "--quiet" in line)
    assert "<bool>" not in run_help and "No progress output" in quiet
    top = invoke("-h", env={"COLUMNS": "200"}).stdout
    assert "until it ends; exit with its status" in top  # the docstring's own line break is gone


def complete(args: str, tmp_path: Path, shell: str = "bash") -> list[str]:
    """What Typer's completion offers for the last word of ``toysup ARGS`` (a real process, as the shell runs it)."""
    words = f"toysup {args}"
    env = {"_TOYSUP_COMPLETE": f"complete_{shell}", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
           "_TYPER_COMPLETE_ARGS": words, "TOYSUP_CONFIG_DIR": str(tmp_path / "config")}
    done = run_toysup(env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_completion_offers_presets_run_ids_and_parameters(tmp_path: Path) -> None:
    (tmp_path / "config" / "presets").mkdir(parents=True)
    (tmp_path / "config" / "presets" / "tms-mine.toml").write_text('model = "relu_output"\n')
    assert complete("run tms-ph", tmp_path) == ["tms-phase", "tms-phase-3in2", "tms-phase-adaptive"]
    assert "tms-mine" in complete("run tms-", tmp_path)
    run = make_fixture_run(tmp_path / "runs")
    assert complete("report --runs-dir runs 2024", tmp_path) == [run.id]
    (tmp_path / "runs" / "2024forged\nrm -rf").mkdir()  # a control character in a folder name: not offered
    (tmp_path / "runs" / "2024link").symlink_to(run.path)  # nor a link
    assert complete("report --runs-dir runs 2024", tmp_path) == [run.id]
    assert complete("compare --runs-dir runs l", tmp_path) == ["latest"]
    assert complete("run tms-phase -s importance_d", tmp_path) == ["importance_decay="]
    assert complete("run sae-recovery --sweep dict", tmp_path) == ["dict_ratio="]


def test_install_completion_writes_the_shells_script(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    done = run_toysup("--install-completion", "bash", env={"HOME": str(home), "SHELL": "/bin/bash"})
    assert done.returncode == 0, done.stderr
    script = home / ".bash_completions" / "toysup.sh"
    assert "_TOYSUP_COMPLETE" in script.read_text()
    assert str(script) in (home / ".bashrc").read_text()


def test_runs_json_and_status_filter(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    done = make_fixture_run(root)
    stopped = make_fixture_run(root, "20240103-030405-fixture")
    stopped.update_record(status="interrupted")
    result = invoke("runs", "--runs-dir", root, "--json")
    assert result.exit_code == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [(r["run_id"], r["status"]) for r in listed] == [(stopped.id, "interrupted"), (done.id, "completed")]
    assert listed[1]["instances"] == 12 and listed[1]["model"] == "relu_output" and listed[1]["problem"] is None
    only = json.loads(invoke("runs", "--runs-dir", root, "--json", "--status", "interrupted,failed").stdout)
    assert [r["run_id"] for r in only] == [stopped.id]
    table = invoke("runs", "--runs-dir", root, "--status", "completed", env={"COLUMNS": "200"}).stdout
    assert done.id in table and stopped.id not in table
    assert json.loads(invoke("runs", "--runs-dir", tmp_path / "none", "--json").stdout) == []
    bad = invoke("runs", "--runs-dir", root, "--status", "done")
    assert_user_error(bad.exit_code, bad.stderr, bad.stdout, "--status 'done'", "completed, running")
