r"""Closed-form null law of :class:`~latentshape.SlicedWassersteinGaussian` under x ~ N(0, I).

One slice's statistic is :math:`s(y) = \frac1N \sum_i (y_{(i)} - q_i)^2` for y ~ N(0, I_N) (the
projections of N(0, I) rows on a unit direction), with the mid-point quantiles
:math:`q_i = \Phi^{-1}((i + 1/2)/N)`. The loss averages M slices on fresh uniform directions:
:math:`S = \frac1M \sum_m s(y_m)`, where two slices' projections are jointly Gaussian with
correlation :math:`\rho = \theta^\top \theta'`. So

.. math::

    E\,S = E\,s, \qquad
    \mathrm{Var}\,S = \frac{c(1)}{M} + \Big(1 - \frac1M\Big)\, E_\rho\, c(\rho), \qquad
    c(\rho) = \mathrm{Cov}\big(s(y), s(\rho y + \sqrt{1 - \rho^2} z)\big) = \sum_{k \ge 1} b_k \rho^{2k}

(Mehler's formula: :math:`b_k \ge 0` is the squared norm of the Wiener-chaos part of s of order 2k;
odd orders vanish since s(-y) = s(y)). For independent uniform directions
:math:`\rho^2 \sim \mathrm{Beta}(1/2, (d-1)/2)`, so
:math:`E\,\rho^{2k} = \prod_{j<k} (1/2 + j)/(d/2 + j)`.

Exact pieces (no table):

- with :math:`m = \frac1N \sum_i q_i E\,y_{(i)} = \int y\,\varphi(y)\,B(\Phi(y))\,dy`, where
  :math:`B(p) = \sum_i q_i \binom{N-1}{i} p^i (1-p)^{N-1-i}` is a Bernstein polynomial, the mean
  is :math:`E\,s = 1 + \overline{q^2} - 2m`;
- the order-2 chaos is spanned by :math:`A = \sum_i (y_i^2 - 1)` and
  :math:`B = \sum_{i<j} y_i y_j`; differentiating :math:`E\,s` along the Gaussian families
  :math:`\sigma y` and :math:`y + c\mathbf 1` gives :math:`\mathrm{Cov}(s, A) = 2(1 - m)` and
  :math:`\mathrm{Cov}(s, B) = m`, hence :math:`b_1 = 2(1-m)^2/N + 2m^2/(N(N-1))`.

The rest, :math:`v = c(1) - b_1` and its split over the orders 2k >= 4, comes from a table of
:math:`N^2 v` and :math:`N^2 b_k` (k = 2..4, plus a tail :math:`\tau \sum_{k>4} \rho^{2k}/k^2`,
the decay of the large-N limit :math:`c(\rho)/c(1) \to \mathrm{Li}_2(\rho^2)/\zeta(2)`) over N,
estimated offline by Monte-Carlo with the exact order-2 part removed (``benchmarks/sliced_null_table.py``)
and interpolated linearly in log N; beyond the table's last N its last row is used.

References: del Barrio, Giné & Utzet (2005), "Asymptotics for L2 functionals of the empirical
quantile process, with applications to tests of fit based on weighted Wasserstein distances",
Bernoulli 11(1), 131-189; Mehler's formula for the Ornstein-Uhlenbeck semigroup (e.g. Nualart (2006),
"The Malliavin Calculus and Related Topics", 2nd ed., chapter 1).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln, log_ndtr, ndtri

__all__ = ["direction_moments", "slice_mean", "slice_second_chaos", "sliced_null_moments"]

_STEP = 0.05  # y-grid of the trapezoid rule: the integrand is smooth; error in m < 1e-8 / N at N <= 2^16
_WIDTH = 8.0  # binomial window, in units of sqrt(N - 1) / 2 (>= 8 of its standard deviations)


def _quantile_projection(n: int) -> float:
    r""":math:`m = \frac1N \sum_i q_i E\,y_{(i)} = \int y \varphi(y) B(\Phi(y)) dy` (trapezoid rule, windowed binomial weights)."""
    quantiles = ndtri((np.arange(n) + 0.5) / n)
    half_range = math.sqrt(2.0 * math.log(n + 1.0)) + 9.0  # past it the integrand is below 1e-17
    y = np.arange(-half_range, half_range + _STEP / 2, _STEP)
    log_p, log_q = log_ndtr(y), log_ndtr(-y)
    degree = n - 1
    half = int(math.ceil(_WIDTH * math.sqrt(degree) / 2.0 + 10.0))
    centre = np.rint(degree * np.exp(log_p)).astype(np.int64)
    index = centre[:, None] + np.arange(-half, half + 1)[None, :]
    inside = (index >= 0) & (index <= degree)
    index = np.clip(index, 0, degree)
    log_factorial = gammaln(np.arange(n + 1.0))  # log(k!) at k + 1
    log_weight = (log_factorial[degree + 1] - log_factorial[index + 1] - log_factorial[degree - index + 1]
                  + index * log_p[:, None] + (degree - index) * log_q[:, None])
    bernstein = np.where(inside, np.exp(log_weight) * quantiles[index], 0.0).sum(axis=1)
    density = np.exp(-0.5 * y * y) / math.sqrt(2.0 * math.pi)
    return float(_STEP * np.sum(y * density * bernstein))


def _exact_terms(n: int) -> tuple[float, float, float]:
    """(m, E s, b_1) at n points."""
    m = _quantile_projection(n)
    quantiles = ndtri((np.arange(n) + 0.5) / n)
    mean = 1.0 + float(np.mean(quantiles**2)) - 2.0 * m
    b1 = 2.0 * (1.0 - m) ** 2 / n + 2.0 * m * m / (n * (n - 1))
    return m, mean, b1


def slice_mean(n: int) -> float:
    r"""Exact :math:`E\,s` of one slice at n >= 2 points, :math:`1 + \overline{q^2} - 2m`.

    >>> round(slice_mean(2), 12) == round(1 + float(ndtri(0.75)) ** 2 - 2 * float(ndtri(0.75)) / math.pi ** 0.5, 12)
    True
    """
    return _exact_terms(_check_points(n))[1]


def slice_second_chaos(n: int) -> float:
    r"""Exact :math:`b_1`, the squared norm of the order-2 chaos part of one slice's statistic at n >= 2 points.

    >>> 1.9 < 64 ** 2 * slice_second_chaos(64) < 2.1          # N^2 b_1 -> 2
    True
    """
    return _exact_terms(_check_points(n))[2]


def _check_points(n: int) -> int:
    if isinstance(n, bool) or int(n) != n or n < 2:
        raise ValueError(f"the sliced Wasserstein null needs N >= 2 points, got {n!r}")
    return int(n)


TABLE_ORDERS = (2, 3, 4)  # chaos orders 2k with their own coefficient in the table
TAIL_ORDERS = np.arange(TABLE_ORDERS[-1] + 1, 4097)  # the tail tau * sum_k t^k / k^2 over these k


def tail_shape(t: np.ndarray) -> np.ndarray:
    r""":math:`\sum_{k} t^k / k^2` over the tail's orders (``TAIL_ORDERS``), at each t in [0, 1].

    >>> round(float(tail_shape(np.array(1.0))), 4)   # zeta(2) - (1 + 1/4 + 1/9 + 1/16), less ~1/4096
    0.2211
    """
    t = np.asarray(t, dtype=np.float64)
    return np.sum(t[..., None] ** TAIL_ORDERS / TAIL_ORDERS.astype(np.float64) ** 2, axis=-1)


def direction_moments(d: int, orders: np.ndarray) -> np.ndarray:
    r""":math:`E\,\rho^{2k} = \prod_{j<k} (1/2 + j)/(d/2 + j)` for two independent uniform directions in R^d, at each k.

    >>> direction_moments(4, np.array([1, 2])).tolist()       # E rho^2 = 1/d, E rho^4 = 3/(d(d+2))
    [0.25, 0.125]
    """
    top = int(np.max(orders))
    j = np.arange(top, dtype=np.float64)
    moments = np.concatenate([[1.0], np.cumprod((0.5 + j) / (0.5 * d + j))])
    return moments[np.asarray(orders)]


def _table_row(n: int) -> np.ndarray:
    """(N^2 v, N^2 b_2.., N^2 tau) at n: linear in log N between the table's rows, its last row beyond it."""
    from ._sliced_null_table import ROWS, TABLE_ORDERS as TABULATED_ORDERS

    if tuple(TABULATED_ORDERS) != TABLE_ORDERS:  # a table built for other orders would be misread
        raise RuntimeError(f"the sliced null table holds orders {TABULATED_ORDERS}, expected {TABLE_ORDERS}")
    table = np.asarray(ROWS, dtype=np.float64)
    log_n = np.log(table[:, 0])
    return np.array([np.interp(math.log(n), log_n, column) for column in table[:, 1:].T])


def _slice_covariances(n: int, d: int, b1: float) -> tuple[float, float]:
    """(c(1), E_rho c(rho)) of one slice's statistic at (n, d), given its exact b_1."""
    row = _table_row(n) / (n * n)
    v, higher, tau = row[0], row[1:-1], row[-1]
    orders = np.concatenate([[1], TABLE_ORDERS, TAIL_ORDERS])
    moments = direction_moments(d, orders)
    tail_weights = 1.0 / TAIL_ORDERS.astype(np.float64) ** 2
    paired = b1 * moments[0] + float(higher @ moments[1:1 + len(higher)]) + tau * float(tail_weights @ moments[1 + len(higher):])
    return b1 + v, paired


def sliced_null_moments(n: int, d: int, slices: int) -> tuple[float, float]:
    r"""Null mean and variance of the sliced Wasserstein statistic at (N, d) with M = ``slices`` fresh uniform directions.

    :math:`E\,S = E\,s` (exact); :math:`\mathrm{Var}\,S = c(1)/M + (1 - 1/M) E_\rho c(\rho)` (the
    order-2 part exact, the rest from the table; see the module docstring).

    >>> mean, variance = sliced_null_moments(256, 8, 256)   # N E S and N sd(S): O(1)
    >>> round(256 * mean, 3), round(256 * variance ** 0.5, 2)
    (2.935, 0.54)
    """
    n = _check_points(n)
    if isinstance(d, bool) or int(d) != d or d < 1 or isinstance(slices, bool) or int(slices) != slices or slices < 1:
        raise ValueError(f"need d >= 1 and slices >= 1, got d={d!r}, slices={slices!r}")
    _, mean, b1 = _exact_terms(n)  # not cached here: the calibration's null cache holds the result per shape
    c1, paired = _slice_covariances(n, int(d), b1)
    return float(mean), float(c1 / slices + (1.0 - 1.0 / slices) * paired)
