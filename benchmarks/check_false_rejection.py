"""False rejections of ``latentshape.check`` on N(0, I) batches: the family-wise error of its verdict.

    python benchmarks/check_false_rejection.py [--batches 1000] [--shapes 32x16 64x32 256x8]
                                               [--null-samples R] [--save pvalues.npz]

Each batch is a fresh N(0, I) draw (its own seed); ``check`` runs with its defaults (one cached
set of null draws per shape, as in use). Printed per shape: the rate of "NOT N(0, I)" verdicts
(target <= alpha = 0.05, binomial sd in brackets), which tests caused them, and for every test the
rate of p <= 0.05 and of p <= 0.05 / 8 (Holm's first step; targets 0.05 and 0.00625).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch


def run_shape(n: int, d: int, batches: int, null_samples: int | None, seed: int) -> dict[str, np.ndarray]:
    from latentshape import check

    p_values, verdicts = [], []
    names: list[str] = []
    for index in range(batches):
        x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed + index), dtype=torch.float64)
        report = check(x) if null_samples is None else check(x, null_samples=null_samples)
        names = [test.name for test in report.tests]
        p_values.append([test.p_value for test in report.tests])
        verdicts.append([test.rejected for test in report.tests])
    return {"names": np.array(names), "p": np.array(p_values), "rejected": np.array(verdicts)}


def summarize(n: int, d: int, result: dict[str, np.ndarray], alpha: float = 0.05) -> str:
    rejected, p, names = result["rejected"], result["p"], result["names"]
    batches, tests = p.shape
    family = rejected.any(axis=1).mean()
    sd = math.sqrt(alpha * (1 - alpha) / batches)
    lines = [f"({n}, {d}): {batches} N(0, I) batches; family-wise false rejection {100 * family:.1f}% "
             f"(target <= {100 * alpha:.0f}% +- {100 * sd:.1f}% binomial sd)", "",
             "| test | verdicts caused | p <= 0.05 | p <= 0.05/8 |", "|---|---|---|---|"]
    for j, name in enumerate(names):
        lines.append(f"| {name} | {int(rejected[:, j].sum())} | {100 * (p[:, j] <= alpha).mean():.1f}% | "
                     f"{100 * (p[:, j] <= alpha / tests).mean():.2f}% |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1000)
    parser.add_argument("--shapes", nargs="+", default=["32x16", "64x32", "256x8"])
    parser.add_argument("--null-samples", type=int, default=None, help="default: check()'s own")
    parser.add_argument("--seed", type=int, default=10_000, help="first batch seed (batch i uses seed + i)")
    parser.add_argument("--save", help="write every p-value to this .npz")
    args = parser.parse_args()
    torch.set_num_threads(1)
    saved = {}
    for shape in args.shapes:
        n, d = (int(v) for v in shape.split("x"))
        start = time.perf_counter()
        result = run_shape(n, d, args.batches, args.null_samples, args.seed)
        print(summarize(n, d, result), f"\n\n({time.perf_counter() - start:.0f} s)\n", flush=True)
        saved.update({f"{shape}_{key}": value for key, value in result.items()})
    if args.save:
        np.savez(args.save, **saved)


if __name__ == "__main__":
    main()
