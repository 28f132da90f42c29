"""One parameter in the sweep form: its value or sweep expression, help, range and inline error.

The field knows nothing about a particular parameter: everything it shows comes
from the engine's :class:`~engine.params.Param` declaration, and its checks are
the engine's own (``Param.parse`` and ``parse_axis``), so the form rejects
exactly what the CLI rejects, with the same message.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Input, Label, Static

from engine.errors import SpecError
from engine.params import Param
from engine.spec import NOT_SWEEPABLE, Axis, parse_axis
from engine.store import format_value
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


def interpret(param: Param, text: str) -> Any | Axis:
    """The field's value, or an Axis if it is a sweep expression; SpecError with the CLI's message if bad."""
    text = text.strip()
    if not text:
        raise SpecError(f"{param.name} is empty: expected {param.range_text()}")
    if is_sweep_text(text):
        return parse_axis(param, text)
    return param.parse(text)


class ParamField(Vertical):
    """Name, input, and below it the help text with the valid range, or the error in red."""

    class Changed(Message):
        """The field's text changed (already checked: see ``field.error``)."""

        def __init__(self, field: ParamField) -> None:
            super().__init__()
            self.field = field

    def __init__(self, param: Param, text: str) -> None:
        super().__init__(id=f"field-{param.name}", classes="param-field")
        self.param = param
        self._text = text
        self.error = ""
        self.value: Any | Axis = None
        self._shown: tuple[str, str] = ("", "")

    def compose(self) -> ComposeResult:
        sweepable = self.param.name not in NOT_SWEEPABLE
        placeholder = self.param.range_text() + (f"  or sweep: {SWEEP_HINT}" if sweepable else "")
        with Horizontal(classes="param-row"):
            yield Label(self.param.name, classes="param-name")
            yield Input(self._text, placeholder=placeholder, id=f"input-{self.param.name}", select_on_focus=False,
                        compact=True)
            yield Label("", classes="param-badge")
        yield Static(self._help_text(), classes="param-help", markup=True)

    def on_mount(self) -> None:
        self._check(self._text)

    def _help_text(self) -> str:
        fixed = " · cannot be swept" if self.param.name in NOT_SWEEPABLE else ""
        return f"{esc(self.param.help)} [dim]· {esc(self.param.range_text())}{fixed}[/]"

    @property
    def text(self) -> str:
        return self.query_one(Input).value

    @text.setter
    def text(self, value: str) -> None:
        self.query_one(Input).value = value

    @property
    def input(self) -> Input:
        return self.query_one(Input)

    @property
    def is_sweep(self) -> bool:
        return isinstance(self.value, Axis)

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._check(event.value)
        self.post_message(self.Changed(self))

    def _check(self, text: str) -> None:
        try:
            self.value = interpret(self.param, text)
            self.error = ""
        except SpecError as exc:
            self.value, self.error = None, str(exc)
        self.set_class(bool(self.error), "-invalid")
        self.input.set_class(bool(self.error), "-invalid")
        self.set_class(self.is_sweep, "-sweep")
        help_text = f"[b]✗[/b] {esc(self.error)}" if self.error else self._help_text()
        badge_text = f"sweep ×{len(self.value.values)}" if isinstance(self.value, Axis) else ""
        # Update only what changed: each update costs a layout pass of the whole form.
        if (help_text, badge_text) != self._shown:
            self._shown = (help_text, badge_text)
            self.query_one(".param-help", Static).update(help_text)
            self.query_one(".param-badge", Label).update(badge_text)
