"""Closed-form null of `WristbandLoss(method="pairwise")` (every term) against fresh N(0, I) batches.

For each shape: R float64 null batches (a seed no calibration uses); per component, the mean and sd
of (raw - closed-form mean) / closed-form sd (targets 0 and 1; Monte-Carlo error 1/sqrt(R) and
~1/sqrt(2R)); closed-form / empirical correlations of the pairs the closed form adds; and the
calibrated total's mean and sd (targets within +-0.1 and 0.9-1.1).

    python benchmarks/pairwise_allorder_null_accuracy.py --batches 1500 --shapes 256x8,1024x16,2048x8,128x64,512x3
"""

from __future__ import annotations

import argparse
import time

import torch

from latentshape import WristbandLoss

PAIRS = (("rep", "sharp", 0, 4), ("rep", "coord", 0, 5), ("ang", "sharp", 2, 4), ("ang", "coord", 2, 5),
         ("sharp", "coord", 4, 5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=1500)
    parser.add_argument("--shapes", default="256x8,1024x16,2048x8,128x64,512x3")
    args = parser.parse_args()
    torch.set_num_threads(1)
    block = 10
    print("| N | d | z mean (rep, rad, ang, mom, sharp, coord) | z sd | corr closed form / empirical "
          + ", ".join(f"{a}-{b}" for a, b, _, _ in PAIRS) + " | total mean | total sd |")
    print("|---|---|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        n, d = (int(v) for v in shape.split("x"))
        loss, raw_loss = WristbandLoss(method="pairwise"), WristbandLoss(method="pairwise", calibrate=False)
        start = time.perf_counter()
        null = loss._closed_form_null(n, d)
        elapsed = time.perf_counter() - start
        generator = torch.Generator().manual_seed(12345)
        raws, totals = [], []
        with torch.no_grad():
            for _ in range(args.batches // block):
                x = torch.randn(block, n, d, generator=generator, dtype=torch.float64)
                raws.append(torch.stack(list(raw_loss.components(x)[1:7]), dim=-1))
                totals.append(loss.components(x).total)
        raw, total = torch.cat(raws), torch.cat(totals)
        z = (raw - null.mean.double()) / null.std.double()
        empirical = torch.corrcoef(raw.T)
        corr = ", ".join(f"{float(null.corr[i, j]):.3f} / {float(empirical[i, j]):.3f}" for _, _, i, j in PAIRS)
        print(f"| {n} | {d} | {', '.join(f'{v:+.3f}' for v in z.mean(0).tolist())} | "
              f"{', '.join(f'{v:.3f}' for v in z.std(0).tolist())} | {corr} | {float(total.mean()):+.3f} | "
              f"{float(total.std()):.3f} |  (closed form {1e3 * elapsed:.0f} ms, R = {len(total)})", flush=True)


if __name__ == "__main__":
    main()
