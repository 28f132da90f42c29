"""What every toysup screen shares: the app typed as toysup's, a layout class for wide terminals, and escape."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import events
from textual.screen import Screen

from toysup_tui.widgets.keys import KeysPanel

if TYPE_CHECKING:
    from textual import getters

    from toysup_tui.host import ToysupHost

WIDE_COLUMNS = 120  # at and above this width, panes sit side by side


class ToysupScreen(Screen):
    """A screen that marks itself ``-wide`` on large terminals, so app.tcss can lay panes side by side.

    Escape (each screen binds it to ``back``) means the same everywhere: it closes the innermost thing
    open, the keys panel, then what :meth:`close_inner` closes (the results' filter bar), and only then
    the screen (:meth:`leave`).
    """

    if TYPE_CHECKING:
        # For the type checker only (Textual's own idiom, as in MessagePump): ``self.app`` is toysup's app,
        # whose runs folder, options and launch the screens use (declared in host.py, below the screens, so
        # that no screen imports app.py). At run time Textual's property serves it.
        app = getters.app(ToysupHost)

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width >= WIDE_COLUMNS, "-wide")

    def on_screen_resume(self) -> None:
        self.set_class(self.app.size.width >= WIDE_COLUMNS, "-wide")

    def action_back(self) -> None:
        panels = self.query(KeysPanel)
        if panels:
            panels.remove()
        elif not self.close_inner():
            self.leave()

    def close_inner(self) -> bool:
        """Close something open inside the screen; False if nothing was."""
        return False

    def leave(self) -> None:
        """Escape with nothing open inside: back to the screen below."""
        self.app.pop_screen()

    def offers(self, action: str) -> bool:
        """Whether the command palette lists one of this screen's actions now: by default, where its key works."""
        return self.check_action(action, ()) is not False
