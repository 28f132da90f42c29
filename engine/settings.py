"""The user's configuration: one directory for presets and ``config.toml``, and where each setting comes from.

The directory is ``platformdirs.user_config_dir("toysup")`` (``~/.config/toysup`` on
Linux), or $TOYSUP_CONFIG_DIR. Its ``config.toml`` sets defaults for the run options
(:class:`~engine.options.RunOptions`, by their field names) and the runs directory::

    runs_dir = "~/toysup-runs"
    device = "cuda"
    threads = 4

A value is taken from, first to last: a flag (or an argument in Python), the
environment ($TOYSUP_RUNS_DIR, $TOYSUP_DEVICE, ... : TOYSUP_ and the name in capitals),
the file, the declared default. :func:`effective` says which gave each value, for
``toysup config``. A bad file or value is a :class:`UserError` naming the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toysup.engine.errors import UserError
from toysup.engine.options import OPTION, OPTIONS, RECORDED, RunOptions

CONFIG_ENV = "TOYSUP_CONFIG_DIR"
CONFIG_FILE = "config.toml"
RUNS_DIR = "runs_dir"
DEFAULT_RUNS_DIR = "runs"
SETTINGS = (RUNS_DIR, *OPTION)  # every name config.toml may set


def config_dir() -> Path:
    """Where the user's presets/ and config.toml live: $TOYSUP_CONFIG_DIR, else the OS's config directory."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir  # deferred: unused when $TOYSUP_CONFIG_DIR is set

    return Path(user_config_dir("toysup"))


def config_path() -> Path:
    return config_dir() / CONFIG_FILE


def env_name(name: str) -> str:
    """The environment variable of a setting: TOYSUP_ and its name in capitals."""
    return "TOYSUP_" + name.upper()


def read_file(path: Path | None = None) -> dict[str, Any]:
    """config.toml's settings ({} when there is no file); unknown names and bad TOML raise UserError."""
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"config file {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        raise UserError(f"config file {path}: invalid TOML: {exc}") from None
    unknown = sorted(set(data) - set(SETTINGS))
    if unknown:
        raise UserError(f"config file {path}: unknown setting {unknown[0]!r}; valid: {', '.join(SETTINGS)}")
    if RUNS_DIR in data and not isinstance(data[RUNS_DIR], str):
        raise UserError(f"config file {path}: runs_dir must be a string (a folder)")
    return data


@dataclass(frozen=True)
class Setting:
    """One effective value and where it came from: flag, environment ($NAME), file (config.toml) or default."""

    name: str
    value: Any
    source: str


def _pick(name: str, given: Any, file: Mapping[str, Any], path: Path, default: Any) -> Setting:
    if given is not None:
        return Setting(name, given, "flag")
    env = os.environ.get(env_name(name))
    if env:
        return Setting(name, env, f"environment (${env_name(name)})")
    if name in file:
        return Setting(name, file[name], "file")
    return Setting(name, default, "default")


def effective(given: Mapping[str, Any] | None = None, runs_dir: str | Path | None = None,
              skip: tuple[str, ...] = ()) -> list[Setting]:
    """Every setting's value and source; ``given`` holds the run options set by flags, ``runs_dir`` the flag's.
    Options named in ``skip`` are left out (resume takes them from the run itself)."""
    path = config_path()
    file = read_file(path)
    given = given or {}
    out = [_pick(RUNS_DIR, str(runs_dir) if runs_dir else None, file, path, DEFAULT_RUNS_DIR)]
    out += [_pick(o.name, given.get(o.name), file, path, o.default) for o in OPTIONS if o.name not in skip]
    return out


def run_options(given: Mapping[str, Any] | None = None) -> RunOptions:
    """The run options: flags over environment over config.toml over the declared defaults, checked as one."""
    values = {s.name: s.value for s in effective(given) if s.name != RUNS_DIR}
    try:
        return RunOptions.from_dict(values)
    except UserError as exc:
        wrong = _source_of(str(exc), effective(given))
        raise UserError(f"{exc}{wrong}") from None


def resume_defaults(given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The options to resume with before the run's own record: flags, environment and file, but for the
    backend settings a run keeps (engine.options.RECORDED), which come from the run unless a flag gives them."""
    given = dict(given or {})
    values = {s.name: s.value for s in effective(given, skip=RECORDED) if s.name != RUNS_DIR}
    return {**values, **{k: v for k, v in given.items() if k in RECORDED}}


def _source_of(message: str, settings: list[Setting]) -> str:
    """Where the option a message names was set, when not by a flag: " (set in file X)"."""
    for s in settings:
        if s.name in OPTION and OPTION[s.name].flag in message and s.source not in ("flag", "default"):
            return f" (set in {config_path()})" if s.source == "file" else f" (set by {s.source})"
    return ""


def runs_dir(option: str | Path | None = None) -> Path:
    """The runs directory: ``--runs-dir``, else $TOYSUP_RUNS_DIR, else config.toml's runs_dir, else ./runs."""
    if option:
        return Path(option).expanduser()
    env = os.environ.get(env_name(RUNS_DIR))
    if env:
        return Path(env).expanduser()
    try:
        configured = read_file().get(RUNS_DIR)
    except UserError:
        configured = None  # a broken file is reported by the commands that read options; runs stay findable
    return Path(configured).expanduser() if configured else Path(DEFAULT_RUNS_DIR)
