r"""Goodness-of-fit statistics against N(0, I), one stateless function each.

Every function takes a float tensor of shape ``(..., N, d)`` (leading dimensions are independent
batches, so null distributions are computed for many Monte-Carlo batches in one call) and
returns one value per batch. All work is done in float64.

The multivariate statistics are taken against the *fully specified* law N(0, I) by default (no
centring or whitening), so they see location and scale as well as shape and work for any
N, d (also d >= N). ``standardize=True`` gives the classical affine-invariant versions (tests of
"some Gaussian"), which need N > d.

The p-value helpers (:func:`null_p_value`, :func:`holm`) and the exact tests (:func:`ks_uniform`,
:func:`dimension_moments_test`, :func:`marginal_ks_test`) live in
:mod:`latentshape.diagnostics.p_values`; they are re-exported here.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import scipy.special
import torch
from torch import Tensor

from .p_values import (
    MAX_TESTABLE_NORM,
    DimensionMomentsTest,
    chi2_cdf,
    dimension_moments_test,
    holm,
    ks_uniform,
    marginal_ks_test,
    null_p_value,
    require_testable_scale,
)

__all__ = [
    "mardia_skewness",
    "mardia_kurtosis",
    "henze_zirkler",
    "henze_zirkler_smoothing",
    "knn_kl_divergence",
    "gaussian_fit_statistics",
    "GaussianFitStatistics",
    "ks_uniform",
    "chi2_cdf",
    "dimension_moments_test",
    "DimensionMomentsTest",
    "marginal_ks_test",
    "null_p_value",
    "holm",
    "MAX_TESTABLE_NORM",
    "require_testable_scale",
]

DEFAULT_NEIGHBORS = 5
# Gram matrices of this many entries (float64: 32 MiB) are formed at once; larger batches are split.
_MAX_GRAM_ELEMENTS = 1 << 22


def _as_float64(x: Tensor | np.ndarray) -> Tensor:
    x = torch.as_tensor(x)
    if not torch.is_floating_point(x):
        raise TypeError(f"x must have a floating dtype, got {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"x must have shape (..., N, d), got {tuple(x.shape)}")
    return x.to(torch.float64)


def _whiten(x: Tensor) -> Tensor:
    """Centre and whiten by the biased sample covariance: rows y_i with y_i.y_j = (x_i - m)^T S^-1 (x_j - m)."""
    n, d = x.shape[-2], x.shape[-1]
    if n <= d:
        raise ValueError(f"standardize=True needs N > d for an invertible covariance, got N = {n}, d = {d}")
    centred = x - x.mean(dim=-2, keepdim=True)
    covariance = centred.transpose(-1, -2) @ centred / n
    cholesky, info = torch.linalg.cholesky_ex(covariance)
    if bool((info != 0).any()):
        raise ValueError("standardize=True needs a non-singular sample covariance")
    return torch.linalg.solve_triangular(cholesky, centred.transpose(-1, -2), upper=False).transpose(-1, -2)


def _prepare(x: Tensor | np.ndarray, standardize: bool) -> Tensor:
    x = _as_float64(x)
    return _whiten(x) if standardize else x


def mardia_skewness(x: Tensor | np.ndarray, standardize: bool = False) -> Tensor:
    r"""Mardia's multivariate skewness :math:`b_{1,d} = \frac{1}{N^2}\sum_{i,j} (y_i^\top y_j)^3`.

    With ``standardize=False`` (default) :math:`y_i = x_i`, the statistic against the fully
    specified N(0, I) (it also sees a shifted mean); with ``standardize=True``
    :math:`y_i = S^{-1/2}(x_i - \bar x)`, S the biased sample covariance (Mardia 1970), where
    :math:`N b_{1,d} / 6 \to \chi^2_{d(d+1)(d+2)/6}` under normality. Equivalently
    :math:`b_{1,d} = \sum_{a,b,c} \big(\frac1N \sum_i y_{ia} y_{ib} y_{ic}\big)^2`.

    Reference: K. V. Mardia, *Measures of multivariate skewness and kurtosis with applications*,
    Biometrika 57 (1970).

    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    >>> float(mardia_skewness(x))         # (1 + 0 + 0 + 64) / 4
    16.25
    """
    y = _prepare(x, standardize)
    return _gram_statistics(y, k=None, smoothing=None)[0]


def mardia_kurtosis(x: Tensor | np.ndarray, standardize: bool = False) -> Tensor:
    r"""Mardia's multivariate kurtosis :math:`b_{2,d} = \frac1N \sum_i \|y_i\|^4`.

    ``y`` as in :func:`mardia_skewness`. Under N(0, I) with ``standardize=False``,
    :math:`\|x\|^2 \sim \chi^2_d` so :math:`E\,b_{2,d} = d(d+2)` and
    :math:`\mathrm{Var}\,b_{2,d} = [d(d+2)(d+4)(d+6) - d^2(d+2)^2] / N`; for the classical
    standardized version :math:`b_{2,d} \approx N(d(d+2), 8d(d+2)/N)` (Mardia 1970).

    >>> float(mardia_kurtosis(torch.tensor([[1.0, 0.0], [0.0, 2.0]])))   # (1 + 16) / 2
    8.5
    """
    y = _prepare(x, standardize)
    return (y * y).sum(dim=-1).square().mean(dim=-1)


def henze_zirkler_smoothing(n: int, d: int) -> float:
    r"""The Henze-Zirkler smoothing parameter :math:`\beta = \frac{1}{\sqrt2}\big(\frac{N(2d+1)}{4}\big)^{1/(d+4)}`.

    >>> round(henze_zirkler_smoothing(100, 2), 4)     # 125 ** (1/6) / sqrt(2)
    1.5811
    """
    return (n * (2 * d + 1) / 4.0) ** (1.0 / (d + 4)) / math.sqrt(2.0)


def henze_zirkler(x: Tensor | np.ndarray, beta: float | None = None, standardize: bool = False) -> Tensor:
    r"""Henze-Zirkler statistic: N times a weighted L2 distance between characteristic functions.

    .. math::
        T_\beta = N \int \big|\hat\varphi_N(s) - e^{-\|s\|^2/2}\big|^2 \varphi_\beta(s)\, ds
        = \frac1N \sum_{i,j} e^{-\frac{\beta^2}{2}\|y_i - y_j\|^2}
          - \frac{2}{(1+\beta^2)^{d/2}} \sum_i e^{-\frac{\beta^2 \|y_i\|^2}{2(1+\beta^2)}}
          + \frac{N}{(1+2\beta^2)^{d/2}},

    with :math:`\hat\varphi_N` the empirical characteristic function of the y's, :math:`\varphi_\beta`
    the N(0, beta^2 I) density and ``y`` as in :func:`mardia_skewness` (``standardize=False``:
    against the fully specified N(0, I), the BHEP statistic with known parameters). ``beta``
    defaults to :func:`henze_zirkler_smoothing`. Large values mean "not Gaussian".

    Reference: N. Henze and B. Zirkler, *A class of invariant consistent tests for multivariate
    normality*, Comm. Statist. Theory Methods 19 (1990).

    >>> x = torch.zeros(4, 1)
    >>> float(henze_zirkler(x, beta=1.0))     # 4 - 2 * 4 / sqrt(2) + 4 / sqrt(3)
    0.6526...
    """
    y = _prepare(x, standardize)
    if beta is None:
        beta = henze_zirkler_smoothing(y.shape[-2], y.shape[-1])
    return _gram_statistics(y, k=None, smoothing=float(beta))[2]


def knn_kl_divergence(x: Tensor | np.ndarray, k: int = DEFAULT_NEIGHBORS) -> Tensor:
    r"""k-nearest-neighbour estimate of :math:`KL(P \,\|\, N(0, I))` in nats from samples of P.

    :math:`KL(P\|Q) = -H(P) - E_P \log q` with the Gaussian log-density in closed form,
    :math:`-E_P \log q \approx \frac d2 \log 2\pi + \frac{1}{2N}\sum_i \|x_i\|^2`, and the
    Kozachenko-Leonenko entropy estimate
    :math:`\hat H = \psi(N) - \psi(k) + \log V_d + \frac dN \sum_i \log \rho_k(i)`, where
    :math:`\rho_k(i)` is the distance from x_i to its k-th nearest other point and
    :math:`V_d = \pi^{d/2}/\Gamma(d/2+1)` the volume of the unit ball. Duplicate points (zero
    distances) are floored at 1e-6 times the root-mean-square norm: a large but finite value,
    since a law with atoms is infinitely far from N(0, I). The estimate is consistent but biased
    at finite N (badly so in high d); compare it with its null at the same (N, d).

    References: Q. Wang, S. R. Kulkarni and S. Verdú, *Divergence estimation for multidimensional
    densities via k-nearest-neighbor distances*, IEEE Trans. Inf. Theory 55 (2009);
    F. Pérez-Cruz, *Kullback-Leibler divergence estimation of continuous distributions*, ISIT 2008.

    >>> x = torch.randn(4000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> abs(float(knn_kl_divergence(x))) < 0.05                             # N(0, I) vs itself
    True
    >>> round(float(knn_kl_divergence(2 * x)), 1)     # exact: d (s^2 - 1 - 2 log s) / 2 = 1.61
    1.6
    """
    y = _as_float64(x)
    n = y.shape[-2]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, N - 1], got k = {k} with N = {n}")
    return _gram_statistics(y, k=k, smoothing=None)[3]


class GaussianFitStatistics(NamedTuple):
    """Mardia skewness and kurtosis, Henze-Zirkler and kNN KL of a batch, each of shape ``x.shape[:-2]``."""

    mardia_skewness: Tensor
    mardia_kurtosis: Tensor
    henze_zirkler: Tensor
    knn_kl: Tensor


def gaussian_fit_statistics(
    x: Tensor | np.ndarray, k: int = DEFAULT_NEIGHBORS, beta: float | None = None
) -> GaussianFitStatistics:
    """The four pairwise statistics against N(0, I) from one Gram matrix per batch (O(N^2 d)).

    The same numbers as :func:`mardia_skewness`, :func:`mardia_kurtosis`, :func:`henze_zirkler`
    and :func:`knn_kl_divergence` with their defaults, at the cost of one of them: this is how the
    Monte-Carlo nulls are drawn.

    >>> x = torch.randn(3, 50, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> stats = gaussian_fit_statistics(x)
    >>> stats.henze_zirkler.shape, bool(torch.allclose(stats.henze_zirkler, henze_zirkler(x)))
    (torch.Size([3]), True)
    """
    y = _as_float64(x)
    n, d = y.shape[-2], y.shape[-1]
    if beta is None:
        beta = henze_zirkler_smoothing(n, d)
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, N - 1], got k = {k} with N = {n}")
    return GaussianFitStatistics(*_gram_statistics(y, k=k, smoothing=float(beta)))


def _gram_statistics(y: Tensor, k: int | None, smoothing: float | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(skewness, kurtosis, HZ, kNN KL) for float64 ``(..., N, d)``; HZ / KL are NaN when not asked for."""
    leading = y.shape[:-2]
    n, d = y.shape[-2], y.shape[-1]
    flat = y.reshape(-1, n, d)
    per_chunk = max(1, _MAX_GRAM_ELEMENTS // (n * n))
    results = [_gram_chunk(flat[start:start + per_chunk], k, smoothing) for start in range(0, flat.shape[0], per_chunk)]
    return tuple(torch.cat(parts).reshape(leading) for parts in zip(*results))  # type: ignore[return-value]


def _gram_chunk(y: Tensor, k: int | None, smoothing: float | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    n, d = y.shape[-2], y.shape[-1]
    # Each line below is one pass over an N x N buffer; in-place ops keep it to one buffer (the
    # Monte-Carlo nulls run this a few hundred times).
    pairs = y @ y.transpose(-1, -2)
    squared_norms = torch.diagonal(pairs, dim1=-2, dim2=-1).clone()
    skewness = torch.pow(pairs, 3).mean(dim=(-2, -1))
    kurtosis = squared_norms.square().mean(dim=-1)
    nan = torch.full_like(kurtosis, math.nan)
    if smoothing is None and k is None:
        return skewness, kurtosis, nan, nan
    # Squared distances |y_i|^2 + |y_j|^2 - 2 y_i.y_j; rounding can leave tiny negatives.
    pairs.mul_(-2.0).add_(squared_norms.unsqueeze(-1)).add_(squared_norms.unsqueeze(-2)).clamp_min_(0.0)
    kl = nan
    if k is not None:
        # The k+1 smallest of row i include i itself (distance ~0): its (k+1)-th is the k-th other point.
        kth = torch.topk(pairs, k + 1, dim=-1, largest=False, sorted=True).values[..., k].sqrt()
        scale = squared_norms.mean(dim=-1, keepdim=True).sqrt().clamp_min(1e-300)
        kth = torch.maximum(kth, 1e-6 * scale)
        log_unit_ball = 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1.0)
        entropy = (float(scipy.special.digamma(n) - scipy.special.digamma(k)) + log_unit_ball
                   + d * torch.log(kth).mean(dim=-1))
        cross_entropy = 0.5 * d * math.log(2.0 * math.pi) + 0.5 * squared_norms.mean(dim=-1)
        kl = cross_entropy - entropy
    hz = nan
    if smoothing is not None:
        b2 = smoothing * smoothing
        pair_term = pairs.mul_(-0.5 * b2).exp_().sum(dim=(-2, -1)) / n
        point_term = torch.exp(-0.5 * b2 / (1.0 + b2) * squared_norms).sum(dim=-1)
        hz = pair_term - 2.0 * (1.0 + b2) ** (-0.5 * d) * point_term + n * (1.0 + 2.0 * b2) ** (-0.5 * d)
    return skewness, kurtosis, hz, kl
