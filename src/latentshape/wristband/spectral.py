r"""The spectral (Mercer) path of the wristband energy: O(N d K) for degree <= 1, O(N d^2 K) for 2.

Both kernels factor through orthogonal expansions, with the Mercer coefficients :math:`a_k`
(radial cosines) and :math:`\lambda_l` (angular zonal harmonics :math:`Z_l`) of
:mod:`~latentshape.wristband.mercer` (docs/theory.md, "The spectral expansion").

With :math:`w_{ik} = \cos(k\pi t_i)`, :math:`c_{0k} = \overline{w_{\cdot k}}`,
:math:`m_{1k} = \overline{w_{\cdot k} u}`, :math:`M_k = \overline{w_{\cdot k} u u^\top}`:

.. math::
    E = \sum_{k=0}^{K} a_k \Big[\lambda_0 c_{0k}^2 + \lambda_1 d \|m_{1k}\|^2
        + \lambda_2 \tfrac{d+2}{2} (d \|M_k\|_F^2 - c_{0k}^2)\Big].

References: M. Parakhin, *Wristband Gaussian Loss*; the spectral note "Wristband Gaussian Loss:
From O(N^2) to O(N)" (the feature-sum form of the repulsion term).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from .map import _owned
from .mercer import MAX_DEGREE, angular_coefficients, radial_coefficients, zonal_at_one

__all__ = [
    "MAX_DEGREE",
    "radial_coefficients",
    "angular_coefficients",
    "zonal_at_one",
    "spectral_kernel_sums",
    "uses_feature_sums",
    "FeatureBlocks",
    "SpectralSums",
    "spectral_sums",
    "shared_spectral_sums",
    "energy_from_sums",
]

def spectral_kernel_sums(
    direction: Tensor,
    t: Tensor,
    radial: tuple[float, ...],
    angular: tuple[float, ...],
    per_point: bool = False,
) -> tuple[Tensor, Tensor]:
    r"""Spectral wristband energy (or its rows) and the off-diagonal mean of the angular kernel.

    Args:
        direction: ``(B, N, d)`` unit directions; t: ``(B, N)`` radial coordinates (same dtype).
        radial: :math:`a_0..a_K` from :func:`radial_coefficients`.
        angular: :math:`\lambda_0..\lambda_L` from :func:`angular_coefficients` (L = degree).
        per_point: return the rows :math:`\frac1N\sum_j K(i,j)`, shape ``(B, N)``, instead of E, ``(B,)``.

    Returns:
        ``(energy_or_rows, angular_mean)``; the second is the truncated angular kernel averaged over
        pairs i != j, shape ``(B,)``.
    """
    n, d = direction.shape[-2], direction.shape[-1]
    degree = len(angular) - 1
    modes = len(radial)
    a = torch.tensor(radial, dtype=direction.dtype, device=direction.device)
    if uses_feature_sums(n, d, modes, degree, per_point):
        # Global energy from batch sums: O(chunk) memory, one pass forward and one backward.
        sums = spectral_sums(direction, t, modes, degree)
        return energy_from_sums(sums, n, d, radial, angular)

    w = torch.cos(t.unsqueeze(-1) * _frequencies(modes, direction))  # (B, N, K+1)
    c0 = w.mean(dim=-2)  # (B, K+1)
    m1 = w.transpose(-1, -2) @ direction / n if degree >= 1 else None  # (B, K+1, d)
    second_sq, second_rows = _second_moment_terms(direction, w, per_point) if degree >= 2 else (None, None)
    bracket, angular_mean = _brackets(c0, m1, second_sq, n, d, angular)
    if not per_point:
        return (a * bracket).sum(dim=-1), angular_mean
    rows_bracket = angular[0] * c0.unsqueeze(-2)
    if degree >= 1:
        rows_bracket = rows_bracket + angular[1] * d * (direction @ m1.transpose(-1, -2))
    if degree >= 2:
        rows_bracket = rows_bracket + angular[2] * (d + 2) / 2.0 * (d * second_rows - c0.unsqueeze(-2))
    return (w * rows_bracket * a).sum(dim=-1), angular_mean


def uses_feature_sums(n: int, d: int, modes: int, degree: int, per_point: bool) -> bool:
    """Whether :func:`spectral_kernel_sums` takes the batch-sums route (global energy; and for degree 2
    only when the d x d moments are cheaper than the N x N Gram form, N >= (K+1) d).

    Those sums combine across processes by one all-reduce; the other routes need every point.
    """
    return not per_point and (degree < 2 or n >= modes * d)


class SpectralSums(NamedTuple):
    r"""Per-batch sums over points of the spectral features: :math:`\sum_i w_{ik}`, ``(B, K+1)``;
    :math:`\sum_i w_{ik} u_i`, ``(B, K+1, d)``; :math:`\sum_i w_{ik} u_i u_i^\top`, ``(B, K+1, d, d)``
    (empty tensors above the degree). Sums, not means, so that batches on several processes
    combine by one all-reduce."""

    zeroth: Tensor
    first: Tensor
    second: Tensor


def spectral_sums(direction: Tensor, t: Tensor, modes: int, degree: int) -> SpectralSums:
    """Differentiable :class:`SpectralSums` of ``(B, N, d)`` directions and ``(B, N)`` radii, in blocks of rows."""
    return SpectralSums(*_SpectralSums.apply(direction, t, modes, degree, False))


def shared_spectral_sums(direction: Tensor, t: Tensor, modes: int, degree: int) -> tuple[SpectralSums, Tensor]:
    """:func:`spectral_sums` and an alias of ``direction`` for a second consumer of the same directions.

    The consumer's gradient then comes back through this node, which adds its own into it: one
    (B, N, d) gradient at a time rather than two (the sharp term's and these sums') at once.
    """
    *parts, alias = _SpectralSums.apply(direction, t, modes, degree, True)
    return SpectralSums(*parts), alias


def energy_from_sums(
    sums: SpectralSums, n: int, d: int, radial: tuple[float, ...], angular: tuple[float, ...]
) -> tuple[Tensor, Tensor]:
    """Energy ``(B,)`` and off-diagonal angular mean ``(B,)`` from feature sums over ``n`` points.

    Both come out in float64: their null fluctuations are O(1/N) relative to constants such as
    lambda_0, below float32 resolution at N ~ 1e6; the (small) sums are combined in float64.
    """
    degree = len(angular) - 1
    wide = torch.float64
    a = torch.tensor(radial, dtype=wide, device=sums.zeroth.device)
    c0 = sums.zeroth.to(wide) / n
    m1 = sums.first.to(wide) / n if degree >= 1 else None
    second_sq = (sums.second * sums.second).sum(dim=(-2, -1)).to(wide) / (n * n) if degree >= 2 else None
    bracket, angular_mean = _brackets(c0, m1, second_sq, n, d, angular)
    return (a * bracket).sum(dim=-1), angular_mean


def _brackets(c0: Tensor, m1: Tensor | None, second_sq: Tensor | None, n: int, d: int, angular: tuple[float, ...]):
    """Per-mode bracket of the energy ``(B, K+1)`` and the off-diagonal angular mean ``(B,)``."""
    bracket = angular[0] * c0 * c0
    angular_all = torch.full_like(c0[..., 0], angular[0])  # w = 1 is the k = 0 mode
    if m1 is not None:
        m1_sq = (m1 * m1).sum(dim=-1)
        bracket = bracket + angular[1] * d * m1_sq
        angular_all = angular_all + angular[1] * d * m1_sq[..., 0]
    if second_sq is not None:
        factor = angular[2] * (d + 2) / 2.0
        bracket = bracket + factor * (d * second_sq - c0 * c0)
        angular_all = angular_all + factor * (d * second_sq[..., 0] - 1.0)
    diagonal = sum(lam * zonal_at_one(d, level) for level, lam in enumerate(angular))
    return bracket, (n * angular_all - diagonal) / (n - 1)


def _frequencies(modes: int, like: Tensor) -> Tensor:
    return math.pi * torch.arange(modes, dtype=like.dtype, device=like.device)


_BLOCK_ELEMENTS = 1 << 18  # rows-per-block * width: a block's (modes x rows) and lifted tensors stay in cache (1 MiB in float32)


def _feature_blocks(n: int, width: int) -> list[tuple[int, int]]:
    rows = max(1, min(n, _BLOCK_ELEMENTS // max(1, width)))
    # a loop over the block count, not over range(0, n, rows): torch.compile then guards on the count only
    return [(i * rows, min(n, (i + 1) * rows)) for i in range(-(-n // rows))]


class FeatureBlocks:
    """Block-wise accumulation of :class:`SpectralSums` and its backward, shared by
    :class:`_SpectralSums` (directions given) and :mod:`latentshape.wristband.spectral_fused` (directions
    formed from x block by block).

    With upstream gradients G0_k, G1_k, G2_k of the three sums and S_k = G2_k + G2_k^T:
    dL/du_i = sum_k w_ik (G1_k + S_k u_i),  dL/dw_ik = G0_k + G1_k . u_i + u_i^T S_k u_i / 2,
    and dw_ik/dt_i = -k pi sin(k pi t_i).

    The (modes x rows) tensors are laid out modes first, (B, K+1, rows): every elementwise pass and
    every sum over modes then runs along contiguous rows (a sum over the 7 modes of a rows-first
    layout costs ~7x more). With ``keep`` the forward keeps the scaled weights of every block for
    the backward (O(N K) memory), so the cosines are not evaluated twice.
    """

    def __init__(self, like: Tensor, modes: int, degree: int, keep: bool = False) -> None:
        self.batch, self.n, self.d = like.shape
        self.modes, self.degree = modes, degree
        self.frequencies = _frequencies(modes, like)
        self.column = self.frequencies.unsqueeze(-1)  # (K+1, 1): broadcasts against (B, 1, rows)
        # A block holds its rows of u (d wide) and, at degree 2, their lifted features ((K+1) d wide).
        self.ranges = _feature_blocks(self.n, modes * self.d if degree >= 2 else self.d + modes)
        self.keep = keep
        self.kept: list[Tensor] = []

    def sums(self, blocks) -> tuple[Tensor, Tensor, Tensor]:
        """Accumulate the sums over ``blocks``: an iterable of (rows, t, scale) per row range, the
        directions being ``rows * scale[..., None]`` (``scale=None``: the rows are the directions).
        The scale goes onto the (modes x rows) weights, so the directions are never formed."""
        batch, d, modes, degree = self.batch, self.d, self.modes, self.degree
        like = self.frequencies
        zeroth = like.new_zeros(batch, modes)
        first = like.new_zeros(batch, modes, d) if degree >= 1 else like.new_zeros(0)
        second = like.new_zeros(batch, modes * d, d) if degree >= 2 else like.new_zeros(0)
        for rows, t, scale in blocks:
            w = torch.cos(self.column * t.unsqueeze(-2))  # (B, K+1, rows)
            zeroth += w.sum(dim=-1)
            weights = _scaled(w, scale)
            if self.keep:
                self.kept.append(weights)
            if degree >= 1:
                first.baddbmm_(weights, rows)
            if degree >= 2:
                # the (rows x modes) weights made contiguous first (a small copy): the product's
                # layout follows them, and a modes-first product would be copied by flatten(-2)
                weights2 = _scaled(w, scale, 2).transpose(-1, -2).contiguous()
                lifted = (weights2.unsqueeze(-1) * rows.unsqueeze(-2)).flatten(-2)
                second.baddbmm_(lifted.transpose(-1, -2), rows)
        if degree >= 2:
            second = second.view(batch, modes, d, d)
        return zeroth, first, second

    def prepare_backward(self, grad_zeroth, grad_first, grad_second) -> None:
        batch, d, modes = self.batch, self.d, self.modes
        g0 = grad_zeroth if grad_zeroth is not None else self.frequencies.new_zeros(batch, modes)
        self.g0 = g0.unsqueeze(-1)  # (B, K+1, 1)
        self.g1 = grad_first if self.degree >= 1 and grad_first is not None else None
        self.stacked = None
        if self.degree >= 2 and grad_second is not None:  # column block k of `stacked` is S_k
            symmetric = grad_second + grad_second.transpose(-1, -2)
            self.stacked = symmetric.transpose(-3, -2).reshape(batch, d, modes * d)

    def block_gradients(self, rows: Tensor, t: Tensor, scale: Tensor | None = None,
                        index: int | None = None, out: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(scale * dL/du, dL/dt, rows . (scale * dL/du)) for one block of rows (directions
        u = rows * scale, as in :meth:`sums`; ``index``: the block's place in the forward's kept
        weights; ``out``: a contiguous rows-shaped tensor for the first, e.g. the block of the final
        gradient), after :meth:`prepare_backward`. Products are taken with the rows and rescaled on
        the (modes x rows) side, u @ G = scale * (rows @ G); the row dot product comes from those
        products too, without another pass over the rows."""
        angle = self.column * t.unsqueeze(-2)  # (B, K+1, rows)
        w = None
        if index is not None and self.kept:
            weights = self.kept[index]
        else:
            w = torch.cos(angle)
            weights = _scaled(w, scale)
        if self.g1 is not None:
            grad_u = torch.matmul(weights.transpose(-1, -2), self.g1, out=out)
        else:
            grad_u = out.zero_() if out is not None else torch.zeros_like(rows)
        rows_dot = torch.zeros_like(t)
        if self.g1 is not None:
            along = self.g1 @ rows.transpose(-1, -2)  # rows . G1_k, (B, K+1, rows)
            rows_dot = rows_dot + (weights * along).sum(dim=-2)
            grad_w = along.mul_(scale.unsqueeze(-2)).add_(self.g0) if scale is not None else along.add_(self.g0)
        else:
            grad_w = self.g0.expand(-1, -1, t.shape[-1])
        if self.stacked is not None:
            w = torch.cos(angle) if w is None else w
            projected = (rows @ self.stacked).unflatten(-1, (self.modes, self.d))  # S_k rows, (B, rows, K+1, d)
            quadratic = (projected * rows.unsqueeze(-2)).sum(dim=-1).transpose(-1, -2)  # rows^T S_k rows
            weights2 = _scaled(w, scale, 2)
            grad_u += (weights2.transpose(-1, -2).unsqueeze(-1) * projected).sum(dim=-2)
            grad_w = grad_w + _scaled(0.5 * quadratic, scale, 2)
            rows_dot = rows_dot + (weights2 * quadratic).sum(dim=-2)
        # dL/dt_i = -sum_k k pi sin(k pi t_i) dL/dw_ik: the sum over modes as one (1 x K+1) product
        slope = torch.sin(angle).mul_(grad_w)
        return grad_u, -(self.frequencies @ slope), rows_dot

    def release(self) -> None:
        """Drop the kept weights (after the backward)."""
        self.kept = []


def _scaled(values: Tensor, scale: Tensor | None, power: int = 1) -> Tensor:
    """``values`` (B, m, rows) times ``scale`` (B, rows) to the ``power``, per row; None is 1."""
    if scale is None:
        return values
    factor = scale if power == 1 else scale**power
    return values * factor.unsqueeze(-2)


class _SpectralSums(torch.autograd.Function):
    """Feature sums with a block-wise backward: never materializes (N, (K+1) d) for autograd."""

    @staticmethod
    def forward(ctx, direction, t, modes, degree, shared):  # type: ignore[override]
        # nothing kept: the backward's fresh blocks recompute their weights (kept ones would be dead memory)
        blocks = FeatureBlocks(direction, modes, degree)
        ctx.save_for_backward(direction, t)
        ctx.blocks = blocks
        sums = blocks.sums((direction[:, a:b], t[:, a:b], None) for a, b in blocks.ranges)
        return (*sums, direction.view_as(direction)) if shared else sums

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_zeroth, grad_first, grad_second, *grad_alias):  # type: ignore[override]
        direction, t = ctx.saved_tensors
        blocks = FeatureBlocks(direction, ctx.blocks.modes, ctx.blocks.degree)  # fresh: the forward's is not mutated
        blocks.prepare_backward(grad_zeroth, grad_first, grad_second)
        incoming = grad_alias[0] if grad_alias else None
        # the alias's gradient, when nothing else holds it, takes these rows' gradients in place
        into = incoming is not None and incoming.shape == direction.shape and incoming.dtype == direction.dtype and _owned(incoming)
        grad_direction = incoming if into else torch.empty_like(direction)  # else every block writes its rows
        grad_t = torch.empty_like(t)
        for index, (a, b) in enumerate(blocks.ranges):
            rows, grad_t[:, a:b], _ = blocks.block_gradients(direction[:, a:b], t[:, a:b], index=index)
            if into:
                grad_direction[:, a:b] += rows
            else:
                grad_direction[:, a:b] = rows
        blocks.release()
        if incoming is not None and not into:
            grad_direction = grad_direction + incoming
        return grad_direction, grad_t, None, None, None


def _second_moment_terms(direction: Tensor, w: Tensor, per_point: bool) -> tuple[Tensor, Tensor | None]:
    r""":math:`\|M_k\|_F^2` ``(B, K+1)`` and, if asked, :math:`u_i^\top M_k u_i` ``(B, N, K+1)``.

    Uses the d x d moments when that is cheaper (N >= (K+1) d) and the N x N Gram form otherwise:
    :math:`\|M_k\|_F^2 = \frac{1}{N^2} w_k^\top (G \circ G) w_k`, :math:`G = U U^\top`.
    """
    n, d = direction.shape[-2], direction.shape[-1]
    modes = w.shape[-1]
    if n < modes * d:
        gram = direction @ direction.transpose(-1, -2)
        weighted = (gram * gram) @ w / n  # (B, N, K+1): u_i^T M_k u_i
        return (w * weighted).sum(dim=-2) / n, (weighted if per_point else None)
    lifted = (w.unsqueeze(-1) * direction.unsqueeze(-2)).flatten(-2)  # (B, N, (K+1) d)
    moments = (lifted.transpose(-1, -2) @ direction / n).unflatten(-2, (modes, d))  # (B, K+1, d, d)
    squared = (moments * moments).sum(dim=(-2, -1))
    if not per_point:
        return squared, None
    projected = (direction @ moments.transpose(-3, -2).flatten(-2)).unflatten(-1, (modes, d))
    return squared, (projected * direction.unsqueeze(-2)).sum(dim=-1)
