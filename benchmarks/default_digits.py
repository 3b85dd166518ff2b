"""The digits encoder with the default ``WristbandLoss()`` and with the previous (degree-2 only) default.

MLP 64-128-128-8 on 80% of scikit-learn's digits, cross-entropy + w * loss, Adam 1e-3, batches of
128 (short last batch), 60 epochs, over a grid of w and seeds (one cell of ``latentshape.bench``'s
supervised ``train`` protocol each, run in this process). For each (loss, w): held-out accuracy and
``latentshape.check`` on the held-out (N = 360) and the full training embedding (N = 1437): tests
rejected of 8, -log10 Henze-Zirkler p, the calibrated wristband total of the embedding (the
default's statistic), mean +- sd over seeds.

    python benchmarks/default_digits.py [--weights 0.01,0.03,0.1,0.3,1] [--seeds 2] [--epochs 60]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from latentshape import WristbandLoss
from latentshape.bench.regularizers import REGULARIZERS, register_regularizer
from latentshape.bench.training import Cell, load_digits_split, run_cell

LOSSES = {"default": "wristband", "previous default": "wristband_previous"}
COLUMNS = (("accuracy", "accuracy", 3), ("train rejected", "train_rejected", 1), ("test rejected", "test_rejected", 1),
           ("train -log10 HZ p", "train_hz_log10p", 1), ("train wristband z", "train_wristband", 1))


def mean_sd(values: list[float], digits: int) -> str:
    """'mean +- sd' of seeds' values (sd 0 for one seed)."""
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}f} +- {spread:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="0.01,0.03,0.1,0.3,1")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if "wristband_previous" not in REGULARIZERS:
        register_regularizer("wristband_previous", lambda d, calibrate: WristbandLoss(lambda_sharp=0.0, lambda_coord=0.0),
                             description="WristbandLoss(lambda_sharp=0, lambda_coord=0)")
    data = load_digits_split()
    began = time.perf_counter()
    rows = [("none", 0.0, [run_cell(Cell("supervised", "none", 0.0, 8, seed, args.epochs), data)
                           for seed in range(args.seeds)])]
    for label, name in LOSSES.items():
        for w in (float(v) for v in args.weights.split(",")):
            rows.append((label, w, [run_cell(Cell("supervised", name, w, 8, seed, args.epochs), data)
                                    for seed in range(args.seeds)]))
            print(f"<!-- {label} w={w} done, {time.perf_counter() - began:.0f} s -->", flush=True)
    print(f"\nDigits encoder, d = 8, {args.epochs} epochs, {args.seeds} seeds (mean +- sd); check() on the embeddings\n")
    print("| loss | w | " + " | ".join(c[0] for c in COLUMNS) + " |")
    print("|---|---:|" + "---|" * len(COLUMNS))
    for label, w, records in rows:
        cells = [mean_sd([float(r[key]) for r in records], digits) for _, key, digits in COLUMNS]
        print(f"| {label} | {w:g} | " + " | ".join(cells) + " |")
    print(f"\n{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
