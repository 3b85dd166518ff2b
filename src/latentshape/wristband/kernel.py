r"""The wristband kernel and its exact pairwise evaluation in O(N * chunk) memory
(docs/theory.md, "The kernel").

:math:`K((u,t),(u',t')) = k_{ang}(u,u')\, k_{rad}(t,t')` with

- chordal: :math:`k_{ang} = \exp(c\,(u \cdot u' - 1))`, :math:`c = 2\beta\alpha^2`;
- geodesic: :math:`k_{ang} = \exp(-\beta\alpha^2 \theta^2)`, :math:`\theta = \arccos(u \cdot u')`;
- :math:`k_{rad}` the reflected (Neumann) Gaussian on [0, 1], truncated to the three nearest images:
  :math:`e^{-\beta(t-t')^2} + e^{-\beta(t+t')^2} + e^{-\beta(t+t'-2)^2}` (error ~ :math:`e^{-\beta}`).

:func:`pairwise_row_sums` returns, for every point i, :math:`r_i = \frac1N \sum_j K(i, j)` (the
diagonal included) and :math:`a_i = \frac{1}{N-1}\sum_{j \ne i} k_{ang}(u_i, u_j)`. It walks over
row blocks and has its own backward pass that recomputes each block, so memory is
O(N * chunk) whatever N, never an N x N autograd graph.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from .mercer import default_alpha

__all__ = ["AngularKernel", "default_alpha", "angular_kernel", "radial_kernel", "pairwise_row_sums"]

AngularKernel = Literal["chordal", "geodesic"]
_CHUNK_ELEMENTS = 1 << 22  # rows-per-block * N; a few such blocks live at once


def angular_kernel(cosine: Tensor, beta: float, alpha: float, angular: AngularKernel) -> Tensor:
    r"""Angular kernel as a function of :math:`u \cdot u'` (elementwise).

    >>> angular_kernel(torch.tensor([1.0, -1.0]), beta=8.0, alpha=12 ** -0.5, angular="chordal")
    tensor([1.0000, 0.0695])
    """
    return _angular_value_and_slope(cosine, beta * alpha * alpha, angular, want_slope=False)[0]


def radial_kernel(t: Tensor, t_other: Tensor, beta: float) -> Tensor:
    r"""Three-image reflected Gaussian :math:`k_{rad}(t, t')` on [0, 1] (broadcasting).

    >>> radial_kernel(torch.tensor(0.0), torch.tensor(0.0), beta=8.0)   # 1 + 1 + e^-32
    tensor(2.)
    """
    return _radial_value_and_slope(t, t_other, beta, want_slope=False)[0]


def pairwise_row_sums(
    direction: Tensor, t: Tensor, beta: float, alpha: float, angular: AngularKernel
) -> tuple[Tensor, Tensor]:
    r"""Row means of the wristband kernel and off-diagonal row means of the angular kernel.

    Args:
        direction: unit directions ``(B, N, d)``.
        t: radial coordinates ``(B, N)`` in [0, 1], same dtype.

    Returns:
        ``(r, a)`` of shape ``(B, N)``: :math:`r_i = \frac1N\sum_j K(i,j)`,
        :math:`a_i = \frac1{N-1}\sum_{j\ne i} k_{ang}(u_i,u_j)`.

    >>> u = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    >>> r, a = pairwise_row_sums(u, torch.tensor([[0.5, 0.5]], dtype=torch.float64), 8.0, 12 ** -0.5, "chordal")
    >>> a   # exp(c (0 - 1)) with c = 4/3
    tensor([[0.2636, 0.2636]], dtype=torch.float64)
    """
    return _PairwiseRowSums.apply(direction, t, float(beta), float(alpha), angular)


def _angular_value_and_slope(
    cosine: Tensor, scale: float, angular: str, want_slope: bool = True
) -> tuple[Tensor, Tensor | None]:
    """k_ang and dk_ang/d(cosine); ``scale`` is beta * alpha^2."""
    if angular == "chordal":
        value = torch.exp(2.0 * scale * (cosine - 1.0))
        return value, (2.0 * scale * value if want_slope else None)
    if angular != "geodesic":
        raise ValueError(f"angular must be 'chordal' or 'geodesic', got {angular!r}")
    cosine = cosine.clamp(-1.0, 1.0)
    theta = torch.arccos(cosine)
    value = torch.exp(-scale * theta * theta)
    if not want_slope:
        return value, None
    # d(theta^2)/d(cos) = -2 theta / sin(theta): finite (-> -2) at theta = 0; the antipode is a
    # genuine kink of the geodesic distance, so its slope is capped.
    sine = torch.sqrt((1.0 - cosine * cosine).clamp_min(0.0))
    ratio = torch.where(sine > 1e-4, theta / sine.clamp_min(1e-4), 1.0 + theta * theta / 6.0)
    return value, 2.0 * scale * ratio * value


def _radial_value_and_slope(
    t: Tensor, t_other: Tensor, beta: float, want_slope: bool = True
) -> tuple[Tensor, Tensor | None]:
    """Three-image k_rad(t, t') and its derivative in the first argument t."""
    gaps = (t - t_other, t + t_other, t + t_other - 2.0)
    images = [torch.exp(-beta * g * g) for g in gaps]
    value = images[0] + images[1] + images[2]
    if not want_slope:
        return value, None
    slope = -2.0 * beta * (gaps[0] * images[0] + gaps[1] * images[1] + gaps[2] * images[2])
    return value, slope


def _row_blocks(n: int) -> list[tuple[int, int]]:
    rows = max(1, min(n, _CHUNK_ELEMENTS // max(1, n)))
    return [(start, min(n, start + rows)) for start in range(0, n, rows)]


class _PairwiseRowSums(torch.autograd.Function):
    @staticmethod
    def forward(ctx, direction, t, beta, alpha, angular):  # type: ignore[override]
        scale = beta * alpha * alpha
        n = direction.shape[-2]
        kernel_rows = torch.empty_like(t)
        angular_rows = torch.empty_like(t)
        for start, stop in _row_blocks(n):
            cosine = direction[:, start:stop] @ direction.transpose(-1, -2)
            k_ang, _ = _angular_value_and_slope(cosine, scale, angular, want_slope=False)
            k_rad, _ = _radial_value_and_slope(t[:, start:stop, None], t[:, None, :], beta, want_slope=False)
            kernel_rows[:, start:stop] = (k_ang * k_rad).sum(dim=-1) / n
            diagonal = k_ang.diagonal(offset=start, dim1=-2, dim2=-1)
            angular_rows[:, start:stop] = (k_ang.sum(dim=-1) - diagonal) / (n - 1)
        ctx.save_for_backward(direction, t)
        ctx.config = (beta, scale, angular)
        return kernel_rows, angular_rows

    @staticmethod
    def backward(ctx, grad_kernel_rows, grad_angular_rows):  # type: ignore[override]
        direction, t = ctx.saved_tensors
        beta, scale, angular = ctx.config
        n = direction.shape[-2]
        g_kernel = grad_kernel_rows if grad_kernel_rows is not None else torch.zeros_like(t)
        g_angular = grad_angular_rows if grad_angular_rows is not None else torch.zeros_like(t)
        grad_direction = torch.empty_like(direction)  # every block below writes its rows
        grad_t = torch.empty_like(t)
        # F = sum_i g_i r_i with K symmetric: dF/dy_i = sum_j (g_i + g_j) dK(i, j)/dy_i / N.
        for start, stop in _row_blocks(n):
            cosine = direction[:, start:stop] @ direction.transpose(-1, -2)
            k_ang, dk_ang = _angular_value_and_slope(cosine, scale, angular)
            k_rad, dk_rad = _radial_value_and_slope(t[:, start:stop, None], t[:, None, :], beta)
            weight_kernel = (g_kernel[:, start:stop, None] + g_kernel[:, None, :]) / n
            weight_angular = (g_angular[:, start:stop, None] + g_angular[:, None, :]) / (n - 1)
            weight_angular.diagonal(offset=start, dim1=-2, dim2=-1).zero_()
            cosine_weight = weight_kernel * k_rad * dk_ang + weight_angular * dk_ang
            grad_direction[:, start:stop] = cosine_weight @ direction
            grad_t[:, start:stop] = (weight_kernel * k_ang * dk_rad).sum(dim=-1)
        return grad_direction, grad_t, None, None, None
