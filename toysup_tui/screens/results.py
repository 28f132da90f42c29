"""A run's results: the table, metric charts, geometry of one instance, W^T W, loss curves.

Each tab is one widget (toysup_tui/widgets/results/); this screen reads the run, keeps
the chosen instance, metric and axis, and handles the keys.

Everything is read from the run folder, exactly as ``toysup report`` reads it, so
a headless run from a GPU box opens here too. The "chosen instance" of the
geometry and instance tabs is the table row under the cursor (initially the
lowest-loss seed at the sparsest end of the sweep, where the pentagon shows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Input, Static, TabbedContent

from toysup.engine.analysis import geometry, selection
from toysup.engine.analysis.columns import KEY_SHORT, charted_metrics, short_names
from toysup.engine.analysis.phase import SELECTIONS
from toysup.engine.errors import RunDataError, ToysupError, UserError
from toysup.engine.results import Results, value_text
from toysup.engine.run.export import export
from toysup.engine.run.folder import Run
from toysup.engine.run.status import Status
from toysup.engine.spec import Spec
from toysup_tui import figures
from toysup_tui.render.status import status_style
from toysup_tui.screens.base import ToysupScreen
from toysup_tui.screens.confirm import PromptScreen
from toysup_tui.widgets.markup import esc
from toysup_tui.widgets.results import GeometryTab, InstanceTab, LossTab, MetricsTab, TableTab

TABS = ("table", "metrics", "geometry", "instance", "loss")
EXPORT_NAME = "export-results.csv"


class ResultsScreen(ToysupScreen):
    """Tables and charts of one run."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "export", "Export"),
        Binding("E", "export_to", "Export to…", show=False),
        Binding("f", "figure", "Save figure", show=False),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("s", "sort", "Sort"),
        Binding("m", "metric(1)", "Metric"),
        Binding("M", "metric(-1)", "Prev metric", show=False),
        Binding("x", "x_axis", "X axis"),
        Binding("k", "phase_selection", "Phase seeds", show=False),  # the phase grid: best-of-k or majority
        Binding("right_square_bracket", "instance(1)", "Next inst", key_display="]"),
        Binding("left_square_bracket", "instance(-1)", "Prev inst", key_display="[", show=False),
        Binding("t", "snapshot(1)", "Snapshots", show=False),
        Binding("T", "snapshot(-1)", "Prev snapshot", show=False),
        Binding("r", "reload", "Reload", show=False),
        Binding("R", "resume", "Resume", show=False),  # the header says so, for a run that stopped early
        Binding("1", "tab('table')", "Tabs", key_display="1-5"),
        Binding("2", "tab('metrics')", "Metrics tab", show=False),
        Binding("3", "tab('geometry')", "Geometry tab", show=False),
        Binding("4", "tab('instance')", "Instance tab", show=False),
        Binding("5", "tab('loss')", "Loss tab", show=False),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, run: Run) -> None:
        super().__init__()
        self.run = run
        self.spec: Spec | None = None
        self.results: Results | None = None  # None when the run's config or results cannot be read
        self.columns: list[str] = []
        self.rows: list[dict[str, Any]] = []
        self.view: list[dict[str, Any]] = []  # rows after filter and sort, as shown
        self.sort_column: str | None = None
        self.sort_reverse = False
        self.filter_text = ""
        self.status: Status | None = None  # the run's status when last read (Run.status())
        self.metrics: list[str] = []
        self.metric_index = 0
        self.x_index = 0
        self.phase_selection = "best"  # how the phase grid picks a point's phase (engine.analysis.phase.SELECTIONS)
        self.instance: int | None = None
        self.snapshot: int | None = None  # index into the instance's weight snapshots; None: final weights
        self._weights_cache: tuple[int, dict[str, Any]] | None = None
        self._drawn: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="results-header")
        with TabbedContent(id="results-tabs", initial="table"):
            yield TableTab("1 Table", id="table")
            yield MetricsTab("2 Metrics", id="metrics")
            yield GeometryTab("3 Geometry", id="geometry")
            yield InstanceTab("4 Instance", id="instance")
            yield LossTab("5 Loss", id="loss")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"results: {self.run.id}"
        self.load()
        self.query_one("#results-filter", Input).display = False
        self.query_one("#results-table", DataTable).focus()

    # --- data -----------------------------------------------------------------------------

    def _weights_of(self, instance: int) -> dict[str, Any]:
        """One instance's weights, read once per instance: finding them reads every chunk file, and a
        redraw asks for them several times (caption, charts, snapshot steps)."""
        if self._weights_cache is None or self._weights_cache[0] != instance:
            self._weights_cache = (instance, self.run.instance_weights(instance))
        return self._weights_cache[1]

    def load(self) -> None:
        """(Re)read the run folder: header, table, and whichever charts have been shown."""
        self._weights_cache = None
        record = self.run.record()
        self.spec, self.results = None, None
        try:
            self.columns, self.rows = self.run.results()
            self.spec = self.run.spec()
            self.results = Results(self.spec, self.columns, self.rows, self.run)
        except RunDataError as exc:
            self.spec = None  # the table still shows what results.csv holds; the charts need the spec
            self.notify(str(exc), severity="error")
        else:
            self.columns, self.rows = self.results.columns, self.results.rows
        if self.spec is not None:
            charted = charted_metrics(self.spec.model, list(self.rows[0])) if self.rows else []
            self.metrics = charted or [c for c in self.columns if c not in ("instance", "seed")]
        self.metric_index = min(self.metric_index, max(len(self.metrics) - 1, 0))
        done, total = (len(self.rows), "?") if record.damage else (record.instances_done, record.instances)
        status = self.status = self.run.status()
        colour = status_style(status)
        wall = None if record.damage else record.wall_time_s  # an unreadable run.json: not known
        self.query_one("#results-header", Static).update(
            f"[b]{esc(record.name)}[/] ({esc(record.model)}) · "
            f"[{colour}]{status}[/] · {esc(str(done))}/{esc(str(total))} instances · {esc(record.device)}"
            + (f" · {wall:.1f}s" if isinstance(wall, (int, float)) else "")
            + (" · [b]R[/] resumes" if self.resumable else "")
            + (f"\n[red]{esc(record.error)}[/]" if record.error else "")
        )
        self.refresh_bindings()
        if self.instance is None and self.results is not None and self.rows:
            reps = selection.representatives(self.results)
            self.instance = int(reps[0].row["instance"]) if reps else int(self.rows[0]["instance"])
        self._fill_table()
        self._drawn.clear()
        self._draw_active()

    def _fill_table(self) -> None:
        self.view = self.query_one(TableTab).fill(self.columns, self.rows, self._short_names(), self.filter_text,
                                                  self.sort_column, self.sort_reverse, self.instance)

    def _short_names(self) -> dict[str, str]:
        """Column headers shortened so the table fits 80 columns (the full names are in the CSV), as
        the model declares them; the model's name comes from run.json, so a run whose config cannot
        be read still gets them."""
        try:
            return short_names(self.run.record().model)
        except UserError:  # an unknown model
            return dict(KEY_SHORT)

    @property
    def resumable(self) -> bool:
        """The run stopped before finishing (interrupted, failed or killed), so resume can finish it."""
        return self.status is not None and self.status.resumable

    def instance_row(self) -> dict[str, Any] | None:
        return next((r for r in self.rows if r.get("instance") == self.instance), None)

    # --- drawing --------------------------------------------------------------------------

    @on(TabbedContent.TabActivated)
    def _on_tab(self, event: TabbedContent.TabActivated) -> None:
        self._draw_active()
        self.refresh_bindings()
        # Put the keyboard where the tab's content is, so arrows scroll it at once.
        focus = {"table": "#results-table", "geometry": "#geometry-scroll", "instance": "#instance-scroll"}
        if self._active_tab() in focus:
            self.query_one(focus[self._active_tab()]).focus()

    def _active_tab(self) -> str:
        return self.query_one("#results-tabs", TabbedContent).active or "table"

    def _draw_active(self) -> None:
        tab = self._active_tab()
        if tab in self._drawn or self.results is None:
            return
        self._drawn.add(tab)
        draw = {"metrics": self._draw_metrics, "geometry": self._draw_geometry, "instance": self._draw_instance,
                "loss": self._draw_loss}.get(tab)
        if tab == "geometry":
            self.query_one(GeometryTab).computing()
        if draw is not None:
            self.call_after_refresh(draw)

    def _draw_metrics(self) -> None:
        assert self.results is not None
        self.query_one(MetricsTab).draw(self.results, self.metrics, self.metric_index, self.x_index,
                                        self.phase_selection)

    def _instance_weights(self) -> tuple[Any | None, str]:
        """The chosen instance's (n, m) embedding W, or None and why not."""
        if self.instance is None:
            return None, "no instance chosen: pick a row in the table (1)"
        try:
            weights = self._weights_of(self.instance)
        except RunDataError as exc:
            return None, str(exc)
        snapshots = weights.get("W.snapshots")
        if snapshots is None or self.snapshot is None:
            self.snapshot = None
            W = geometry.embedding(weights)
        else:
            self.snapshot %= len(snapshots)
            W = geometry.embedding({"W": snapshots[self.snapshot]})
        if W is None:
            return None, f"this model has no feature embedding W to draw (its weights: {', '.join(sorted(weights))})"
        return W, ""

    def _instance_caption(self) -> str:
        row = self.instance_row()
        if row is None or self.results is None:
            return "[dim]no instance chosen: pick a row in the table (1)[/]"
        point = self.results.point_of(row)
        caption = (f"instance [b]{self.instance}[/] · {esc(point.label())} · seed {row.get('seed')} · "
                   f"loss {value_text(row.get('loss'))}")
        steps = self._snapshot_steps()
        if steps:
            at = "final" if self.snapshot is None else f"step {steps[self.snapshot]}"
            caption += f" · weights: [b]{at}[/] (t/T: {len(steps)} snapshots)"
        return caption

    def _snapshot_steps(self) -> list[int]:
        """The steps of the chosen instance's weight snapshots (runs with snapshots=N), else []."""
        if self.instance is None:
            return []
        try:
            steps = self._weights_of(self.instance).get("snapshot_steps")
        except RunDataError:
            return []
        return [] if steps is None else [int(v) for v in steps]

    def _show_caption(self) -> None:
        for info in self.query(".instance-info").results(Static):
            info.update(self._instance_caption())

    def _draw_geometry(self) -> None:
        assert self.results is not None
        W, why = self._instance_weights()
        self._show_caption()
        steps = self._snapshot_steps() if self.snapshot is not None else []
        step = steps[self.snapshot] if steps and self.snapshot is not None else None
        self.query_one(GeometryTab).draw(self.results, W, why, self.instance, step, self.instance_row())

    def _draw_instance(self) -> None:
        assert self.results is not None
        W, why = self._instance_weights()
        self._show_caption()
        self.query_one(InstanceTab).draw(self.results, W, why, self.instance, max(self.size.width - 4, 40))

    def _draw_loss(self) -> None:
        assert self.results is not None
        row = self.instance_row()
        self.query_one(LossTab).draw(self.results, None if row is None else row.get("point"))

    # --- events and actions ---------------------------------------------------------------

    @on(DataTable.CellHighlighted, "#results-table")
    def _on_cell(self, event: DataTable.CellHighlighted) -> None:
        row = event.coordinate.row
        if not 0 <= row < len(self.view):
            return
        instance = int(self.view[row]["instance"])
        if instance != self.instance:
            self.instance = instance
            self._drawn -= {"geometry", "instance", "loss"}  # the loss tab draws this row's point's IQR

    @on(DataTable.HeaderSelected, "#results-table")
    def _on_header(self, event: DataTable.HeaderSelected) -> None:
        self._sort_by(str(event.column_key.value))

    def _sort_by(self, column: str) -> None:
        if self.sort_column == column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = column, False
        self._fill_table()

    def action_sort(self) -> None:
        table = self.query_one("#results-table", DataTable)
        if not self.columns:
            return
        column = self.columns[min(table.cursor_column, len(self.columns) - 1)]
        self._sort_by(column)

    def action_filter(self) -> None:
        self.action_tab("table")
        box = self.query_one("#results-filter", Input)
        box.display = True
        box.focus()

    @on(Input.Submitted, "#results-filter")
    def _apply_filter(self, event: Input.Submitted) -> None:
        self.filter_text = event.value.strip()
        self._fill_table()
        self.query_one("#results-table", DataTable).focus()

    @on(Input.Changed, "#results-filter")
    def _live_filter(self, event: Input.Changed) -> None:
        self.filter_text = event.value.strip()
        self._fill_table()

    def action_metric(self, step: int) -> None:
        if self.metrics:
            self.metric_index = (self.metric_index + step) % len(self.metrics)
            self._redraw("metrics")

    def action_x_axis(self) -> None:
        if self.spec is not None and self.spec.axes:
            self.x_index = (self.x_index + 1) % len(self.spec.axes)
            self._redraw("metrics")

    def action_phase_selection(self) -> None:
        """The phase grid's seed selection: best-of-k, then the paper's drop-worst majority, and back."""
        names = list(SELECTIONS)
        self.phase_selection = names[(names.index(self.phase_selection) + 1) % len(names)]
        self._redraw("metrics")

    def action_snapshot(self, step: int) -> None:
        """Step the geometry tabs through the weights over training: snapshots, then the final weights."""
        count = len(self._snapshot_steps())
        if not count:
            self.notify("this run kept no weight snapshots: run it with -s snapshots=N")
            return
        positions = [*range(count), None]  # None: the final weights
        here = positions.index(self.snapshot) if self.snapshot in positions else len(positions) - 1
        self.snapshot = positions[(here + step) % len(positions)]
        self._drawn -= {"geometry", "instance"}
        self._draw_active()

    def action_instance(self, step: int) -> None:
        order = self.view or self.rows
        if not order:
            return
        index = next((i for i, r in enumerate(order) if r.get("instance") == self.instance), -1)
        self.instance = int(order[(index + step) % len(order)]["instance"])
        self.snapshot = None
        table = self.query_one("#results-table", DataTable)
        view_index = next((i for i, r in enumerate(self.view) if r.get("instance") == self.instance), None)
        if view_index is not None:
            table.move_cursor(row=view_index, animate=False)
        self._drawn -= {"geometry", "instance"}
        self._draw_active()

    def _redraw(self, tab: str) -> None:
        self._drawn.discard(tab)
        if self._active_tab() != tab:
            self.action_tab(tab)
        else:
            self._draw_active()

    def action_tab(self, tab: str) -> None:
        if tab != "table" and self.query_one(TableTab).has_focus_within:
            # Else the hidden table hands focus to its sibling, the filter box, whose tab then comes back.
            self.set_focus(None)
        self.query_one("#results-tabs", TabbedContent).active = tab

    def action_reload(self) -> None:
        self.load()
        self.notify("reloaded the run folder", timeout=2)

    def action_export(self) -> None:
        self._export(None)

    def action_export_to(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self._export(Path(path).expanduser())

        self.app.push_screen(PromptScreen("Export results (CSV with run_id) to:", str(self.run.path / EXPORT_NAME)),
                             chosen)

    def _export(self, path: Path | None) -> None:
        """results.csv with a leading run_id column, as ``toysup export`` writes it."""
        target = path or self.run.path / EXPORT_NAME
        try:
            rows = export(self.run, target)
        except ToysupError as exc:
            self.notify(str(exc), title="Export failed", severity="error")
            return
        self.notify(f"{rows} rows written to {target}", title="Exported", timeout=10)

    def figure_request(self) -> tuple[list[str], dict[str, Any], str]:
        """The chart on screen as toysup_tui.figures draws it: chart names, their options, a file name stem."""
        tab = self._active_tab()
        if tab == "metrics" and self.metrics and self.spec is not None and self.spec.axes:
            metric = self.metrics[self.metric_index]
            x = self.spec.axes[self.x_index % len(self.spec.axes)].name
            return ["metrics"], {"metrics": [metric], "x": x}, f"{metric}"
        if tab in ("geometry", "instance") and self.instance is not None:
            return ["geometry"], {"instances": [self.instance]}, f"geometry-{self.instance}"
        if tab == "loss":
            return ["loss"], {}, "loss"
        return [], {}, "report"  # the table: every chart the run has

    def action_figure(self) -> None:
        """Save the chart on screen (the table tab: every chart) as a PNG, SVG or PDF figure (matplotlib)."""
        if self.results is None:
            self.notify("this run's results cannot be read", severity="error")
            return
        charts, options, stem = self.figure_request()

        def chosen(path: str | None) -> None:
            if path:
                self._save_figure(self.results, charts, options, Path(path).expanduser())

        self.app.push_screen(PromptScreen("Save the chart as a figure (.png, .svg or .pdf):",
                                          str(Path.cwd() / f"{self.run.id}-{stem}.png")), chosen)

    @work(thread=True, group="figure", exit_on_error=False)
    def _save_figure(self, results: Results | None, charts: list[str], options: dict[str, Any], path: Path) -> None:
        assert results is not None
        try:
            figures.figure_format(path)
            figures.save(figures.build(results, charts, **options), path)
        except ToysupError as exc:
            self.app.call_from_thread(self.notify, str(exc), title="No figure written", severity="error")
            return
        self.app.call_from_thread(self.notify, f"wrote {path}", title="Figure saved", timeout=10)

    async def action_resume(self) -> None:
        if self.resumable:
            await self.app.resume_run(self.run)
        else:
            self.notify(f"{self.run.id} is {self.status}: only an interrupted, failed or killed run can be resumed",
                        severity="warning")

    def close_inner(self) -> bool:
        """Escape with the filter bar open clears the filter and closes the bar."""
        box = self.query_one("#results-filter", Input)
        if not box.display:
            return False
        box.value = ""
        box.display = False
        self.filter_text = ""
        self._fill_table()
        self.query_one("#results-table", DataTable).focus()
        return True

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        tab = self._active_tab() if self.is_mounted else "table"
        if action in ("metric", "x_axis"):
            return tab == "metrics"
        if action == "instance":
            return tab in ("geometry", "instance", "table")
        if action in ("sort", "filter"):
            return tab == "table"
        if action == "resume":
            return self.resumable
        return True

    def offers(self, action: str) -> bool:
        # The tab rules above keep the footer short; from the palette these actions switch to their tab.
        return action != "resume" or self.resumable

