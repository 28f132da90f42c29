"""Quitting while a sweep trains: leave it running (it is detached) or stop it first."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from toysup_tui.widgets.markup import esc


class QuitRunScreen(ModalScreen[str | None]):
    """Answers ``"leave"`` (quit, the sweep goes on), ``"stop"`` (stop it, then quit) or None (stay)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "answer('leave')", "Leave running"),
        Binding("s", "answer('stop')", "Stop it"),
        Binding("escape,n", "answer(None)", "Stay"),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__(classes="dialog-screen")
        self.run_id = run_id

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(esc(f"A sweep is training ({self.run_id}). Quit and leave it running (follow it later "
                            "with toysup watch, or here from the runs browser), or stop it first? Finished "
                            "chunks and the chunk in training are kept either way."), classes="dialog-question")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Leave running (l)", variant="primary", id="leave")
                yield Button("Stop it (s)", variant="error", id="stop")
                yield Button("Stay (esc)", id="stay")

    def on_mount(self) -> None:
        self.query_one("#leave", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None if event.button.id == "stay" else event.button.id)

    def action_answer(self, choice: str | None) -> None:
        self.dismiss(choice)
