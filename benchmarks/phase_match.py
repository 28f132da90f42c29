"""How well the phase diagrams match the paper's theory, and how well an adaptive sweep finds them.

    python benchmarks/phase_match.py theory RUN [--reference 1048576]
    python benchmarks/phase_match.py adaptive ADAPTIVE_RUN UNIFORM_RUN

``theory``: a tms-phase or tms-phase-3in2 run (any grid of importance_decay x
feature_probability): the cells whose phase is the theory's (engine/analysis/phase_theory.py)
under each seed selection (best-of-k, the paper's drop-worst majority), selecting seeds by the
stored ``loss`` (the model's own evaluation). With ``--reference N`` also by a brute-force loss
of each instance's stored weights on N fresh samples (its own generator, seed 1234, blocks of
65,536), the ratio of the selected seeds' reference loss to the theory's best candidate (the
closed forms are whole losses summed over features; toysup's loss is their mean), and the
largest |stored - reference| / reference.

``adaptive``: a tms-phase-adaptive run against a uniform run of the same final grid, best
seed's phase per point (what refinement sees): the points where the refined grid (trained, or
filled from a cell whose corners agree) has the uniform grid's phase, and the share of the
uniform grid's boundary edges (neighbours of different phase) across which the refined grid
changes phase too (engine.adaptive.agreement). Train the uniform run with another seed base
(``-s seed=100000``) for an independent check; with the same base its instances are the
adaptive run's own, which checks only that refinement visited every change.

Prints one JSON object. Keep one torch thread on a shared box (OMP_NUM_THREADS=1).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import asdict
from typing import Any

import torch

from toysup.engine.adaptive import shape_of
from toysup.engine.adaptive_grid import agreement, grid_labels
from toysup.engine.analysis.phase import SELECTIONS, phase_grid
from toysup.engine.analysis.phase_theory import candidate_losses, theory_misses
from toysup.engine.results import Results
from toysup.engine.run import catalogue, layout

BLOCK = 1 << 16  # reference samples per draw
ROWS = 64  # instances per draw


def open_run(ref: str) -> Results:
    return Results.open(catalogue.find_run(layout.runs_dir(None), ref))


@torch.no_grad()
def reference_losses(results: Results, samples: int) -> dict[int, tuple[float, float]]:
    """Each instance's loss, the mean over features of importance (x - ReLU(W^T W x + b))^2, on ``samples`` fresh
    independent uniform samples (brute force: the reference a selection is checked against), and its standard
    error."""
    gen = torch.Generator().manual_seed(1234)
    out: dict[int, tuple[float, float]] = {}
    for tensors in results.run.weights() if results.run is not None else ():
        instances = tensors["instance"].tolist()
        for start in range(0, len(instances), ROWS):
            ids = instances[start:start + ROWS]
            W, b = tensors["W"][start:start + ROWS], tensors["b"][start:start + ROWS]
            configs = [results.instance_config(i) for i in ids]
            n = W.shape[1]
            p = torch.tensor([c["feature_probability"] for c in configs]).view(-1, 1, 1)
            imp = torch.ones(len(ids), 1, n)
            imp[:, 0, -1] = torch.tensor([c["importance_decay"] for c in configs])
            total = torch.zeros(len(ids), dtype=torch.float64)
            squares = torch.zeros(len(ids), dtype=torch.float64)
            for done in range(0, samples, BLOCK):
                size = min(BLOCK, samples - done)
                x = torch.rand(len(ids), size, n, generator=gen)
                x.mul_(torch.rand(len(ids), size, n, generator=gen) < p)
                out_ = torch.relu(torch.baddbmm(b.unsqueeze(1), torch.bmm(x, W), W.transpose(1, 2)))
                per_sample = (imp * (x - out_).square()).mean(2).double()
                total += per_sample.sum(1)
                squares += per_sample.square().sum(1)
            mean = total / samples
            se = ((squares / samples - mean.square()).clamp_min(0) / samples).sqrt()
            for i, m, e in zip(ids, mean.tolist(), se.tolist()):
                out[i] = (m, e)
    return out


def theory(args: argparse.Namespace) -> dict[str, Any]:
    results = open_run(args.run)
    n = int(results.spec.params["n_features"])
    out: dict[str, Any] = {"run": str(results.run.path if results.run else ""), "n": n,
                           "seeds": results.spec.seeds}
    metrics = ["loss"]
    if args.reference:
        ref = reference_losses(results, args.reference)
        rows = [{**r, "reference_loss": ref[r["instance"]][0]} for r in results.rows]
        results = results.with_rows(rows)
        metrics.append("reference_loss")
        usable = [r for r in rows if isinstance(r["loss"], float) and r["reference_loss"] > 0]
        errors = [abs(r["loss"] - r["reference_loss"]) / r["reference_loss"] for r in usable]
        out["reference_samples"] = args.reference
        out["median_relative_error_of_stored_loss"] = statistics.median(errors)
        if usable and isinstance(usable[0].get("loss_se"), float):  # the stored loss states its error
            z = [abs(r["loss"] - r["reference_loss"]) / max(math.hypot(r["loss_se"], ref[r["instance"]][1]), 1e-30)
                 for r in usable]
            out["stored_minus_reference_in_joint_se"] = {"median": statistics.median(z), "max": max(z),
                                                         "share_above_3": sum(v > 3 for v in z) / len(z)}
    for metric in metrics:
        for selection in SELECTIONS:
            grid = phase_grid(results, "importance_decay", "feature_probability", metric=metric, selection=selection)
            cells, misses = theory_misses(grid, n)
            out[f"{selection} by {metric}"] = {"match": cells - len(misses), "cells": cells,
                                               "misses": [f"r={r:.3g} p={p:.3g}: {m} (theory {t})"
                                                          for r, p, m, t in misses]}
    if args.reference:
        ratios = []
        for _point, members in results.groups():
            best = min(members, key=lambda r: r["reference_loss"])
            c = results.instance_config(best["instance"])
            closed = min(candidate_losses(c["importance_decay"], c["feature_probability"], n).values())
            ratios.append(best["reference_loss"] * n / closed)
        out["best_seed_loss_over_closed_form"] = {"median": statistics.median(ratios), "min": min(ratios),
                                                  "max": max(ratios)}
    return out


def adaptive(args: argparse.Namespace) -> dict[str, Any]:
    refined, uniform = open_run(args.adaptive_run), open_run(args.uniform_run)
    spec = refined.spec
    if spec.adaptive is None:
        raise SystemExit(f"{args.adaptive_run} is not an adaptive sweep")
    shape = shape_of(spec)
    if shape_of(uniform.spec) != shape or [a.values for a in uniform.spec.axes] != [a.values for a in spec.axes]:
        raise SystemExit("the two runs do not share their final grid")
    column = spec.adaptive.classify
    found = agreement(grid_labels(refined.rows, shape, column), grid_labels(uniform.rows, shape, column), shape,
                      spec.adaptive.rounds)
    return {"adaptive_run": str(refined.run.path if refined.run else ""),
            "uniform_run": str(uniform.run.path if uniform.run else ""),
            "seed_bases": [refined.spec.params["seed"], uniform.spec.params["seed"]], **asdict(found)}


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("theory", help="match of a phase diagram with the paper's theory")
    t.add_argument("run")
    t.add_argument("--reference", type=int, default=0, help="samples of a brute-force reference loss (0: none)")
    a = sub.add_parser("adaptive", help="an adaptive run against a uniform run of the same grid")
    a.add_argument("adaptive_run")
    a.add_argument("uniform_run")
    args = parser.parse_args()
    print(json.dumps(theory(args) if args.what == "theory" else adaptive(args), indent=1))


if __name__ == "__main__":
    main()
