r"""Mean and covariance of a float32 batch, accumulated in float64 over row blocks (for the moment penalties).

Summing N x d float32 products in float32 loses the O(1/N) null fluctuations that calibration
standardizes; a float64 copy of x costs N x d x 8 bytes. Blocks of rows give float64 accuracy at
O(block x d) extra memory, forward and backward.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..validation import is_compiling

__all__ = ["blocked_moments"]

_BLOCK_ROWS = 4096


def blocked_moments(x: Tensor) -> tuple[Tensor, Tensor]:
    r"""Mean and unbiased covariance (float64) of a float32 batch ``(..., N, d)``, differentiable.

    First from the raw sums :math:`\sum_i x_i` and :math:`\sum_i x_i x_i^\top` (float32 blocks of
    ``_BLOCK_ROWS`` rows read in place, accumulated in float64; the backward
    :math:`\partial L/\partial x_i = g_1 + (G_2 + G_2^\top) x_i` is one product over x): one read of x
    each way, no copies. That loses nothing while every squared mean is below 1/16 of its variance
    (the cancellation in :math:`S = (\sum_i x_i x_i^\top - N \bar x \bar x^\top)/(N - 1)` then costs
    under 7% of float32's rounding). Otherwise the rows are shifted by a detached float32 estimate c
    of the mean (any constant keeps
    :math:`S = (\sum_i (x_i - c)(x_i - c)^\top - N \delta\delta^\top) / (N - 1)`, :math:`\delta = \bar x - c`,
    exact), block by block. Either way each block contributes a float32 scatter, accumulated in
    float64: the rounding of S is ~1e-7 relative per block, averaging down over blocks, far below
    its null fluctuations.

    >>> x = torch.randn(5000, 3, generator=torch.Generator().manual_seed(0))
    >>> mean, covariance = blocked_moments(x)
    >>> torch.allclose(covariance, torch.cov(x.double().T), atol=1e-6), mean.dtype
    (True, torch.float64)
    >>> mean, covariance = blocked_moments(x + 100.0)   # far from the origin: the shifted sums
    >>> torch.allclose(covariance, torch.cov(x.double().T), atol=1e-5)
    True
    """
    n = x.shape[-2]
    if not is_compiling():  # (compiled: always the shifted sums, no data-dependent branch)
        total, scatter = _ShiftedSums.apply(x, None)
        mean = total / n
        covariance = (scatter - n * mean.unsqueeze(-1) * mean.unsqueeze(-2)) / (n - 1)
        if _centred_enough(mean, covariance):
            return mean, covariance
    shift = x.detach().mean(dim=-2, keepdim=True)
    offset, scatter = _ShiftedSums.apply(x, shift)
    offset = offset / n
    covariance = (scatter - n * offset.unsqueeze(-1) * offset.unsqueeze(-2)) / (n - 1)
    return shift.squeeze(-2).to(torch.float64) + offset, covariance


def _centred_enough(mean: Tensor, covariance: Tensor) -> bool:
    """Whether every squared mean is at most 1/16 of its variance (raw sums lose < 7% of float32 rounding)."""
    variance = covariance.detach().diagonal(dim1=-2, dim2=-1)
    return bool((16.0 * mean.detach().square() <= variance).all())


def _block_starts(n: int) -> list[int]:
    # a loop over the block count, not range(0, n, rows): under torch.compile a guard on the count, not on n
    return [i * _BLOCK_ROWS for i in range(-(-n // _BLOCK_ROWS))]


class _ShiftedSums(torch.autograd.Function):
    """(sum_i (x_i - c), sum_i (x_i - c)(x_i - c)^T) in float64 from float32 row blocks (c = None: the
    raw sums, blocks read in place); the backward writes dL/dx_i = g_1 + (G_2 + G_2^T)(x_i - c), block by
    block (autograd through row slices would allocate a full-size gradient per block), or, for the raw
    sums, as one product over x."""

    @staticmethod
    def forward(ctx, x, shift):  # type: ignore[override]
        d = x.shape[-1]
        offset = x.new_zeros(x.shape[:-2] + (d,), dtype=torch.float64)
        scatter = x.new_zeros(x.shape[:-2] + (d, d), dtype=torch.float64)
        for start in _block_starts(x.shape[-2]):
            block = x[..., start:start + _BLOCK_ROWS, :]
            if shift is not None:
                block = block - shift
            offset += block.sum(dim=-2).to(torch.float64)
            scatter += (block.transpose(-1, -2) @ block).to(torch.float64)
        ctx.save_for_backward(x, shift)
        return offset, scatter

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_offset, grad_scatter):  # type: ignore[override]
        x, shift = ctx.saved_tensors
        symmetric = (grad_scatter + grad_scatter.transpose(-1, -2)).to(x.dtype)
        linear = grad_offset.to(x.dtype).unsqueeze(-2)
        if shift is None:
            return (torch.baddbmm(linear, x, symmetric) if x.dim() == 3 else linear + x @ symmetric), None
        grad = torch.empty_like(x)
        for start in _block_starts(x.shape[-2]):
            block = x[..., start:start + _BLOCK_ROWS, :] - shift
            grad[..., start:start + _BLOCK_ROWS, :] = torch.baddbmm(linear, block, symmetric) if block.dim() == 3 \
                else linear + block @ symmetric
        return grad, None
