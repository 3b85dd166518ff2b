"""Cost of the wristband loss as a ratio to a trivial per-point function, measured in one run.

    python benchmarks/cost_ratios.py [--repeats 30] [--rounds 5]

``triv(x) = (x.square().sum(1).sqrt()[:, None] * x).sum()``: one norm per row and one pass over x,
forward + backward. Every case is timed against it on the same x, float32, one thread, the
calls interleaved (triv, case, triv, case, ...) so that a busy machine slows both alike; the
printed ratio is the median over rounds of (median case time / median triv time). Cases:

- the default loss (degree 2) and degree 1 at (65536, 16) (targets in the issue: <= 5x for degree 1);
- the pairwise path at (1024, 32) and (4096, 128), next to one naive ``exp(x @ x.T / d).mean()``
  (Gram + exp, the floor any exact pairwise kernel pays; target: pairwise <= 2x it).

Calibration is computed once per shape before timing (it is not part of a step).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def triv(x: torch.Tensor) -> torch.Tensor:
    return (x.square().sum(1).sqrt()[:, None] * x).sum()


def gram_exp(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(x @ x.T / x.shape[1]).mean()


def _timer(function, x: torch.Tensor):
    def step() -> float:
        x.grad = None
        start = time.perf_counter()
        function(x).backward()
        return time.perf_counter() - start

    return step


def ratio(function, n: int, d: int, repeats: int, rounds: int) -> float:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(0), requires_grad=True)
    base, case = _timer(triv, x), _timer(function, x)
    for _ in range(3):  # warm-up: allocator, calibration caches, lazy imports
        base(), case()
    ratios = []
    for _ in range(rounds):
        base_times, case_times = [], []
        for _ in range(repeats):
            base_times.append(base())
            case_times.append(case())
        ratios.append(statistics.median(case_times) / statistics.median(base_times))
    return statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from latentshape import WristbandLoss

    cases = [
        ("default (all orders)", WristbandLoss(calibrate=True), 65536, 16),
        ("degree 1 (seed configuration)", WristbandLoss(degree=1, lambda_sharp=0, lambda_coord=0, calibrate=True), 65536, 16),
        ("pairwise", WristbandLoss(method="pairwise", lambda_sharp=0, lambda_coord=0, calibrate=False), 1024, 32),
        ("Gram + exp reference", gram_exp, 1024, 32),
        ("pairwise", WristbandLoss(method="pairwise", lambda_sharp=0, lambda_coord=0, calibrate=False), 4096, 128),
        ("Gram + exp reference", gram_exp, 4096, 128),
    ]
    print("| case | N | d | time / triv (fwd+bwd, float32, 1 thread, interleaved medians) |\n|---|---|---|---|")
    for name, function, n, d in cases:
        repeats = args.repeats if n * d <= 2**20 else max(5, args.repeats // 3)
        print(f"| {name} | {n} | {d} | {ratio(function, n, d, repeats, args.rounds):.1f}x |", flush=True)


if __name__ == "__main__":
    main()
