"""What every toysup screen shares: a layout class for wide terminals."""

from __future__ import annotations

from textual import events
from textual.screen import Screen

WIDE_COLUMNS = 120  # at and above this width, panes sit side by side


class ToysupScreen(Screen):
    """A screen that marks itself ``-wide`` on large terminals, so app.tcss can lay panes side by side."""

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width >= WIDE_COLUMNS, "-wide")

    def on_screen_resume(self) -> None:
        self.set_class(self.app.size.width >= WIDE_COLUMNS, "-wide")
