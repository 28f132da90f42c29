"""The README's performance tables from `toysup bench --json` output: `python benchmarks/ladder.py FILE.json ...`.

Each file (one ladder: equal threads, or each side at its defaults with
`--defaults`) becomes a line stating its conditions and a Markdown table with
each side's instance-steps/s, GFLOP/s and share of the peak measured in the same
process. Regenerate the README's tables with:

    toysup bench --json > equal.json
    toysup bench --defaults --json > defaults.json
    python benchmarks/ladder.py equal.json defaults.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _side(side: dict[str, Any]) -> list[str]:
    if side["status"] != "ok":
        return [side["status"], "-", "-"]
    return [f"{side['instance_steps_per_s']:,.0f}", f"{side['gflops']:,.2f}", f"{100 * side['peak_fraction']:.2f}%"]


def conditions(data: dict[str, Any]) -> str:
    """One sentence: device, threads, peak, step count and load, what a reader needs to compare numbers."""
    mode = "each at its default threads" if data["mode"] == "defaults" else "equal threads"
    peaks = ", ".join(f"{v:,.0f} GFLOP/s on {k} thread(s)" for k, v in data["peak_gflops"].items())
    size = 8192 if data["device"].startswith("cuda") else 2048
    load = f", load average {data['load_average'][0]:.1f} at the start" if data.get("load_average") else ""
    steps = sorted({s["steps"] for r in data["rungs"] for s in (r["engine"], r["reference"]) if s["status"] == "ok"})
    return (f"{data['device']} ({data['cpu']}, {data['cpu_count']} cores), torch {data['torch']}; {mode}: engine "
            f"{data['engine_threads']}, reference {data['reference_threads']}; engine step "
            f"{data.get('step_path', 'eager')}; n={data['n_features']}, "
            f"m={data['n_hidden']}, batch {data['batch_size']}, {steps[0] if steps else 0}-{steps[-1] if steps else 0}"
            f" timed steps per repeat, median of {data['repeats']} alternations; peak ({size}^2 float32 matmul) "
            f"{peaks}; {data['flops_per_instance_step'] / 1e6:.2f} MFLOP per instance-step{load}.")


def markdown(data: dict[str, Any]) -> str:
    """A ladder's conditions and table, in Markdown; a rung that ran out of memory says so."""
    gpu = any(r["engine"]["peak_gpu_mb"] is not None for r in data["rungs"])
    head = ["instances", "engine inst-steps/s", "GFLOP/s", "of peak", "reference inst-steps/s", "GFLOP/s",
            "of peak", "engine / reference", *(["engine GPU MB", "reference GPU MB"] if gpu else [])]
    lines = [conditions(data), "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rung in data["rungs"]:
        e, r = rung["engine"], rung["reference"]
        ratio = f"{rung['ratio']:.1f}x" if rung["ratio"] is not None else "-"
        memory = [f"{s['peak_gpu_mb']:,.0f}" if s["peak_gpu_mb"] is not None else "-" for s in (e, r)] if gpu else []
        lines.append("| " + " | ".join([f"{rung['instances']:,}", *_side(e), *_side(r), ratio, *memory]) + " |")
    notes = [f"{rung['instances']:,} instances, {name}: {rung[name]['note']}."
             for rung in data["rungs"] for name in ("engine", "reference") if rung[name]["note"]]
    return "\n".join([*lines, *(["", *notes] if notes else []), *paths_table(data)])


def paths_table(data: dict[str, Any]) -> list[str]:
    """The engine's step paths side by side (instance-steps/s and share of peak) and the final evaluation's
    seconds, timed apart from training; nothing for a ladder from before they were timed."""
    paths = sorted({p for r in data["rungs"] for p in r.get("paths", {})} | {data.get("step_path", "eager")})
    if not any(r.get("paths") or r.get("evaluation_s") is not None for r in data["rungs"]):
        return []
    head = ["instances", *(f"{p} inst-steps/s (of peak)" for p in paths), "final evaluation s (instances timed)"]
    lines = ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rung in data["rungs"]:
        sides = {**rung.get("paths", {}), data.get("step_path", "eager"): rung["engine"]}
        cells = [f"{_side(sides[p])[0]} ({_side(sides[p])[2]})" if p in sides else "-" for p in paths]
        evaluation = (f"{rung['evaluation_s']:,.2f} ({rung.get('evaluation_instances', 0):,})"
                      if rung.get("evaluation_s") is not None else "-")
        lines.append("| " + " | ".join([f"{rung['instances']:,}", *cells, evaluation]) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path, help="output of `toysup bench --json`")
    args = parser.parse_args()
    print("\n\n".join(markdown(json.loads(path.read_text())) for path in args.files))


if __name__ == "__main__":
    main()
