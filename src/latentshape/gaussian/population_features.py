r"""Moment matching and SIGReg as functions of per-point feature means (their population mode).

Both statistics depend on a batch only through means of per-point features
:math:`\bar\phi = \frac1N \sum_i \phi(x_i)` (and N), so they can be evaluated on a running
estimate of the *population's* feature means (:class:`latentshape.population.PopulationMode`):

- :class:`MomentFeatures`: :math:`\phi(x) = (x, x x^\top)`, F = d + d^2. From the means
  :math:`(m, E)` at effective size n: :math:`\hat\mu = m`,
  :math:`\hat\Sigma = \frac{n}{n-1}(E - m m^\top)` (unbiased for an equal-weight mean of n points),
  then the loss's own penalty (Frobenius or a shared moment penalty).
- :class:`CharacteristicFeatures`: :math:`\phi(x) = (\cos t_k \theta_m^\top x, \sin t_k \theta_m^\top x)`
  at the quadrature nodes :math:`t_k \ge 0`, F = 2 M T, on M directions drawn **once** (a buffer of
  the population module) -- means over fresh slices at every step would not estimate anything.
  The Epps-Pulley statistic :math:`n \sum_k W_k ((\bar c - e^{-t_k^2/2})^2 + \bar s^2)` is then
  evaluated at the effective size n.

A feature map has three methods: ``setup(x)`` (extra tensors drawn once, e.g. directions),
``sums(x, extra)`` (differentiable float64 sums over the rows of one batch, shape ``(F,)``) and
``raw(means, n, extra)`` (the wrapped loss's raw components ``(C,)`` at feature means ``means`` and
effective size ``n``).

>>> from latentshape import MomentMatchingLoss
>>> loss = MomentMatchingLoss(calibrate=False)
>>> features = MomentFeatures(loss)
>>> x = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
>>> raw = features.raw(features.sums(x, None) / 50, 50, None)
>>> torch.allclose(raw, loss.raw(x))     # evaluated at the batch's own means: the batch statistic
True
"""

from __future__ import annotations

import torch
from torch import Tensor

from .moment_matching import MomentMatchingLoss, _covariance_gap, _mean_gap
from .moment_penalties import gaussian_fit_penalty
from .sigreg import SIGReg, _epps_pulley_from_sums, projected_characteristic_sums
from .slicing import random_directions

__all__ = ["MomentFeatures", "CharacteristicFeatures", "gaussian_feature_map"]

_DIAGONAL_PENALTIES = ("kl_diag", "jeff_diag")


class MomentFeatures:
    r"""First and second raw moments, :math:`\phi(x) = (x, \mathrm{vec}(x x^\top))`, for a
    :class:`~latentshape.MomentMatchingLoss` (every penalty)."""

    def __init__(self, loss: MomentMatchingLoss) -> None:
        self.loss = loss

    def setup(self, x: Tensor) -> Tensor | None:
        """No extra state: the features are fixed functions of x."""
        return None

    def sums(self, x: Tensor, extra: Tensor | None) -> Tensor:
        """:math:`(\\sum_i x_i, \\sum_i x_i x_i^\\top)` of a batch ``(N, d)``, flattened, float64."""
        x64 = x.to(torch.float64)
        return torch.cat([x64.sum(dim=0), (x64.T @ x64).reshape(-1)])

    def raw(self, means: Tensor, n: float, extra: Tensor | None) -> Tensor:
        """The loss's raw component ``(1,)`` at feature means ``means`` and effective size ``n``."""
        d = _width(means.shape[-1])
        mean = means[:d]
        second = means[d:].reshape(d, d)
        second = 0.5 * (second + second.T)  # exact symmetry for the eigen-solvers of the penalties
        covariance = (second - torch.outer(mean, mean)) * (n / (n - 1.0))
        loss = self.loss
        if loss.penalty == "frobenius":
            value = loss.alpha * _mean_gap(mean, loss.mean) + loss.gamma * _covariance_gap(covariance, loss.cov)
        elif loss.penalty == "mu_only":
            value = gaussian_fit_penalty(mean, "mu_only")
        elif loss.penalty in _DIAGONAL_PENALTIES:
            value = gaussian_fit_penalty(mean, loss.penalty, variance=covariance.diagonal())
        else:
            value = gaussian_fit_penalty(mean, loss.penalty, covariance=covariance)
        return value.reshape(1)


class CharacteristicFeatures:
    r"""Empirical characteristic function on M fixed slices at the quadrature nodes, for a
    :class:`~latentshape.SIGReg`."""

    def __init__(self, loss: SIGReg) -> None:
        self.loss = loss

    def setup(self, x: Tensor) -> Tensor:
        """M unit directions ``(d, M)`` (float64), drawn once from the loss's seeded generator."""
        return random_directions(x.shape[-1], self.loss.slices, self.loss.generator, dtype=torch.float64,
                                 device=x.device)

    def sums(self, x: Tensor, extra: Tensor) -> Tensor:
        """:math:`(\\sum_i \\cos t_k \\theta_m^\\top x_i, \\sum_i \\sin t_k \\theta_m^\\top x_i)`, flattened, float64."""
        cos, sin = projected_characteristic_sums(x, extra.to(x.dtype), self.loss.t_max, self.loss.points)
        return torch.cat([cos.reshape(-1), sin.reshape(-1)]).to(torch.float64)

    def raw(self, means: Tensor, n: float, extra: Tensor) -> Tensor:
        """SIGReg ``(1,)`` at feature means ``means`` and effective size ``n``: the mean Epps-Pulley over the slices."""
        cos, sin = (n * means).reshape(2, self.loss.slices, -1).unbind(0)
        return _epps_pulley_from_sums(cos, sin, n, self.loss.t_max, self.loss.points).mean(dim=-1).reshape(1)


def gaussian_feature_map(loss: object) -> MomentFeatures | CharacteristicFeatures | None:
    """The feature map of a :class:`~latentshape.MomentMatchingLoss` or :class:`~latentshape.SIGReg`, else None."""
    if isinstance(loss, MomentMatchingLoss):
        return MomentFeatures(loss)
    if isinstance(loss, SIGReg):
        return CharacteristicFeatures(loss)
    return None


def _width(features: int) -> int:
    """d from F = d + d^2."""
    d = int(round(((1 + 4 * features) ** 0.5 - 1) / 2))
    if d + d * d != features:
        raise ValueError(f"{features} moment features do not match any width d (F = d + d^2)")
    return d
