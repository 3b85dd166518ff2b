"""Forward+backward time and peak extra memory of the wristband loss, both paths, against N and d.

    python benchmarks/wristband_speed.py [--quick] [--device cpu|cuda] [--max-pairwise N]

Uncalibrated losses are timed (calibration is cached per shape and paid once). Prints a
markdown table. Numbers depend on the machine; the closing notes quote the run they came from.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _measure import fmt_bytes, fmt_seconds, measure  # noqa: E402


def build(method: str, degree: int, n: int, d: int, device: str):
    import torch

    from latentshape import WristbandLoss

    torch.manual_seed(0)
    loss_fn = WristbandLoss(method=method, degree=degree, lambda_sharp=0, lambda_coord=0, calibrate=False)
    x = torch.randn(n, d, device=device, requires_grad=True)

    def step():
        x.grad = None
        loss_fn(x).backward()

    return step, device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="N up to 4096 only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-pairwise", type=int, default=16384, help="largest N for the O(N^2) path")
    args = parser.parse_args()
    sizes = [256, 1024, 4096] if args.quick else [256, 1024, 4096, 16384, 65536]
    rows = []
    print("| d | N | spectral deg 1 | spectral deg 2 | pairwise | deg2/deg1 | peak mem deg 1 | peak mem deg 2 | peak mem pairwise |")
    print("|---|---|---|---|---|---|---|---|---|")
    for d in (16, 128):
        for n in sizes:
            t1, m1 = measure(build, ("spectral", 1, n, d, args.device))
            t2, m2 = measure(build, ("spectral", 2, n, d, args.device))
            if n <= args.max_pairwise:
                tp, mp_ = measure(build, ("pairwise", 2, n, d, args.device), repeats=1 if n > 4096 else 3)
            else:
                tp, mp_ = float("nan"), "skipped"
            ratio = t2 / t1 if t1 == t1 and t2 == t2 else float("nan")
            line = (f"| {d} | {n} | {fmt_seconds(t1)} | {fmt_seconds(t2)} | {fmt_seconds(tp)} | {ratio:.1f}x | "
                    f"{fmt_bytes(m1)} | {fmt_bytes(m2)} | {fmt_bytes(mp_)} |")
            print(line, flush=True)
            rows.append(line)


if __name__ == "__main__":
    main()
