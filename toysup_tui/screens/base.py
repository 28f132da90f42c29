"""What every toysup screen shares: the app typed as toysup's, and a layout class for wide terminals."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import events
from textual.screen import Screen

if TYPE_CHECKING:
    from textual import getters

    from toysup_tui.app import ToysupApp

WIDE_COLUMNS = 120  # at and above this width, panes sit side by side


class ToysupScreen(Screen):
    """A screen that marks itself ``-wide`` on large terminals, so app.tcss can lay panes side by side."""

    if TYPE_CHECKING:
        # For the type checker only (Textual's own idiom, as in MessagePump): ``self.app`` is toysup's app,
        # whose runs folder, live run and launch the screens use. At run time Textual's property serves it.
        app = getters.app(ToysupApp)

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width >= WIDE_COLUMNS, "-wide")

    def on_screen_resume(self) -> None:
        self.set_class(self.app.size.width >= WIDE_COLUMNS, "-wide")
