r"""SIGReg: the Epps-Pulley characteristic-function test on random 1-D slices (LeJEPA).

For a unit direction :math:`\theta`, the projections :math:`p_i = \theta^\top x_i` of a batch of N
points have empirical characteristic function
:math:`\varphi_N(t) = \frac{1}{N} \sum_i e^{i t p_i}`. Under N(0, I) every projection is N(0, 1),
whose characteristic function is :math:`e^{-t^2/2}`. The Epps-Pulley statistic is

.. math::

    EP(\theta) = N \int_{-t_{max}}^{t_{max}} w(t)\, \big|\varphi_N(t) - e^{-t^2/2}\big|^2 \, dt,
    \qquad w(t) = e^{-t^2/2},

with :math:`|\varphi_N(t) - e^{-t^2/2}|^2 = (\bar c(t) - e^{-t^2/2})^2 + \bar s(t)^2`,
:math:`\bar c = \frac1N\sum_i \cos(t p_i)`, :math:`\bar s = \frac1N\sum_i \sin(t p_i)`. The
integral is the trapezoid rule on ``points`` equally spaced nodes of
:math:`[-t_{max}, t_{max}]`; the integrand is even in t, so only the nodes with t >= 0 are
evaluated (with their weights doubled, except at t = 0) -- the result equals the full trapezoid
sum exactly. SIGReg averages EP over M random unit slices. Cost O(N d M + N M points) time; the
characteristic-function sums are accumulated over blocks of rows, projections included, and the
backward recomputes each block, so memory is O(block * M * points) beyond x and its gradient
(never the N x M x points phases).

Reference: Balestriero & LeCun (2025), "LeJEPA: Provable and Scalable Self-Supervised Learning
Without the Heuristics"; Epps & Pulley (1983), "A test for normality based on the empirical
characteristic function".
"""

from __future__ import annotations

import math
from typing import Hashable

import torch
from torch import Tensor

from ..calibration import NullStats
from ..distributed import GlobalBatch, all_reduce_sum
from ..validation import as_directions, as_embeddings
from .closed_form_nulls import sigreg_null_moments
from .slicing import RandomSlicingLoss

__all__ = ["epps_pulley_quadrature", "epps_pulley", "sigreg_statistic", "projected_characteristic_sums", "SIGReg"]


def epps_pulley_quadrature(
    t_max: float = 3.0, points: int = 17, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> tuple[Tensor, Tensor]:
    r"""Nodes t >= 0 and weights of the folded trapezoid rule for :math:`\int_{-t_{max}}^{t_{max}} w(t) f(t) dt`, f even.

    The weights include :math:`w(t) = e^{-t^2/2}`. Summing ``weights * f(nodes)`` equals the
    trapezoid rule on ``points`` equally spaced nodes of the full interval.

    >>> nodes, weights = epps_pulley_quadrature(3.0, 5, dtype=torch.float64)
    >>> nodes
    tensor([0.0000, 1.5000, 3.0000], dtype=torch.float64)
    >>> float(weights.sum())  # trapezoid estimate of the Gaussian integral on [-3, 3] (exact: 2.4998)
    2.5...
    """
    if points < 2:
        raise ValueError(f"points must be >= 2, got {points}")
    if not 0 < t_max < math.inf:
        raise ValueError(f"t_max must be a positive finite number, got {t_max!r}")
    full = torch.linspace(-t_max, t_max, points, dtype=torch.float64)
    step = 2.0 * t_max / (points - 1)
    trapezoid = torch.full((points,), step, dtype=torch.float64)
    trapezoid[0] = trapezoid[-1] = step / 2
    # Fold the even integrand onto t >= 0: each positive node stands for itself and its mirror.
    # The nodes t_i >= 0 are i >= points // 2 (a slice, not a mask: no data-dependent shape under torch.compile).
    nodes = full[points // 2:].abs()
    fold = torch.where(nodes > 1e-12 * t_max, 2.0, 1.0)
    weights = trapezoid[points // 2:] * fold * torch.exp(-0.5 * nodes**2)
    return nodes.to(device=device, dtype=dtype), weights.to(device=device, dtype=dtype)


def epps_pulley(projections: Tensor, t_max: float = 3.0, points: int = 17) -> Tensor:
    r"""Epps-Pulley statistic of 1-D samples along dim -2 of ``projections`` ``(..., N, M)``; shape ``(..., M)``.

    :math:`N \int w(t) |\varphi_N(t) - e^{-t^2/2}|^2 dt` by the trapezoid rule (module docstring).

    >>> p = torch.zeros(4, 1)            # a point mass at 0: phi_N = 1 everywhere
    >>> nodes, weights = epps_pulley_quadrature(dtype=torch.float64)
    >>> expected = 4 * float((weights * (1 - torch.exp(-0.5 * nodes**2)) ** 2).sum())
    >>> abs(float(epps_pulley(p)) - expected) < 1e-6
    True
    """
    sum_cos, sum_sin = _characteristic_sums(projections, t_max, points)
    return _epps_pulley_from_sums(sum_cos, sum_sin, projections.shape[-2], t_max, points)


def _characteristic_sums(projections: Tensor, t_max: float, points: int) -> tuple[Tensor, Tensor]:
    r""":math:`\sum_i \cos(t p_i)` and :math:`\sum_i \sin(t p_i)` at the quadrature nodes, each ``(..., M, T)``."""
    nodes, _ = epps_pulley_quadrature(t_max, points, dtype=projections.dtype, device=projections.device)
    phases = projections.unsqueeze(-1) * nodes  # (..., N, M, T)
    return torch.cos(phases).sum(dim=-3), torch.sin(phases).sum(dim=-3)


def _epps_pulley_from_sums(sum_cos: Tensor, sum_sin: Tensor, n: int, t_max: float, points: int) -> Tensor:
    """Epps-Pulley statistic ``(..., M)`` from the characteristic-function sums over ``n`` points."""
    nodes, weights = epps_pulley_quadrature(t_max, points, dtype=sum_cos.dtype, device=sum_cos.device)
    target = torch.exp(-0.5 * nodes**2)
    squared_gap = (sum_cos / n - target) ** 2 + (sum_sin / n) ** 2
    return n * (squared_gap * weights).sum(dim=-1)


def sigreg_statistic(x: Tensor, directions: Tensor, t_max: float = 3.0, points: int = 17) -> Tensor:
    r"""SIGReg of each batch ``x`` ``(..., N, d)``: the Epps-Pulley statistic averaged over slices.

    ``directions`` holds unit vectors as columns, ``(d, M)`` or ``(..., d, M)`` broadcasting against
    ``x``'s leading dims. Returns shape ``x.shape[:-2]``.

    >>> x = torch.randn(512, 4, generator=torch.Generator().manual_seed(0))
    >>> directions = torch.eye(4)
    >>> float(sigreg_statistic(x, directions)) < 2.0     # null mean ~ 1.05 at any N
    True
    >>> float(sigreg_statistic(2 * x, directions)) > 10
    True
    """
    x = as_embeddings(x)
    sum_cos, sum_sin = projected_characteristic_sums(x, as_directions(directions, x), t_max, points)
    return _epps_pulley_from_sums(sum_cos, sum_sin, x.shape[-2], t_max, points).mean(dim=-1)


def projected_characteristic_sums(x: Tensor, directions: Tensor, t_max: float = 3.0, points: int = 17) -> tuple[Tensor, Tensor]:
    r""":math:`\sum_i \cos(t\, \theta_m^\top x_i)` and :math:`\sum_i \sin(t\, \theta_m^\top x_i)` at the quadrature
    nodes t >= 0, each ``(..., M, T)``: what :func:`epps_pulley` of ``x @ directions`` sums, in row blocks.

    >>> x, directions = torch.randn(3, 40, 2, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    >>> cos, sin = projected_characteristic_sums(x, directions)
    >>> reference = _characteristic_sums(x @ directions, 3.0, 17)
    >>> torch.allclose(cos, reference[0]) and torch.allclose(sin, reference[1])
    True
    """
    leading = torch.broadcast_shapes(x.shape[:-2], directions.shape[:-2])
    batch = math.prod(leading)  # explicit: a rank of a distributed batch may hold no rows
    flat_x = x.expand(leading + x.shape[-2:]).reshape((batch,) + x.shape[-2:])
    flat_directions = directions.expand(leading + directions.shape[-2:]).reshape((batch,) + directions.shape[-2:])
    nodes, _ = epps_pulley_quadrature(t_max, points, dtype=x.dtype, device=x.device)
    sum_cos, sum_sin = _ProjectedCharacteristicSums.apply(flat_x, flat_directions, nodes)
    shape = leading + sum_cos.shape[-2:]
    return sum_cos.reshape(shape), sum_sin.reshape(shape)


_BLOCK_ELEMENTS = 1 << 18  # rows x slices x nodes per block: small enough to stay in cache (1 MiB in float32)


def _row_blocks(n: int, width: int) -> list[tuple[int, int]]:
    rows = max(1, min(n, _BLOCK_ELEMENTS // max(1, width)))
    # a loop over the block count, not range(0, n, rows): under torch.compile a guard on the count, not on n
    return [(i * rows, min(n, (i + 1) * rows)) for i in range(-(-n // rows))]


class _ProjectedCharacteristicSums(torch.autograd.Function):
    r"""Sums of cos(t p) and sin(t p), p = x @ directions, over the rows of ``x`` ``(B, N, d)``, with
    ``directions`` ``(B, d, M)`` and nodes ``(T,)``. Backward, per recomputed block:
    :math:`\partial L / \partial p_{im} = \sum_t t\,(-G^{c}_{mt} \sin(t p_{im}) + G^{s}_{mt} \cos(t p_{im}))`,
    then :math:`\partial L / \partial x = (\partial L / \partial p)\, \Theta^\top` and
    :math:`\partial L / \partial \Theta = x^\top (\partial L / \partial p)`."""

    @staticmethod
    def forward(ctx, x, directions, nodes):  # type: ignore[override]
        batch, n = x.shape[0], x.shape[1]
        slices = directions.shape[-1]
        sum_cos = torch.zeros(batch, slices, nodes.shape[0], dtype=torch.float64, device=x.device)
        sum_sin = torch.zeros_like(sum_cos)
        for start, stop in _row_blocks(n, batch * slices * nodes.shape[0]):
            phases = (x[:, start:stop] @ directions).unsqueeze(-1) * nodes  # (B, rows, M, T)
            sum_cos += torch.cos(phases).sum(dim=1).to(torch.float64)
            sum_sin += torch.sin(phases).sum(dim=1).to(torch.float64)
        ctx.save_for_backward(x, directions, nodes)
        return sum_cos.to(x.dtype), sum_sin.to(x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_cos, grad_sin):  # type: ignore[override]
        x, directions, nodes = ctx.saved_tensors
        batch, n = x.shape[0], x.shape[1]
        grad_cos = torch.zeros_like(directions[:, :1].transpose(-1, -2) * nodes) if grad_cos is None else grad_cos
        grad_sin = torch.zeros_like(grad_cos) if grad_sin is None else grad_sin
        # (B, M, T) weights with the chain-rule factor t folded in
        weight_sin, weight_cos = (-grad_cos * nodes).unsqueeze(1), (grad_sin * nodes).unsqueeze(1)
        grad_x = torch.empty_like(x) if ctx.needs_input_grad[0] else None
        grad_directions = torch.zeros_like(directions) if ctx.needs_input_grad[1] else None
        for start, stop in _row_blocks(n, batch * directions.shape[-1] * nodes.shape[0]):
            rows = x[:, start:stop]
            phases = (rows @ directions).unsqueeze(-1) * nodes
            grad_projection = (torch.sin(phases) * weight_sin + torch.cos(phases) * weight_cos).sum(dim=-1)
            if grad_x is not None:
                grad_x[:, start:stop] = grad_projection @ directions.transpose(-1, -2)
            if grad_directions is not None:
                grad_directions += rows.transpose(-1, -2) @ grad_projection
        return grad_x, grad_directions, None


class SIGReg(RandomSlicingLoss):
    r"""Sketched Isotropic Gaussian Regularization (LeJEPA): Epps-Pulley on random slices.

    Computes :func:`~latentshape.functional.sigreg_statistic` -- the mean over ``slices`` random unit directions of
    :math:`N \int_{-t_{max}}^{t_{max}} e^{-t^2/2} |\varphi_N(t) - e^{-t^2/2}|^2 dt` (trapezoid,
    ``points`` nodes). New directions are drawn at every call from a generator seeded with
    ``seed`` (one independent set per leading batch); the same seed gives the same sequence, e.g.
    on every rank. Under N(0, I) the statistic is O(1) whatever N (it is N times a squared
    distance that shrinks like 1/N): its null mean is about
    :math:`\int_{-3}^{3} e^{-t^2/2} (1 - e^{-t^2}) dt \approx 1.05` at the defaults.

    With ``calibrate=True`` the result is a z-score against the statistic's law under
    x ~ N(0, I) at the batch's (N, d), **with the random slicing included** (each null batch gets
    its own directions).

    Args:
        slices: number of random directions M per call.
        t_max: half-width of the integration interval.
        points: trapezoid nodes on [-t_max, t_max].
        seed: seed of the slice generator (the same on every rank when ``distributed``).
        calibrate: return z-scores instead of raw values.
        null_samples: Monte-Carlo null batches for calibration.
        distributed: under ``torch.distributed``, the statistic of the global batch: the
            characteristic-function sums are all-reduced (one all-reduce of 2 M (points // 2 + 1)
            numbers per batch), see :mod:`latentshape.distributed`.

    Collapse: at an exactly collapsed batch the gradient is 0; near collapse (scale s) it points
    outward but is O(s) (8.6e-6 in total at s = 1e-6, N = 64, d = 8): the characteristic function
    of a point mass is flat to second order, so SIGReg barely pulls a collapsing encoder back.

    Reference: Balestriero & LeCun (2025), LeJEPA.

    >>> loss_fn = SIGReg(slices=64, seed=0)
    >>> x = torch.randn(256, 8, generator=torch.Generator().manual_seed(1), requires_grad=True)
    >>> loss = loss_fn(x)
    >>> loss.backward()
    >>> loss.dim(), float(loss.detach()) < 2.0, bool(torch.isfinite(x.grad).all())
    (0, True, True)
    """

    def __init__(
        self,
        *,
        slices: int = 256,
        t_max: float = 3.0,
        points: int = 17,
        seed: int = 0,
        calibrate: bool = True,
        null_samples: int = 512,
        null_seed: int = 0,
        distributed: bool = False,
    ) -> None:
        super().__init__(slices=slices, seed=seed, calibrate=calibrate, null_samples=null_samples,
                         null_seed=null_seed, distributed=distributed)
        if not (float(t_max) > 0 and float(t_max) < float("inf")):
            raise ValueError(f"t_max must be a positive finite number, got {t_max!r}")
        if int(points) != points or points < 2:
            raise ValueError(f"points must be an integer >= 2, got {points!r}")
        self.t_max = float(t_max)
        self.points = int(points)

    def _evaluate(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return sigreg_statistic(x, self.directions(x, generator), self.t_max, self.points)

    def _evaluate_global(self, x: Tensor, generator: torch.Generator | None, rows: GlobalBatch) -> Tensor:
        # phi_N is a mean over points: all-reduce the cos/sin sums (packed) and divide by the global N.
        sum_cos, sum_sin = projected_characteristic_sums(x, self.directions(x, generator), self.t_max, self.points)
        sum_cos, sum_sin = all_reduce_sum(torch.stack([sum_cos, sum_sin])).unbind(0)
        return _epps_pulley_from_sums(sum_cos, sum_sin, rows.total, self.t_max, self.points).mean(dim=-1)

    def _config(self, d: int) -> Hashable:
        return (self.slices, self.t_max, self.points)

    def _closed_form_null(self, n: int, d: int) -> NullStats:
        """Exact null mean and variance, slice randomness included (:func:`sigreg_null_moments`)."""
        nodes, weights = epps_pulley_quadrature(self.t_max, self.points, dtype=torch.float64)
        return NullStats.from_moments(*sigreg_null_moments(n, d, self.slices, nodes.numpy(), weights.numpy()))

    def _intermediate_size(self, n: int, d: int) -> int:
        return n * d + min(n * self.slices * (self.points // 2 + 1), _BLOCK_ELEMENTS)

    def extra_repr(self) -> str:
        return f"slices={self.slices}, t_max={self.t_max}, points={self.points}, seed={self.seed}, {self._flags_repr()}"
