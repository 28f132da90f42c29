"""The sweep form's fields: a model or training parameter, or a run option; each with help, range and inline error.

A field knows nothing about a particular parameter or option: everything it
shows comes from the engine's declaration (:class:`~engine.params.Param`, or
:class:`~engine.options.Option` for run options), and its checks are the
engine's own (``Param.parse`` and ``parse_axis``, ``Option.parse``), so the form
rejects exactly what the CLI rejects, with the same message.
"""

from __future__ import annotations

from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Select, Static

from toysup.engine.errors import SpecError
from toysup.engine.options import Option
from toysup.engine.params import Param
from toysup.engine.run_format import format_value
from toysup.engine.spec import NOT_SWEEPABLE, Axis, parse_axis
from toysup_tui.widgets.markup import esc

SWEEP_HINT = "a,b,c | lin:A:B:N | log:A:B:N"


def is_sweep_text(text: str) -> bool:
    """Whether a field's text is a sweep expression rather than one value."""
    text = text.strip()
    return text.startswith(("lin:", "log:")) or "," in text


def initial_text(param: Param, data: dict[str, Any]) -> str:
    """The field's starting text from a preset's [params] and [sweep] tables, else the default."""
    sweep = data.get("sweep", {}) if isinstance(data.get("sweep"), dict) else {}
    params = data.get("params", {}) if isinstance(data.get("params"), dict) else {}
    if param.name in sweep:
        expr = sweep[param.name]
        return ",".join(format_value(v) for v in expr) if isinstance(expr, list) else str(expr)
    return format_value(params.get(param.name, param.default))


def option_text(value: Any) -> str:
    """An option's value as a field shows it: empty for unset (automatic), numbers short but exact."""
    if value is None:
        return ""
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


def interpret(param: Param, text: str) -> Any | Axis:
    """The field's value, or an Axis if it is a sweep expression; SpecError with the CLI's message if bad."""
    text = text.strip()
    if not text:
        raise SpecError(f"{param.name} is empty: expected {param.range_text()}")
    if is_sweep_text(text):
        return parse_axis(param, text)
    return param.parse(text)


class FormSelect(Select[str]):
    """A select that leaves up and down to the form (which moves between fields); enter or space opens it."""

    inherit_bindings = False
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter,space", "show_overlay", "Choose", show=False)]


class Field(Vertical):
    """Name, input, and below it the help text with the valid range, or the error in red.

    Subclasses say how the text becomes a value (:meth:`interpret`) and what the
    help line and the empty input's placeholder say.
    """

    class Changed(Message):
        """The field's text changed (already checked: see ``field.error``)."""

        def __init__(self, field: Field) -> None:
            super().__init__()
            self.field = field

    def __init__(self, param: Param, text: str, id: str, input_id: str) -> None:
        super().__init__(id=id, classes="param-field")
        self.param = param
        self.input_id = input_id
        self._text = text
        self.error = ""
        self.value: Any = None
        self._shown: tuple[str, str] = ("", "")

    def compose(self) -> ComposeResult:
        with Horizontal(classes="param-row"):
            yield Label(self.param.name, classes="param-name")
            yield self._make_input()
            yield Label("", classes="param-badge")
        yield Static(self._help_text(), classes="param-help", markup=True)

    def _make_input(self) -> Input | Select[str]:
        return Input(self._text, placeholder=self._placeholder(), id=self.input_id, select_on_focus=False,
                     compact=True)

    def _placeholder(self) -> str:
        return self.param.range_text()

    def _help_text(self) -> str:
        return f"{esc(self.param.help)} [dim]· {esc(self.param.range_text())}[/]"

    def interpret(self, text: str) -> Any:
        raise NotImplementedError

    def on_mount(self) -> None:
        self._check(self.text)

    @property
    def input(self) -> Input | Select[str]:
        return self.query_one(f"#{self.input_id}")  # type: ignore[return-value]

    @property
    def text(self) -> str:
        return str(self.input.value)

    @text.setter
    def text(self, value: str) -> None:
        self.input.value = value

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._check(event.value)
        self.post_message(self.Changed(self))

    def _badge(self) -> str:
        return ""

    def _check(self, text: str) -> None:
        try:
            self.value = self.interpret(text)
            self.error = ""
        except SpecError as exc:
            self.value, self.error = None, str(exc)
        self.set_class(bool(self.error), "-invalid")
        self.input.set_class(bool(self.error), "-invalid")
        help_text = f"[b]✗[/b] {esc(self.error)}" if self.error else self._help_text()
        badge_text = self._badge()
        # Update only what changed: each update costs a layout pass of the whole form.
        if (help_text, badge_text) != self._shown:
            self._shown = (help_text, badge_text)
            self.query_one(".param-help", Static).update(help_text)
            self.query_one(".param-badge", Label).update(badge_text)


class ParamField(Field):
    """A model or training parameter: one value or a sweep expression."""

    def __init__(self, param: Param, text: str) -> None:
        super().__init__(param, text, id=f"field-{param.name}", input_id=f"input-{param.name}")

    def _placeholder(self) -> str:
        sweepable = self.param.name not in NOT_SWEEPABLE
        return self.param.range_text() + (f"  or sweep: {SWEEP_HINT}" if sweepable else "")

    def _help_text(self) -> str:
        fixed = " · cannot be swept" if self.param.name in NOT_SWEEPABLE else ""
        return f"{esc(self.param.help)} [dim]· {esc(self.param.range_text())}{fixed}[/]"

    def interpret(self, text: str) -> Any | Axis:
        return interpret(self.param, text)

    @property
    def is_sweep(self) -> bool:
        return isinstance(self.value, Axis)

    def _badge(self) -> str:
        return f"sweep ×{len(self.value.values)}" if isinstance(self.value, Axis) else ""

    def _check(self, text: str) -> None:
        super()._check(text)
        self.set_class(self.is_sweep, "-sweep")


class OptionField(Field):
    """A run option (threads, memory budget, backend...): one value, never swept.

    With ``choices`` it is a select (the backend, the devices torch sees);
    otherwise a text input, where an empty field means the option's automatic
    value.
    """

    def __init__(self, option: Option, value: Any, choices: list[str] | None = None) -> None:
        super().__init__(option, option_text(value), id=f"option-{option.name}",
                         input_id=f"input-option-{option.name}")
        self.option = option
        self.choices = choices

    def _make_input(self) -> Input | Select[str]:
        if self.choices is None:
            return super()._make_input()
        value = self._text if self._text in self.choices else str(self.option.default)
        return FormSelect([(c, c) for c in self.choices], value=value, allow_blank=False, id=self.input_id,
                          compact=True)

    def _placeholder(self) -> str:
        return f"auto: {self.option.automatic}" if self.option.automatic else self.option.range_text()

    def _help_text(self) -> str:
        valid = "" if self.choices is not None else f" [dim]· {esc(self.option.range_text())}[/]"
        return f"{esc(self.option.help)}{valid}"

    def interpret(self, text: str) -> Any:
        return self.option.parse(text)

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._check(str(event.value))
        self.post_message(self.Changed(self))
