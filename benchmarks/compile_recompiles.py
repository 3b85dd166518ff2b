"""Recompilations of a compiled training step (encoder + WristbandLoss) over epochs with a short last batch.

Prints the number of Dynamo frame compilations, graph breaks and whether the compiled values
equal eager ones. Usage: ``python benchmarks/compile_recompiles.py [--epochs 3] [--loss wristband|sigreg|...]``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
import torch._dynamo
from torch import nn

import latentshape as ls

LOSSES = {
    "wristband": lambda: ls.WristbandLoss(),
    "sigreg": lambda: ls.SIGReg(slices=64),
    "mmd": lambda: ls.GaussianMMD(),
    "moment_matching": lambda: ls.MomentMatchingLoss(null_samples=64),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--loss", choices=sorted(LOSSES), default="wristband")
    parser.add_argument("--rows", type=int, default=1000, help="dataset rows (1000 with batch 128: a last batch of 104)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = torch.randn(args.rows, 16)
    encoder = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 8))
    loss_fn = LOSSES[args.loss]()

    def step(x: torch.Tensor) -> torch.Tensor:
        return loss_fn(encoder(x))

    compiled = torch.compile(step)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    first = None
    worst = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(args.epochs):
            for start in range(0, args.rows, 128):
                x = data[start:start + 128]
                began = time.perf_counter()
                value = compiled(x)
                value.backward()
                first = first if first is not None else time.perf_counter() - began
                worst = max(worst, abs(float(value) - float(step(x))))
    frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    breaks = sum(torch._dynamo.utils.counters["graph_break"].values())
    dynamo_warnings = [str(w.message)[:120] for w in caught if "dynamo" in str(w.filename).lower() or "torch._dynamo" in str(w.message)]
    print(f"loss={args.loss} epochs={args.epochs} unique graphs={frames} graph breaks={breaks} "
          f"first step {first:.1f} s, max |compiled - eager| = {worst:.2e}, dynamo warnings: {len(dynamo_warnings)}")
    for message in dynamo_warnings[:5]:
        print("  warning:", message)


if __name__ == "__main__":
    main()
