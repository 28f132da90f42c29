"""Filtering and sorting result rows, as typed in the results table's filter box.

A filter is whitespace-separated terms, all of which must hold:
``name<op>value`` compares a column (ops ``= != < <= > >=``; numbers compare as
numbers), any other term must appear in some cell (case-insensitive).
Example: ``feature_probability<0.1 collapsed=no``.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

from engine.errors import SpecError

_TERM = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(<=|>=|!=|==|=|<|>)(.+)$")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "==": operator.eq, "!=": operator.ne,
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}
_WORDS = {"yes": True, "true": True, "no": False, "false": False}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().lower()
    if text in _WORDS:
        return float(_WORDS[text])
    try:
        return float(text)
    except ValueError:
        return None


def cell_text(value: Any) -> str:
    """How a cell reads in the table (booleans as yes/no, floats to 4 significant digits)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    return str(value)


def compile_filter(text: str, columns: Sequence[str]) -> Callable[[dict[str, Any]], bool]:
    """A predicate for rows; SpecError naming the columns if a term compares an unknown one."""
    tests: list[Callable[[dict[str, Any]], bool]] = []
    for term in text.split():
        match = _TERM.match(term)
        if match:
            name, op, raw = match.groups()
            if name not in columns:
                raise SpecError(f"no column {name!r}; columns: {', '.join(columns)}")
            tests.append(_comparison(name, _OPS[op], raw))
        else:
            tests.append(_containing(term.lower()))
    return lambda row: all(t(row) for t in tests)


def _containing(needle: str) -> Callable[[dict[str, Any]], bool]:
    """A row any of whose cells contains ``needle`` (lower case)."""
    return lambda row: any(needle in cell_text(v).lower() for v in row.values())


def _comparison(name: str, op: Callable[[Any, Any], bool], raw: str) -> Callable[[dict[str, Any]], bool]:
    target = _number(raw)

    def test(row: dict[str, Any]) -> bool:
        value = row.get(name, "")
        if target is not None:
            number = _number(value)
            return number is not None and op(number, target)
        return op(cell_text(value).lower(), raw.lower())

    return test


def sort_key(value: Any) -> tuple[int, Any]:
    """Numbers in order, then text; empty cells last."""
    if value == "" or value is None:
        return (2, 0)
    number = _number(value)
    if number is not None and not isinstance(value, str):
        return (0, number)
    return (1, str(value))
