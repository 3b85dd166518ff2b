r"""Exact tests and p-values against N(0, I): radial and marginal KS, per-dimension moments, Monte-Carlo
p-values with a fitted tail, and Holm's multiple-testing correction.

All functions work in float64 numpy and are vectorized over leading axes where their inputs have
them. :func:`require_testable_scale` guards the tests against batches whose statistics would
overflow float64.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import scipy.special
import scipy.stats
import torch
from torch import Tensor

__all__ = [
    "chi2_cdf",
    "ks_uniform",
    "dimension_moments_test",
    "DimensionMomentsTest",
    "marginal_ks_test",
    "null_p_value",
    "holm",
    "MAX_TESTABLE_NORM",
    "require_testable_scale",
]


def chi2_cdf(squared_norms: Tensor | np.ndarray, d: int) -> np.ndarray:
    r"""The radial CDF :math:`t = P(d/2, s/2)` of :math:`\chi^2_d` (float64 numpy).

    >>> chi2_cdf(np.array([0.0, 2.0]), 2).round(4)     # 1 - exp(-s/2)
    array([0.    , 0.6321])
    """
    return scipy.special.gammainc(0.5 * d, 0.5 * np.asarray(squared_norms, dtype=np.float64))


def ks_uniform(t: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Kolmogorov-Smirnov test of :math:`t_1..t_N` against U[0, 1], vectorized over leading axes.

    :math:`D = \sup_t |F_N(t) - t| = \max_i \max(\frac iN - t_{(i)}, t_{(i)} - \frac{i-1}N)`; the
    p-value is exact, from the distribution of D at this N (``scipy.stats.kstwo``). Under N(0, I)
    the radial CDFs t are i.i.d. U[0, 1], so this is an exact test of the radius law.

    Reference: A. Kolmogorov (1933); N. Smirnov (1948).

    >>> statistic, p_value = ks_uniform(np.array([0.1, 0.4, 0.6, 0.9]))
    >>> round(float(statistic), 6), round(float(p_value), 3)
    (0.15, 1.0)
    """
    t = np.sort(np.asarray(t, dtype=np.float64), axis=-1)
    n = t.shape[-1]
    ranks = np.arange(1, n + 1, dtype=np.float64)
    statistic = np.maximum(ranks / n - t, t - (ranks - 1) / n).max(axis=-1)
    return statistic, scipy.stats.kstwo.sf(statistic, n)


class DimensionMomentsTest(NamedTuple):
    """Per-dimension exact tests of mean 0 and variance 1 (arrays ``(..., d)``) and their Šidák combination."""

    mean: np.ndarray
    std: np.ndarray
    p_mean: np.ndarray
    p_variance: np.ndarray
    p_value: np.ndarray


def dimension_moments_test(x: Tensor | np.ndarray) -> DimensionMomentsTest:
    r"""Exact tests that every coordinate has mean 0 and variance 1, combined over dimensions.

    Under N(0, I): :math:`\sqrt N \bar x_j \sim N(0, 1)` and
    :math:`\sum_i (x_{ij} - \bar x_j)^2 \sim \chi^2_{N-1}`, all 2d statistics independent. Each
    gets a two-sided p-value; the combined p-value of the smallest of the 2d is Šidák's
    :math:`1 - (1 - p_{min})^{2d}`, exactly uniform under the null.

    Reference: Z. Šidák, *Rectangular confidence regions for the means of multivariate normal
    distributions*, JASA 62 (1967).

    >>> result = dimension_moments_test(np.array([[1.0, 2.0], [-1.0, 2.0], [1.0, 2.0], [-1.0, 2.0]]))
    >>> result.mean.tolist(), result.std.tolist()
    ([0.0, 2.0], [1.1547..., 0.0])
    >>> float(result.p_value) < 1e-3
    True
    """
    x = np.asarray(torch.as_tensor(x).to(torch.float64).numpy() if isinstance(x, Tensor) else x, dtype=np.float64)
    n, d = x.shape[-2], x.shape[-1]
    mean = x.mean(axis=-2)
    centred_sum_squares = ((x - mean[..., None, :]) ** 2).sum(axis=-2)
    p_mean = 2.0 * scipy.stats.norm.sf(np.sqrt(n) * np.abs(mean))
    lower = scipy.stats.chi2.cdf(centred_sum_squares, n - 1)
    upper = scipy.stats.chi2.sf(centred_sum_squares, n - 1)
    p_variance = np.minimum(1.0, 2.0 * np.minimum(lower, upper))
    smallest = np.minimum(p_mean, p_variance).min(axis=-1)
    combined = -np.expm1(2 * d * np.log1p(-np.minimum(smallest, 1.0 - 1e-16)))
    std = np.sqrt(centred_sum_squares / (n - 1))
    return DimensionMomentsTest(mean, std, p_mean, p_variance, np.clip(combined, 0.0, 1.0))


def marginal_ks_test(x: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Kolmogorov-Smirnov test of every coordinate against N(0, 1), combined over dimensions.

    Returns the per-dimension distances :math:`D_j = \sup_z |F_{N,j}(z) - \Phi(z)|`, their exact
    p-values and the Šidák combination :math:`1 - (1 - p_{min})^d` (the d coordinates are
    independent under N(0, I)). Sees the *shape* of each marginal (two clusters, heavy tails) that
    the moment tests miss.

    >>> distance, p_values, combined = marginal_ks_test(np.random.default_rng(0).uniform(-2, 2, (500, 3)))
    >>> bool(combined < 1e-6)
    True
    """
    x = np.asarray(x.detach().cpu().numpy() if isinstance(x, Tensor) else x, dtype=np.float64)
    cdf = scipy.stats.norm.cdf(np.moveaxis(x, -2, -1))  # (..., d, N)
    distance, p_values = ks_uniform(cdf)
    d = x.shape[-1]
    smallest = p_values.min(axis=-1)
    combined = -np.expm1(d * np.log1p(-np.minimum(smallest, 1.0 - 1e-16)))
    return distance, p_values, np.clip(combined, 0.0, 1.0)


_SMALLEST_P = 1e-300

MAX_TESTABLE_NORM = 1e40
"""Largest row norm the tests measure: Mardia's skewness, mean (x_i . x_j)^3 ~ ||x||^6, stays finite in float64."""


def require_testable_scale(x: Tensor | np.ndarray) -> None:
    """Raise a one-line ValueError if a row of ``x`` ``(N, d)`` has a norm above :data:`MAX_TESTABLE_NORM`.

    Such a batch is nowhere near N(0, I) (whose norms are ~sqrt(d)), and several statistics would
    overflow float64: the answer is already known, and the report could not show it.

    >>> require_testable_scale(np.full((10, 2), 1e160))
    Traceback (most recent call last):
    ...
    ValueError: x has rows of norm up to 1.41e+160: the tests measure rows of norm up to 1e+40 (beyond, their statistics overflow float64); such a batch is not N(0, I) -- rescale it to test its shape
    """
    values = torch.as_tensor(x).to(torch.float64)
    peak = float(values.abs().amax()) if values.numel() else 0.0
    largest = peak * float(torch.linalg.vector_norm(values / peak, dim=-1).max()) if peak > 0 else 0.0
    if not largest <= MAX_TESTABLE_NORM:
        raise ValueError(
            f"x has rows of norm up to {largest:.3g}: the tests measure rows of norm up to {MAX_TESTABLE_NORM:g} "
            "(beyond, their statistics overflow float64); such a batch is not N(0, I) -- rescale it to test its shape"
        )


def null_p_value(
    observed: float | np.ndarray,
    null_draws: np.ndarray,
    alternative: Literal["greater", "two-sided"] = "greater",
    moments: tuple[float, float, float] | None = None,
) -> np.ndarray:
    r"""Monte-Carlo p-value of ``observed`` against null draws, with a fitted tail beyond them.

    Within the range of the R draws the p-value is the empirical one,
    :math:`p = (1 + \#\{\text{null} \ge \text{observed}\}) / (1 + R)` (valid at any R). Beyond
    the most extreme draw it is the tail of a Pearson type III law (a shifted gamma, normal when
    the skewness is 0) fitted to the draws' mean, standard deviation and skewness, capped at
    :math:`1/(1+R)`: the classical moment-matched approximation for quadratic-form statistics
    (Satterthwaite-Welch; Henze and Zirkler use a lognormal in the same role). On the fit's short
    (bounded) side the normal tail with the same moments is used when it is heavier, so a value
    just past the draws is never called impossible. Far-tail values are an extrapolation and are
    floored at 1e-300. ``two-sided``: twice the smaller tail, capped at 1.

    ``moments``: the exact null (mean, sd, skewness) where known
    (:mod:`~latentshape.diagnostics.exact_nulls`), used for the fitted tail instead of the draws'
    moments. Fitted to ~100 draws, a strongly skewed null's tail is far too noisy at Holm's
    alpha / m (the fixed draws of one seed made Henze-Zirkler reject 3.7% of Gaussian batches at
    0.05 / 8 = 0.6%); the exact moments make the fit accurate there.

    >>> null = np.random.default_rng(0).chisquare(4, size=20000)
    >>> round(float(null_p_value(13.28, null)), 3)        # chi2_4 upper 1% point, empirical
    0.01
    >>> float(null_p_value(60.0, null)) < 1e-9            # beyond every draw: fitted tail
    True
    """
    null_draws = np.asarray(null_draws, dtype=np.float64).ravel()
    observed = np.asarray(observed, dtype=np.float64)
    if moments is None:
        moments = (float(null_draws.mean()), float(null_draws.std(ddof=1)),
                   float(scipy.stats.skew(null_draws, bias=False)) if null_draws.std() > 0 else 0.0)
    mean, spread, skewness = (float(v) for v in moments)
    if alternative == "greater":
        return _upper_p(observed, null_draws, (mean, spread, skewness))
    if alternative == "two-sided":
        upper = _upper_p(observed, null_draws, (mean, spread, skewness))
        lower = _upper_p(-observed, -null_draws, (-mean, spread, -skewness))
        return np.minimum(1.0, 2.0 * np.minimum(upper, lower))
    raise ValueError(f"alternative must be 'greater' or 'two-sided', got {alternative!r}")


def _upper_p(observed: np.ndarray, null_draws: np.ndarray, moments: tuple[float, float, float]) -> np.ndarray:
    count = null_draws.size
    exceed = (null_draws >= observed[..., None]).sum(axis=-1)
    empirical = (1.0 + exceed) / (1.0 + count)
    mean, spread, skewness = moments
    if spread > 0:
        fitted = scipy.stats.pearson3(skewness, loc=mean, scale=spread).sf(observed)
        # On its short side a skewed fit is bounded and can make a merely unusual value look
        # impossible: never report a tail lighter than the normal one with the same moments.
        tail = np.maximum(fitted, scipy.stats.norm.sf(observed, loc=mean, scale=spread))
    else:
        tail = np.zeros_like(observed)
    beyond = np.minimum(1.0 / (1.0 + count), tail)
    return np.clip(np.where(exceed == 0, beyond, empirical), _SMALLEST_P, 1.0)


def holm(p_values: np.ndarray) -> np.ndarray:
    r"""Holm's step-down adjusted p-values: reject hypothesis i at level alpha iff adjusted p_i <= alpha.

    With the p-values sorted ascending, :math:`\tilde p_{(i)} = \max_{j \le i} \min(1, (m - j + 1) p_{(j)})`;
    the family-wise error rate is at most alpha under any dependence.

    Reference: S. Holm, *A simple sequentially rejective multiple test procedure*, Scand. J.
    Statist. 6 (1979).

    >>> holm(np.array([0.01, 0.04, 0.03])).tolist()
    [0.03, 0.06, 0.06]
    """
    p_values = np.asarray(p_values, dtype=np.float64)
    m = p_values.size
    order = np.argsort(p_values, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p_values[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted
