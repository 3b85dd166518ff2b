"""Gradient size of population mode: each wristband component's gradient through the batch, pooled against per batch.

A skewed cloud of N_all = 1437 rows in d = 8 (coordinate 0 half-normal, scale 0.6); the batch is
the first 128 rows. Per batch: the component's z-score at N = 128. Pooled: the batch with the other
1309 rows stored (``PopulationMode(WristbandLoss(), window=2)``), z-scores at N_eff = 1437. Printed:
each component's z and the norm of its gradient with respect to the batch's rows, pooled over per
batch, and the calibrated total's, with and without the coordinate term's n / N_eff gradient factor.

    python benchmarks/population_gradient_size.py
"""

from __future__ import annotations

import torch

from latentshape import PopulationMode, WristbandLoss
from latentshape.wristband.components import COMPONENT_NAMES


def main() -> None:
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    full = 0.6 * torch.randn(1437, 8, generator=generator, dtype=torch.float64)
    full[:, 0] = full[:, 0].abs()
    batch = full[:128].clone().requires_grad_(True)
    loss = WristbandLoss()
    population = PopulationMode(WristbandLoss(), window=2)
    population(full[128:])  # stores the other rows' feature sums
    features, n_eff = population.features, float(full.shape[0])
    means = (features.sums(full[128:], None) + features.sums(batch, None)) / n_eff
    pooled_raw = features.with_batch(features.raw(means, n_eff, None), batch)
    pooled_null, batch_null = features.null_stats(n_eff, 128, 8), loss.null_stats(128, 8)
    pooled_z = (pooled_raw - pooled_null.mean) / pooled_null.std
    batch_z = (loss.raw(batch).reshape(-1) - batch_null.mean) / batch_null.std
    print("| component | z per batch | z pooled | gradient norm, pooled / per batch |\n|---|---:|---:|---:|")
    for index, name in enumerate(COMPONENT_NAMES):
        pooled_grad = torch.autograd.grad(pooled_z[index], batch, retain_graph=True)[0].norm()
        batch_grad = torch.autograd.grad(batch_z[index], batch, retain_graph=True)[0].norm()
        print(f"| {name} | {float(batch_z[index]):.1f} | {float(pooled_z[index]):.1f} | "
              f"{float(pooled_grad / batch_grad):.2f} |")
    weights = torch.tensor(loss.weights, dtype=torch.float64)
    batch_total = torch.autograd.grad(batch_null.total(loss.raw(batch).reshape(-1), weights)[0], batch)[0].norm()
    unscaled = torch.autograd.grad(pooled_null.total(pooled_raw, weights)[0], batch)[0].norm()
    scaled = torch.autograd.grad(population(batch), batch)[0].norm()  # PopulationMode applies the coord factor
    print(f"\ntotal: pooled / per batch {float(unscaled / batch_total):.2f} without the coord factor, "
          f"{float(scaled / batch_total):.2f} with it (PopulationMode)")


if __name__ == "__main__":
    main()
