"""Filtering and sorting result rows, as typed in the results table's filter box.

A filter is whitespace-separated terms, all of which must hold:
``name<op>value`` compares a column (ops ``= != < <= > >=``; numbers compare as
numbers), any other term must appear in some cell (case-insensitive). A column
is named by its full name or by its header as the table shows it (``p``,
``D*``, ``repr``). Example: ``p<0.1 D*>=1 collapsed=no``.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from toysup.engine.errors import SpecError

_OPERATOR = re.compile(r"<=|>=|!=|==|=|<|>")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")  # looks meant as a column: an unknown one is an error
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


def column_names(columns: Sequence[str], short: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each name a filter may give a column (its full name, its header) -> the column."""
    names = {short[c]: c for c in columns if short and short.get(c)}
    names.update({c: c for c in columns})  # a full name wins over another column's header
    return names


def compile_filter(text: str, columns: Sequence[str],
                   short: Mapping[str, str] | None = None) -> Callable[[dict[str, Any]], bool]:
    """A predicate for rows; ``short``: the headers shown for columns, accepted as their names.
    SpecError naming the columns if a term compares an unknown one."""
    names = column_names(columns, short)
    tests: list[Callable[[dict[str, Any]], bool]] = []
    for term in text.split():
        found = _OPERATOR.search(term)
        name = term[:found.start()] if found else ""
        if found and found.end() < len(term) and name in names:
            tests.append(_comparison(names[name], _OPS[found.group()], term[found.end():]))
        elif found and found.end() < len(term) and _NAME.match(name):
            shown = [f"{c} ({short[c]})" if short and short.get(c) else c for c in columns]
            raise SpecError(f"no column {name!r}; columns: {', '.join(shown)}")
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
