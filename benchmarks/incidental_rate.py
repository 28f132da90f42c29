"""The authors' one-feature simulation of L1 sparsification (Lecomte et al. 2023), fitted in toysup's window:
`python benchmarks/incidental_rate.py [--m 32 1000 100000] [--lamb 1e-5] [--features 16] [--seeds 2] [--no-single]`.

Prints, per m, the constants of the law 1/||w(t)||_1 = a/sqrt(m) + c lamb t as toysup's report fits
them (engine/analysis/sparsification.py: a line where the curve is 25-75% of the way from its start to 1):
c and a for the mean curve of ``features`` features per seed (what toysup's ``inverse_feature_l1``
is), and c for the features one by one, means and standard errors over seeds and features, with the
seconds it took. Defaults: the authors' figure (m = 1e5, lamb = 1e-5, init std 0.9 / sqrt(m), Euler
step 0.5), where one seed of 16 features takes about 10 s on one core.
"""

from __future__ import annotations

import argparse
import math
import time

from toysup.engine.analysis.sparsification import (
    AUTHORS_INIT_STD,
    AUTHORS_LAMBDA,
    AUTHORS_M,
    estimate,
    fit_linear_rate,
    simulate_inverse_l1,
    values_stop,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--m", type=float, nargs="+", default=[AUTHORS_M])
    parser.add_argument("--lamb", type=float, default=AUTHORS_LAMBDA)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--init-std", type=float, default=AUTHORS_INIT_STD)
    parser.add_argument("--no-single", action="store_true", help="skip the features one by one (the slow part)")
    args = parser.parse_args()
    print(f"lamb {args.lamb:g}, init std {args.init_std:g}/sqrt(m), {args.features} features x {args.seeds} seeds")
    print("m | c (mean curve) | a (mean curve) | c (one feature) | R^2 | seconds")
    for m in (int(v) for v in args.m):
        started = time.perf_counter()
        mean_c, mean_a, single_c, r2 = [], [], [], []
        for seed in range(args.seeds):
            stop = values_stop(m, args.init_std)
            times, values = simulate_inverse_l1(m, args.lamb, args.features, seed, init_std=args.init_std, stop=stop)
            fit = fit_linear_rate(times, values)
            if fit is not None:
                mean_c.append(fit.rate / args.lamb)
                mean_a.append(fit.intercept * math.sqrt(m))
                r2.append(fit.r2)
            for feature in range(0 if args.no_single else args.features):
                one = simulate_inverse_l1(m, args.lamb, 1, 1000 * (seed + 1) + feature, init_std=args.init_std,
                                          stop=stop) if args.features > 1 else (times, values)
                single = fit_linear_rate(*one)
                if single is not None:
                    single_c.append(single.rate / args.lamb)
        print(f"{m} | {show(mean_c)} | {show(mean_a)} | {show(single_c)} | {show(r2)} | "
              f"{time.perf_counter() - started:.0f}")


def show(values: list[float]) -> str:
    e = estimate(values)
    if e is None:
        return "-"
    return f"{e.mean:.3f}" + ("" if e.n < 2 else f" ± {e.se:.3f}") + f" (n={e.n})"


if __name__ == "__main__":
    main()
