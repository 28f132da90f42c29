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

from toysup.engine.errors import SpecError
from toysup.engine.models import MODELS, get_kind
from toysup.engine.options import OPTIONS, RunOptions
from toysup.engine.params import TRAINING_PARAMS
from toysup.engine.spec import Spec, resolve
from toysup_tui.estimate import Speed, estimate_seconds, instance_steps, measured_speed
from toysup_tui.live import format_duration
from toysup_tui.screens.base import ToysupScreen
from toysup_tui.screens.confirm import ConfirmScreen, PromptScreen
from toysup_tui.user_presets import check_name, save_preset, shadows
from toysup_tui.widgets.markup import esc
from toysup_tui.widgets.param_field import SWEEP_HINT, Field, FormSelect, OptionField, ParamField, initial_text


def device_choices() -> list[str]:
    """auto and cpu always; cuda and each cuda:N when torch sees GPUs."""
    import torch  # deferred: torch, imported after the first paint (app.py)

    choices = ["auto", "cpu"]
    if torch.cuda.is_available():
        choices += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    return choices


class FormScreen(ToysupScreen):
    """Edit a preset's parameters and sweep axes, then launch it (with its run options) or save it as a preset."""

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
        self.options: RunOptions | None = None
        self.problem = ""  # the first thing wrong with the sweep, else with the run options
        self._speed: Speed | None = None
        self._kept: tuple[Any, ...] = ()  # the form as opened, launched or saved: escape asks before losing edits

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="form-summary")
        with VerticalScroll(id="form-fields"):
            yield Static(f"[dim]A parameter takes one value, or a sweep axis: {SWEEP_HINT}. ↑/↓ or tab: move; "
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
            yield from self._fields(self._model)
            yield from self._option_fields()
        yield Footer()

    @property
    def _model(self) -> str:
        model = self.data.get("model", "relu_output")
        return model if model in MODELS else "relu_output"

    def _fields(self, model: str) -> list[Static | ParamField]:
        """The model's own parameters, then the training ones, each group under a heading."""
        training = {p.name for p in TRAINING_PARAMS}
        params = list(get_kind(model).param_table().values())
        out: list[Static | ParamField] = []
        group = ""
        for p in params:
            now = "training" if p.name in training else f"model parameters [dim]({esc(model)})[/]"
            if now != group:
                group = now
                out.append(Static(f"[b]{now}[/]", classes="form-group param-group"))
            out.append(ParamField(p, initial_text(p, self.data)))
        return out

    def _option_fields(self) -> list[Static | OptionField]:
        """The run options, from their declarations, starting at the app's (``toysup tui``'s flags)."""
        start = self.app.options
        out: list[Static | OptionField] = [
            Static("[b]run options[/] [dim](how and where it trains; not saved with a preset)[/]",
                   classes="form-group", id="form-options-group")]
        for option in OPTIONS:
            choices = device_choices() if option.name == "device" else list(option.choices) or None
            field = OptionField(option, getattr(start, option.name), choices)
            field.display = not option.backend or start.backend == option.backend
            out.append(field)
        return out

    def on_mount(self) -> None:
        self.title = f"edit sweep: {self.data.get('name', 'sweep')}"
        self._speed = measured_speed(self.app.runs_dir)
        self.query_one("#form-name", Input).focus()
        self._kept = self._contents()
        self.call_after_refresh(self.refresh_summary)

    # --- reading the form -----------------------------------------------------------------

    @property
    def fields(self) -> list[ParamField]:
        return list(self.query(ParamField))

    @property
    def option_fields(self) -> list[OptionField]:
        """The run options' fields now shown (the Ray ones only with the ray backend)."""
        return [f for f in self.query(OptionField) if f.display]

    def _contents(self) -> tuple[Any, ...]:
        """Everything typed or chosen in the form, to tell whether it was edited."""
        return (self.form_data(), [(f.option.name, f.text) for f in self.query(OptionField)])

    @property
    def edited(self) -> bool:
        """Something differs from the form as opened (or as last launched or saved)."""
        return self._contents() != self._kept

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
        if self.data.get("adaptive") is not None:  # the form has no fields for it: an adaptive preset stays adaptive
            data["adaptive"] = self.data["adaptive"]
        return data

    def resolve_form(self) -> Spec:
        """The form's spec, or SpecError: the first invalid field's message, or a whole-sweep problem."""
        bad = [f for f in self.fields if f.error]
        if bad:
            more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
            raise SpecError(bad[0].error + more)
        return resolve(self.form_data(), source="form")

    def resolve_options(self) -> RunOptions:
        """The run options, or SpecError: the first invalid field's message, or a combination's problem."""
        fields = self.option_fields
        bad = [f for f in fields if f.error]
        if bad:
            raise SpecError(bad[0].error)
        return RunOptions.from_dict({f.option.name: f.value for f in fields})

    def refresh_summary(self) -> None:
        summary = self.query_one("#form-summary", Static)
        self.spec = self.options = None
        try:
            self.spec = self.resolve_form()
            self.options = self.resolve_options()
        except SpecError as exc:
            self.problem = str(exc)
            summary.update(f"[b red]✗[/] {esc(str(exc))}")
            summary.add_class("-invalid")
            return
        self.problem = ""
        spec = self.spec
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

    @on(Field.Changed)
    @on(Input.Changed, "#form-name")
    def _on_field_changed(self, event: Field.Changed | Input.Changed) -> None:
        if isinstance(event, Field.Changed) and isinstance(event.field, OptionField) and \
                event.field.option.name == "backend":
            for field in self.query(OptionField):  # the Ray options show with the ray backend only
                field.display = not field.option.backend or field.option.backend == event.field.value
        self.refresh_summary()

    @on(Select.Changed, "#form-model")
    async def _on_model_changed(self, event: Select.Changed) -> None:
        model = str(event.value)
        current = {f.param.name: f.text for f in self.fields}
        if {f.param.name for f in self.fields} == set(get_kind(model).param_table()):
            self.refresh_summary()
            return
        self.data = {**self.form_data(), "model": model}
        self.data["params"] = {k: v for k, v in current.items() if k in get_kind(model).param_table()}
        self.data["sweep"] = {}
        for f in self.fields:
            if f.is_sweep and f.param.name in self.data["params"]:
                self.data["sweep"][f.param.name] = self.data["params"].pop(f.param.name)
        await self.query(ParamField).remove()
        await self.query(".param-group").remove()
        await self.query_one("#form-fields").mount_all(self._fields(model), before="#form-options-group")
        self.refresh_summary()

    # --- actions --------------------------------------------------------------------------

    def _valid_spec(self, with_options: bool = False) -> Spec | None:
        """The form's spec if it is valid (``with_options``: and its run options too), else say what is wrong."""
        self.refresh_summary()
        if self.spec is None or (with_options and self.options is None):
            fields: list[Field] = [*self.fields, *(self.option_fields if with_options else [])]
            bad = [f for f in fields if f.error]
            if bad:
                bad[0].input.focus()
                bad[0].scroll_visible()
            self.notify(self.problem, title="Cannot use this sweep yet", severity="error")
            return None
        return self.spec

    async def action_launch(self) -> None:
        spec = self._valid_spec(with_options=True)
        if spec is None or self.options is None:
            return
        self._kept = self._contents()  # the run folder keeps them (config.toml)
        await self.app.launch(spec, self.options)

    def action_save(self) -> None:
        """Ask for a name, then save to the user's presets; replacing a file or shadowing a bundled or project
        preset of that name asks first (toysup run NAME would run this one instead)."""
        spec = self._valid_spec()
        if spec is None:
            return

        def named(answer: str | None) -> None:
            if answer is None:
                return
            try:
                name = check_name(answer)
            except SpecError as exc:
                self.notify(str(exc), severity="error")
                return
            user_dir = self.app.user_presets_dir
            target = user_dir / f"{name}.toml"
            others = shadows(name, user_dir)
            if target.exists():
                question = f"Replace your preset file {target}?"
            elif "bundled" in others:
                question = (f"A bundled preset is named {name}: yours would take its place in toysup run {name} "
                            f"(the bundled one stays as bundled:{name}). Save it anyway?")
            else:
                write(name, True)
                return
            self.app.push_screen(ConfirmScreen(question, yes="Save"), lambda ok: write(name, ok))

        def write(name: str, confirmed: bool | None) -> None:
            if not confirmed:
                return
            try:
                path = save_preset(spec, self.app.user_presets_dir, name)
            except SpecError as exc:
                self.notify(str(exc), severity="error")
                return
            self._kept = self._contents()
            note = (f"; a project preset {name} in ./presets still wins in toysup run {name} (this one is "
                    f"user:{name})" if "project" in shadows(name, self.app.user_presets_dir) else "")
            self.notify(f"saved preset {name!r} to {path}{note}", title="Saved")
            self.app.presets_changed()

        self.app.push_screen(PromptScreen("Save as preset named (toysup run NAME runs it):", spec.name), named)

    def leave(self) -> None:
        """Back to the presets; if the form was edited, only after asking."""
        if not self.edited:
            self.app.pop_screen()
            return

        def answer(discard: bool | None) -> None:
            if discard:
                self.app.pop_screen()

        self.app.push_screen(ConfirmScreen("Leave the form and throw away your edits? (ctrl+s saves them as a "
                                           "preset)", yes="Discard", no="Keep editing"), answer)

    def action_move(self, step: int) -> None:
        """Up and down go from field to field, except inside an open select list, where they pick."""
        focused = self.focused
        if isinstance(focused, OptionList):
            (focused.action_cursor_down if step > 0 else focused.action_cursor_up)()
        elif step > 0:
            self.focus_next()
        else:
            self.focus_previous()

    def jump_targets(self) -> list[tuple[str, str]]:
        """Every field shown, top to bottom, as (name, help): the command palette's "Field: NAME" commands."""
        meta = [("name", "the sweep's name (its run folders are named after it)"),
                ("description", "one line on what the sweep shows"), ("model", "the model to train")]
        return [*meta, *((f.param.name, f.param.help) for f in [*self.fields, *self.option_fields])]

    def focus_field(self, name: str) -> None:
        """Put the cursor in a field: the sweep's name, description or model, a parameter or a run option."""
        if name in ("name", "description", "model"):
            self.query_one(f"#form-{name}").focus()
            self.query_one("#form-fields", VerticalScroll).scroll_home(animate=False)
            return
        found = self.query(f"#field-{name}") or self.query(f"#option-{name}")
        field = found.first(Field)
        field.input.focus()
        field.scroll_visible(top=True)
