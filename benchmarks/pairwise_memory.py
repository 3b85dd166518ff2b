"""Pairwise wristband energy: blocked path with its own backward vs a naive N x N autograd graph.

    python benchmarks/pairwise_memory.py [--sizes 1024 4096 8192 32768] [--naive-max 8192] [--d 64]

The naive reference builds the Gram matrix and three N x N radial exponentials under autograd
(the layout of the public reference implementation, about 40 N^2 bytes kept for backward).
Both compute the same energy E (docs/theory.md, "Energy and repulsion"); forward+backward time and peak extra memory.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _measure import fmt_bytes, fmt_seconds, measure  # noqa: E402


def build(kind: str, n: int, d: int, device: str):
    import torch

    from latentshape.functional import wristband_energy, wristband_map

    torch.manual_seed(0)
    x = torch.randn(n, d, device=device, requires_grad=True)
    beta, c = 8.0, 4.0 / 3.0

    def naive(y):
        point = wristband_map(y)
        u, t = point.direction, point.cdf.to(y.dtype)
        k_ang = torch.exp(c * (u @ u.T - 1.0))
        diff, plus = t[:, None] - t[None, :], t[:, None] + t[None, :]
        k_rad = torch.exp(-beta * diff**2) + torch.exp(-beta * plus**2) + torch.exp(-beta * (plus - 2.0) ** 2)
        return (k_ang * k_rad).mean()

    energy = naive if kind == "naive" else (lambda y: wristband_energy(y, method="pairwise"))

    def step():
        x.grad = None
        energy(x).backward()

    return step, device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 4096, 8192, 32768])
    parser.add_argument("--naive-max", type=int, default=8192, help="largest N for the naive graph (memory ~ 40 N^2 bytes)")
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"d = {args.d}, float32, device = {args.device}")
    print("| N | blocked time | blocked peak mem | naive time | naive peak mem | speed ratio naive/blocked |")
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        repeats = 1 if n > 8192 else 2
        tb, mb = measure(build, ("blocked", n, args.d, args.device), repeats=repeats)
        if n <= args.naive_max:
            tn, mn = measure(build, ("naive", n, args.d, args.device), repeats=repeats)
        else:
            tn, mn = float("nan"), "not run (memory)"
        ratio = f"{tn / tb:.2f}x" if tn == tn and tb == tb else "n/a"
        print(f"| {n} | {fmt_seconds(tb)} | {fmt_bytes(mb)} | {fmt_seconds(tn)} | {fmt_bytes(mn)} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
