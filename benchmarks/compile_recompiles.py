"""Recompilations of a compiled training step (encoder + WristbandLoss) over epochs with a short last batch.

Prints the number of compiled graphs, of Dynamo frame compilations (with no graph break: 1 + the
recompilations; every break adds resume frames, each compiled per batch size), graph breaks,
Dynamo warnings and the largest relative difference between the compiled and the eager value (the
eager step re-draws the same random slices: the slice generator is rewound). Usage:
``python benchmarks/compile_recompiles.py [--epochs 3] [--loss wristband|sigreg|...] [--backend inductor]
[--device cpu|cuda]``. With ``--device cuda`` the data, encoder and loss live on the GPU and the first
step's time is read after ``torch.cuda.synchronize()``; the CPU runs on one thread.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import torch
import torch._dynamo
from torch import nn

import latentshape as ls

sys.path.insert(0, os.path.dirname(__file__))
from device_suite import add_device_option, clock, device_header, use_device  # noqa: E402

LOSSES = {
    "wristband": lambda: ls.WristbandLoss(),
    "sigreg": lambda: ls.SIGReg(slices=64),
    "mmd": lambda: ls.GaussianMMD(),
    "moment_matching": lambda: ls.MomentMatchingLoss(null_samples=64),
    "sliced": lambda: ls.SlicedWassersteinGaussian(slices=64, null_samples=64),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--loss", choices=sorted(LOSSES), default="wristband")
    parser.add_argument("--rows", type=int, default=1000, help="dataset rows (1000 with batch 128: a last batch of 104)")
    parser.add_argument("--backend", default="inductor")
    add_device_option(parser)
    args = parser.parse_args()
    device = use_device(args.device)
    print(device_header(device))
    torch.manual_seed(0)
    data = torch.randn(args.rows, 16).to(device)
    encoder = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 8)).to(device)
    loss_fn = LOSSES[args.loss]().to(device)

    def step(x: torch.Tensor) -> torch.Tensor:
        return loss_fn(encoder(x))

    compiled = torch.compile(step, backend=args.backend)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    first = None
    worst = 0.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(args.epochs):
            for start in range(0, args.rows, 128):
                x = data[start:start + 128]
                generator = getattr(loss_fn, "generator", None)
                state = generator.get_state() if generator is not None else None
                began = clock(device)
                value = compiled(x)
                value.backward()
                first = first if first is not None else clock(device) - began
                if generator is not None:  # the eager step draws the same slices
                    generator.set_state(state)
                eager = float(step(x))
                worst = max(worst, abs(float(value) - eager) / max(abs(eager), 1e-30))
    frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    compiled_frames = torch._dynamo.utils.counters["frames"]["ok"]
    breaks = sum(torch._dynamo.utils.counters["graph_break"].values())
    dynamo_warnings = [str(w.message)[:120] for w in caught if "dynamo" in str(w.filename).lower() or "torch._dynamo" in str(w.message)]
    print(f"loss={args.loss} backend={args.backend} epochs={args.epochs} unique graphs={frames} "
          f"frames compiled={compiled_frames} graph breaks={breaks} first step {first:.1f} s, "
          f"max |compiled - eager| / |eager| = {worst:.2e}, dynamo warnings: {len(dynamo_warnings)}")
    for message in dynamo_warnings[:5]:
        print("  warning:", message)


if __name__ == "__main__":
    main()
