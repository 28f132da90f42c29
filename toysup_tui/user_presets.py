"""Presets the TUI offers and saves: every place engine.preset_sources searches, resolved the same way as
``toysup run NAME``, so a preset saved here runs there under the same name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from toysup.engine.errors import SpecError
from toysup.engine.preset_sources import PRESETS_ENV, all_presets, winners
from toysup.engine.preset_sources import user_dir as user_presets_dir
from toysup.engine.run.layout import atomic_write
from toysup.engine.spec import Spec, read_preset, resolve

__all__ = ["PRESETS_ENV", "PresetEntry", "check_name", "list_presets", "save_preset", "shadows", "user_presets_dir"]

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class PresetEntry:
    """One preset as listed: its raw contents, and the resolved spec or the error that stops it resolving."""

    name: str
    path: Path
    source: str  # "bundled", "user" or "project"
    data: dict[str, Any]
    spec: Spec | None
    error: str = ""
    shadowed_by: str = ""  # the source of the preset of the same name that `toysup run NAME` runs instead


def _entry(name: str, path: Path, source: str) -> PresetEntry:
    try:
        data = read_preset(str(path), path)
    except SpecError as exc:
        return PresetEntry(name, path, source, {}, None, str(exc))
    try:
        spec = resolve(data, source=str(path))
    except SpecError as exc:
        return PresetEntry(name, path, source, data, None, str(exc))
    return PresetEntry(name, path, source, data, spec)


def list_presets(user_dir: Path | None) -> list[PresetEntry]:
    """Bundled presets first, then the user's, then the project's, each group by name; a preset another
    place's file of the same name shadows says so (``shadowed_by``)."""
    won = winners(user_dir)
    entries = []
    for f in all_presets(user_dir):
        entry = _entry(f.name, f.path, f.source)
        if won[f.name].path != f.path:
            entry.shadowed_by = won[f.name].source
        entries.append(entry)
    return entries


def check_name(name: str) -> str:
    """A preset name as typed, or SpecError: it is the file's name and what ``toysup run`` takes."""
    name = name.strip()
    if not NAME.fullmatch(name) or name.endswith(".toml"):
        raise SpecError(f"preset name {name!r} is not valid: use letters, digits, '.', '_' and '-' "
                        "(it becomes the file name and what toysup run takes)")
    return name


def shadows(name: str, user_dir: Path) -> list[str]:
    """The places other than the user's that hold a preset ``name`` (bundled, project)."""
    return [f.source for f in all_presets(user_dir) if f.name == name and f.source != "user"]


def save_preset(spec: Spec, user_dir: Path, name: str | None = None) -> Path:
    """Write the spec as ``<user_dir>/<name>.toml`` (replacing a file of that name) and return its path."""
    name = check_name(name or spec.name)
    try:
        user_dir.mkdir(parents=True, exist_ok=True)
        path = user_dir / f"{name}.toml"
        atomic_write(path, replace(spec, name=name).to_toml())
    except OSError as exc:
        raise SpecError(f"cannot save preset in {user_dir}: {exc.strerror or exc}") from None
    return path
