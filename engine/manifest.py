"""manifest.json: what each stored chunk's files must hold, so resume and report can tell a finished
chunk from a damaged one.

Per chunk: its instance ids, and for each of its pieces (its results, curves and features
rows, its weights file) the row count, byte size and sha256. A gathered table (curves.csv
after the run ends) holds each chunk's rows as one run of lines, so a chunk's piece is
checked there too, by cutting out the lines of its instances (:func:`segment`). After the
run's tables are gathered, their sizes and hashes are recorded as well, so a reader can
find a cut or edited file cheaply (sizes) or surely (hashes).

The manifest is written atomically after a chunk's files, so a chunk it names had every
file written; a chunk it does not name is trained again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

PIECES = ("results", "curves", "features")  # the CSV pieces of a chunk, beside its weights
FILE_KEYS = ("weights", *PIECES)
TABLE_NAMES = tuple(f"{piece}.csv" for piece in PIECES)  # the gathered tables, in the run folder itself


def digest(data: bytes, rows: int | None = None) -> dict[str, Any]:
    """A file's size and sha256 (and its CSV row count, if given)."""
    out: dict[str, Any] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if rows is not None:
        out["rows"] = rows
    return out


def matches(data: bytes, expected: dict[str, Any]) -> bool:
    return len(data) == expected.get("size") and hashlib.sha256(data).hexdigest() == expected.get("sha256")


def segment(text: str, instances: set[int]) -> str:
    """The header of a CSV table and its lines whose first cell (the instance) is in ``instances``."""
    lines = text.splitlines(keepends=True)
    if not lines:
        return ""
    kept = [line for line in lines[1:] if _instance(line) in instances]
    return "".join([lines[0], *kept])


def _instance(line: str) -> int | None:
    try:
        return int(line.split(",", 1)[0])
    except ValueError:
        return None


def _is_digest(value: Any) -> bool:
    """A digest's shape: ``size`` and ``rows`` non-negative integers, ``sha256`` 64 hex digits."""
    if not isinstance(value, dict) or set(value) - {"size", "sha256", "rows"}:
        return False
    size, sha, rows = value.get("size"), value.get("sha256"), value.get("rows", 0)
    return (type(size) is int and size >= 0 and type(rows) is int and rows >= -1 and isinstance(sha, str)
            and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha))


@dataclass
class Chunk:
    """One stored chunk: its instances and the digests of its pieces (``weights`` and :data:`PIECES`)."""

    instances: list[int]
    files: dict[str, dict[str, Any]]


@dataclass
class Manifest:
    chunks: dict[int, Chunk] = field(default_factory=dict)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)  # gathered file name -> digest

    def to_json(self) -> str:
        data = {"version": 1,
                "chunks": {f"{n:04d}": {"instances": c.instances, "files": c.files}
                           for n, c in sorted(self.chunks.items())},
                "tables": self.tables}
        return json.dumps(data, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse manifest.json into its typed record; ValueError naming what has the wrong shape (a truncated,
        edited or hostile file): chunk keys are numbers, instances non-negative integers, every digest a size,
        a sha256 and an optional row count, and ``tables`` names only the run's own gathered tables (a path
        such as ``../../x`` would have report read and hash a file outside the run)."""
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("chunks"), dict):
            raise ValueError("not a manifest")
        chunks = {}
        for key, entry in data["chunks"].items():
            if not (isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 9):
                raise ValueError(f"chunk {key[:20]!r} is not a chunk number")
            if not isinstance(entry, dict):
                raise ValueError(f"chunk {key} is malformed")
            instances, files = entry.get("instances"), entry.get("files")
            if not (isinstance(instances, list) and all(type(i) is int and 0 <= i < 2**63 for i in instances)
                    and isinstance(files, dict) and all(k in FILE_KEYS and _is_digest(v) for k, v in files.items())):
                raise ValueError(f"chunk {key} is malformed")
            chunks[int(key)] = Chunk(instances, files)
        tables = data.get("tables") or {}
        if not isinstance(tables, dict) or not all(k in TABLE_NAMES and _is_digest(v) for k, v in tables.items()):
            raise ValueError("tables is malformed (it may name only " + ", ".join(TABLE_NAMES) + ")")
        return cls(chunks, tables)

    def instances(self) -> set[int]:
        return {i for c in self.chunks.values() for i in c.instances}
