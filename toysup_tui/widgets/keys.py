"""The keys panel (``?``): the current screen's own keys first, then the app's, then the rest.

Textual's help panel lists the focused widget's keys first: on a screen with a table,
fifteen cursor keys hide what a newcomer looks for, which is what this screen does.
The same reading of a class's declared bindings gives the command palette its commands.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingsMap
from textual.containers import VerticalScroll
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widgets import Static

EVERYWHERE = "everywhere"
MOVING = "moving around"


@dataclass(frozen=True)
class KeyRow:
    """One action and the keys that run it."""

    keys: str
    description: str
    enabled: bool = True  # False: the action is shown but does nothing here now (dimmed)


def own_bindings(node: DOMNode) -> list[Binding]:
    """The bindings toysup's own classes declare for ``node`` (not Textual's defaults), one per key, in
    declaration order; a subclass's binding replaces its base's for the same key."""
    by_key: dict[str, Binding] = {}
    for cls in reversed(type(node).__mro__):
        declared = cls.__dict__.get("BINDINGS")
        if declared is None or not cls.__module__.startswith("toysup_tui"):
            continue
        for key, bindings in BindingsMap(declared).key_to_bindings.items():
            by_key[key] = bindings[-1]
    return list(by_key.values())


def by_action(bindings: list[Binding]) -> dict[str, list[Binding]]:
    """Bindings grouped by the action they run (``app.runs`` and ``runs`` are one), in first-seen order."""
    groups: dict[str, list[Binding]] = {}
    for binding in bindings:
        groups.setdefault(binding.action.removeprefix("app."), []).append(binding)
    return groups


def keys_text(app: App, bindings: list[Binding]) -> str:
    """The keys of bindings as the footer shows them, without repeats: ``m``, ``? f1``."""
    return " ".join(dict.fromkeys(app.get_key_display(b) for b in bindings))


def key_sections(screen: Screen) -> list[tuple[str, list[KeyRow]]]:
    """What works on ``screen`` now, in three sections: the screen's own keys (titled with the screen's
    title), the app's keys (``everywhere``), then focus and cursor keys (Textual's and the focused widget's)."""
    app = screen.app
    own = {(b.key, b.action): i for i, b in enumerate(own_bindings(screen))}
    sections: dict[str, list[tuple[Binding, bool]]] = {screen.title or "this screen": [], EVERYWHERE: [], MOVING: []}
    first, everywhere, moving = list(sections)  # the titles
    for active in screen.active_bindings.values():
        binding = active.binding
        if binding.system or not binding.description:
            continue
        if active.node is screen and (binding.key, binding.action) in own:
            section = first
        elif active.node is app:
            section = everywhere
        else:
            section = moving
        sections[section].append((binding, active.enabled))
    sections[first].sort(key=lambda entry: own[entry[0].key, entry[0].action])  # as declared (priority keys too)
    shown: set[str] = set()
    out: list[tuple[str, list[KeyRow]]] = []
    for title, entries in sections.items():
        rows: list[KeyRow] = []
        enabled = {id(b): on for b, on in entries}
        for action, bindings in by_action([b for b, _ in entries]).items():
            if action in shown:
                continue  # an app key the screen lists too (b for the runs browser on the presets)
            shown.add(action)
            rows.append(KeyRow(keys_text(app, bindings), bindings[0].description,
                               any(enabled[id(b)] for b in bindings)))
        if rows:
            out.append((title, rows))
    return out


def keys_table(sections: list[tuple[str, list[KeyRow]]]) -> Group:
    """Each section as its title, then a two-column table: the keys, and what they do."""
    parts: list[Text | Table] = []
    for number, (title, rows) in enumerate(sections):
        parts.append(Text(("\n" if number else "") + title, style="bold underline", overflow="ellipsis", no_wrap=True))
        table = Table.grid(padding=(0, 1))
        table.add_column(justify="right")
        table.add_column()
        for row in rows:
            style = "" if row.enabled else "dim"
            table.add_row(Text(row.keys, style=style or "bold"), Text(row.description, style=style))
        parts.append(table)
    return Group(*parts)


class KeysPanel(VerticalScroll, can_focus=False):
    """A panel at the right of the screen listing :func:`key_sections`, kept up to date as keys change."""

    def compose(self) -> ComposeResult:
        yield Static(id="keys-table")

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self.show_keys()

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen) -> None:
        if self.is_attached and screen is self.screen:
            self.call_after_refresh(self.show_keys)

    def show_keys(self) -> None:
        self.query_one("#keys-table", Static).update(keys_table(key_sections(self.screen)))
