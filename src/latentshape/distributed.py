r"""Exact global-batch statistics under ``torch.distributed``.

A batch-distribution loss computed on one rank sees only that rank's slice of the batch. The
losses that take ``distributed=True`` instead compute the statistic of the *global* batch (the
concatenation of every rank's rows, in rank order) with two autograd-aware collectives:

- :func:`all_reduce_sum` for statistics that are sums over points (spectral features, moment
  sums, characteristic-function sums): one all-reduce, O(statistic size) traffic;
- :func:`all_gather_rows` for statistics that need every point (sorted quantiles, the pairwise
  kernel): rows of unequal length per rank are padded, gathered and trimmed.

**Gradient convention.** After the collective every rank evaluates the same (replicated) global
loss L. The backward of :func:`all_reduce_sum` is the identity and the backward of
:func:`all_gather_rows` keeps this rank's slice of the upstream gradient: no communication in the
backward pass. Each rank then holds exactly :math:`\partial L / \partial x_r` for its own rows
:math:`x_r` -- the matching slice of the single-process gradient on the concatenated batch.
This is correct only when everything computed from a collective's output is itself replicated
(the same on every rank); the losses in latentshape are written that way.

With :class:`~torch.nn.parallel.DistributedDataParallel`, which *averages* parameter gradients
over the W ranks, the parameter gradient of such a loss is the single-process gradient of L
divided by W (each rank contributes its share, and DDP divides the sum by W). To train with the
single-process gradient of the global loss, multiply the distributed loss by :func:`world_size`
before adding it to a per-rank task loss (the per-rank mean task loss is already right under DDP's
averaging)::

    loss = task_loss + weight * world_size() * regularizer(z)

Without an initialized process group (or with a single rank) every function here is the
identity, so ``distributed=True`` code runs unchanged in a single process.

>>> is_distributed(), world_size()
(False, 1)
>>> x = torch.ones(3, 2)
>>> all_reduce_sum(x) is x, all_gather_rows(x) is x
(True, True)
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from .compiler_hints import run_eagerly
from .validation import count_nonfinite_rows

__all__ = [
    "is_distributed",
    "world_size",
    "rank",
    "all_reduce_sum",
    "all_gather_rows",
    "gather_shapes",
    "GlobalBatch",
    "global_batch",
]


def is_distributed() -> bool:
    """True when a ``torch.distributed`` process group is initialized with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of ranks in the default process group (1 without one)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank in the default process group (0 without one)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; backward is the identity (the loss downstream is replicated on every rank)."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:  # type: ignore[override]
        total = tensor.detach().clone().contiguous()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad


@run_eagerly
def all_reduce_sum(tensor: Tensor) -> Tensor:
    r"""Sum of ``tensor`` over all ranks, differentiable.

    Backward is the identity: when every rank computes the same loss L from the sum, the gradient
    of L with respect to this rank's term is the (replicated) gradient with respect to the sum.
    Identity (returns ``tensor`` itself) without a multi-rank process group.
    """
    if not is_distributed():
        return tensor
    return _AllReduceSum.apply(tensor)


class _AllGatherRows(torch.autograd.Function):
    """Concatenate every rank's slice along dim 0; backward keeps this rank's slice of the gradient."""

    @staticmethod
    def forward(ctx, tensor: Tensor, sizes: tuple[int, ...]) -> Tensor:  # type: ignore[override]
        me = dist.get_rank()
        longest = max(sizes)
        local = tensor.detach().contiguous()
        if local.shape[0] < longest:  # all_gather needs equal shapes: pad, then trim
            padding = local.new_zeros((longest - local.shape[0],) + tuple(local.shape[1:]))
            local = torch.cat([local, padding], dim=0)
        buffers = [torch.empty_like(local) for _ in sizes]
        dist.all_gather(buffers, local)
        ctx.start = sum(sizes[:me])
        ctx.length = sizes[me]
        return torch.cat([buffer[:size] for buffer, size in zip(buffers, sizes)], dim=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        return grad.narrow(0, ctx.start, ctx.length), None


@run_eagerly
def all_gather_rows(tensor: Tensor, dim: int = 0, sizes: Sequence[int] | None = None) -> Tensor:
    """Concatenate every rank's ``tensor`` along ``dim`` in rank order, differentiable.

    The ranks' tensors may differ in length along ``dim`` (all other dims must agree). ``sizes``,
    every rank's length along ``dim``, saves one collective when already known (e.g. from
    :func:`global_batch`). The backward keeps this rank's slice of the upstream gradient (see the
    module docstring). Identity without a multi-rank process group.
    """
    if not is_distributed():
        return tensor
    dim = dim % tensor.dim()
    if sizes is None:
        sizes = [int(row[0]) for row in gather_shapes((tensor.shape[dim],), tensor.device)]
    moved = tensor.movedim(dim, 0)
    return _AllGatherRows.apply(moved, tuple(int(s) for s in sizes)).movedim(0, dim)


@run_eagerly
def gather_shapes(values: Sequence[int], device: torch.device | str = "cpu") -> list[tuple[int, ...]]:
    """Every rank's tuple of integers ``values`` (same length on all ranks), in rank order."""
    if not is_distributed():
        return [tuple(int(v) for v in values)]
    if dist.get_backend() == "nccl" and torch.device(device).type != "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    local = torch.tensor([int(v) for v in values], dtype=torch.int64, device=device)
    buffers = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(buffers, local)
    return [tuple(int(v) for v in buffer.tolist()) for buffer in buffers]


class GlobalBatch(tuple):
    """Row counts of every rank's batch, in rank order (a tuple of ints); ``.total`` is the global N."""

    @property
    def total(self) -> int:
        return sum(self)


def global_batch(x: Tensor, name: str = "x", min_points: int = 2) -> GlobalBatch:
    """Check that every rank's batch ``(..., N_r, d)`` agrees on its leading dims and d, that no rank
    has NaN/Inf rows and that the global batch has at least ``min_points`` rows (a rank may have
    fewer, even none); return the per-rank row counts.

    The checks are made on gathered metadata, so a bad batch on one rank raises the same
    ``ValueError`` on every rank instead of leaving the others waiting in a collective.
    """
    n, d = x.shape[-2], x.shape[-1]
    bad_rows = 0
    if not torch.compiler.is_compiling():
        bad_rows = count_nonfinite_rows(x)
    leading = tuple(x.shape[:-2])
    # Fixed-length metadata (all_gather needs equal shapes): leading dims enter as (rank, product).
    count = 1
    for size in leading:
        count *= size
    shapes = gather_shapes((bad_rows, n, d, len(leading), count), x.device)
    mine = shapes[rank()]
    for other_rank, shape in enumerate(shapes):
        if shape[2:] != mine[2:]:
            raise ValueError(
                f"{name}: every rank must pass batches of the same leading shape and width d (only N may "
                f"differ); rank {other_rank} has {shape[3]} leading dim(s) of {shape[4]} batch(es) and "
                f"d = {shape[2]}, rank {rank()} has {mine[3]} of {mine[4]} and d = {mine[2]}"
            )
    bad = [(r, shape[0]) for r, shape in enumerate(shapes) if shape[0] > 0]
    if bad:
        where = ", ".join(f"rank {r}: {count}" for r, count in bad)
        raise ValueError(f"{name} has row(s) with NaN or Inf ({where}); drop or fix them before computing the loss")
    rows = GlobalBatch(shape[1] for shape in shapes)
    if rows.total < min_points:
        raise ValueError(f"{name} needs at least {min_points} points (rows) in the global batch, got N = {rows.total}")
    return rows
