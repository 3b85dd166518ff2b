"""Cost of one training step of ``latentshape bench train`` with each regularizer, as a ratio to no regularizer.

    python benchmarks/train_step_cost.py [--dims 4 8 16] [--rounds 200] [--batch 128]

One step = the supervised step of the bench (MLP 64-128-128-d and a linear head on a batch of
digits, cross-entropy + 0.01 x the regularizer, backward, Adam), with each calibrated statistic
already calibrated at the batch's shape. The regularizers take turns step by step (round robin),
so that a busy machine slows them alike; the table gives median milliseconds and the ratio to
the unregularized step of the same round. The adversarial prior's step includes its critic's step.
"""

from __future__ import annotations

import argparse
import statistics
import time


def _steppers(d: int, batch: int):
    import torch
    import torch.nn.functional as F

    from latentshape.bench.digits import MLPEncoder, load_digits_split
    from latentshape.bench.training import build_regularizer

    data = load_digits_split()
    x, y = data.train_x[:batch], data.train_y[:batch]
    steppers = {}
    for name in ("none", "wristband", "moment_matching", "sigreg", "mmd", "sliced_w2", "vicreg", "adversarial"):
        torch.manual_seed(0)
        encoder, head = MLPEncoder(d), torch.nn.Linear(d, 10)
        regularizer = build_regularizer(name, d)
        optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()], lr=1e-3)

        def step(encoder=encoder, head=head, regularizer=regularizer, optimizer=optimizer) -> None:
            z = encoder(x)
            if hasattr(regularizer, "critic_step"):
                regularizer.critic_step(z.detach())
            loss = F.cross_entropy(head(z), y)
            if regularizer is not None:
                loss = loss + 0.01 * regularizer(z)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        step()  # calibration at this shape, and warm-up
        steppers[name] = step
    return steppers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    results = {}
    for d in args.dims:
        steppers = _steppers(d, args.batch)
        times = {name: [] for name in steppers}
        for _ in range(args.rounds):
            for name, step in steppers.items():
                began = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - began)
        results[d] = {name: 1e3 * statistics.median(values) for name, values in times.items()}
    names = list(next(iter(results.values())))
    print("| regularizer | " + " | ".join(f"d = {d}: ms (x none)" for d in results) + " |")
    print("|---|" + "---:|" * len(results))
    for name in names:
        cells = [f"{results[d][name]:.2f} ({results[d][name] / results[d]['none']:.1f}x)" for d in results]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
