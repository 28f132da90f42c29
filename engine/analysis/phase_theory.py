"""The theoretical phase diagrams of "Superposition as a Phase Change" (Elhage et al. 2022), as pure functions.

The paper draws a theoretical diagram beside each measured one (n=2 features in m=1
dimension, and n=3 in m=2) by comparing the expected loss of a few hand-made
candidate solutions, each keeping n-1 of the n coordinates' information. The
closed forms below are those of the section's own code (Wattenberg's, re-derived in
ymgw55/repro-superposition's notebook), for features that are 0 with probability
1-p and uniform on [0, 1) otherwise, importance 1 but for the extra (last) feature's r;
only the terms in which the candidates differ are kept, summed over features (toysup's
loss is their mean: the same order):

- ``extra_dropped`` (the extra feature not learned, its output the bias p/2):
  r (p/3 - p^2/4);
- ``first_dropped`` (the extra feature takes feature 0's dimension): p/3 - p^2/4;
- ``extra_paired`` (the extra feature antipodal with another, W = [1, -1], no bias):
  errors only when both are active, (1 + r) E[min(x, y)^2] p^2 = (1 + r) p^2 / 6;
- ``others_paired`` (n >= 3: two importance-1 features antipodal, the extra one with
  its own dimension): p^2 / 3.

The extra feature's phase is the best candidate's: not learned, superposed, or
dedicated (first_dropped and others_paired). Other solutions (a triangle of all
three features, a tuned bias for the antipodal pair) are not candidates, so these
boundaries are the paper's approximation, not the true optimum. In the (r, p) plane
they are: r = 1 (not learned | dedicated, dense), r = 2p / (4 - 5p) (not learned |
superposed), r = 2/p - 5/2 (superposed | dedicated, n=2) and r = 1 (superposed |
dedicated, n=3, where p < 4/7).
"""

from __future__ import annotations

from toysup.engine.analysis.phase import PHASES, PhaseGrid

CANDIDATE_PHASES = {"extra_dropped": "not_learned", "extra_paired": "superposed", "first_dropped": "dedicated",
                    "others_paired": "dedicated"}
SIZES = ((2, 1), (3, 2))  # (n, m) with a published theoretical diagram


def candidate_losses(r: float, p: float, n: int = 2) -> dict[str, float]:
    """Each candidate's expected loss, up to the terms they share, at extra importance ``r`` and density ``p``."""
    if n < 2:
        raise ValueError(f"the phase diagrams need n >= 2 features, got {n}")
    drop = p / 3 - p * p / 4  # the variance of a feature: its loss when a bias outputs its mean
    out = {"extra_dropped": r * drop, "first_dropped": drop, "extra_paired": (1 + r) * p * p / 6}
    if n >= 3:
        out["others_paired"] = p * p / 3
    return out


def theoretical_phase(r: float, p: float, n: int = 2) -> str:
    """The extra feature's phase in the best candidate solution (ties go to the earlier of
    not learned, superposed, dedicated)."""
    losses = candidate_losses(r, p, n)
    best = min(losses.values())
    winners = {CANDIDATE_PHASES[name] for name, loss in losses.items() if loss <= best * (1 + 1e-12)}
    return next(ph for ph in PHASES if ph in winners)


def has_theory(n: int, m: int) -> bool:
    """Whether the paper gives a theoretical diagram for n features in m dimensions."""
    return (n, m) in SIZES


def theory_misses(grid: PhaseGrid, n: int) -> tuple[int, list[tuple[float, float, str, str]]]:
    """How many cells of ``grid`` (importance_decay across, feature_probability down) have a phase, and those
    whose phase is not the theory's: (cells, [(r, p, measured, theory)])."""
    if grid.x_axis != "importance_decay" or grid.y_axis != "feature_probability":
        raise ValueError("the theory needs importance_decay across and feature_probability down")
    cells, misses = 0, []
    for p, row in zip(grid.y_values, grid.cells):
        for r, cell in zip(grid.x_values, row):
            if cell is None or cell.phase is None:
                continue
            cells += 1
            theory = theoretical_phase(float(r), float(p), n)
            if cell.phase != theory:
                misses.append((float(r), float(p), cell.phase, theory))
    return cells, misses
