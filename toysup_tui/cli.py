"""The ``toysup`` command line (Typer).

Exit codes: 0 success, 1 a run that failed, 2 a usage or input error, 130 interrupted.

Each command imports what only it needs inside its own function, so ``toysup runs`` or a shell completion
never loads torch, Textual or the run store's writers (tests/test_contracts.py checks that every other
function-level import in the project says why it waits).
"""

# deferred imports: a command's own (module docstring)

from __future__ import annotations

import contextlib
import inspect
import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from toysup.engine.errors import SpecError, ToysupError
from toysup.engine.run.status import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Status, exit_code
from toysup_tui import completion
from toysup_tui.option_flags import with_run_options
from toysup_tui.printable import print_line
from toysup_tui.printable import shown as escape

DEFAULT_PRESET = "tms-intro"

class _Commands(TyperGroup):
    """Every command's one error policy: a user's mistake (a ToysupError) is one line and exit 2; anything else
    unexpected (a bug) writes a crash report and prints one line naming it, exit 1, no traceback."""

    def invoke(self, ctx: Any) -> Any:
        argv = [*getattr(ctx, "_protected_args", []), *ctx.args]  # the command and its arguments, as given
        try:
            return super().invoke(ctx)
        except ToysupError as exc:
            raise fail(str(exc)) from None
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Exception as exc:
            raise crashed(exc, argv) from None


def crashed(exc: BaseException, argv: list[str] | None = None) -> typer.Exit:
    """Write ``exc``'s crash report, print the one line naming it, and return the Exit to raise."""
    from toysup_tui.crash import crash_line, write_report  # deferred: only when a command crashes

    print_line(err, f"[bold red]error:[/] {escape(crash_line(exc, write_report(exc, argv)))}")
    return typer.Exit(EXIT_FAILED)


app = typer.Typer(
    cls=_Commands,
    name="toysup",
    help="Sweep and visualise toy models of superposition. Exit codes: 0 ok, 1 run failed, 2 usage error, "
    "130 interrupted.",
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

RunRef = Annotated[str, typer.Argument(help="Run folder, run id (or unique part of it), or 'latest'",
                                       autocompletion=completion.run_ids)]
RunsDirOption = Annotated[
    Path | None,
    typer.Option("--runs-dir", help="Where runs are stored \\[default: $TOYSUP_RUNS_DIR or ./runs]",
                 show_default=False),
]


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version  # deferred: only for --version

        try:
            found = version("toysup")
        except PackageNotFoundError:  # a checkout run without installing
            found = "unknown (not installed)"
        sys.stdout.write(f"toysup {found}\n")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", "-V", callback=_print_version, is_eager=True,
                                          help="Print toysup's version and exit")] = False,
) -> None:
    """Sweep and visualise toy models of superposition. Exit codes: 0 ok, 1 run failed, 2 usage error, 130
    interrupted."""
    if ctx.invoked_subcommand is None:  # `toysup` alone: the help, and success
        typer.echo(ctx.get_help())
        raise typer.Exit()


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print one line to stderr and return the Exit to raise."""
    print_line(err, f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code)


@app.command()
def presets(
    long: Annotated[bool, typer.Option("--long", "-l", help="Full descriptions and expected outcomes")] = False,
) -> None:
    """List the presets (bundled, your own in the config directory, a project's ./presets) with their source:
    name, model, instances and what each shows (one line each; --long for all)."""
    from rich import box
    from rich.table import Table

    from toysup.engine.preset_sources import all_presets, winners
    from toysup.engine.spec import read_preset, resolve

    files = all_presets()
    won = winners()
    specs: dict[str, Any] = {}
    for f in files:
        try:
            specs[f.qualified] = resolve(read_preset(str(f.path), f.path), source=str(f.path))
        except ToysupError as exc:
            specs[f.qualified] = exc

    def source_text(f: Any) -> str:
        return f.source + ("" if won[f.name] == f else f", shadowed by {won[f.name].source}")

    if long:  # one block per preset: full text wraps at any width
        for f in files:
            spec = specs[f.qualified]
            if isinstance(spec, ToysupError):
                out.print(f"[bold cyan]{escape(f.name)}[/]  [dim]{source_text(f)}[/]  [red]{escape(str(spec))}[/]")
                continue
            out.print(f"[bold cyan]{escape(f.name)}[/]  [dim]{spec.model}, {spec.n_instances} instances, "
                      f"{source_text(f)}" + ("" if f.source == "bundled" else f" ({escape(str(f.path))})") + "[/]")
            out.print(escape(spec.description, keep_newlines=True), soft_wrap=False)
            out.print(f"[dim]expect:[/] {escape(spec.expected, keep_newlines=True)}\n")
        return
    # Narrow terminals drop the model column (--long shows it) so each description keeps a readable line.
    table = Table(title="Presets", title_justify="left", box=box.SIMPLE_HEAD, expand=True,
                  caption="toysup presets --long: full descriptions and expected outcomes; a name in more than one "
                  "place runs the project's, else yours (SOURCE:NAME picks one)", caption_justify="left")
    table.add_column("name", style="bold cyan", no_wrap=True, min_width=max(len(f.name) for f in files))
    table.add_column("source", no_wrap=True)
    if out.width >= 100:
        table.add_column("model", no_wrap=True)
    table.add_column("instances", justify="right", no_wrap=True, min_width=len("instances"))
    table.add_column("description", no_wrap=True, overflow="ellipsis", ratio=1)
    for f in files:
        spec = specs[f.qualified]
        bad = isinstance(spec, ToysupError)
        table.add_row(escape(f.name), source_text(f), *([("?" if bad else spec.model)] if out.width >= 100 else []),
                      "" if bad else str(spec.n_instances),
                      f"[red]{escape(str(spec))}[/]" if bad else escape(spec.description))
    out.print(table)


@app.command("config")
@with_run_options()
def config_cmd(
    runs_dir: RunsDirOption = None,
    given: dict[str, str] | None = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output: one JSON object")] = False,
) -> None:
    """Show the effective settings (runs directory and run options) and where each came from: a flag, the
    environment ($TOYSUP_NAME), the config file (CONFIG_DIR/config.toml) or the default."""
    from toysup.engine import settings
    from toysup.engine.options import OPTION
    from toysup.engine.preset_sources import user_dir

    found = settings.effective(given, runs_dir)
    settings.run_options(given)  # a bad value is an error here too, naming where it was set
    if as_json:
        sys.stdout.write(json.dumps({"config_file": str(settings.config_path()), "presets_dir": str(user_dir()),
                                     "settings": {s.name: {"value": s.value, "source": s.source} for s in found}},
                                    default=str) + "\n")
        return
    from rich.table import Table

    table = Table("setting", "value", "from", title_justify="left",
                  title=f"config file: {escape(str(settings.config_path()))}"
                  + ("" if settings.config_path().is_file() else " (none)"))
    for s in found:
        shown = str(s.value) if s.value is not None else f"auto: {OPTION[s.name].default_text()}"
        table.add_row(s.name, escape(shown), escape(s.source))
    out.print(table)
    print_line(out, f"[dim]your presets: {escape(str(user_dir()))}[/]")


@app.command()
@with_run_options()
def run(
    preset: Annotated[
        str, typer.Argument(help="Preset name (toysup presets lists them) or path to a preset/config .toml",
                            autocompletion=completion.preset_names)
    ] = DEFAULT_PRESET,
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Fix a parameter: key=value (repeatable)",
                                       autocompletion=completion.parameter_names)
    ] = None,
    sweep: Annotated[
        list[str] | None,
        typer.Option("--sweep", help="Sweep a parameter: key=0.1,0.2 | key=lin:START:STOP:NUM | key=log:START:STOP:NUM",
                     autocompletion=completion.parameter_names),
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
    from toysup.engine import settings
    from toysup.engine.executors import executor_for
    from toysup.engine.plan import plan_shapes
    from toysup.engine.run import layout
    from toysup.engine.runner import run_sweep
    from toysup.engine.spec import load
    from toysup_tui import progress, summaries

    options = settings.run_options(given)
    spec = load(preset, set_ or [], sweep or [], seeds)
    if dry_run:
        executor = executor_for(options)
        try:
            placement = executor.open(options.device, options.threads)
        finally:
            executor.close()
        chunks = plan_shapes(spec, placement.device, options.max_memory_bytes, budget=placement.budget,
                             slots=placement.slots)
        summaries.print_dry_run(out, spec, chunks, as_json, where=placement.description)
        return
    root = layout.runs_dir(runs_dir)
    if detach:
        from toysup_tui.detach import Launch, start

        _detached(start(Launch(spec.to_toml(), root.resolve(), options, nice=0)), quiet, as_json)
        return
    sink = progress.make_sink(err if as_json else out, quiet or as_json, summary_follows=True)
    handle_hangups_and_terms()
    with sink:
        outcome = run_sweep(spec, root, options, emit=sink)
    _finish(outcome, quiet, as_json, sink.rate)


def _detached(run_dir: Path, quiet: bool, as_json: bool) -> None:
    """What a detached launch prints: the run and how to follow and stop it."""
    if as_json:
        sys.stdout.write(json.dumps({"run_id": run_dir.name, "run_dir": str(run_dir), "status": Status.RUNNING}) + "\n")
    elif quiet:
        sys.stdout.write(f"{run_dir}\n")
    else:
        print_line(out, f"started {escape(run_dir.name)} in the background ({escape(str(run_dir))})\n"
                  f"follow it: toysup watch {escape(run_dir.name)} · stop it: toysup stop {escape(run_dir.name)} · "
                  "or open it in toysup tui")


def _finish(outcome: Any, quiet: bool, as_json: bool, rate: float = 0.0) -> None:
    """Print a finished run's summary, its end told once, and leave with its exit code (0, 1 failed, 130
    interrupted). ``rate``: the instance-steps/s this session measured, which a stopped run reports (run.json's
    counts finished chunks only, 0 when none finished)."""
    from toysup.engine.run import folder as run_folder
    from toysup_tui import summaries

    finished = run_folder.Run(outcome.run_dir)
    if as_json:
        out.print_json(json.dumps(summaries.json_summary(finished)))
    elif quiet:
        sys.stdout.write(f"{outcome.run_dir}\n")  # verbatim, never wrapped: scripts capture it
    else:
        summaries.print_summary(out, finished, rate if outcome.status is not Status.COMPLETED else None)
    if outcome.status is Status.INTERRUPTED:
        from toysup.engine.progress import kept_text

        print_line(err, f"interrupted: kept {escape(kept_text(finished.record()))}; "  # the command names the folder
                   f"continue with: toysup resume {escape(str(outcome.run_dir))}")
        raise typer.Exit(EXIT_INTERRUPTED)
    if outcome.status is Status.FAILED:
        log = outcome.run_dir / "error.log"
        details = f"details in {log}; " if log.is_file() else ""  # a full disk may not have let it be written
        raise fail(f"run failed: {outcome.error} ({details}toysup resume retries what is left)", EXIT_FAILED)


def handle_hangups_and_terms() -> None:
    """Ctrl-C, SIGTERM and SIGHUP stop a foreground run alike: the step in progress finishes, the chunk in
    training is checkpointed, the run is marked interrupted and exits 130 (engine/stopping.py). A hangup
    means the terminal is gone: from then on output goes to /dev/null, since writing to a hung-up terminal
    fails (EIO) and would turn the clean stop into a crash."""
    from toysup.engine import stopping

    signal.signal(signal.SIGINT, stopping.handle)
    signal.signal(signal.SIGTERM, stopping.handle)
    signal.signal(signal.SIGHUP, _hung_up)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _hung_up(signum: int, frame: Any) -> None:
    from toysup.engine import stopping

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # one hangup is enough; a second would cut the cleanup short
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        for fd in (1, 2):
            os.dup2(null, fd)
        os.close(null)
    stopping.handle(signum, frame)


@app.command()
@with_run_options(resume=True)
def resume(
    run_ref: RunRef = "latest",
    given: dict[str, str] | None = None,
    runs_dir: RunsDirOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output, only the run folder")] = False,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Resume in the background, detached from this "
                                         "terminal")] = False,
    force: Annotated[bool, typer.Option("--force", help="Break a stale lock (its process dead, or its heartbeat "
                                        "stopped) and resume")] = False,
) -> None:
    """Finish an interrupted, failed or killed run in place; ends with the same results as an uninterrupted run."""
    from toysup.engine import settings
    from toysup.engine.options import resume_options
    from toysup.engine.run import catalogue, layout
    from toysup.engine.runner import resume_sweep
    from toysup_tui import progress

    try:
        found = catalogue.find_run(layout.runs_dir(runs_dir), run_ref)
        options = resume_options(settings.resume_defaults(given), found.record().to_json())
        if detach:
            from toysup_tui.detach import Resume, start

            _detached(start(Resume(found.path.resolve(), options, force)), quiet, False)
            return
        sink = progress.make_sink(out, quiet, summary_follows=True)
        handle_hangups_and_terms()
        with sink:
            outcome = resume_sweep(found.path, options, emit=sink, force=force)
    except OSError as exc:  # the run folder cannot be written before training starts (read-only, a full disk)
        raise fail(f"run {found.id} cannot be resumed: {exc.filename or found.path}: {exc.strerror or exc}") from None
    _finish(outcome, quiet, False, sink.rate)


@app.command()
def runs(
    runs_dir: RunsDirOption = None,
    status: Annotated[str | None, typer.Option("--status", help="Only runs with these statuses, comma-separated: "
                                               "completed, running, interrupted, failed, killed, damaged",
                                               show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output: a JSON list, one object per "
                                          "run")] = False,
    watch_: Annotated[bool, typer.Option("--watch", "-w", help="Keep the table live until Ctrl-C: redrawn in "
                                         "place on a terminal, printed again on each change when piped")] = False,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between refreshes with --watch")] = 2.0,
    watch_count: Annotated[int, typer.Option("--watch-count", hidden=True,
                                             help="Stop --watch after this many refreshes (tests)")] = 0,
) -> None:
    """List the runs in the runs directory, newest first, with their status."""
    from toysup.engine.run import catalogue, layout

    root = layout.runs_dir(runs_dir)
    if root.exists() and not root.is_dir():
        raise fail(f"--runs-dir {root} is a file, not a directory of runs")
    wanted = _statuses(status)
    if as_json and watch_:
        raise fail("--json and --watch cannot be combined: --json lists the runs once")
    if not interval >= 0:
        raise fail(f"--interval {interval} is not valid: expected seconds, 0 or more")

    def listed() -> list[Any]:
        return [r for r in catalogue.list_runs(root) if wanted is None or r.status() in wanted]

    if as_json:
        sys.stdout.write(json.dumps([_run_record(r) for r in listed()]) + "\n")
    elif watch_:
        _watch_runs(lambda: _runs_view(listed(), root), interval, watch_count)
    else:
        out.print(_runs_view(listed(), root), soft_wrap=True)  # ids and paths in its lines stay whole


def _runs_view(found: list[Any], root: Path) -> Any:
    """The runs table with a line for each damaged folder (its problem in its own words, never as markup)."""
    from rich.console import Group
    from rich.text import Text

    from toysup_tui.render.status import status_style
    from toysup_tui.render.tables import runs_table

    if not found:
        return Text(f"no runs in {root}")
    problems = [Text.assemble((Status.DAMAGED, status_style(Status.DAMAGED)), f" {r.id}: {r.problem()}")
                for r in found if r.problem()]
    return Group(runs_table(found, out.width), *problems)


def _watch_runs(view: Any, interval: float, count: int) -> None:
    """`runs --watch`: on a terminal a Rich Live table redrawn every ``interval`` s; piped, the table printed
    again only when it changed. Ctrl-C (or ``count`` refreshes, for tests) ends it with exit code 0."""
    refreshes = 0
    try:
        if out.is_terminal:
            from rich.live import Live

            with Live(view(), console=out, auto_refresh=False, screen=False) as live:
                while not count or refreshes < count:
                    time.sleep(interval)
                    live.update(view(), refresh=True)
                    refreshes += 1
        else:
            last = None
            while True:
                shown = view()
                with out.capture() as captured:
                    out.print(shown, soft_wrap=True)
                if captured.get() != last:
                    last = captured.get()
                    out.print(shown, soft_wrap=True)
                    out.file.flush()
                refreshes += 1
                if count and refreshes >= count:
                    break
                time.sleep(interval)
    except KeyboardInterrupt:
        pass


def _statuses(text: str | None) -> set[str] | None:
    """--status's comma-separated statuses, checked; None when not given."""
    from toysup.engine.run.status import STATUSES

    if text is None:
        return None
    given = {t.strip() for t in text.split(",") if t.strip()}
    wrong = sorted(given - set(STATUSES))
    if wrong or not given:
        raise fail(f"--status {text!r} is not valid: expected one or more of {', '.join(STATUSES)}, "
                   "comma-separated")
    return given


def _run_record(run: Any) -> dict[str, Any]:
    """One run as `toysup runs --json` lists it: its id, folder and status, and what run.json says of it."""
    r = run.record()
    fields = {"name": r.name, "model": r.model, "instances_done": r.instances_done, "instances": r.instances,
              "started": r.started, "ended": r.ended, "wall_time_s": r.wall_time_s, "device": r.device}
    if r.damage:  # run.json unreadable: nothing of it is known (its problem says why)
        fields = {**dict.fromkeys(fields), "name": r.name}
    return {"run_id": run.id, "path": str(run.path), "status": run.status(), **fields, "problem": run.problem() or None}


@app.command()
def watch(
    run_ref: RunRef = "latest",
    runs_dir: RunsDirOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output: just wait for the end")] = False,
) -> None:
    """Follow a run training in another process (any terminal, the TUI, a detached run) until it ends; exit
    with its status (0 completed, 1 failed or killed, 130 interrupted). Ctrl-C stops watching, not the run."""
    from toysup.engine.run import catalogue, layout
    from toysup.engine.runlog import follow
    from toysup_tui import progress

    found = catalogue.find_run(layout.runs_dir(runs_dir), run_ref)
    ended = ""
    if found.status() is Status.RUNNING:
        sink = progress.make_sink(out, quiet, summary_follows=True)  # the end is told once, below
        try:
            with sink:
                for event in follow(found):
                    sink(event)
        except KeyboardInterrupt:
            print_line(err, f"stopped watching; {escape(found.id)} goes on (toysup stop {escape(found.id)} stops it)")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        ended = sink.end_text() if not quiet else ""
    status = found.status()
    print_line(out, f"run {escape(found.id)} is {status}" + (f" {escape(ended)}" if ended else ""))
    if status is Status.INTERRUPTED:
        from toysup.engine.progress import kept_text

        print_line(err, f"kept {escape(kept_text(found.record()))}; continue with: toysup resume {escape(found.id)}")
    raise typer.Exit(exit_code(status))


@app.command()
def stop(
    run_ref: RunRef = "latest",
    runs_dir: RunsDirOption = None,
    wait: Annotated[float, typer.Option("--wait", help="Seconds to wait for the run to record its stop")] = 60.0,
) -> None:
    """Stop a running run gracefully: it finishes the step in progress, checkpoints the chunk in training, keeps
    its finished chunks and is marked interrupted (resumable from that step)."""
    from toysup.engine.run import catalogue, layout
    from toysup.engine.stop_request import request_stop

    found = catalogue.find_run(layout.runs_dir(runs_dir), run_ref)
    status = found.status()
    if status is not Status.RUNNING:
        raise SpecError(f"run {found.id} is not running (it is {status}): nothing to stop")
    if not wait >= 0:
        raise SpecError(f"--wait {wait} is not valid: expected seconds, 0 or more")
    record = found.record()
    how = request_stop(found.path, record.host, record.pid)
    print_line(out, f"stopping {escape(found.id)}: {escape(how)}")
    deadline = time.monotonic() + wait
    while found.status() is Status.RUNNING and time.monotonic() < deadline:
        time.sleep(0.2)
    status = found.status()
    if status is Status.RUNNING:
        raise fail(f"run {found.id} is still running after {wait:.0f} s; it stops at its next step "
                   "(toysup watch shows when)", EXIT_FAILED)
    from toysup.engine.progress import kept_text

    print_line(out, f"run {escape(found.id)} is {status}" +
              (f"; kept {escape(kept_text(found.record()))}; continue with: toysup resume {escape(found.id)}"
               if status is Status.INTERRUPTED else ""))


@app.command("report")
def report_cmd(
    run_ref: RunRef = "latest",
    runs_dir: RunsDirOption = None,
    x: Annotated[str | None, typer.Option("--x", help="Swept parameter for the metric charts")] = None,
    width: Annotated[int | None, typer.Option("--width", help="Chart width in columns")] = None,
    best_of: Annotated[
        int | None,
        typer.Option("--best-of", help="Keep each point's lowest-loss seed among its first K seeds (0 = all): "
                     "the papers' best-of-k selection \\[default: every seed]"),
    ] = None,
    save: Annotated[Path | None, typer.Option("--save", help="Write the report as it looks to this file instead: "
                                              ".html, .svg or .txt", show_default=False)] = None,
    phase_selection: Annotated[
        str,
        typer.Option("--phase-selection", help="How the phase grid gives a point its phase: best (the lowest-loss "
                     "seed's, best-of-k) or majority (the phase most seeds have after dropping the highest-loss "
                     "one: the paper's 10 models, the worst dropped)"),
    ] = "best",
    iqr: Annotated[bool, typer.Option("--iqr", help="Draw every loss curve's IQR over seeds \\[default: only a "
                                      "lone curve's]")] = False,
) -> None:
    """Show a run's results as tables and terminal charts."""
    from toysup.engine.analysis.phase import SELECTIONS
    from toysup.engine.progress import require_results
    from toysup.engine.run import catalogue, layout
    from toysup_tui import report

    if width is not None and not 20 <= width <= 10_000:
        raise SpecError(f"--width {width} is not valid: expected 20 to 10,000 columns")
    found = catalogue.find_run(layout.runs_dir(runs_dir), run_ref)
    if best_of is not None and best_of < 0:
        raise SpecError(f"--best-of {best_of} is not valid: expected 0 (all seeds) or a positive number of seeds")
    require_results(found)
    if phase_selection not in SELECTIONS:
        raise SpecError(f"--phase-selection {phase_selection!r} is not valid: expected "
                        f"{' or '.join(SELECTIONS)}")
    if save is None:
        report.print_report(out, found, x=x, width=width, best_of=best_of,
                            phase_selection=phase_selection, iqr=iqr)
        return
    from toysup_tui.report_file import save_report

    save_report(save, found, x=x, width=width, best_of=best_of, phase_selection=phase_selection, iqr=iqr)
    print_line(err, f"wrote the report of {escape(found.id)} to {escape(str(save))}")


@app.command()
def plot(
    run_ref: RunRef,
    charts: Annotated[list[str] | None, typer.Argument(
        help="Charts to draw (default: every one the run has): loss, metrics, geometry, dimensionality, phase, "
        "orientation, rate, recovery", show_default=False, autocompletion=completion.chart_names)] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="The figure file: .png, .svg or .pdf")] = Path(
        "figure.png"),
    instance: Annotated[list[int] | None, typer.Option(
        "--instance", "-i", help="Instances for the geometry chart (repeatable) \\[default: the lowest-loss seed "
        "at each end of the first axis]", show_default=False)] = None,
    x: Annotated[str | None, typer.Option("--x", help="Swept parameter for the metric charts")] = None,
    runs_dir: RunsDirOption = None,
) -> None:
    """Write a run's charts as a publication figure (matplotlib: pip install 'toysup\\[figures]'), one file with
    the charts stacked; the format from the suffix."""
    from toysup.engine.progress import require_results
    from toysup.engine.results import Results
    from toysup.engine.run import catalogue, layout
    from toysup_tui import figures

    figures.figure_format(output)
    figures.require_matplotlib()
    found = catalogue.find_run(layout.runs_dir(runs_dir), run_ref)
    require_results(found)
    results = Results.open(found)
    drawn = list(charts or []) or figures.available(results)
    figures.save(figures.build(results, drawn, instance or [], x), output)
    print_line(err, f"wrote {', '.join(drawn)} of {escape(found.id)} to {escape(str(output))}")


@app.command()
def compare(
    run_refs: Annotated[list[str], typer.Argument(help="Two or more runs: folders, ids (or unique parts), 'latest'",
                                                  autocompletion=completion.run_ids)],
    runs_dir: RunsDirOption = None,
    x: Annotated[str | None, typer.Option("--x", help="Swept parameter for the overlaid charts (one all the runs "
                                          "sweep)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output: one JSON object")] = False,
) -> None:
    """Compare runs: the config diff (only what differs), the summary metrics side by side per point, and
    overlaid metric charts against a swept parameter they share."""
    from toysup.engine import comparison
    from toysup.engine.progress import require_results
    from toysup.engine.results import Results
    from toysup.engine.run import catalogue, layout

    if len(run_refs) < 2:
        raise SpecError("compare needs at least two runs")
    root = layout.runs_dir(runs_dir)
    found = [catalogue.find_run(root, ref) for ref in run_refs]
    for run in found:
        require_results(run)
    ids = [r.id for r in found]
    if len(set(ids)) < len(ids):
        raise SpecError(f"run {next(i for i in ids if ids.count(i) > 1)} is named twice")
    results = [Results.open(r) for r in found]
    axes = comparison.shared_axes(results)
    if x is not None and x not in axes:
        raise SpecError(f"--x {x!r} is not swept by every run (shared: {', '.join(axes) or 'none'})")
    if as_json:
        sys.stdout.write(json.dumps(comparison.to_json(ids, results), default=str) + "\n")
        return
    from toysup_tui.compare_view import print_comparison

    print_comparison(out, ids, results, x or (axes[0] if axes else None))


@app.command()
def export(
    run_ref: RunRef = "latest",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout")] = None,
    table: Annotated[str, typer.Option("--table", help="results, curves or features")] = "results",
    runs_dir: RunsDirOption = None,
) -> None:
    """Export a run's table as CSV (results rows carry run id, seed, sweep point and every swept parameter)."""
    from toysup.engine import run_format
    from toysup.engine.progress import require_results
    from toysup.engine.run import catalogue, layout
    from toysup.engine.run import export as run_export

    if table not in run_format.TABLES:
        raise SpecError(f"--table {table!r} is not valid: expected results, curves or features")
    found = catalogue.find_run(layout.runs_dir(runs_dir), run_ref)
    require_results(found)  # never a header-only table of a run still training its first chunk
    if output is None:
        sys.stdout.write(run_export.export_text(found, table))
        return
    try:
        run_export.export(found, output, table)
    except SpecError as exc:  # the target: a folder, in a missing folder, unwritable
        raise SpecError(f"--output {exc}") from None
    print_line(err, f"wrote {table} of {escape(found.id)} to {escape(str(output))}")


@app.command()
def params(
    model: Annotated[str, typer.Argument(help="Model kind, or a preset (its model's parameters, the preset's own "
                                         "values marked)", autocompletion=completion.preset_names)] = "",
) -> None:
    """List a model's parameters (name, default, valid range, meaning), or the models with none given."""
    from rich.table import Table

    from toysup.engine.models import MODELS, get_kind

    if not model:
        table = Table("model", "what it is", title="Models (toysup params MODEL lists a model's parameters)")
        for kind, cls in MODELS.items():
            table.add_row(kind, cls.summary)
        out.print(table)
        return
    preset: dict[str, Any] | None = None
    if model not in MODELS:
        preset = _preset_for_params(model)
    kind = str(preset["model"]) if preset else model
    cls = get_kind(kind)
    title = f"{kind}: {cls.summary}" if not preset else f"preset {preset['name']} ({kind}: {cls.summary})"
    columns = ["name", "default", *(["preset"] if preset else []), "valid", "meaning"]
    table = Table(*columns, title=escape(title), title_justify="left")
    own = {**(preset or {}).get("params", {}), **{k: f"sweep {v}" for k, v in (preset or {}).get("sweep", {}).items()}}
    for p in cls.param_table().values():
        cells = [p.name, str(p.default)]
        if preset:  # the preset's own value in bold, the model's default (which it keeps) dim
            cells = [f"[bold]{p.name}[/]" if p.name in own else p.name, cells[1],
                     f"[bold]{escape(str(own[p.name]))}[/]" if p.name in own else "[dim]default[/]"]
        table.add_row(*cells, p.range_text(), p.help + (" [groups the batch]" if p.structural else ""))
    out.print(table)


def _preset_for_params(name: str) -> dict[str, Any]:
    """`params NAME` where NAME is no model: the preset it names, checked (model, params, sweep), or a usage
    error in one line naming the models and presets."""
    from toysup.engine.models import MODELS
    from toysup.engine.preset_sources import winners
    from toysup.engine.spec import load, preset_path, read_preset

    try:
        path = preset_path(name)
    except ToysupError:
        raise fail(f"unknown model or preset {name!r}: models are {', '.join(MODELS)}; presets are "
                   f"{', '.join(sorted(winners()))}") from None
    load(name)  # its parameters and sweep valid for its model, as `toysup run` would check them
    data = read_preset(name, path)
    return {"name": data.get("name", path.stem), "model": data.get("model", "relu_output"),
            "params": data.get("params", {}), "sweep": data.get("sweep", {})}


@app.command()
@with_run_options("device", "threads", "compile")
def bench(
    instances: Annotated[str, typer.Option("--instances", help="The ladder: instance counts, comma-separated (30k "
                                           "= 30000)")] = "30,300,3000,30000",
    n_features: Annotated[int, typer.Option("--n-features")] = 20,
    n_hidden: Annotated[int, typer.Option("--n-hidden")] = 5,
    batch_size: Annotated[int, typer.Option("--batch-size")] = 1024,
    steps: Annotated[int | None, typer.Option("--steps", help="Timed steps per repeat \\[default: about 1 s of "
                                              "each trainer]", show_default=False)] = None,
    repeats: Annotated[int, typer.Option("--repeats", help="Alternations of engine and reference per rung; the "
                                         "median counts")] = 3,
    defaults: Annotated[bool, typer.Option("--defaults", help="Each trainer at its own default threads (the "
                                           "engine's as for run, torch's for the reference) instead of equal "
                                           "ones")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output: one JSON object")] = False,
    given: dict[str, str] | None = None,
) -> None:
    """Time the engine against a tutorial-style trainer (einsum, autograd, torch.optim.Adam) on identical work,
    over a ladder of instance counts, with each side's GFLOP/s and share of the device's measured peak."""
    from toysup.engine import settings
    from toysup.engine.bench import check_options, ladder, parse_ladder

    options = settings.run_options(given)  # --device, --threads and --compile, checked as for run
    device, threads = options.device, options.threads
    counts = parse_ladder(instances)
    check_options(n_features, n_hidden, batch_size, device, threads, defaults, repeats, steps)
    print_line(err, f"timing engine and reference at {', '.join(f'{c:,}' for c in counts)} instances "
               f"(n={n_features}, m={n_hidden}, batch {batch_size}), {repeats} alternation(s) each...")
    result = ladder(counts, n_features, n_hidden, batch_size, device, threads, defaults, repeats, steps,
                    options.compile,
                    on_rung=lambda rung: print_line(err, _rung_line(rung.to_dict())))
    data = result.to_dict()
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
        return
    _print_ladder(data)


def _side_cells(side: dict[str, Any]) -> list[str]:
    if side["status"] != "ok":
        return [side["status"], "", ""]
    return [f"{side['instance_steps_per_s']:,.0f}", f"{side['gflops']:,.2f}", f"{100 * side['peak_fraction']:.2f}%"]


def _rung_line(rung: dict[str, Any]) -> str:
    e, r = rung["engine"], rung["reference"]
    ratio = f"{rung['ratio']:.2f}x" if rung["ratio"] is not None else "-"
    return (f"{rung['instances']:>8,} instances: engine {_side_cells(e)[0]}, reference {_side_cells(r)[0]} "
            f"instance-steps/s ({ratio})" + (f"; reference {r['note']}" if r["note"] else "")
            + (f"; engine {e['note']}" if e["note"] else "") + _paths_text(rung))


def _paths_text(rung: dict[str, Any]) -> str:
    """The engine's other step paths and the separately timed final evaluation, as '; ...' clauses."""
    text = "".join(f"; {path} {_side_cells(side)[0]}" for path, side in rung.get("paths", {}).items())
    if rung.get("evaluation_s") is not None:
        text += (f"; final evaluation {rung['evaluation_s']:.2f} s (not in the rates; timed on "
                 f"{rung.get('evaluation_instances', 0):,} instances and scaled)")
    return text


def _print_ladder(data: dict[str, Any]) -> None:
    """The ladder as a table, with the conditions that make its numbers comparable."""
    from rich.table import Table

    peaks = ", ".join(f"{v:,.0f} GFLOP/s at {k} thread(s)" for k, v in data["peak_gflops"].items())
    size = 8192 if data["device"].startswith("cuda") else 2048
    out.print(f"device {data['device']} ({data['cpu']}, {data['cpu_count']} cores), torch {data['torch']}, "
              f"load average {data['load_average'][0] if data['load_average'] else '?'}")
    out.print(f"threads: engine {data['engine_threads']}, reference {data['reference_threads']} ("
              + ("each at its default" if data["mode"] == "defaults" else "equal") + f"); engine step: "
              f"{data.get('step_path', 'eager')}" + (f" ({data['step_note']})" if data.get("step_note") else ""))
    out.print(f"peak: {size}^2 float32 matmul, {peaks}; the step is "
              f"{data['flops_per_instance_step'] / 1e6:.3f} MFLOP per instance-step")
    gpu = any(r["engine"]["peak_gpu_mb"] is not None for r in data["rungs"])
    table = Table("instances", "engine inst-steps/s", "GFLOP/s", "of peak", "reference inst-steps/s", "GFLOP/s",
                  "of peak", "engine/ref", *(("engine GPU MB", "ref GPU MB") if gpu else ()))
    for col in table.columns:
        col.justify = "right"
    for rung in data["rungs"]:
        e, r = rung["engine"], rung["reference"]
        ratio = f"{rung['ratio']:.2f}x" if rung["ratio"] is not None else "-"
        memory = [f"{s['peak_gpu_mb']:,.0f}" if s["peak_gpu_mb"] is not None else "-" for s in (e, r)] if gpu else []
        table.add_row(f"{rung['instances']:,}", *_side_cells(e), *_side_cells(r), ratio, *memory)
    out.print(table)
    for rung in data["rungs"]:
        for name in ("engine", "reference"):
            if rung[name]["note"]:
                out.print(f"{rung['instances']:,} instances, {name}: {rung[name]['note']}")
        if _paths_text(rung):
            out.print(f"{rung['instances']:,} instances: engine ({data.get('step_path', 'eager')}) "
                      f"{_side_cells(rung['engine'])[0]} inst-steps/s{_paths_text(rung)}")


@app.command()
@with_run_options()
def tui(
    runs_dir: RunsDirOption = None,
    given: dict[str, str] | None = None,
) -> None:
    """Open the terminal interface: presets, parameter form, live runs, results and the runs browser. The run
    options set the form's starting values for launched sweeps."""
    from toysup.engine import settings
    from toysup.engine.run import layout
    from toysup_tui.app import run_tui  # deferred: loads Textual, only for `toysup tui`

    options = settings.run_options(given)  # a bad option is reported before the screen opens
    root = layout.runs_dir(runs_dir)
    if options.device.startswith("cuda"):  # refused here, not after the screen has opened
        from toysup.engine.plan import resolve_device

        resolve_device(options.device)
    crash = run_tui(root, options)
    if crash is not None:  # the report is written; the terminal restored, the one line now
        print_line(err, f"[bold red]error:[/] {escape(crash)}")
        raise typer.Exit(EXIT_FAILED)


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """A warning (a preset name found in two places) as one line on stderr, without Python's file and line."""
    print_line(err, f"[yellow]warning:[/] {escape(str(message))}")


def main() -> None:
    """Entry point: run the Typer app; usage mistakes Click finds itself (a bad type, an unknown option or
    command) become one line and exit 2 like ours, and Ctrl-C (and SIGTERM, from the very start, before a
    run's own handlers are in place) outside a run exits 130. The TUI keeps the terminal's defaults."""
    if sys.argv[1:2] != ["tui"]:
        signal.signal(signal.SIGTERM, _raise_interrupt)
    warnings.showwarning = _show_warning
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as exc:  # Typer's own (vendored Click) usage errors
        ctx = getattr(exc, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        hint = f" (see {ctx.command_path} -h)" if ctx is not None else ""
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        print_line(err, f"[bold red]error:[/] {escape(where + message)}{escape(hint)}")
        sys.exit(getattr(exc, "exit_code", EXIT_USAGE))
    except (KeyboardInterrupt, typer.Abort):
        err.print(Status.INTERRUPTED)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def _tidy_help() -> None:
    """Help that reads as it should: each command's line in the command list is its docstring's first paragraph
    rewrapped to the terminal (Typer's rich mode keeps the docstring's own line breaks there), and flags show no
    ``<bool>`` value (Typer 0.29 shows one for every flag, as if it took a value)."""
    from typer.core import TyperOption  # deferred: only once, to tidy the help

    for info in app.registered_commands:
        if info.short_help is None and info.callback is not None and info.callback.__doc__:
            info.short_help = " ".join(inspect.cleandoc(info.callback.__doc__).split("\n\n")[0].split())
    shown = TyperOption.display_type_rich
    if getattr(shown, "flags_as_flags", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag and self.metavar is None else shown(self, ctx)

    display_type_rich.flags_as_flags = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_tidy_help()

if __name__ == "__main__":
    main()
