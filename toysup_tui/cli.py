"""The ``toysup`` command line (Typer).

Exit codes: 0 success, 1 a run that failed, 2 a usage or input error, 130 interrupted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from engine.errors import SpecError, ToysupError
from toysup_tui.option_flags import with_run_options

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_PRESET = "tms-intro"

app = typer.Typer(
    name="toysup",
    help="Sweep and visualise toy models of superposition. Exit codes: 0 ok, 1 run failed, 2 usage error, "
    "130 interrupted.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

RunsDirOption = Annotated[
    Path | None,
    typer.Option("--runs-dir", help="Where runs are stored \\[default: $TOYSUP_RUNS_DIR or ./runs]",
                 show_default=False),
]


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print one line to stderr and return the Exit to raise."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


@app.command()
def presets() -> None:
    """List the bundled presets: name, model, instances and what each shows."""
    from rich.table import Table

    from engine.spec import bundled_presets, load

    table = Table(title="Bundled presets", title_justify="left")
    table.add_column("name", style="bold cyan", no_wrap=True)
    table.add_column("model")
    table.add_column("instances", justify="right")
    table.add_column("description / expected outcome")
    for name in bundled_presets():
        spec = load(name)
        table.add_row(name, spec.model, str(spec.n_instances),
                      f"{spec.description}\n[dim]expect: {spec.expected}[/]")
    out.print(table)


@app.command()
@with_run_options()
def run(
    preset: Annotated[
        str, typer.Argument(help="Bundled preset name or path to a preset/config .toml")
    ] = DEFAULT_PRESET,
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Fix a parameter: key=value (repeatable)")
    ] = None,
    sweep: Annotated[
        list[str] | None,
        typer.Option("--sweep", help="Sweep a parameter: key=0.1,0.2 | key=lin:START:STOP:NUM | key=log:START:STOP:NUM"),  # noqa: E501
    ] = None,
    seeds: Annotated[int | None, typer.Option("--seeds", help="Seeds (instances) per sweep point")] = None,
    given: dict[str, str] | None = None,
    runs_dir: RunsDirOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output, only the run folder")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a machine-readable summary instead")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved sweep without training")] = False,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Train in the background, detached from this "
                                         "terminal: print the run id and return at once")] = False,
) -> None:
    """Train a sweep headless and store it as a run folder."""
    from engine import store
    from engine.executors import executor_for
    from engine.options import RunOptions
    from engine.plan import plan
    from engine.runner import run_sweep
    from engine.spec import load
    from toysup_tui import progress, report

    try:
        options = RunOptions.from_dict(given or {})
        spec = load(preset, set_ or [], sweep or [], seeds)
        if dry_run:
            executor = executor_for(options)
            try:
                placement = executor.open(options.device, options.threads)
            finally:
                executor.close()
            chunks = plan(spec, placement.device, options.max_memory_bytes, budget=placement.budget,
                          slots=placement.slots)
            report.print_dry_run(out, spec, chunks, as_json, where=placement.description)
            return
        root = store.runs_dir(runs_dir)
        if detach:
            from toysup_tui.detach import start
            from toysup_tui.worker import Launch

            _detached(start(Launch(spec.to_toml(), root.resolve(), options, nice=0)), quiet, as_json)
            return
        sink = progress.make_sink(err if as_json else out, quiet or as_json)
        handle_hangups_and_terms()
        with sink:
            outcome = run_sweep(spec, root, options, emit=sink)
    except SpecError as exc:
        raise fail(str(exc)) from None
    _finish(outcome, quiet, as_json)


def _detached(run_dir: Path, quiet: bool, as_json: bool) -> None:
    """What a detached launch prints: the run and how to follow and stop it."""
    if as_json:
        sys.stdout.write(json.dumps({"run_id": run_dir.name, "run_dir": str(run_dir), "status": "running"}) + "\n")
    elif quiet:
        sys.stdout.write(f"{run_dir}\n")
    else:
        out.print(f"started {escape(run_dir.name)} in the background ({escape(str(run_dir))})\n"
                  f"follow it: toysup watch {escape(run_dir.name)} · stop it: toysup stop {escape(run_dir.name)} · "
                  "or open it in toysup tui", soft_wrap=True)


def _finish(outcome: Any, quiet: bool, as_json: bool) -> None:
    """Print a finished run's summary and leave with its exit code (0, 1 failed, 130 interrupted)."""
    from engine import store
    from toysup_tui import report

    finished = store.Run(outcome.run_dir)
    if as_json:
        out.print_json(json.dumps(report.json_summary(finished)))
    elif quiet:
        sys.stdout.write(f"{outcome.run_dir}\n")  # verbatim, never wrapped: scripts capture it
    else:
        report.print_summary(out, finished)
    if outcome.status == "interrupted":
        err.print(f"interrupted: finished chunks are kept in {outcome.run_dir}; continue with: "
                  f"toysup resume {outcome.run_dir}", soft_wrap=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    if outcome.status == "failed":
        raise fail(f"run failed: {outcome.error} (details in {outcome.run_dir / 'error.log'}; "
                   f"toysup resume retries what is left)", EXIT_FAILED)


def handle_hangups_and_terms() -> None:
    """SIGTERM and SIGHUP stop a foreground run as Ctrl-C does: it keeps its finished chunks, is marked
    interrupted and exits 130. A hangup means the terminal is gone: from then on output goes to /dev/null,
    since writing to a hung-up terminal fails (EIO) and would turn the clean stop into a crash."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _hung_up)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _hung_up(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # one hangup is enough; a second would cut the cleanup short
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            os.dup2(null, fd)
        os.close(null)
    raise KeyboardInterrupt


@app.command()
@with_run_options(resume=True)
def resume(
    run_ref: Annotated[str, typer.Argument(help="Run folder, run id (or unique part of it), or 'latest'")] = "latest",
    given: dict[str, str] | None = None,
    runs_dir: RunsDirOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output, only the run folder")] = False,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Resume in the background, detached from this "
                                         "terminal")] = False,
    force: Annotated[bool, typer.Option("--force", help="Break a stale lock (its process dead, or its heartbeat "
                                        "stopped) and resume")] = False,
) -> None:
    """Finish an interrupted, failed or killed run in place; ends with the same results as an uninterrupted run."""
    from engine import store
    from engine.options import resume_options
    from engine.runner import resume_sweep
    from toysup_tui import progress

    try:
        found = store.find_run(store.runs_dir(runs_dir), run_ref)
        options = resume_options(given or {}, found.info())
        if detach:
            from toysup_tui.detach import Resume, start

            _detached(start(Resume(found.path.resolve(), options, force)), quiet, False)
            return
        sink = progress.make_sink(out, quiet)
        handle_hangups_and_terms()
        with sink:
            outcome = resume_sweep(found.path, options, emit=sink, force=force)
    except SpecError as exc:
        raise fail(str(exc)) from None
    _finish(outcome, quiet, False)


@app.command()
def runs(runs_dir: RunsDirOption = None) -> None:
    """List the runs in the runs directory, newest first, with their status."""
    from engine import store
    from toysup_tui import report

    root = store.runs_dir(runs_dir)
    found = store.list_runs(root)
    if not found:
        out.print(f"no runs in {root}")
        return
    out.print(report.runs_table(found))


@app.command()
def watch(
    run_ref: Annotated[str, typer.Argument(help="Run folder, run id (or unique part of it), or 'latest'")] = "latest",
    runs_dir: RunsDirOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output: just wait for the end")] = False,
) -> None:
    """Follow a run training in another process (any terminal, the TUI, a detached run) until it ends; exit
    with its status (0 completed, 1 failed or killed, 130 interrupted). Ctrl-C stops watching, not the run."""
    from engine import store
    from engine.runlog import follow
    from toysup_tui import progress

    try:
        found = store.find_run(store.runs_dir(runs_dir), run_ref)
    except ToysupError as exc:
        raise fail(str(exc)) from None
    if found.status() == "running":
        sink = progress.make_sink(out, quiet)
        try:
            with sink:
                for event in follow(found):
                    sink(event)
        except KeyboardInterrupt:
            err.print(f"stopped watching; {found.id} goes on (toysup stop {found.id} stops it)", soft_wrap=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
    status = found.status()
    out.print(f"run {escape(found.id)} is {status}", soft_wrap=True)
    if status == "interrupted":
        err.print(f"continue with: toysup resume {found.id}", soft_wrap=True)
    raise typer.Exit({"completed": EXIT_OK, "interrupted": EXIT_INTERRUPTED}.get(status, EXIT_FAILED))


@app.command()
def stop(
    run_ref: Annotated[str, typer.Argument(help="Run folder, run id (or unique part of it), or 'latest'")] = "latest",
    runs_dir: RunsDirOption = None,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for the run to record its stop")] = 60.0,
) -> None:
    """Stop a running run gracefully: it keeps its finished chunks and is marked interrupted (resumable)."""
    import time

    from engine import store
    from engine.runlog import request_stop

    try:
        found = store.find_run(store.runs_dir(runs_dir), run_ref)
        status = found.status()
        if status != "running":
            raise SpecError(f"run {found.id} is not running (it is {status}): nothing to stop")
        if not wait >= 0:
            raise SpecError(f"--wait {wait} is not valid: expected seconds, 0 or more")
    except ToysupError as exc:
        raise fail(str(exc)) from None
    how = request_stop(found.path, found.info())
    out.print(f"stopping {escape(found.id)}: {escape(how)}", soft_wrap=True)
    deadline = time.monotonic() + wait
    while found.status() == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    status = found.status()
    if status == "running":
        raise fail(f"run {found.id} is still running after {wait:.0f} s; it stops at its next step "
                   "(toysup watch shows when)", EXIT_FAILED)
    out.print(f"run {escape(found.id)} is {status}" +
              (f"; continue with: toysup resume {escape(found.id)}" if status == "interrupted" else ""),
              soft_wrap=True)


@app.command("report")
def report_cmd(
    run_ref: Annotated[str, typer.Argument(help="Run folder, run id (or unique part of it), or 'latest'")] = "latest",
    runs_dir: RunsDirOption = None,
    x: Annotated[str | None, typer.Option("--x", help="Swept parameter for the metric charts")] = None,
    width: Annotated[int | None, typer.Option("--width", help="Chart width in columns")] = None,
    best_of: Annotated[
        int | None,
        typer.Option("--best-of", help="Keep each point's lowest-loss seed among its first K seeds (0 = all): "
                     "the papers' best-of-k selection \\[default: every seed]"),
    ] = None,
) -> None:
    """Show a run's results as tables and terminal charts."""
    from engine import store
    from toysup_tui import report

    try:
        found = store.find_run(store.runs_dir(runs_dir), run_ref)
        if best_of is not None and best_of < 0:
            raise SpecError(f"--best-of {best_of} is not valid: expected 0 (all seeds) or a positive number of seeds")
        report.print_report(out, found, x=x, width=width, best_of=best_of)
    except ToysupError as exc:
        raise fail(str(exc)) from None


@app.command()
def export(
    run_ref: Annotated[str, typer.Argument(help="Run folder, run id (or unique part of it), or 'latest'")] = "latest",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout")] = None,
    table: Annotated[str, typer.Option("--table", help="results, curves or features")] = "results",
    runs_dir: RunsDirOption = None,
) -> None:
    """Export a run's table as CSV (results rows carry run id, seed, sweep point and every swept parameter)."""
    from engine import store

    try:
        if table not in store.TABLES:
            raise SpecError(f"--table {table!r} is not valid: expected results, curves or features")
        found = store.find_run(store.runs_dir(runs_dir), run_ref)
        if output is None:
            sys.stdout.write(store.export_text(found, table))
            return
        try:
            store.export(found, output, table)
        except SpecError as exc:  # the target: a folder, in a missing folder, unwritable
            raise SpecError(f"--output {exc}") from None
    except ToysupError as exc:
        raise fail(str(exc)) from None
    err.print(f"wrote {table} of {found.id} to {escape(str(output))}", soft_wrap=True)


@app.command()
def params(
    model: Annotated[str, typer.Argument(help="Model kind (see `toysup presets` for which preset uses which)")] = "",
) -> None:
    """List a model's parameters (name, default, valid range, meaning), or the models with none given."""
    from rich.table import Table

    from engine.models import MODELS, get_model

    if not model:
        table = Table("model", "what it is", title="Models (toysup params MODEL lists a model's parameters)")
        for kind, cls in MODELS.items():
            table.add_row(kind, cls.summary)
        out.print(table)
        return
    try:
        cls = get_model(model)
    except SpecError as exc:
        raise fail(str(exc)) from None
    table = Table("name", "default", "valid", "meaning", title=f"{model}: {cls.summary}", title_justify="left")
    for p in cls.param_table().values():
        table.add_row(p.name, str(p.default), p.range_text(), p.help + (" [groups the batch]" if p.structural else ""))
    out.print(table)


@app.command()
@with_run_options("device", "threads")
def bench(
    instances: Annotated[int, typer.Option("--instances", help="Instances trained at once")] = 1000,
    n_features: Annotated[int, typer.Option("--n-features")] = 20,
    n_hidden: Annotated[int, typer.Option("--n-hidden")] = 5,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 1024,
    steps: Annotated[int, typer.Option("--steps")] = 50,
    given: dict[str, str] | None = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Time the engine against a tutorial-style trainer (einsum, autograd, torch.optim.Adam) on identical work."""
    from engine.bench import benchmark
    from engine.options import RunOptions
    from engine.plan import configure_threads, resolve_device

    try:
        options = RunOptions.from_dict(given or {})
        device, threads = options.device, options.threads
        for name, value in (("instances", instances), ("n-features", n_features), ("n-hidden", n_hidden),
                            ("batch-size", batch_size), ("steps", steps)):
            if value < 1:
                raise SpecError(f"--{name} {value} is not valid: expected a positive integer")
        used = configure_threads(threads, resolve_device(device))
        if not as_json:
            err.print(f"timing {instances} instances x {steps} steps (n={n_features}, m={n_hidden}, "
                      f"batch {batch_size}) on {device}, {used} thread(s): engine, then reference...")
        result = benchmark(instances, n_features, n_hidden, batch_size, steps, device).to_dict()
    except SpecError as exc:
        raise fail(str(exc)) from None
    if as_json:
        sys.stdout.write(json.dumps({**result, "threads": used}) + "\n")
        return
    out.print(f"device {result['device']}, {used} thread(s)")
    out.print(f"engine     {result['engine_instance_steps_per_s']:>12,.0f} instance-steps/s   final loss "
              f"{result['engine_final_loss']:.4g}")
    out.print(f"reference  {result['reference_instance_steps_per_s']:>12,.0f} instance-steps/s   final loss "
              f"{result['reference_final_loss']:.4g}")
    out.print(f"ratio      {result['ratio']:>12.2f}x   (final-loss ratio {result['loss_ratio']:.3f}: same work)")
    out.print(f"peak RSS   {result['peak_rss_mb']:>12,.0f} MB" + (
        f"   peak GPU {result['peak_gpu_mb']:,.0f} MB" if result["peak_gpu_mb"] is not None else ""))


@app.command()
@with_run_options()
def tui(
    runs_dir: RunsDirOption = None,
    given: dict[str, str] | None = None,
) -> None:
    """Open the terminal interface: presets, parameter form, live runs, results and the runs browser. The run
    options set the form's starting values for launched sweeps."""
    from engine import store
    from engine.options import RunOptions
    from toysup_tui.app import run_tui

    try:
        options = RunOptions.from_dict(given or {})  # a bad option is reported before the screen opens
    except SpecError as exc:
        raise fail(str(exc)) from None
    run_tui(store.runs_dir(runs_dir), options)


def main() -> None:
    """Entry point: run the Typer app, mapping Ctrl-C outside a run to exit code 130."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
