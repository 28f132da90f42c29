"""The sweep form: every parameter of the chosen model, generated from the engine's declarations.

A field holds one value or a sweep expression (the CLI's grammar). The whole
form is resolved with ``engine.spec.resolve`` on every change, so the summary
line (instances, instance-steps, a rough time) and any error are exactly what
``toysup run`` would say.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Header, Input, Label, OptionList, Select, Static

from engine.errors import SpecError
from engine.executors import BACKENDS
from engine.models import MODELS, get_model
from engine.params import TRAINING_PARAMS
from engine.spec import Spec, resolve
from toysup_tui.estimate import Speed, estimate_seconds, instance_steps, measured_speed
from toysup_tui.live import format_duration
from toysup_tui.screens.base import ToysupScreen
from toysup_tui.screens.confirm import ConfirmScreen
from toysup_tui.user_presets import preset_file_name, save_preset
from toysup_tui.widgets.markup import esc
from toysup_tui.widgets.param_field import SWEEP_HINT, ParamField, initial_text


def device_choices() -> list[str]:
    """auto and cpu always; cuda and each cuda:N when torch sees GPUs."""
    import torch

    choices = ["auto", "cpu"]
    if torch.cuda.is_available():
        choices += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    return choices


BACKEND_LABELS = {"local": "local: this machine", "ray": "ray: Ray tasks (a cluster, or a local Ray instance)"}
ADDRESS_HINT = "empty: $RAY_ADDRESS, else a new local Ray instance"


class FormSelect(Select[str]):
    """A select that leaves up and down to the form (which moves between fields); enter or space opens it."""

    inherit_bindings = False
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter,space", "show_overlay", "Choose", show=False)]


class FormScreen(ToysupScreen):
    """Edit a preset's parameters and sweep axes, then launch it or save it as a preset."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "launch", "Launch"),
        Binding("ctrl+s", "save", "Save preset"),
        Binding("escape", "back", "Back"),
        # priority: the scrolling container around the fields would otherwise take the arrows
        Binding("down", "move(1)", "Next field", show=False, priority=True),
        Binding("up", "move(-1)", "Previous field", show=False, priority=True),
    ]

    def __init__(self, data: dict[str, Any], source: str = "") -> None:
        super().__init__()
        self.data = data
        self.source = source
        self.spec: Spec | None = None
        self.problem = ""
        self._speed: Speed | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="form-summary")
        with VerticalScroll(id="form-fields"):
            yield Static(f"[dim]Every field takes one value, or a sweep axis: {SWEEP_HINT}. ↑/↓ or tab: move; "
                         f"ctrl+p: jump to a field by name.[/]",
                         id="form-hint")
            if self.data.get("expected"):
                yield Static(f"[b]expect:[/b] {esc(str(self.data['expected']))}", id="form-expected")
            with Horizontal(classes="param-row form-meta"):
                yield Label("name", classes="param-name")
                yield Input(str(self.data.get("name", "sweep")), id="form-name", compact=True)
            with Horizontal(classes="param-row form-meta"):
                yield Label("description", classes="param-name")
                yield Input(str(self.data.get("description", "")), id="form-description", compact=True)
            with Horizontal(classes="param-row form-meta"):
                yield Label("model", classes="param-name")
                yield FormSelect([(f"{k}: {v.summary}", k) for k, v in MODELS.items()], value=self._model,
                             allow_blank=False, id="form-model", compact=True)
            with Horizontal(classes="param-row form-meta"):
                yield Label("device", classes="param-name")
                devices = device_choices()
                device = self.app.device if self.app.device in devices else "auto"
                yield FormSelect([(d, d) for d in devices], value=device, allow_blank=False, id="form-device",
                                 compact=True)
            with Horizontal(classes="param-row form-meta"):
                yield Label("backend", classes="param-name")
                yield FormSelect([(BACKEND_LABELS[b], b) for b in BACKENDS], value=self.app.backend,
                                 allow_blank=False, id="form-backend", compact=True)
            with Horizontal(classes="param-row form-meta", id="form-address-row") as row:
                row.display = self.app.backend == "ray"
                yield Label("ray address", classes="param-name")
                yield Input(self.app.address, placeholder=ADDRESS_HINT, id="form-address", compact=True)
            yield from self._fields(self._model)
        yield Footer()

    @property
    def _model(self) -> str:
        model = self.data.get("model", "relu_output")
        return model if model in MODELS else "relu_output"

    def _fields(self, model: str) -> list[Static | ParamField]:
        """The model's own parameters, then the training ones, each group under a heading."""
        training = {p.name for p in TRAINING_PARAMS}
        params = list(get_model(model).param_table().values())
        out: list[Static | ParamField] = []
        group = ""
        for p in params:
            now = "training" if p.name in training else f"model parameters [dim]({esc(model)})[/]"
            if now != group:
                group = now
                out.append(Static(f"[b]{now}[/]", classes="form-group"))
            out.append(ParamField(p, initial_text(p, self.data)))
        return out

    def on_mount(self) -> None:
        self.title = f"edit sweep: {self.data.get('name', 'sweep')}"
        self._speed = measured_speed(self.app.runs_dir)
        self.query_one("#form-name", Input).focus()
        self.call_after_refresh(self.refresh_summary)

    # --- reading the form -----------------------------------------------------------------

    @property
    def fields(self) -> list[ParamField]:
        return list(self.query(ParamField))

    def form_data(self) -> dict[str, Any]:
        """The form as preset contents: fixed fields in [params], sweep fields in [sweep] (preset's order first)."""
        params: dict[str, Any] = {}
        sweep: dict[str, Any] = {}
        for f in self.fields:
            (sweep if f.is_sweep else params)[f.param.name] = f.text.strip()
        original = list(self.data.get("sweep", {}) or {})
        ordered = {k: sweep[k] for k in original if k in sweep} | sweep
        data: dict[str, Any] = {
            "name": self.query_one("#form-name", Input).value.strip() or "sweep",
            "description": self.query_one("#form-description", Input).value.strip(),
            "model": self.query_one("#form-model", Select).value,
            "params": params,
            "sweep": ordered,
        }
        if self.data.get("expected"):
            data["expected"] = self.data["expected"]
        return data

    def resolve_form(self) -> Spec:
        """The form's spec, or SpecError: the first invalid field's message, or a whole-sweep problem."""
        bad = [f for f in self.fields if f.error]
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise SpecError(bad[0].error + more)
        return resolve(self.form_data(), source="form")

    def refresh_summary(self) -> None:
        summary = self.query_one("#form-summary", Static)
        try:
            spec = self.resolve_form()
        except SpecError as exc:
            self.spec, self.problem = None, str(exc)
            summary.update(f"[b red]✗[/] {esc(str(exc))}")
            summary.add_class("-invalid")
            return
        self.spec = spec
        summary.remove_class("-invalid")
        work = instance_steps(spec)
        eta = estimate_seconds(spec, self._speed) if self._speed else None
        basis = f" · time at the {self._speed.basis}" if self._speed else ""
        axes = ", ".join(f"{a.name} ({a.scale} ×{len(a.values)})" for a in spec.axes) or "no sweep axis"
        summary.update(
            f"[b]{spec.n_points}[/] point(s) × [b]{spec.seeds}[/] seed(s) = [b]{spec.n_instances:,}[/] instances · "
            f"{work:,} instance-steps · [b]~{format_duration(eta)}[/]\n"
            f"[dim]sweep: {esc(axes)}{basis}[/]"
        )

    @on(ParamField.Changed)
    @on(Input.Changed, "#form-name")
    def _on_field_changed(self) -> None:
        self.refresh_summary()

    @on(Select.Changed, "#form-backend")
    def _on_backend_changed(self, event: Select.Changed) -> None:
        self.query_one("#form-address-row").display = event.value == "ray"

    @on(Select.Changed, "#form-model")
    async def _on_model_changed(self, event: Select.Changed) -> None:
        model = str(event.value)
        current = {f.param.name: f.text for f in self.fields}
        if {f.param.name for f in self.fields} == set(get_model(model).param_table()):
            self.refresh_summary()
            return
        self.data = {**self.form_data(), "model": model}
        self.data["params"] = {k: v for k, v in current.items() if k in get_model(model).param_table()}
        self.data["sweep"] = {}
        for f in self.fields:
            if f.is_sweep and f.param.name in self.data["params"]:
                self.data["sweep"][f.param.name] = self.data["params"].pop(f.param.name)
        await self.query(ParamField).remove()
        await self.query(".form-group").remove()
        await self.query_one("#form-fields").mount_all(self._fields(model))
        self.refresh_summary()

    # --- actions --------------------------------------------------------------------------

    def _valid_spec(self) -> Spec | None:
        self.refresh_summary()
        if self.spec is None:
            bad = [f for f in self.fields if f.error]
            if bad:
                bad[0].input.focus()
                bad[0].scroll_visible()
            self.notify(self.problem, title="Cannot use this sweep yet", severity="error")
            return None
        return self.spec

    async def action_launch(self) -> None:
        spec = self._valid_spec()
        if spec is None:
            return
        device = str(self.query_one("#form-device", Select).value)
        backend = str(self.query_one("#form-backend", Select).value)
        await self.app.launch(spec, device, backend, self.query_one("#form-address", Input).value.strip())

    def action_save(self) -> None:
        spec = self._valid_spec()
        if spec is None:
            return
        target = self.app.user_presets_dir / preset_file_name(spec.name)

        def write(confirmed: bool | None) -> None:
            if not confirmed:
                return
            try:
                path = save_preset(spec, self.app.user_presets_dir)
            except SpecError as exc:
                self.notify(str(exc), severity="error")
                return
            self.notify(f"saved preset {spec.name!r} to {path}", title="Saved")
            self.app.presets_changed()

        if target.exists():
            self.app.push_screen(ConfirmScreen(f"Replace your preset file {target}?", yes="Replace"), write)
        else:
            write(True)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_move(self, step: int) -> None:
        """Up and down go from field to field, except inside an open select list, where they pick."""
        focused = self.focused
        if isinstance(focused, OptionList):
            (focused.action_cursor_down if step > 0 else focused.action_cursor_up)()
        elif step > 0:
            self.focus_next()
        else:
            self.focus_previous()

    def focus_field(self, name: str) -> None:
        """Put the cursor in a parameter's field (the command palette's "Field: NAME" commands)."""
        field = self.query_one(f"#field-{name}", ParamField)
        field.input.focus()
        field.scroll_visible(top=True)
