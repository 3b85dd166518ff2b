"""One rank of the population-mode distributed test: argv = rank, world size, port, output dir.

Every rank feeds its own slice (unequal lengths) of each global float64 batch to a
``distributed=True`` population module and saves its values, last-step input gradient and buffers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from latentshape import MomentMatchingLoss, SIGReg
from latentshape.population import PopulationMode

ROWS_PER_RANK = (9, 14, 6)
STEPS = 4


def global_batches(world_size: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    rows = sum(ROWS_PER_RANK[:world_size])
    return [1.3 * torch.randn(rows, 3, generator=generator, dtype=torch.float64) + 0.2 for _ in range(STEPS)]


def modules(distributed: bool) -> dict[str, PopulationMode]:
    return {
        "moments_window": PopulationMode(MomentMatchingLoss(calibrate=False, distributed=distributed), window=3),
        "sigreg_ema": PopulationMode(SIGReg(slices=8, points=9, calibrate=False, distributed=distributed), momentum=0.3),
    }


def run(populations: dict[str, PopulationMode], batches: list[torch.Tensor]) -> dict:
    results = {}
    for name, population in populations.items():
        values = []
        for step, batch in enumerate(batches):
            x = batch.clone().requires_grad_(True)
            value = population(x)
            value.backward()
            values.append(value.detach())
        results[name] = {"values": torch.stack(values), "grad": x.grad,
                         "state": {k: v.clone() for k, v in population.state_dict().items() if isinstance(v, torch.Tensor)}}
    return results


def compute(rank: int, world_size: int) -> dict:
    start = sum(ROWS_PER_RANK[:rank])
    mine = [batch[start:start + ROWS_PER_RANK[rank]] for batch in global_batches(world_size)]
    return run(modules(True), mine)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from gloo_world import serve

    serve(compute)
