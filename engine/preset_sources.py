"""Where a preset name is looked up: the one resolver for ``toysup run NAME``, the TUI and ``toysup.run_sweep``.

Three places hold presets, one TOML file each (``NAME.toml``):

- ``project``: ./presets in the working directory (a project's own presets, kept with its code);
- ``user``: presets/ in the config directory (engine.settings.config_dir; $TOYSUP_PRESETS_DIR
  overrides it), where the TUI saves;
- ``bundled``: the presets that ship with toysup.

When two places hold the same name, the first in that order wins (the more specific
place: a project's over the user's over the bundled one), and a :class:`PresetShadowed`
warning says so once per name and process. ``bundled:NAME``, ``user:NAME`` and
``project:NAME`` pick a place explicitly; a path to a .toml file is always that file.
"""

from __future__ import annotations

import difflib
import os
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from toysup.engine.errors import UserError
from toysup.engine.settings import config_dir

PRESETS_ENV = "TOYSUP_PRESETS_DIR"
ORDER = ("project", "user", "bundled")  # first wins
PROJECT_DIR = "presets"


class PresetShadowed(UserWarning):
    """A preset name found in more than one place: says which file wins and how to reach the other."""


@dataclass(frozen=True)
class PresetFile:
    """One preset file and the place it comes from (project, user or bundled)."""

    name: str
    path: Path
    source: str

    @property
    def qualified(self) -> str:
        return f"{self.source}:{self.name}"


def bundled_dir() -> Path:
    """The bundled presets: inside the installed package, or presets/ in a checkout."""
    packaged = resources.files("toysup.engine").joinpath("presets")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "presets"


def user_dir() -> Path:
    """Where the user's own presets live (and the TUI saves): $TOYSUP_PRESETS_DIR, else CONFIG_DIR/presets."""
    env = os.environ.get(PRESETS_ENV)
    return Path(env).expanduser() if env else config_dir() / "presets"


def project_dir() -> Path | None:
    """./presets of the working directory, unless it is the bundled folder itself (a checkout of toysup)."""
    here = Path(PROJECT_DIR)
    try:
        if not here.is_dir() or here.resolve() == bundled_dir().resolve():
            return None
    except OSError:
        return None
    return here


def places(user: Path | None = None) -> dict[str, Path]:
    """The folders searched, in the order they win (``user`` replaces the user folder, for the TUI's tests)."""
    found = {"project": project_dir(), "user": user if user is not None else user_dir(), "bundled": bundled_dir()}
    return {source: path for source, path in found.items() if path is not None}


def _files(folder: Path, source: str) -> list[PresetFile]:
    try:
        paths = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    except OSError:
        return []
    return [PresetFile(p.stem, p, source) for p in paths if p.is_file()]


def all_presets(user: Path | None = None) -> list[PresetFile]:
    """Every preset file, bundled first, then the user's, then the project's, each by name; shadowed ones too."""
    where = places(user)
    return [f for source in reversed(ORDER) if source in where for f in _files(where[source], source)]


def winners(user: Path | None = None) -> dict[str, PresetFile]:
    """The file each name resolves to."""
    out: dict[str, PresetFile] = {}
    for f in all_presets(user):
        out[f.name] = f  # later places in all_presets win: project over user over bundled
    return out


def shadowed(user: Path | None = None) -> dict[str, list[PresetFile]]:
    """Names held by more than one place: the files that lose, by name."""
    won = winners(user)
    out: dict[str, list[PresetFile]] = {}
    for f in all_presets(user):
        if won[f.name] != f:
            out.setdefault(f.name, []).append(f)
    return out


_warned: set[str] = set()


def shadow_note(name: str, user: Path | None = None) -> str | None:
    """One line on a clash for ``name``: which file wins and how to run the others; None without a clash."""
    losers = shadowed(user).get(name)
    if not losers:
        return None
    won = winners(user)[name]
    others = ", ".join(f"{f.qualified} ({f.path})" for f in losers)
    return (f"preset {name!r} resolves to the {won.source} one ({won.path}), which shadows {others}; "
            f"name one explicitly as {losers[0].qualified}")


def find(name_or_path: str, user: Path | None = None) -> PresetFile:
    """The preset file for a name, ``SOURCE:NAME`` or path; UserError naming the choices if there is none."""
    source, sep, rest = name_or_path.partition(":")
    if sep and source in ORDER:
        where = places(user)
        match = next((f for f in _files(where[source], source) if f.name == rest), None) if source in where else None
        if match is None:
            raise UserError(f"no {source} preset {rest!r}{_did_you_mean(rest, [f.name for f in all_presets(user)])}")
        return match
    won = winners(user)
    if name_or_path in won:
        note = shadow_note(name_or_path, user)
        if note and name_or_path not in _warned:
            _warned.add(name_or_path)
            warnings.warn(note, PresetShadowed, stacklevel=2)
        return won[name_or_path]
    path = Path(name_or_path).expanduser()
    try:  # a name too long for a file name (ENAMETOOLONG) is not a preset file, not a crash
        exists, is_file = path.exists(), path.is_file()
    except OSError as exc:
        raise UserError(f"preset {name_or_path[:80]!r}... is not a preset name or file: {exc.strerror}") from None
    if path.suffix == ".toml" or exists:
        if not is_file:
            raise UserError(f"preset file {name_or_path} does not exist")
        return PresetFile(path.stem, path, "path")
    raise UserError(f"unknown preset {name_or_path!r}{_did_you_mean(name_or_path, won)}; presets: "
                    f"{', '.join(sorted(won))} (toysup presets lists them; or give a path to a .toml file)")


def _did_you_mean(name: str, choices: object) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)  # type: ignore[call-overload]
    return f" (did you mean {close[0]!r}?)" if close else ""
