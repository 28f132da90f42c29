"""Adaptive sweeps: train a coarse grid, then refine in rounds only the cells whose corners disagree.

This module is the rounds of a run (a pure function of its spec and stored rows: the runner plans from
it and the store checks a completed run against it); the ``[adaptive]`` table and the grid it refines
are engine/adaptive_grid.py, below the spec.

A uniform phase diagram spends most of its instances far from the boundaries. An
adaptive sweep declares the *final* grid in ``[sweep]`` as usual, and in
``[adaptive]`` how to reach it::

    [adaptive]
    classify = "phase"   # an int or bool results column of the model
    rounds = 2           # every axis has k * 2**rounds + 1 values
    budget = 600         # optional: at most this many instances in all

Round 0 trains the nodes whose index on every axis is a multiple of 2**rounds.
Round r looks at the cells of side 2**(rounds - r + 1) (in final-grid steps) whose
2**d corners are all trained, and refines those whose corners disagree on
``classify`` (each point labelled by its lowest-loss seed, the paper's selection):
it trains every node of spacing 2**(rounds - r) inside them. A round that would take
the sweep past ``budget`` is not started.

Every point is a node of the final uniform grid, reached by its index, never by a
value: an instance of an adaptive sweep *is* the instance of the uniform sweep at
the same index (same point, same seed, same config), so both train it identically.
Which round a node belongs to is its grid level (engine.adaptive_grid.level), and which rounds a
run has reached is a pure function of its spec and the rows it has stored
(:func:`schedule`): a resumed run derives them again and carries on from its last
unfinished round.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from toysup.engine.adaptive_grid import Node, coarse_nodes, node_of, point_labels, point_of, refine
from toysup.engine.spec import Instance, Spec


@dataclass(frozen=True)
class Round:
    """One round of an adaptive sweep: the points it trains (flat indices into the spec's points)."""

    index: int
    points: tuple[int, ...]
    cells: int  # cells refined to make it (0 for round 0)
    side: int  # the spacing of its nodes, in final-grid steps


@dataclass(frozen=True)
class Schedule:
    """The rounds an adaptive run has reached, given the rows it has stored."""

    rounds: tuple[Round, ...]
    complete: bool  # every instance of every round has a row
    finished: bool  # no further round: ``stop`` says why
    stop: str  # "resolution", "converged" (no cell disagrees), "budget", or "" while rounds remain

    @property
    def points(self) -> list[int]:
        return sorted(p for r in self.rounds for p in r.points)

    def instances(self, spec: Spec) -> list[Instance]:
        """The instances of every round so far, in the spec's order (each the uniform sweep's own)."""
        wanted = set(self.points)
        return [i for i in spec.instances() if i.point in wanted]


def shape_of(spec: Spec) -> tuple[int, ...]:
    return tuple(len(a.values) for a in spec.axes)


def schedule(spec: Spec, rows: Iterable[dict[str, Any]]) -> Schedule:
    """The rounds an adaptive run has reached with ``rows`` stored: round 0, and each further round whose
    predecessors are complete, computed from their rows alone (never from rows of a later round)."""
    adaptive = spec.adaptive
    if adaptive is None:
        raise ValueError("schedule() needs a spec with [adaptive]")
    rows = list(rows)
    shape = shape_of(spec)
    counts: dict[int, int] = {}
    for row in rows:
        counts[row["point"]] = counts.get(row["point"], 0) + 1
    labels_by_point = point_labels(rows, adaptive.classify)
    seeds = spec.seeds
    nodes = coarse_nodes(shape, adaptive.rounds)
    rounds = [Round(0, tuple(sorted(point_of(n, shape) for n in nodes)), 0, 2 ** adaptive.rounds)]
    used = len(nodes) * seeds
    trained: dict[Node, Hashable] = {}
    while True:
        last = rounds[-1]
        if any(counts.get(p, 0) < seeds for p in last.points):
            return Schedule(tuple(rounds), False, False, "")
        if last.index == adaptive.rounds:
            return Schedule(tuple(rounds), True, True, "resolution")
        trained.update((node_of(p, shape), labels_by_point.get(p)) for p in last.points)
        cells, new = refine(trained, shape, last.side)
        if not new:
            return Schedule(tuple(rounds), True, True, "converged")
        if adaptive.budget is not None and used + len(new) * seeds > adaptive.budget:
            return Schedule(tuple(rounds), True, True, "budget")
        used += len(new) * seeds
        rounds.append(Round(last.index + 1, tuple(sorted(point_of(n, shape) for n in new)), len(cells),
                            last.side // 2))
