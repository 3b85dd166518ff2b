"""Exact global-batch losses under torch.distributed (gloo on the CPU, 2 and 3 ranks).

Each world runs every case of ``distributed_worker.CASES`` once (one spawn per world size: the
start-up dominates). Every rank feeds its own slice of a global float64 batch (17, 30, 41 rows:
unequal) to a ``distributed=True`` module; the loss must equal the single-process loss of the
concatenated batch and each rank's input gradient the matching rows of the single-process
gradient. One DDP step must match one single-process step on the whole batch.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from latentshape import distributed
from latentshape.gaussian import MomentMatchingLoss, SIGReg, SlicedWassersteinGaussian
from latentshape.wristband import WristbandLoss

_WORKER_PATH = Path(__file__).with_name("distributed_worker.py")
_spec = importlib.util.spec_from_file_location("latentshape_distributed_worker", _WORKER_PATH)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)
_spec = importlib.util.spec_from_file_location("latentshape_gloo_world", Path(__file__).with_name("gloo_world.py"))
gloo_world = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gloo_world)

WORLD_SIZES = (2, 3)
RELATIVE = 1e-6


def _run_world(world_size: int, out_dir: Path) -> list[dict]:
    return gloo_world.run_world(_WORKER_PATH, world_size, out_dir)


@pytest.fixture(scope="module", params=WORLD_SIZES, ids=lambda w: f"world{w}")
def world(request, tmp_path_factory) -> tuple[int, list[dict]]:
    world_size = request.param
    return world_size, _run_world(world_size, tmp_path_factory.mktemp(f"world{world_size}"))


def _reference(
    name: str, world_size: int, rows_per_rank: tuple[int, ...] = worker.ROWS_PER_RANK
) -> tuple[torch.Tensor, torch.Tensor]:
    data_name, factory = worker.CASES[name]
    x = worker.dataset(data_name, world_size, rows_per_rank).clone().requires_grad_(True)
    loss = factory(False)(x)
    loss.backward()
    return loss.detach(), x.grad


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    error = float((actual - expected).abs().max()) if expected.numel() else 0.0
    assert error <= RELATIVE * max(scale, 1e-300), f"{what}: max error {error:.3g} vs scale {scale:.3g}"


@pytest.mark.parametrize("name", list(worker.CASES))
def test_global_loss_and_gradient_slices(world, name: str) -> None:
    world_size, results = world
    loss, grad = _reference(name, world_size)
    for rank, result in enumerate(results):
        case = result["cases"][name]
        _assert_close(case["loss"], loss, f"{name}: loss on rank {rank}")
        _assert_close(case["grad"], grad[..., worker.local_rows(world_size, rank), :], f"{name}: gradient on rank {rank}")


@pytest.mark.parametrize("name", worker.TINY_CASES)
def test_ranks_with_fewer_than_two_rows(world, name: str) -> None:
    world_size, results = world
    rows_per_rank = worker.TINY_ROWS_PER_RANK
    loss, grad = _reference(name, world_size, rows_per_rank)
    for rank, result in enumerate(results):
        case = result["tiny"][name]
        _assert_close(case["loss"], loss, f"{name}: loss on rank {rank}")
        rows = worker.local_rows(world_size, rank, rows_per_rank)
        _assert_close(case["grad"], grad[..., rows, :], f"{name}: gradient on rank {rank}")


def test_bad_batch_on_one_rank_raises_on_every_rank(world) -> None:
    world_size, results = world
    for rank, result in enumerate(results):
        errors = result["errors"]
        assert errors["nan wristband"] is not None and "rank 1: 1" in errors["nan wristband"], (rank, errors)
        assert errors["nan moment matching"] is not None and "NaN" in errors["nan moment matching"], (rank, errors)
        assert errors["width"] is not None and "only N may" in errors["width"], (rank, errors)
        assert errors["too few"] is not None and "global batch, got N = 1" in errors["too few"], (rank, errors)


def test_one_ddp_step_matches_the_single_process_step(world) -> None:
    world_size, results = world
    model = worker.ddp_encoder()
    optimizer = torch.optim.SGD(model.parameters(), lr=worker.DDP_LEARNING_RATE)
    loss = WristbandLoss()(model(worker.ddp_inputs(world_size)))
    loss.backward()
    optimizer.step()
    expected = [p.detach() for p in model.parameters()]
    for rank, result in enumerate(results):
        _assert_close(result["ddp"]["loss"], loss.detach(), f"DDP loss on rank {rank}")
        for index, (actual, wanted) in enumerate(zip(result["ddp"]["parameters"], expected)):
            _assert_close(actual, wanted, f"parameter {index} after the DDP step on rank {rank}")
            assert torch.equal(actual, results[0]["ddp"]["parameters"][index]), "ranks disagree after the step"


def test_without_a_process_group_distributed_is_a_no_op() -> None:
    assert not distributed.is_distributed() and distributed.world_size() == 1 and distributed.rank() == 0
    x = worker.dataset("skewed", 2)
    for make in (
        lambda dist: WristbandLoss(distributed=dist),
        lambda dist: WristbandLoss(method="pairwise", calibrate=False, distributed=dist),
        lambda dist: MomentMatchingLoss(penalty="jeff_full", distributed=dist),
        lambda dist: SIGReg(slices=8, distributed=dist),
        lambda dist: SlicedWassersteinGaussian(slices=8, distributed=dist),
    ):
        assert torch.equal(make(True)(x), make(False)(x))
    y = torch.randn(4, 3, requires_grad=True)
    assert distributed.all_reduce_sum(y) is y and distributed.all_gather_rows(y, dim=0) is y
    assert distributed.global_batch(y) == (4,) and distributed.global_batch(y).total == 4
