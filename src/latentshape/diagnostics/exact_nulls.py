r"""Exact null mean, sd and skewness of two of ``check``'s statistics under the fully specified N(0, I).

A Monte-Carlo p-value far in the tail is a fitted extrapolation, and a fit to the moments of
~100 null draws is noisy: at Holm's level alpha / 8 the Henze-Zirkler test, whose null is
strongly skewed, rejected ~4% of Gaussian batches instead of 0.6%. Its first three moments, and
those of Mardia's kurtosis, are Gaussian integrals, computed here exactly.

**Henze-Zirkler** (known parameters, smoothing beta):
:math:`T - E T = \sum_{i \ne j} g(y_i, y_j) + \sum_i \ell(y_i)` with

.. math::
    g(u, v) = \tfrac1N \big(a(u - v) - c\, b(u) - c\, b(v) + e\big), \qquad
    \ell(u) = -\tfrac{2c}{N} \big(b(u) - E b\big),

:math:`a(w) = e^{-\beta^2 \|w\|^2 / 2}`, :math:`b(u) = e^{-\beta^2 \|u\|^2 / (2 (1 + \beta^2))}`,
:math:`c = (1 + \beta^2)^{-d/2}`, :math:`e = (1 + 2\beta^2)^{-d/2}`; g is degenerate
(:math:`E_v g(u, v) = 0`), so E T = 1 - e and, in the expansion of
:math:`E[(T - ET)^k]` over index patterns, only patterns in which every index occurs at least twice
survive. Each surviving term is an expectation of :math:`\exp(-\frac12 \sum_{ab} W_{ab}\, z_a \cdot z_b)`
over independent :math:`z_a \sim N(0, I_d)`, which is :math:`\det(I + W)^{-d/2}`.

**Mardia kurtosis** :math:`b_{2,d} = \frac1N \sum_i \|x_i\|^4`, a mean of i.i.d.
:math:`\|x\|^4` with :math:`E\|x\|^{2k} = 2^k \Gamma(d/2 + k) / \Gamma(d/2)`.

References: N. Henze and B. Zirkler, *A class of invariant consistent tests for multivariate
normality*, Comm. Statist. Theory Methods 19 (1990) (they fit a lognormal to exact moments of
the standardized statistic); K. V. Mardia, Biometrika 57 (1970).
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Iterator, NamedTuple

import numpy as np

__all__ = ["NullMoments", "henze_zirkler_null_moments", "mardia_kurtosis_null_moments"]


class NullMoments(NamedTuple):
    """Mean, standard deviation and skewness of a statistic under H0."""

    mean: float
    std: float
    skewness: float


def mardia_kurtosis_null_moments(n: int, d: int) -> NullMoments:
    """Exact moments of :math:`\\frac1N \\sum_i \\|x_i\\|^4` for N(0, I_d) rows.

    >>> moments = mardia_kurtosis_null_moments(100, 2)
    >>> moments.mean, round(moments.std ** 2 * 100, 6)    # d(d+2) = 8; (384 - 64) / N
    (8.0, 320.0)
    """
    def raw(k: int) -> float:  # E ||x||^(4k) = E (chi2_d)^(2k)
        return math.exp(2 * k * math.log(2.0) + math.lgamma(d / 2 + 2 * k) - math.lgamma(d / 2))

    mean, second, third = raw(1), raw(2), raw(3)
    variance = second - mean * mean
    central_third = third - 3 * mean * second + 2 * mean**3
    return NullMoments(mean, math.sqrt(variance / n), central_third / variance**1.5 / math.sqrt(n))


_HZ_RESOLUTION = 1e-12  # relative float64 resolution of the Henze-Zirkler statistic at N up to a few thousand


@functools.lru_cache(maxsize=256)
def henze_zirkler_null_moments(n: int, d: int, beta: float) -> NullMoments:
    """Exact mean, sd and skewness of :func:`~latentshape.diagnostics.statistics.henze_zirkler`
    (``standardize=False``) for N(0, I_d) batches of n rows.

    >>> round(henze_zirkler_null_moments(4, 1, 1.0).mean, 12) == round(1 - 3 ** -0.5, 12)
    True
    """
    b2 = beta * beta
    c, e = (1 + b2) ** (-d / 2), (1 + 2 * b2) ** (-d / 2)
    radial = b2 / (1 + b2)
    mean_b = ((1 + b2) / (1 + 2 * b2)) ** (d / 2)
    pair = [(1 / n, b2 * np.array([[1.0, -1.0], [-1.0, 1.0]])), (-c / n, radial * np.diag([1.0, 0.0])),
            (-c / n, radial * np.diag([0.0, 1.0])), (e / n, np.zeros((2, 2)))]
    single = [(-2 * c / n, np.array([[radial]])), (2 * c * mean_b / n, np.zeros((1, 1)))]
    second = _central_moment(2, pair, single, n, d)
    third = _central_moment(3, pair, single, n, d)
    std = math.sqrt(second) if second > 0 and math.isfinite(second) else 0.0
    skewness = third / std / std / std if std > 0 else math.inf
    # Large beta^2 d: the moments underflow float64, or the spread is below what T itself resolves
    # in float64 (its sum of N^2 terms rounds at ~1e-13 relative). Then T's spread is rounding
    # noise: the null is normal with that resolution as its sd. A point mass (sd 0) would make a
    # Gaussian batch whose rounding exceeds every null draw score p = 0.
    resolution = _HZ_RESOLUTION * abs(1.0 - e)
    if not (std > resolution and math.isfinite(skewness)):
        return NullMoments(1.0 - e, resolution, 0.0)
    return NullMoments(1.0 - e, std, skewness)


def _central_moment(order: int, pair, single, n: int, d: int) -> float:
    """E[(sum_{i != j} g_ij + sum_i l_i)^order] by index patterns (module docstring)."""
    total = 0.0
    for kinds in itertools.product((2, 1), repeat=order):  # 2: a g-pair (two distinct slots), 1: an l-term
        owners = [piece for piece, width in enumerate(kinds) for _ in range(width)]
        for blocks in _set_partitions(len(owners)):
            label = [0] * len(owners)
            for index, block in enumerate(blocks):
                for slot in block:
                    label[slot] = index
            if any(len(block) < 2 for block in blocks):
                continue  # an index seen once: its degenerate (zero-mean) factor averages out
            pieces = [[label[s] for s in range(len(owners)) if owners[s] == p] for p in range(order)]
            if any(len(points) == 2 and points[0] == points[1] for points in pieces):
                continue  # a g-pair needs i != j
            count = math.prod(n - k for k in range(len(blocks)))
            if count:
                total += count * _pattern_expectation(pieces, kinds, pair, single, len(blocks), d)
    return total


def _pattern_expectation(pieces, kinds, pair, single, points: int, d: int) -> float:
    """Expectation of the product of the pieces' kernels over ``points`` independent N(0, I_d) vectors."""
    value = 0.0
    for choice in itertools.product(*[(pair if width == 2 else single) for width in kinds]):
        weight = math.prod(w for w, _ in choice)
        form = np.zeros((points, points))
        for (_, quadratic), where in zip(choice, pieces):
            embed = np.zeros((len(where), points))
            embed[np.arange(len(where)), where] = 1.0
            form += embed.T @ quadratic @ embed
        _, log_det = np.linalg.slogdet(np.eye(points) + form)
        value += weight * math.exp(-0.5 * d * log_det)
    return value


def _set_partitions(size: int) -> Iterator[list[list[int]]]:
    """Every partition of range(size) into blocks (Bell(size) of them)."""
    if size == 0:
        yield []
        return
    for smaller in _set_partitions(size - 1):
        for index in range(len(smaller)):
            yield smaller[:index] + [smaller[index] + [size - 1]] + smaller[index + 1:]
        yield smaller + [[size - 1]]
