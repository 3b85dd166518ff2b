"""Peak memory and time of every Gaussian regularizer, forward + backward, one fresh process each.

    python benchmarks/memory.py [--n 200000] [--d 64] [--quadratic-n 20000] [--repeats 1] [--only NAME ...]
                                [--device cpu|cuda]

Each configuration runs in its own spawned process (``benchmarks/_measure.py``): peak memory is the
rise of the process's peak RSS over the state after x (float32, requires_grad) and the module
exist, during the first forward + backward (it includes x.grad, N d 4 bytes); time is the median
of ``--repeats`` later calls, one thread. The O(N^2) statistics (GaussianMMD, the pairwise
wristband) also run at ``--quadratic-n``, and their time at N is extrapolated as
(N / quadratic-n)^2 times the measured one when N itself is not run (``--quadratic-full`` runs it).
Statistics calibrated by Monte-Carlo are measured raw (``calibrate=False``): their null draws
are a one-off cost per (N, d), not part of a step.

``--device cuda`` puts x and the module on the GPU: peak memory is then the rise of
``torch.cuda.max_memory_allocated()`` over the allocated bytes before the first call (its peak
stats reset there), time the median of synchronized calls, on torch's default CPU threads.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from _measure import fmt_bytes, fmt_seconds, measure  # noqa: E402
from device_suite import add_device_option, device_header, use_device, warm_up  # noqa: E402

QUADRATIC = ("mmd", "wristband pairwise")
REGULARIZERS = (
    "wristband", "wristband degree 1", "wristband pairwise", "moments", "moments w2", "moments kl_diag",
    "mmd", "sliced", "sigreg",
)


def make(name: str):
    from latentshape import GaussianMMD, MomentMatchingLoss, SIGReg, SlicedWassersteinGaussian, WristbandLoss

    return {
        "wristband": lambda: WristbandLoss(calibrate=True),
        "wristband degree 1": lambda: WristbandLoss(degree=1, lambda_sharp=0, lambda_coord=0, calibrate=True),
        "wristband pairwise": lambda: WristbandLoss(method="pairwise", lambda_sharp=0, lambda_coord=0, calibrate=False),
        "moments": lambda: MomentMatchingLoss(calibrate=False),
        "moments w2": lambda: MomentMatchingLoss(penalty="w2", calibrate=False),
        "moments kl_diag": lambda: MomentMatchingLoss(penalty="kl_diag", calibrate=False),
        "mmd": lambda: GaussianMMD(calibrate=False),
        "sliced": lambda: SlicedWassersteinGaussian(calibrate=False),
        "sigreg": lambda: SIGReg(calibrate=False),
    }[name]()


def build(name: str, n: int, d: int, device: str = "cpu"):
    import torch

    torch.manual_seed(0)
    x = torch.randn(n, d, device=device, requires_grad=True)
    module = make(name).to(device)
    if name.startswith("wristband") and module.calibrate:
        module.null_stats(n, d)  # the closed-form null: computed once per shape, not per step
    warm_up(device)  # the CUDA workspace belongs to the baseline, not to the step

    def step():
        x.grad = None
        module(x).backward()

    return step, device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--quadratic-n", type=int, default=20_000)
    parser.add_argument("--quadratic-full", action="store_true", help="also run the O(N^2) ones at --n")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--only", nargs="+", choices=REGULARIZERS)
    add_device_option(parser)
    args = parser.parse_args()
    names = args.only or REGULARIZERS
    device = use_device(args.device, threads=None)  # the measured children set their own threads
    print(device_header(device, threads=1 if device.type == "cpu" else None))
    if device.type == "cuda":
        print(f"forward + backward, float32, cuda; peak = rise of torch.cuda.max_memory_allocated over x and the module "
              f"(incl. x.grad {fmt_bytes(4 * args.n * args.d)} at N = {args.n})\n")
    else:
        print(f"forward + backward, float32, 1 thread; peak = rise of peak RSS over x and the module (incl. x.grad "
              f"{fmt_bytes(4 * args.n * args.d)} at N = {args.n})\n")
    print("| regularizer | N | d | peak memory | time | note |\n|---|---|---|---|---|---|")
    for name in names:
        sizes = [args.n]
        if name in QUADRATIC:
            sizes = [args.quadratic_n] + ([args.n] if args.quadratic_full else [])
        for n in sizes:
            threads = None if device.type == "cuda" else 1
            seconds, peak = measure(build, (name, n, args.d, args.device), repeats=args.repeats, threads=threads, timeout=7200)
            note = ""
            if name in QUADRATIC and not args.quadratic_full and seconds == seconds:
                note = f"O(N^2): ~{fmt_seconds(seconds * (args.n / n) ** 2)} extrapolated to N = {args.n}"
            print(f"| {name} | {n} | {args.d} | {fmt_bytes(peak)} | {fmt_seconds(seconds)} | {note} |", flush=True)


if __name__ == "__main__":
    main()
