"""Cost of the wristband loss as a ratio to a trivial per-point function, measured in one run.

    python benchmarks/cost_ratios.py [--repeats 30] [--rounds 5] [--only spectral|pairwise] [--baseline REV]
                                     [--device cpu|cuda] [--quick]

``triv(x) = (x.square().sum(1).sqrt()[:, None] * x).sum()``: one norm per row and one pass over x,
forward + backward. Every case is timed against it on the same x, float32, one thread, the
calls interleaved (triv, case, triv, case, ...) so that a busy machine slows both alike; the
printed ratio is the median over rounds of (median case time / median triv time), with its range
over rounds; the pairwise cases also print their ratio to the Gram + exp reference, round by round
(all three interleaved in the same rounds). Cases:

- the default loss (degree 2) and degree 1 at (65536, 16) (targets in the issue: <= 5x for degree 1);
- the pairwise path at (1024, 32) and (4096, 128), without and with the sharp and coordinate terms,
  next to one naive ``exp(x @ x.T / d).mean()`` (Gram + exp, the floor any exact pairwise kernel
  pays; target: pairwise <= 2x it).

``--baseline REV`` adds the pairwise case (no sharp/coord) with the pairwise kernel module
(``src/latentshape/wristband/kernel.py``) as it is at git revision REV, loaded next to the current one
and interleaved in the same rounds: before/after in one run.

Calibration is computed once per shape before timing (it is not part of a step).

``--device cuda`` puts x and the modules on the GPU, reads the clock after ``torch.cuda.synchronize()``
around each call and adds each case's median time (the CPU runs on one thread). ``--quick`` shrinks
the shapes to (4096, 16), (256, 16) and (512, 32) for a smoke test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import types

import torch

sys.path.insert(0, os.path.dirname(__file__))
from device_suite import add_device_option, clock, device_header, use_device  # noqa: E402

SPECTRAL_SHAPE, PAIRWISE_SHAPES = (65536, 16), ((1024, 32), (4096, 128))
QUICK_SPECTRAL_SHAPE, QUICK_PAIRWISE_SHAPES = (4096, 16), ((256, 16), (512, 32))


def triv(x: torch.Tensor) -> torch.Tensor:
    return (x.square().sum(1).sqrt()[:, None] * x).sum()


def gram_exp(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(x @ x.T / x.shape[1]).mean()


def _timer(function, x: torch.Tensor):
    def step() -> float:
        x.grad = None
        start = clock(x.device)
        function(x).backward()
        return clock(x.device) - start

    return step


def ratios(functions, n: int, d: int, repeats: int, rounds: int, device: str = "cpu",
           base_medians: list[float] | None = None) -> list[list[float]]:
    """Per round, the median time of each function over the median time of triv, all calls interleaved.

    ``base_medians``, when given, receives triv's median seconds of each round.
    """
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(0)).to(device).requires_grad_()
    base, cases = _timer(triv, x), [_timer(function, x) for function in functions]
    for _ in range(3):  # warm-up: allocator, calibration caches, lazy imports
        base(), [case() for case in cases]
    per_round = []
    for _ in range(rounds):
        base_times, case_times = [], [[] for _ in cases]
        for _ in range(repeats):
            base_times.append(base())
            for case, times in zip(cases, case_times):
                times.append(case())
        per_round.append([statistics.median(times) / statistics.median(base_times) for times in case_times])
        if base_medians is not None:
            base_medians.append(statistics.median(base_times))
    return per_round


def ratio(function, n: int, d: int, repeats: int, rounds: int, device: str = "cpu") -> float:
    return statistics.median(r[0] for r in ratios([function], n, d, repeats, rounds, device))


def _seconds(per_round: list[list[float]], index: int, base_medians: list[float]) -> str:
    """`` | <median case time>`` on CUDA (each round's ratio times triv's median), else nothing."""
    if not base_medians:
        return ""
    return f" | {1e3 * statistics.median(r[index] * b for r, b in zip(per_round, base_medians)):.3f} ms"


def _spectral_cases(args) -> None:
    from latentshape import WristbandLoss

    cases = [("default (all orders)", WristbandLoss(calibrate=True).to(args.device)),
             ("degree 1 (seed configuration)",
              WristbandLoss(degree=1, lambda_sharp=0, lambda_coord=0, calibrate=True).to(args.device))]
    n, d = QUICK_SPECTRAL_SHAPE if args.quick else SPECTRAL_SHAPE
    base_medians = [] if args.device == "cuda" else None
    per_round = ratios([case for _, case in cases], n, d, max(5, args.repeats // 3), args.rounds, args.device, base_medians)
    for index, (name, _) in enumerate(cases):
        values = [r[index] for r in per_round]
        print(f"| {name} | {n} | {d} | {statistics.median(values):.2f}x | {min(values):.2f}-{max(values):.2f}x"
              f"{_seconds(per_round, index, base_medians)} |", flush=True)


def _kernel_at(revision: str) -> types.ModuleType:
    """The pairwise kernel module as it is at a git revision, importable next to the current one."""
    path = "src/latentshape/wristband/kernel.py"
    source = subprocess.run(["git", "show", f"{revision}:{path}"], capture_output=True, text=True, check=True).stdout
    module = types.ModuleType("latentshape.wristband._baseline_kernel")
    module.__package__ = "latentshape.wristband"
    exec(compile(source, f"{revision}:{path}", "exec"), module.__dict__)  # noqa: S102 - the repository's own file
    return module


def _with_rows(loss, row_sums):
    """``loss`` with ``row_sums`` in place of the current pairwise kernel for its forward (the backward
    follows the autograd nodes that forward made)."""
    import latentshape.wristband.components as components

    def call(x: torch.Tensor) -> torch.Tensor:
        current, components.pairwise_row_sums = components.pairwise_row_sums, row_sums
        try:
            return loss(x)
        finally:
            components.pairwise_row_sums = current

    return call


def _pairwise_cases(args) -> None:
    from latentshape import WristbandLoss

    # Monte-Carlo calibration of the default pairwise loss is a one-off per (N, d), not part of a step.
    plain = WristbandLoss(method="pairwise", lambda_sharp=0, lambda_coord=0, calibrate=False).to(args.device)
    cases = [("pairwise, no sharp/coord", plain),
             ("pairwise default (sharp, coord)", WristbandLoss(method="pairwise", calibrate=False).to(args.device))]
    if args.baseline:
        cases.append((f"pairwise, no sharp/coord, kernel at {args.baseline}",
                      _with_rows(plain, _kernel_at(args.baseline).pairwise_row_sums)))
    cases.append(("Gram + exp reference", gram_exp))
    for n, d in QUICK_PAIRWISE_SHAPES if args.quick else PAIRWISE_SHAPES:
        repeats = args.repeats if n * n <= 2**20 else max(5, args.repeats // 3)
        base_medians = [] if args.device == "cuda" else None
        per_round = ratios([case for _, case in cases], n, d, repeats, args.rounds, args.device, base_medians)
        for index, (name, _) in enumerate(cases):
            values = [r[index] for r in per_round]
            versus = [r[index] / r[-1] for r in per_round]
            extra = (f" ({statistics.median(versus):.2f}x Gram+exp, rounds {min(versus):.2f}-{max(versus):.2f})"
                     if index < len(cases) - 1 else "")
            print(f"| {name} | {n} | {d} | {statistics.median(values):.1f}x{extra} | {min(values):.1f}-{max(values):.1f}x"
                  f"{_seconds(per_round, index, base_medians)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", choices=("spectral", "pairwise"), help="one group of cases")
    parser.add_argument("--baseline", metavar="REV", help="also time the pairwise kernel as it is at this git revision")
    add_device_option(parser)
    parser.add_argument("--quick", action="store_true", help="small shapes (a smoke test)")
    args = parser.parse_args()
    device = use_device(args.device)
    print(device_header(device) + "\n")
    if device.type == "cuda":
        print("| case | N | d | time / triv: median of rounds (fwd+bwd, float32, cuda, interleaved) | range over rounds "
              "| median time |\n|---|---|---|---|---|---|")
    else:
        print("| case | N | d | time / triv: median of rounds (fwd+bwd, float32, 1 thread, interleaved) | range over rounds |\n"
              "|---|---|---|---|---|")
    if args.only != "pairwise":
        _spectral_cases(args)
    if args.only != "spectral":
        _pairwise_cases(args)


if __name__ == "__main__":
    main()
