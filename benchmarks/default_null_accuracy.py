"""Null calibration of the default ``WristbandLoss()``: the calibrated total over R batches of N(0, I).

For each (N, d) prints the mean and sd of the total over R fresh null batches (target: mean within
+-0.1, sd within 0.9-1.1), each component's mean z and sd, and the first-call time of the closed
form at that (N, d) (caches cleared). Usage::

    python benchmarks/default_null_accuracy.py [--batches 400] [--sizes 64,1024,8192] [--dims 2,16,128]
"""

from __future__ import annotations

import argparse
import time

import torch

from latentshape import WristbandLoss
from latentshape.calibration import clear_null_cache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--sizes", default="64,1024,8192")
    parser.add_argument("--dims", default="2,16,128")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = WristbandLoss.component_names
    print(f"R = {args.batches} null batches per cell (sd of the sd ~ {1 / (2 * args.batches) ** 0.5:.3f})\n")
    print("| N | d | total mean | total sd | mean z (" + ", ".join(names) + ") | sd (same) | first call (ms) |")
    print("|---|---|---:|---:|---|---|---:|")
    for n in (int(v) for v in args.sizes.split(",")):
        for d in (int(v) for v in args.dims.split(",")):
            loss = WristbandLoss()
            clear_null_cache()
            start = time.perf_counter()
            loss.null_stats(n, d)
            first = 1e3 * (time.perf_counter() - start)
            g = torch.Generator().manual_seed(args.seed + n + d)
            chunk = max(1, min(args.batches, (1 << 22) // (n * d)))
            rows = []
            with torch.no_grad():
                for start_row in range(0, args.batches, chunk):
                    count = min(chunk, args.batches - start_row)
                    parts = loss.components(torch.randn(count, n, d, generator=g))
                    rows.append(torch.stack(list(parts), dim=-1))
            values = torch.cat(rows).double()
            total, comps = values[:, 0], values[:, 1:]
            means = ", ".join(f"{v:+.2f}" for v in comps.mean(0).tolist())
            sds = ", ".join(f"{v:.2f}" for v in comps.std(0).tolist())
            print(f"| {n} | {d} | {total.mean():+.3f} | {total.std():.3f} | {means} | {sds} | {first:.1f} |", flush=True)


if __name__ == "__main__":
    main()
