"""An adaptive sweep's declaration and grid: the ``[adaptive]`` table of a sweep file, the nodes of the final
grid, which cells refine, and how a refined grid compares with a uniform one.

Pure functions of a grid's shape, its nodes' labels and result rows: nothing here knows a spec or a run,
so the spec's grammar (engine/spec.py) reads the table from here, and the rounds of a run
(engine/adaptive.py) are built on it. A point's label is the ``classify`` column of its lowest-loss seed
(engine/seed_selection.py), the paper's selection.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from toysup.engine.errors import SpecError
from toysup.engine.seed_selection import group_by_point, lowest

KEYS = ("classify", "rounds", "budget")
MAX_ROUNDS = 10

Node = tuple[int, ...]  # a point's index on each axis of the final grid


@dataclass(frozen=True)
class Adaptive:
    """The ``[adaptive]`` table of a sweep file."""

    classify: str
    rounds: int
    budget: int | None = None  # instances in all rounds together; None: no limit but the final grid

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"classify": self.classify, "rounds": self.rounds}
        if self.budget is not None:
            data["budget"] = self.budget
        return data


def parse_adaptive(raw: Any, columns: Mapping[str, str], where: str) -> Adaptive:
    """``[adaptive]`` as read from TOML, checked against the model's results columns (name -> kind)."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: [adaptive] must be a table of name = value")
    unknown = [k for k in raw if k not in KEYS]
    if unknown:
        raise SpecError(f"{where}: unknown key {unknown[0]!r} in [adaptive]; valid keys: {', '.join(KEYS)}")
    classify = raw.get("classify")
    usable = [name for name, kind in columns.items() if kind in ("int", "bool")]
    if not isinstance(classify, str) or classify not in usable:
        raise SpecError(f"{where}: [adaptive] classify = {classify!r} is not an int or bool column of the model; "
                        f"expected one of: {', '.join(usable) or 'none (this model has no such column)'}")
    rounds = raw.get("rounds")
    if type(rounds) is not int or not 1 <= rounds <= MAX_ROUNDS:
        raise SpecError(f"{where}: [adaptive] rounds = {rounds!r} must be an integer from 1 to {MAX_ROUNDS}")
    budget = raw.get("budget")
    if budget is not None and (type(budget) is not int or budget < 1):
        raise SpecError(f"{where}: [adaptive] budget = {budget!r} must be a positive integer (instances)")
    return Adaptive(classify, rounds, budget)


def check_grid(adaptive: Adaptive, lengths: Mapping[str, int], seeds: int) -> None:
    """The final grid must nest the coarse one: every axis has k * 2**rounds + 1 values (k >= 1), and the
    budget must at least pay for round 0."""
    if not lengths:
        raise SpecError("[adaptive] needs at least one swept parameter in [sweep]")
    stride = 2 ** adaptive.rounds
    for name, count in lengths.items():
        if count < stride + 1 or (count - 1) % stride:
            fits = ", ".join(str(k * stride + 1) for k in range(1, 4))
            raise SpecError(f"[adaptive] rounds = {adaptive.rounds} needs every swept axis to have k * {stride} + 1 "
                            f"values ({fits}, ...) so the coarse grid nests in the final one: {name} has {count}")
    first = math.prod((count - 1) // stride + 1 for count in lengths.values()) * seeds
    if adaptive.budget is not None and adaptive.budget < first:
        raise SpecError(f"[adaptive] budget = {adaptive.budget} is below the coarse grid's {first} instances "
                        f"(round 0); raise it or use fewer rounds")


# --- the grid ----------------------------------------------------------------------------------


def level(node: Node, rounds: int) -> int:
    """The round in which ``node`` can first be trained: 0 for the coarse grid (every index a multiple of
    2**rounds), r for the nodes of spacing 2**(rounds - r) that are not on a coarser one."""
    finest = min((_twos(i) for i in node), default=rounds)
    return rounds - min(finest, rounds)


def _twos(i: int) -> int:
    """How many times 2 divides ``i`` (0 counts as divisible without end)."""
    return 64 if i == 0 else (i & -i).bit_length() - 1


def coarse_nodes(shape: Sequence[int], rounds: int) -> list[Node]:
    """Round 0: the nodes whose every index is a multiple of 2**rounds."""
    stride = 2 ** rounds
    return list(itertools.product(*(range(0, n, stride) for n in shape)))


def refine(labels: Mapping[Node, Hashable], shape: Sequence[int], side: int) -> tuple[list[Node], list[Node]]:
    """The cells of side ``side`` (lower corners on multiples of it) whose corners all have labels and do not all
    agree, and the nodes of spacing side/2 inside them that have no label yet: (cells, new nodes), sorted.

    Pure: ``labels`` maps each trained node to its classification (None is a label too: a point whose
    seeds all diverged counts as different from its neighbours)."""
    half = side // 2
    corners = list(itertools.product((0, side), repeat=len(shape)))
    inside = list(itertools.product(*(range(0, side + 1, half) for _ in shape)))
    cells: list[Node] = []
    new: set[Node] = set()
    for low in itertools.product(*(range(0, n - side, side) for n in shape)):
        at = [tuple(a + b for a, b in zip(low, c)) for c in corners]
        if not all(node in labels for node in at):
            continue
        if len({_key(labels[node]) for node in at}) == 1:
            continue
        cells.append(low)
        new.update(tuple(a + b for a, b in zip(low, off)) for off in inside)
    return cells, sorted(n for n in new if n not in labels)


def _key(label: Hashable) -> Hashable:
    # 1 and 1.0 and True would compare equal; a label read from a CSV keeps its type, so compare by value and type.
    return (type(label).__name__ if label is not None else None, label)


# --- nodes and labels ----------------------------------------------------------------------------


def node_of(point: int, shape: Sequence[int]) -> Node:
    """The grid index of flat point ``point`` (the spec's points run with the last axis fastest)."""
    out = []
    for n in reversed(shape):
        point, i = divmod(point, n)
        out.append(i)
    return tuple(reversed(out))


def point_of(node: Node, shape: Sequence[int]) -> int:
    flat = 0
    for i, n in zip(node, shape):
        flat = flat * n + i
    return flat


def point_labels(rows: Iterable[dict[str, Any]], column: str, metric: str = "loss") -> dict[int, Hashable]:
    """Each point's classification: ``column`` of its lowest-``metric`` seed (None if no seed has a finite one)."""
    out: dict[int, Hashable] = {}
    for point, members in group_by_point(rows).items():
        best = lowest(members, metric)
        out[point] = None if best is None else best.get(column)
    return out


def inferred(labels: Mapping[Node, Hashable], shape: Sequence[int], rounds: int) -> dict[Node, Hashable]:
    """The untrained nodes of the final grid that lie in a trained cell whose corners all agree, with that
    label: what a refined grid shows between its trained points. The smallest such cell decides (two agreeing
    cells that hold a node share a corner, so they agree); a node in no agreeing cell is left out."""
    out: dict[Node, Hashable] = {}
    corners = {side: list(itertools.product((0, side), repeat=len(shape))) for side in (2 ** k for k in
                                                                                        range(1, rounds + 1))}
    for node in itertools.product(*(range(n) for n in shape)):
        if node in labels:
            continue
        for side, offsets in corners.items():
            label = _agreeing_cell(labels, node, shape, side, offsets)
            if label is not _NONE:
                out[node] = label
                break
    return out


_NONE = object()


def _agreeing_cell(labels: Mapping[Node, Hashable], node: Node, shape: Sequence[int], side: int,
                   offsets: list[Node]) -> Any:
    """The label of a cell of side ``side`` that holds ``node`` and whose corners all agree, else _NONE."""
    lows = [sorted({low for low in (i // side * side, i // side * side - side) if 0 <= low <= n - 1 - side
                    and low <= i <= low + side}) for i, n in zip(node, shape)]
    for low in itertools.product(*lows):
        at = [tuple(a + b for a, b in zip(low, c)) for c in offsets]
        if all(c in labels for c in at) and len({_key(labels[c]) for c in at}) == 1:
            return labels[at[0]]
    return _NONE


# --- measuring a refined grid against a uniform one --------------------------------------------


def grid_labels(rows: Iterable[dict[str, Any]], shape: Sequence[int], column: str,
                metric: str = "loss") -> dict[Node, Hashable]:
    """Each trained node's classification (``column`` of its lowest-``metric`` seed), as refinement sees it."""
    return {node_of(point, shape): label for point, label in point_labels(rows, column, metric).items()}


def neighbour_edges(shape: Sequence[int]) -> list[tuple[Node, Node]]:
    """Every pair of final-grid nodes one step apart on one axis."""
    out = []
    for node in itertools.product(*(range(n) for n in shape)):
        for axis, n in enumerate(shape):
            if node[axis] + 1 < n:
                out.append((node, (*node[:axis], node[axis] + 1, *node[axis + 1:])))
    return out


@dataclass(frozen=True)
class Agreement:
    """A refined grid against a uniform grid of the same points (its reference)."""

    points: int  # nodes of the final grid
    trained: int  # nodes the adaptive run trained
    filled: int  # untrained nodes in a cell whose corners agree (given that label)
    agree: int  # nodes (trained or filled) with the reference's label
    agree_trained: int  # of them, trained nodes
    boundary: int  # reference edges: neighbours with different labels
    found: int  # of them, edges across which the refined grid changes label too
    found_trained: int  # of them, edges whose two nodes the adaptive run trained


def agreement(adaptive: Mapping[Node, Hashable], reference: Mapping[Node, Hashable], shape: Sequence[int],
              rounds: int) -> Agreement:
    """How a refined grid (``adaptive``: its trained nodes' labels; the nodes in agreeing cells are filled in as
    :func:`inferred` does) matches ``reference``, a uniform grid's labels at every node: the nodes where they
    agree, and the share of the reference's boundary edges (neighbours with different labels) across which the
    refined grid changes label too. A node the refined grid leaves unresolved agrees with nothing."""
    filled = inferred(adaptive, shape, rounds)
    labels = {**filled, **adaptive}

    def same(a: Hashable, b: Hashable) -> bool:
        return _key(a) == _key(b)

    agree = [n for n, label in reference.items() if n in labels and same(labels[n], label)]
    edges = [(a, b) for a, b in neighbour_edges(shape) if a in reference and b in reference
             and not same(reference[a], reference[b])]
    found = [(a, b) for a, b in edges if a in labels and b in labels and not same(labels[a], labels[b])]
    return Agreement(
        points=math.prod(shape), trained=len(adaptive), filled=len(filled), agree=len(agree),
        agree_trained=sum(n in adaptive for n in agree), boundary=len(edges), found=len(found),
        found_trained=sum(a in adaptive and b in adaptive for a, b in found))
