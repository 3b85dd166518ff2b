"""The digits encoder with a per-batch regularizer and with the same one in population mode.

MLP 64-128-128-8 on 80% of scikit-learn's digits, cross-entropy + w * loss, Adam 1e-3, batches of
128, 60 epochs (one supervised cell of ``latentshape.bench``'s ``train`` protocol each, run in this
process), seeds 0..S-1. For each (loss, mode, w): held-out accuracy and ``latentshape.check`` on the
full training embedding (N = 1437) and the held-out one (N = 360): tests rejected of 8, -log10
Henze-Zirkler p; mean +- sd over seeds. Population mode is
``PopulationMode(loss, window=W)`` (default: the library's default window).

    python benchmarks/population_digits.py [--losses moment_matching,sigreg,wristband] [--weights 0.003,0.01,0.03,0.1]
        [--window W] [--modes batch,population,none]
"""

from __future__ import annotations

import argparse
import time

import torch

from latentshape import MomentMatchingLoss, PopulationMode, SIGReg, WristbandLoss
from latentshape.population import DEFAULT_WINDOW
from latentshape.bench.regularizers import REGULARIZERS, register_regularizer
from latentshape.bench.training import Cell, load_digits_split, run_cell

from default_digits import mean_sd  # noqa: E402  (benchmarks/ is on the path when run as a script)

BUILD = {"moment_matching": lambda: MomentMatchingLoss(), "sigreg": lambda: SIGReg(), "wristband": lambda: WristbandLoss()}
COLUMNS = (("accuracy", "accuracy", 3), ("train rejected", "train_rejected", 1), ("test rejected", "test_rejected", 1),
           ("train -log10 HZ p", "train_hz_log10p", 1), ("test -log10 HZ p", "test_hz_log10p", 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--losses", default="moment_matching,sigreg")
    parser.add_argument("--weights", default="0.003,0.01,0.03,0.1")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--modes", default="batch,population", help="which of batch, population, none to run")
    args = parser.parse_args()
    modes = args.modes.split(",")
    torch.set_num_threads(1)
    names = []
    for loss in args.losses.split(","):
        name = f"{loss}_population_w{args.window}"
        if name not in REGULARIZERS:
            register_regularizer(name, lambda d, calibrate, loss=loss: PopulationMode(BUILD[loss](), window=args.window),
                                 description=f"PopulationMode({loss}, window={args.window})")
        names += ([loss] if "batch" in modes else []) + ([name] if "population" in modes else [])
    data = load_digits_split()
    began, rows = time.perf_counter(), []
    if "none" in modes:  # the unregularized encoder: the accuracy that "costing 1 point" is measured from
        rows.append(("none", 0.0, [run_cell(Cell("supervised", "none", 0.0, 8, seed, args.epochs), data)
                                   for seed in range(args.seeds)]))
    for name in names:
        for w in (float(v) for v in args.weights.split(",")):
            rows.append((name, w, [run_cell(Cell("supervised", name, w, 8, seed, args.epochs), data) for seed in range(args.seeds)]))
            print(f"<!-- {name} w={w} done, {time.perf_counter() - began:.0f} s -->", flush=True)
    print(f"\nDigits encoder, d = 8, {args.epochs} epochs, {args.seeds} seeds (mean +- sd); check() on the embeddings\n")
    print("| loss | w | " + " | ".join(c[0] for c in COLUMNS) + " |")
    print("|---|---:|" + "---|" * len(COLUMNS))
    for name, w, records in rows:
        print(f"| {name} | {w:g} | " + " | ".join(mean_sd([float(r[k]) for r in records], g) for _, k, g in COLUMNS) + " |")
    print(f"\n{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
