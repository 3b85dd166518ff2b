"""The digits encoder regularized on its *whole* training embedding: the ceiling of population mode.

Population mode estimates the statistic of the full training embedding from the last few batches.
Here that estimate is exact: every step re-embeds all 1437 training images with the current
encoder and adds w * (128 / 1437) * R(encoder(all training images)) to the minibatch's
cross-entropy, with the gradient through every image. (A calibrated z grows like N for a fixed
departure, so the factor 128 / 1437 gives the same w the same pull as per batch.) No staleness
and no sampling noise: whatever population mode could gain on this encoder, this gains at least.
The same encoder is also trained with the per-batch loss at the same w, in the same run.

MLP 64-128-128-8, cross-entropy + regularizer, Adam 1e-3, batches of 128 (fresh order each
epoch), 60 epochs, seeds 0..S-1; ``latentshape.check`` on the full training embedding (N = 1437)
and the held-out one (N = 360): tests rejected of 8, the held-out accuracy, mean +- sd over seeds.

    python benchmarks/population_oracle_digits.py [--losses moment_matching,sigreg,wristband]
        [--weights 0.003,0.01,0.03] [--seeds 2] [--epochs 60]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from latentshape import MomentMatchingLoss, SIGReg, WristbandLoss
from latentshape.bench.digits import MLPEncoder, load_digits_split, minibatches
from latentshape.bench.embedding_metrics import gaussianity

from default_digits import mean_sd  # noqa: E402  (benchmarks/ is on the path when run as a script)

BUILD = {"moment_matching": lambda: MomentMatchingLoss(calibrate=True), "sigreg": lambda: SIGReg(calibrate=True),
         "wristband": lambda: WristbandLoss()}
BATCH = 128


def train(loss_name: str, weight: float, seed: int, epochs: int, data, full: bool) -> dict:
    """One encoder: per-batch regularizer (``full=False``) or on the whole training embedding."""
    torch.manual_seed(seed)
    encoder, head = MLPEncoder(8), nn.Linear(8, 10)
    regularizer = BUILD[loss_name]() if weight > 0 else None
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-3)
    n = len(data.train_y)
    for _ in range(epochs):
        for rows in minibatches(n, BATCH, generator):
            if full and regularizer is not None:
                z_all = encoder(data.train_x)
                task = F.cross_entropy(head(z_all[rows]), data.train_y[rows])
                penalty = weight * BATCH / n * regularizer(z_all)
            else:
                z = encoder(data.train_x[rows])
                task = F.cross_entropy(head(z), data.train_y[rows])
                penalty = weight * regularizer(z) if regularizer is not None else z.new_zeros(())
            optimizer.zero_grad(set_to_none=True)
            (task + penalty).backward()
            optimizer.step()
    with torch.no_grad():
        train_z, test_z = encoder(data.train_x), encoder(data.test_x)
        accuracy = float((head(test_z).argmax(dim=1) == data.test_y).double().mean())
    on_train, on_test = gaussianity(train_z), gaussianity(test_z)
    return {"accuracy": accuracy, "train_rejected": on_train["rejected"], "test_rejected": on_test["rejected"],
            "train_knn_kl": on_train["knn_kl"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--losses", default="moment_matching,sigreg,wristband")
    parser.add_argument("--weights", default="0.003,0.01,0.03")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--no-baseline", action="store_true", help="skip the unregularized encoder")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_digits_split()
    began, rows = time.perf_counter(), []
    if not args.no_baseline:
        rows.append(("none", "-", 0.0, [train("moment_matching", 0.0, s, args.epochs, data, False) for s in range(args.seeds)]))
    for loss_name in args.losses.split(","):
        for w in (float(v) for v in args.weights.split(",")):
            for mode, full in (("per batch", False), ("whole embedding", True)):
                records = [train(loss_name, w, s, args.epochs, data, full) for s in range(args.seeds)]
                rows.append((loss_name, mode, w, records))
                print(f"<!-- {loss_name} {mode} w={w} done, {time.perf_counter() - began:.0f} s -->", flush=True)
    print(f"\nDigits encoder, d = 8, {args.epochs} epochs, {args.seeds} seeds (mean +- sd); check() on the embeddings\n")
    columns = (("accuracy", 3), ("train_rejected", 1), ("test_rejected", 1), ("train_knn_kl", 2))
    print("| loss | regularized on | w | accuracy | train rejected | test rejected | train kNN KL (nats) |")
    print("|---|---|---:|---|---|---|---|")
    for loss_name, mode, w, records in rows:
        cells = [mean_sd([float(r[key]) for r in records], digits) for key, digits in columns]
        print(f"| {loss_name} | {mode} | {w:g} | " + " | ".join(cells) + " |")
    print(f"\n{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
