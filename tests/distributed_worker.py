"""One rank of the gloo worlds used by test_distributed.py (run as a script, one process per rank).

The cases are defined here so that the test (the single-process reference) and the workers (the
distributed computation) build exactly the same modules and data.

    python tests/distributed_worker.py RANK WORLD_SIZE PORT OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from latentshape.gaussian import GaussianMMD, MomentMatchingLoss, SIGReg, SlicedWassersteinGaussian
from latentshape.wristband import WristbandLoss

ROWS_PER_RANK = (17, 30, 41)  # unequal on purpose
TINY_ROWS_PER_RANK = (1, 4, 0)  # a rank may hold fewer than 2 rows, or none
WIDE = 96  # > N_global in every world: the rank-deficient (gather) routes of the moment losses


def dataset(name: str, world_size: int, rows_per_rank: tuple[int, ...] = ROWS_PER_RANK) -> torch.Tensor:
    """The global float64 batch of a case (identical in every process)."""
    n = sum(rows_per_rank[:world_size])
    generator = torch.Generator().manual_seed(1234)
    if name == "skewed":  # non-Gaussian: shifted, anisotropic, one skewed coordinate
        x = torch.randn(n, 3, generator=generator, dtype=torch.float64) * torch.tensor([1.5, 0.7, 1.0]) + 0.3
        x[:, 2] = x[:, 2] + 0.4 * x[:, 2] ** 2
        return x
    if name == "width16":
        return torch.randn(n, 16, generator=generator, dtype=torch.float64) * 1.2 - 0.1
    if name == "wide":
        return torch.randn(n, WIDE, generator=generator, dtype=torch.float64) * 0.9 + 0.05
    if name == "batched":
        return torch.randn(2, n, 4, generator=generator, dtype=torch.float64) * torch.tensor([[[1.0]], [[1.3]]])
    raise KeyError(name)


def _target() -> dict:
    mean = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
    root = torch.tensor([[1.0, 0.0, 0.0], [0.3, 0.8, 0.0], [0.0, -0.2, 1.1]], dtype=torch.float64)
    return {"mean": mean, "cov": root @ root.T}


# name -> (dataset, module factory); every factory builds a fresh module (fresh slice generator).
CASES: dict[str, tuple[str, Callable[[bool], nn.Module]]] = {
    "wristband spectral degree 2, calibrated": ("skewed", lambda dist: WristbandLoss(distributed=dist)),
    "wristband spectral degree 1, raw, ang": (
        "skewed", lambda dist: WristbandLoss(degree=1, calibrate=False, lambda_ang=0.5, distributed=dist)),
    "wristband spectral degree 2, Gram route, kl_full": (
        "width16", lambda dist: WristbandLoss(calibrate=False, moment="kl_full", distributed=dist)),
    "wristband spectral per_point, jeff_full": (
        "skewed", lambda dist: WristbandLoss(average="per_point", calibrate=False, moment="jeff_full",
                                             distributed=dist)),
    "wristband pairwise, calibrated": (
        "skewed", lambda dist: WristbandLoss(method="pairwise", lambda_ang=0.3, distributed=dist)),
    "wristband pairwise per_point geodesic, raw": (
        "skewed", lambda dist: WristbandLoss(method="pairwise", average="per_point", angular="geodesic",
                                             calibrate=False, distributed=dist)),
    "wristband leading dims, kl_diag": (
        "batched", lambda dist: WristbandLoss(calibrate=False, moment="kl_diag", distributed=dist)),
    "wristband d > N_global, w2": ("wide", lambda dist: WristbandLoss(calibrate=False, distributed=dist)),
    "moment matching frobenius": ("skewed", lambda dist: MomentMatchingLoss(distributed=dist)),
    "moment matching custom target": (
        "skewed", lambda dist: MomentMatchingLoss(alpha=0.5, gamma=2.0, distributed=dist, **_target())),
    "moment matching frobenius d > N_global": ("wide", lambda dist: MomentMatchingLoss(distributed=dist)),
    "moment matching calibrated": ("skewed", lambda dist: MomentMatchingLoss(calibrate=True, null_samples=64,
                                                                            distributed=dist)),
    **{f"moment penalty {kind}": ("skewed", (lambda kind: lambda dist: MomentMatchingLoss(penalty=kind,
                                                                                          distributed=dist))(kind))
       for kind in ("w2", "kl_diag", "kl_full", "jeff_diag", "jeff_full", "mu_only")},
    "moment penalty w2 d > N_global": ("wide", lambda dist: MomentMatchingLoss(penalty="w2", distributed=dist)),
    "moment penalty jeff_diag, leading dims": (
        "batched", lambda dist: MomentMatchingLoss(penalty="jeff_diag", distributed=dist)),
    "SIGReg": ("skewed", lambda dist: SIGReg(slices=16, seed=3, distributed=dist)),
    "SIGReg calibrated, leading dims": (
        "batched", lambda dist: SIGReg(slices=8, seed=4, calibrate=True, null_samples=32, distributed=dist)),
    "sliced Wasserstein": ("skewed", lambda dist: SlicedWassersteinGaussian(slices=16, seed=5, distributed=dist)),
    "sliced Wasserstein, leading dims": (
        "batched", lambda dist: SlicedWassersteinGaussian(slices=8, seed=6, distributed=dist)),
    "MMD": ("skewed", lambda dist: GaussianMMD(distributed=dist)),
}


# Cases run on TINY_ROWS_PER_RANK (N_global = 5).
TINY_CASES = ("wristband spectral degree 2, calibrated", "wristband pairwise per_point geodesic, raw",
              "moment penalty w2", "SIGReg", "sliced Wasserstein")


def local_rows(world_size: int, rank: int, rows_per_rank: tuple[int, ...] = ROWS_PER_RANK) -> slice:
    start = sum(rows_per_rank[:rank])
    return slice(start, start + rows_per_rank[rank])


def ddp_encoder() -> nn.Module:
    torch.manual_seed(7)
    return nn.Linear(5, 3).to(torch.float64)


def ddp_inputs(world_size: int) -> torch.Tensor:
    n = sum(ROWS_PER_RANK[:world_size])
    return torch.randn(n, 5, generator=torch.Generator().manual_seed(99), dtype=torch.float64) * 2.0 + 0.5


def ddp_regularizer() -> WristbandLoss:
    return WristbandLoss(distributed=True)


DDP_LEARNING_RATE = 0.05


def _run_cases(world_size: int, rank: int, names, rows_per_rank: tuple[int, ...]) -> dict:
    rows = local_rows(world_size, rank, rows_per_rank)
    results = {}
    for name in names:
        data_name, factory = CASES[name]
        x = dataset(data_name, world_size, rows_per_rank)[..., rows, :].clone().requires_grad_(True)
        loss = factory(True)(x)
        loss.backward()
        results[name] = {"loss": loss.detach(), "grad": x.grad.detach()}
    return results


def _run_errors(world_size: int, rank: int) -> dict:
    """A bad batch on one rank must raise the same error on every rank (no rank left waiting)."""
    messages = {}
    rows = local_rows(world_size, rank)
    x = dataset("skewed", world_size)[rows].clone()
    if rank == 1:
        x[3, 0] = float("nan")
    for name, module in (("wristband", WristbandLoss(distributed=True)),
                         ("moment matching", MomentMatchingLoss(distributed=True))):
        try:
            module(x)
            messages[f"nan {name}"] = None
        except ValueError as error:
            messages[f"nan {name}"] = str(error)
    try:  # one row in all: too few for any statistic
        MomentMatchingLoss(distributed=True)(x[:1] if rank == 0 else x[:0])
        messages["too few"] = None
    except ValueError as error:
        messages["too few"] = str(error)
    width = 4 if rank == world_size - 1 else 3
    try:
        WristbandLoss(distributed=True)(torch.randn(10, width, dtype=torch.float64))
        messages["width"] = None
    except ValueError as error:
        messages["width"] = str(error)
    return messages


def _run_ddp_step(world_size: int, rank: int) -> dict:
    from torch.nn.parallel import DistributedDataParallel

    from latentshape.distributed import world_size as current_world_size

    model = DistributedDataParallel(ddp_encoder())
    optimizer = torch.optim.SGD(model.parameters(), lr=DDP_LEARNING_RATE)
    regularizer = ddp_regularizer()
    z = model(ddp_inputs(world_size)[local_rows(world_size, rank)])
    # DDP averages parameter gradients over ranks: scale by the world size for the global gradient.
    loss = regularizer(z)
    (current_world_size() * loss).backward()
    optimizer.step()
    return {"loss": loss.detach(), "parameters": [p.detach().clone() for p in model.module.parameters()]}


def compute(rank: int, world_size: int) -> dict:
    return {"cases": _run_cases(world_size, rank, CASES, ROWS_PER_RANK),
            "tiny": _run_cases(world_size, rank, TINY_CASES, TINY_ROWS_PER_RANK),
            "errors": _run_errors(world_size, rank), "ddp": _run_ddp_step(world_size, rank)}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    from gloo_world import serve

    serve(compute)
