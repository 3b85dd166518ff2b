"""Spectral wristband energy at large N against the machine's memory bandwidth.

    python benchmarks/spectral_bandwidth.py [--sizes 10000 100000 1000000] [--d 128]

For each N: forward+backward time of the global spectral energy (degrees 1 and 2), and its ratio
to a bandwidth floor = (bytes of x read + bytes of its gradient written) / copy bandwidth,
with the copy bandwidth measured in the same run on an N x d float32 tensor. Degree 1 does
O(N d K) work and should sit within a small factor of that floor; degree 2 does O(N d^2 K)
flops and is compute-bound on a CPU (its GFLOP/s are printed too).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _measure import fmt_bytes, fmt_seconds, measure  # noqa: E402


def build(degree: int, n: int, d: int, device: str):
    import torch

    from latentshape.functional import wristband_energy

    torch.manual_seed(0)
    x = torch.randn(n, d, device=device, requires_grad=True)

    def step():
        x.grad = None
        wristband_energy(x, degree=degree).backward()

    return step, device


def copy_bandwidth(n: int, d: int, device: str) -> float:
    import torch

    x = torch.randn(n, d, device=device)
    y = torch.empty_like(x)
    y.copy_(x)
    best = float("inf")
    for _ in range(5):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        y.copy_(x)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * x.numel() * x.element_size() / best  # bytes read + written per second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--k-modes", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    d, modes = args.d, args.k_modes + 1
    print(f"d = {d}, K+1 = {modes} cosine modes, float32, device = {args.device}")
    print("| N | copy bandwidth | floor (read x + write grad) | deg 1 time | deg 1 / floor | deg 2 time | deg 2 / floor | deg 2 GFLOP/s | peak mem deg 2 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n in args.sizes:
        bandwidth = copy_bandwidth(n, d, args.device)
        floor = 2 * n * d * 4 / bandwidth
        t1, _ = measure(build, (1, n, d, args.device))
        t2, m2 = measure(build, (2, n, d, args.device))
        flops = 2 * 2 * n * modes * d * d  # forward sums + backward projections, multiply-add = 2 flops
        print(f"| {n} | {bandwidth / 1e9:.1f} GB/s | {fmt_seconds(floor)} | {fmt_seconds(t1)} | {t1 / floor:.1f}x | "
              f"{fmt_seconds(t2)} | {t2 / floor:.1f}x | {flops / t2 / 1e9:.1f} | {fmt_bytes(m2)} |", flush=True)


if __name__ == "__main__":
    main()
