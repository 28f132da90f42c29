"""Shell completion's candidates (Typer's own mechanism: ``toysup --install-completion bash|zsh|fish``): preset
names, run ids and parameter names. Each reads declarations and folder names only, never a run's files or torch:
the shell waits for them on every tab."""

from __future__ import annotations

import contextlib
import tomllib
from pathlib import Path

import typer


def preset_names(incomplete: str) -> list[str]:
    """Every preset name the resolver knows (project, user, bundled), and SOURCE:NAME for the shadowed ones."""
    from toysup.engine.preset_sources import shadowed, winners  # deferred: read at a tab, not when the CLI loads

    names = list(winners()) + [f.qualified for losers in shadowed().values() for f in losers]
    return sorted(n for n in names if n.startswith(incomplete))


def run_ids(ctx: typer.Context, incomplete: str) -> list[str]:
    """The run folders in the runs directory (--runs-dir if already typed), newest first, and ``latest``."""
    from toysup.engine import settings  # deferred: read at a tab, not when the CLI loads

    root = settings.runs_dir(ctx.params.get("runs_dir"))
    names: list[str] = []
    with contextlib.suppress(OSError):
        # A folder name is run data: one with a newline or another control character would forge completion
        # lines (the shell reads one candidate a line), so it is not offered; a link is not a run folder.
        names = sorted((p.name for p in root.iterdir() if p.name.isprintable() and not p.name.startswith(".")
                        and not p.is_symlink() and p.is_dir()), reverse=True)
    return [n for n in ["latest", *names] if n.startswith(incomplete)]


def parameter_names(ctx: typer.Context, args: list[str], incomplete: str) -> list[str]:
    """``NAME=`` for each parameter of the preset already typed (else of every model), for --set and --sweep."""
    from toysup.engine.models import MODELS, get_kind  # deferred: read at a tab, not when the CLI loads
    from toysup.engine.preset_sources import find, winners  # deferred: read at a tab, not when the CLI loads

    # The preset from the words typed: Click's completion context loses positional values when the word being
    # completed is an option's value, so the words themselves are read.
    known = winners()
    typed = [a for a in args if a in known or a.endswith(".toml")]
    models = list(MODELS)
    if typed:
        with contextlib.suppress(Exception):  # a half-typed or broken preset: offer every model's parameters
            data = tomllib.loads(Path(find(typed[0]).path).read_text(encoding="utf-8"))
            models = [str(data.get("model", "relu_output"))]
    names = sorted({name for m in models if m in MODELS for name in get_kind(m).param_table()})
    return [f"{n}=" for n in names if f"{n}=".startswith(incomplete)]


def chart_names(incomplete: str) -> list[str]:
    from toysup_tui.figures import CHARTS  # deferred: figures.py loads numpy and the analysis

    return [c for c in CHARTS if c.startswith(incomplete)]
