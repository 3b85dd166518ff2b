r"""Closed-form null moments of the spectral wristband energy (toward MC-free calibration, DESIGN 3.6).

Under x ~ N(0, I) the wristband coordinates are independent: t ~ U[0, 1], u uniform on
:math:`S^{d-1}`. The spectral energy is a V-statistic :math:`E = \frac{1}{N^2}\sum_{i,j} h(i, j)` of
the truncated kernel :math:`h = k_r(t, t')\,k_a(u \cdot u')`, with
:math:`k_r = \sum_{k=0}^{K} a_k \cos(k\pi t)\cos(k\pi t')` and :math:`k_a = \sum_{l \le L} \lambda_l Z_l`.
Because :math:`E[\cos k\pi t] = 0` for k >= 1 and :math:`E[Z_l(u \cdot u')] = 0` for l >= 1, the
kernel is *degenerate*: :math:`E[h(i, j) \mid i] = a_0 \lambda_0` is a constant, so the only
covariances between off-diagonal terms are those of identical pairs. With

- :math:`\mu = a_0\lambda_0` (off-diagonal mean), :math:`E[h^2] = (a_0^2 + \sum_{k\ge1} a_k^2/4)
  \sum_l \lambda_l^2 Z_l(1)` (orthogonality of cosines on [0, 1] and of zonal harmonics),
- diagonal :math:`h(i, i) = D\,k_r(t_i, t_i)`, :math:`D = \sum_l \lambda_l Z_l(1)`, with mean
  :math:`D(a_0 + \sum_{k\ge1} a_k/2)` and variance :math:`D^2 \sum_{k\ge1} a_k^2/8`,

.. math::
    E[E] = \frac{N\,E[h_{ii}] + N(N-1)\mu}{N^2}, \qquad
    \mathrm{Var}[E] = \frac{N\,\mathrm{Var}[h_{ii}] + 2N(N-1)(E[h^2] - \mu^2)}{N^4}

exactly (the diagonal and off-diagonal parts are uncorrelated by degeneracy). ``rep = log(E)/beta``
then follows by the delta method to second order; its relative fluctuation is O(1/N).

This module is the first step of closed-form calibration (issue 3); the calibrated total also needs
the null correlations of rep with rad and mom, which are not derived here.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .spectral import zonal_at_one

__all__ = ["NullMoments", "spectral_energy_null_moments", "spectral_rep_null_moments", "angular_mean_null_moments"]


class NullMoments(NamedTuple):
    """Mean and variance of a statistic under x ~ N(0, I)."""

    mean: float
    variance: float

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)


def spectral_energy_null_moments(n: int, d: int, radial: tuple[float, ...], angular: tuple[float, ...]) -> NullMoments:
    r"""Exact null mean and variance of the spectral energy E at batch size ``n`` in dimension ``d``.

    ``radial`` = :math:`a_0..a_K`, ``angular`` = :math:`\lambda_0..\lambda_L` (see
    :mod:`~latentshape.wristband.spectral`).

    >>> from latentshape.wristband.spectral import radial_coefficients, angular_coefficients
    >>> radial, angular = radial_coefficients(8.0, 6), angular_coefficients(8, 2, 8.0, 12 ** -0.5)
    >>> moments = spectral_energy_null_moments(1024, 8, radial, angular)
    >>> round(moments.mean, 4), round(moments.std / moments.mean, 5)   # relative sd ~ 1.4 / N
    (0.1853, 0.00137)
    """
    if n < 2:
        raise ValueError(f"need n >= 2, got {n}")
    a0, higher = radial[0], radial[1:]
    levels = range(len(angular))
    trace = sum(lam * zonal_at_one(d, level) for level, lam in zip(levels, angular))  # D = k_a(1)
    angular_square = sum(lam * lam * zonal_at_one(d, level) for level, lam in zip(levels, angular))
    off_mean = a0 * angular[0]
    off_square = (a0 * a0 + sum(a * a for a in higher) / 4.0) * angular_square
    diagonal_mean = trace * (a0 + sum(higher) / 2.0)
    diagonal_variance = trace * trace * sum(a * a for a in higher) / 8.0
    mean = (n * diagonal_mean + n * (n - 1) * off_mean) / n**2
    variance = (n * diagonal_variance + 2.0 * n * (n - 1) * (off_square - off_mean**2)) / n**4
    return NullMoments(mean, variance)


def _log_moments(moments: NullMoments) -> NullMoments:
    """Delta method to second order: E[log E] ~ log m - v / (2 m^2), Var[log E] ~ v / m^2."""
    relative = moments.variance / moments.mean**2
    return NullMoments(math.log(moments.mean) - 0.5 * relative, relative)


def spectral_rep_null_moments(
    n: int, d: int, beta: float, radial: tuple[float, ...], angular: tuple[float, ...]
) -> NullMoments:
    """Null mean and variance of the global ``rep = log(E) / beta`` (delta method on the exact moments of E)."""
    log = _log_moments(spectral_energy_null_moments(n, d, radial, angular))
    return NullMoments(log.mean / beta, log.variance / beta**2)


def angular_mean_null_moments(n: int, d: int, angular: tuple[float, ...]) -> NullMoments:
    r"""Exact null moments of the off-diagonal mean :math:`\frac{1}{N(N-1)}\sum_{i \ne j} k_a(u_i \cdot u_j)`
    of the truncated angular kernel (a degenerate U-statistic): mean :math:`\lambda_0`, variance
    :math:`2 \sum_{l \ge 1} \lambda_l^2 Z_l(1) / (N(N-1))`."""
    if n < 2:
        raise ValueError(f"need n >= 2, got {n}")
    spread = sum(lam * lam * zonal_at_one(d, level) for level, lam in enumerate(angular) if level >= 1)
    return NullMoments(angular[0], 2.0 * spread / (n * (n - 1)))
