"""Exported tables that join and read alike: every table carries instance, point, seed and the swept parameters,
and every boolean is 1 or 0.

results.csv has these columns already; curves.csv and features.csv hold only ``instance``, so an
analysis had to join them to results by hand. The point, seed and swept values come from the run's
spec (config.toml: exact), as results.csv writes them. Booleans differ between the stored tables
(results' ``collapsed`` and ``diverged`` are true/false, features' ``represented`` is 1/0); exports
write 1/0 everywhere, which every CSV reader takes as a number (counts and shares are sums and means).
"""

from __future__ import annotations

from typing import Any, Protocol

from toysup.engine.run_format import csv_text, parse_csv
from toysup.engine.spec import Spec


class _Run(Protocol):
    """What a join needs of a run (engine.run.folder.Run): its spec. The store calls this module, not back."""

    def spec(self) -> Spec: ...

JOIN_KEYS = ("instance", "point", "seed")


def _cell(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def joined_text(run: _Run, table: str, text: str) -> str:
    """``text``, the CSV of ``table`` of ``run``, joined and typed as the module says (no run_id column yet)."""
    columns, rows = parse_csv(text, f"{table}.csv")
    if not columns:
        return text
    spec = run.spec()
    swept = [a.name for a in spec.axes]
    if "instance" not in columns:
        return text
    rest = [c for c in columns if c not in (*JOIN_KEYS, *swept)]
    columns = [*JOIN_KEYS, *swept, *rest]  # the same leading columns in every table
    if table != "results":
        by_instance = {inst.index: inst for inst in spec.instances()}
        joined = []
        for row in rows:
            inst = by_instance.get(row["instance"]) if isinstance(row["instance"], int) else None
            extra = {"point": inst.point, "seed": inst.seed, **{n: inst.config[n] for n in swept}} if inst else {}
            joined.append({**row, **extra})
        rows = joined
    return csv_text(columns, ({c: _cell(r.get(c, "")) for c in columns} for r in rows))

