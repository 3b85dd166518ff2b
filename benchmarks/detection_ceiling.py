"""What the best tests in the library see on the sources the default wristband misses.

    python benchmarks/detection_ceiling.py [--reps 3] [--null-samples 200]

For each (source, d) below (the sources where the default ``WristbandLoss()``'s calibrated total
stays under z = 5 at N = 1024 in ``benchmarks/default_detection.py``), draws ``--reps`` batches of
N = 1024 and runs :func:`latentshape.check` (eight tests: the wristband total, per-dimension
mean/std and KS, Mardia skewness and kurtosis, Henze-Zirkler, kNN KL), printing how many tests
reject at the family-wise 0.05 level and the smallest Holm p-value. Next to it, an *oracle* test
that knows where the departure lives: the KS test of the projection on the true direction
(one-coordinate sources; coordinate 0 for the lobes in the plane of coordinates 0, 1), or the KS test of max_k <u, p_k> against its N(0, I) law (pole sources,
by simulation). An omnibus test pays for not knowing where to look; the oracle column shows the
departure is real at this N.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from allorder_sources import SUITE_A, SUITE_B, cross_poles, rotation, simplex_poles  # noqa: E402
from latentshape.bench.distributions import DISTRIBUTIONS  # noqa: E402

import latentshape as ls  # noqa: E402

CASES = [
    ("poles_simplex", 3), ("lobes_cross", 16), ("uniform_turned", 16),
    ("poles_simplex", 64), ("poles_cross", 64), ("lobes_cross", 64), ("uniform_turned", 64), ("copula", 64),
]
N = 1024


def sampler(name):
    return SUITE_A.get(name) or SUITE_B.get(name) or DISTRIBUTIONS[name]


def oracle_p(name: str, x: torch.Tensor, d: int) -> float:
    """p-value of a test told where the departure lives (nan where none is defined)."""
    x = x.double()
    if name == "uniform_turned":
        return float(stats.kstest((x @ rotation(d, 13)[:, 0]).numpy(), "norm").pvalue)
    if name == "lobes_cross":
        return float(stats.kstest(x[:, 0].numpy(), "norm").pvalue)
    if name.startswith("poles"):
        poles = simplex_poles(d) if name == "poles_simplex" else cross_poles(d)
        poles = poles @ _pole_rotation(name, d).T
        def score(z):
            return (torch.nn.functional.normalize(z, dim=1) @ poles.T).max(1).values.numpy()
        null = score(torch.randn(20000, d, generator=torch.Generator().manual_seed(99), dtype=torch.float64))
        return float(stats.ks_2samp(score(x), null).pvalue)
    return float("nan")


def _pole_rotation(name: str, d: int) -> torch.Tensor:
    """The fixed rotation the pole sources apply to their pole set (seeds as in allorder_sources)."""
    return rotation(d, 11 if name == "poles_simplex" else 12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--null-samples", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"N = {N}, {args.reps} batches per row, check(null_samples={args.null_samples})\n")
    print("| source | d | check: tests rejecting | check: smallest Holm p | rejecting tests | oracle p (median) |")
    print("|---|---:|---|---|---|---:|")
    for name, d in CASES:
        rejected, smallest, oracle, names = [], [], [], set()
        for rep in range(args.reps):
            x = sampler(name)(N, d, torch.Generator().manual_seed(1000 + rep))
            report = ls.check(x, null_samples=args.null_samples, seed=rep)
            tests = report.to_dict()["tests"]
            rejected.append(sum(t["rejected"] for t in tests))
            names.update(t["name"] for t in tests if t["rejected"])
            smallest.append(min(t["p_holm"] for t in tests))
            oracle.append(oracle_p(name, x, d))
        oracle.sort()
        med = oracle[len(oracle) // 2]
        print(f"| {name} | {d} | {' / '.join(map(str, rejected))} of 8 | "
              f"{' / '.join(f'{p:.2g}' for p in smallest)} | {', '.join(sorted(names)) or '-'} | {med:.2g} |", flush=True)


if __name__ == "__main__":
    main()
