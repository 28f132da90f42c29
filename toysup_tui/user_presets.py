"""Presets the TUI offers: the bundled ones plus the user's own files.

User presets live in ``platformdirs.user_config_dir("toysup")/presets`` (or
$TOYSUP_PRESETS_DIR), one TOML file each, in the same format as the bundled
ones, so ``toysup run path/to/file.toml`` runs them too.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import SpecError
from engine.spec import Spec, bundled_presets, read_preset, resolve
from engine.store import atomic_write

PRESETS_ENV = "TOYSUP_PRESETS_DIR"


def user_presets_dir() -> Path:
    env = os.environ.get(PRESETS_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("toysup")) / "presets"


@dataclass
class PresetEntry:
    """One preset as listed: its raw contents, and the resolved spec or the error that stops it resolving."""

    name: str
    path: Path
    source: str  # "bundled" or "user"
    data: dict[str, Any]
    spec: Spec | None
    error: str = ""


def _entry(name: str, path: Path, source: str) -> PresetEntry:
    try:
        data = read_preset(str(path))
    except SpecError as exc:
        return PresetEntry(name, path, source, {}, None, str(exc))
    try:
        spec = resolve(data, source=str(path))
    except SpecError as exc:
        return PresetEntry(name, path, source, data, None, str(exc))
    return PresetEntry(name, path, source, data, spec)


def list_presets(user_dir: Path | None) -> list[PresetEntry]:
    """Bundled presets first, then the user's, each group by name."""
    entries = [_entry(name, path, "bundled") for name, path in bundled_presets().items()]
    if user_dir is not None and user_dir.is_dir():
        entries += [_entry(p.stem, p, "user") for p in sorted(user_dir.glob("*.toml"))]
    return entries


def preset_file_name(name: str) -> str:
    return (re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "sweep") + ".toml"


def save_preset(spec: Spec, user_dir: Path) -> Path:
    """Write the spec as ``<user_dir>/<name>.toml`` (replacing a file of that name) and return its path."""
    try:
        user_dir.mkdir(parents=True, exist_ok=True)
        path = user_dir / preset_file_name(spec.name)
        atomic_write(path, spec.to_toml())
    except OSError as exc:
        raise SpecError(f"cannot save preset in {user_dir}: {exc.strerror or exc}") from None
    return path
