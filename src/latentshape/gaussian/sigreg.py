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
sum exactly. SIGReg averages EP over M random unit slices. Cost O(N d M + N M points).

Reference: Balestriero & LeCun (2025), "LeJEPA: Provable and Scalable Self-Supervised Learning
Without the Heuristics"; Epps & Pulley (1983), "A test for normality based on the empirical
characteristic function".
"""

from __future__ import annotations

from typing import Hashable

import torch
from torch import Tensor

from ..calibration import NullStats
from ..distributed import GlobalBatch, all_reduce_sum
from .closed_form_nulls import sigreg_null_moments
from .slicing import RandomSlicingLoss

__all__ = ["epps_pulley_quadrature", "epps_pulley", "sigreg_statistic", "SIGReg"]


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
    full = torch.linspace(-t_max, t_max, points, dtype=torch.float64)
    step = 2.0 * t_max / (points - 1)
    trapezoid = torch.full((points,), step, dtype=torch.float64)
    trapezoid[0] = trapezoid[-1] = step / 2
    # Fold the even integrand onto t >= 0: each positive node stands for itself and its mirror.
    keep = full >= -1e-12 * t_max
    nodes = full[keep].abs()
    fold = torch.where(nodes > 1e-12 * t_max, 2.0, 1.0)
    weights = trapezoid[keep] * fold * torch.exp(-0.5 * nodes**2)
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
    return epps_pulley(torch.matmul(x, directions), t_max, points).mean(dim=-1)


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
        projections = torch.matmul(x, self.directions(x, generator))
        sum_cos, sum_sin = _characteristic_sums(projections, self.t_max, self.points)
        sum_cos, sum_sin = all_reduce_sum(torch.stack([sum_cos, sum_sin])).unbind(0)
        return _epps_pulley_from_sums(sum_cos, sum_sin, rows.total, self.t_max, self.points).mean(dim=-1)

    def _config(self, d: int) -> Hashable:
        return (self.slices, self.t_max, self.points)

    def _closed_form_null(self, n: int, d: int) -> NullStats:
        """Exact null mean and variance, slice randomness included (:func:`sigreg_null_moments`)."""
        nodes, weights = epps_pulley_quadrature(self.t_max, self.points, dtype=torch.float64)
        return NullStats.from_moments(*sigreg_null_moments(n, d, self.slices, nodes.numpy(), weights.numpy()))

    def _intermediate_size(self, n: int, d: int) -> int:
        return n * self.slices * (self.points // 2 + 1) + n * d

    def extra_repr(self) -> str:
        return f"slices={self.slices}, t_max={self.t_max}, points={self.points}, seed={self.seed}, {self._flags_repr()}"
