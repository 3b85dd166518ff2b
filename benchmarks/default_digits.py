"""The digits encoder with the default ``WristbandLoss()`` and with the previous (degree-2 only) default.

MLP 64-128-128-8 on 80% of scikit-learn's digits, cross-entropy + w * loss, Adam 1e-3, batches of
128 (short last batch), 60 epochs, over a grid of w and seeds (``latentshape.bench``'s supervised
``train`` protocol). For each (loss, w): held-out accuracy and ``latentshape.check`` on the held-out
(N = 360) and the full training embedding (N = 1437): tests rejected of 8, Henze-Zirkler p, the
calibrated wristband total. Prints the markdown table of ``latentshape.bench.train_report``.

    python benchmarks/default_digits.py [--weights 0.01,0.03,0.1,0.3,1] [--seeds 2] [--jobs 2]
"""

from __future__ import annotations

import argparse
import time

from latentshape import WristbandLoss
from latentshape.bench.regularizers import REGULARIZERS, register_regularizer
from latentshape.bench.train_protocol import train
from latentshape.bench.train_report import markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="0.01,0.03,0.1,0.3,1")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    if "wristband_previous" not in REGULARIZERS:
        register_regularizer("wristband_previous", lambda d, calibrate: WristbandLoss(lambda_sharp=0.0, lambda_coord=0.0),
                             description="WristbandLoss(lambda_sharp=0, lambda_coord=0): the degree-2-only default")
    began = time.perf_counter()
    table = train(["supervised"], ["none", "wristband", "wristband_previous"], dims={"supervised": (8,)},
                  weights={"supervised": tuple(float(w) for w in args.weights.split(","))},
                  epochs={"supervised": args.epochs}, seeds=args.seeds, scaling_batches=(), growth_sizes=(),
                  jobs=args.jobs)
    print(markdown(table))
    print(f"\n{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
