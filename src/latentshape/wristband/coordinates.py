r"""Per-coordinate term: a Neyman smooth statistic of every coordinate against N(0, 1), squared and averaged.

Each coordinate is uniformized, :math:`t_{ij} = \Phi(x_{ij})` (uniform on [0, 1] under
x ~ N(0, I)), and scored by Neyman's smooth statistic on the first K cosine components,

.. math::
    Q_j = 2N \sum_{k=1}^{K} \Big(\frac1N \sum_i \cos(k\pi t_{ij})\Big)^2 \;\approx\; \chi^2_K
    \text{ under the null}, \qquad
    \mathrm{coord} = \frac1d \sum_{j=1}^{d} Q_j^2 .

Squaring before averaging keeps one non-Gaussian coordinate visible among many Gaussian ones (a
mean of :math:`Q_j` would dilute it by :math:`\sqrt d`); it sees one bimodal, uniform or skewed
coordinate, the X's and the cube's flat marginals, heavy tails. Cost O(N d K) elementwise (the
cosines by the Chebyshev recurrence from one erf and one sine per entry), on blocks of rows: memory O(block).

Null law (exact, every N): the coordinates are independent, so the mean is :math:`E[Q^2]` and
the variance :math:`(E[Q^4] - E[Q^2]^2)/d`. Both moments are polynomials in 1/N: expanding
:math:`Q^m` as a sum over 2m point indices, only set partitions of the indices without
singletons survive (:math:`E\cos(k\pi t) = 0`), each weighted by the falling factorial
:math:`(N)_{|\pi|}` and by products of :math:`E[\prod_p \cos(k_p \pi t)] = 2^{-n}\#\{\epsilon \in
\{\pm1\}^n : \sum_p \epsilon_p k_p = 0\}` (:func:`smooth_moment_coefficients`; K = 4 gives
:math:`E[Q^2] = 24 - 6/N`).

References: J. Neyman, "Smooth test" for goodness of fit, Skand. Aktuarietidskr. 20 (1937);
T. Ledwina, Data-driven version of Neyman's smooth test of fit, JASA 89 (1994).
"""

from __future__ import annotations

import functools
import itertools
import math

import torch
from torch import Tensor

__all__ = ["coordinate_smooth_statistic", "smooth_moment_coefficients", "coordinate_null_moments"]

DEFAULT_MODES = 4


def coordinate_smooth_statistic(x: Tensor, modes: int = DEFAULT_MODES) -> Tensor:
    r""":math:`\frac1d\sum_j Q_j^2` of ``x`` ``(..., N, d)``; shape ``x.shape[:-2]``, float64.

    Own backward pass: with :math:`\cos(k\theta) = T_k(\cos\theta)` (Chebyshev),
    :math:`\partial/\partial x_{ij} = \sum_k \frac{8 Q_j c_{jk}}{d}\,T_k'(\cos\theta_{ij})\,(-\pi\sin\theta_{ij})\,\varphi(x_{ij})`,
    :math:`\theta = \pi t`, a cubic in :math:`\cos\theta_{ij}` per coordinate (Horner), recomputed from x
    block by block: the term keeps no N x d tensor besides x itself.

    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(2048, 16, generator=g)
    >>> round(float(coordinate_smooth_statistic(x)), 0)   # ~ E[Q^2] = 24 under the null
    22.0
    >>> x[:, 3] = (torch.rand(2048, generator=g) * 2 - 1) * 3 ** 0.5   # one uniform coordinate
    >>> bool(coordinate_smooth_statistic(x) > 200)
    True
    """
    if modes < 1:
        raise ValueError(f"modes must be >= 1, got {modes}")
    wide = x if x.dtype in (torch.float32, torch.float64) else x.float()
    return _SmoothStatistic.apply(wide, int(modes))


# T_k(c) = cos(k theta) as polynomials in c = cos(theta) (Chebyshev), lowest power first, k = 1..4
_CHEBYSHEV = ((0.0, 1.0), (-1.0, 0.0, 2.0), (0.0, -3.0, 0.0, 4.0), (1.0, 0.0, -8.0, 0.0, 8.0))


def _angles(x: Tensor) -> tuple[Tensor, Tensor]:
    r"""(cos theta, sin theta) with :math:`\theta = \pi\Phi(x)`: with :math:`e = \mathrm{erf}(x/\sqrt2)`,
    :math:`\theta = \frac\pi2(1 + e)`, so cos theta = -sin(pi e / 2) and sin theta = cos(pi e / 2)
    (one erf instead of the slower ndtr; sin theta >= 0)."""
    half_angle = torch.erf(x * (1.0 / math.sqrt(2.0))).mul_(0.5 * math.pi)
    return torch.sin(half_angle).neg_(), torch.cos(half_angle)


def _cosine_sums(first: Tensor, modes: int) -> Tensor:
    """sum_i cos(k theta_ij), k = 1..K, as (..., d, K) float64, from ``first`` = cos(theta) (..., rows, d).

    cos(k theta) = 2 cos(theta) cos((k-1) theta) - cos((k-2) theta) (Chebyshev): one transcendental pass.
    The terms are centred under the null, so their (block) sums keep float32 precision.
    """
    previous, current = None, first
    sums = [current.sum(dim=-2)]
    for _ in range(2, modes + 1):
        following = (first * current).mul_(2.0)
        following = following.sub_(1.0) if previous is None else following.sub_(previous)  # T_0 = 1
        previous, current = current, following
        sums.append(current.sum(dim=-2))
    return torch.stack(sums, dim=-1).to(torch.float64)


def _chebyshev_derivatives(modes: int, like: Tensor) -> Tensor:
    """(K, K) matrix D with T_k'(c) = sum_p D[k-1, p] c^p (p = 0..K-1), T_k the Chebyshev polynomials."""
    coefficients, previous = [[0.0, 1.0]], [1.0]
    for _ in range(2, modes + 1):  # T_k = 2 c T_{k-1} - T_{k-2}
        current = coefficients[-1]
        step = [0.0] + [2.0 * a for a in current]
        for i, a in enumerate(previous):
            step[i] -= a
        previous, coefficients = current, coefficients + [step]
    matrix = torch.zeros(modes, modes, dtype=like.dtype, device=like.device)
    for k, row in enumerate(coefficients):
        for p, a in enumerate(row[1:], start=1):
            matrix[k, p - 1] = p * a
    return matrix


_BLOCK_ELEMENTS = 1 << 20  # rows per block * d: the elementwise work runs on blocks, O(block) memory


def _row_blocks(x: Tensor) -> list[slice]:
    rows = max(1, _BLOCK_ELEMENTS // max(1, x.shape[-1]))
    # a loop over the block count, not range(0, n, rows): under torch.compile a guard on the count, not on n
    return [slice(i * rows, (i + 1) * rows) for i in range(-(-x.shape[-2] // rows))]


def _angle_slope(sine: Tensor, block: Tensor) -> Tensor:
    """d cos(theta) / dx = -pi sin(theta) phi(x), written over ``sine``."""
    return sine.mul_(block.square().mul_(-0.5).exp_()).mul_(-math.pi / math.sqrt(2.0 * math.pi))


class _SmoothStatistic(torch.autograd.Function):
    """Forward and backward on blocks of rows. A batch that fits in one block keeps cos(theta) and its
    slope for the backward (two tensors of x's size); a larger one keeps only x and recomputes them,
    block by block (a few elementwise passes), so that memory stays O(block) beyond x."""

    @staticmethod
    def forward(ctx, x, modes):  # type: ignore[override]
        n = x.shape[-2]
        sums = x.new_zeros(x.shape[:-2] + (x.shape[-1], modes), dtype=torch.float64)
        blocks = _row_blocks(x)
        for rows in blocks:
            first, sine = _angles(x[..., rows, :])
            sums += _cosine_sums(first, modes)
        means = sums / n
        q = 2.0 * n * (means * means).sum(dim=-1)  # (..., d)
        if len(blocks) == 1:
            ctx.save_for_backward(x, first, _angle_slope(sine, x))
        else:
            ctx.save_for_backward(x)
        ctx.modes, ctx.means, ctx.q = modes, means, q
        return (q * q).mean(dim=-1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):  # type: ignore[override]
        x, *kept = ctx.saved_tensors
        modes, d = ctx.modes, x.shape[-1]
        # dL/dc_jk = grad * 8 N Q_j c_jk / d and dc_jk/dcos(theta_ij) = T_k'(cos theta_ij) / N: per
        # coordinate a polynomial of degree K - 1 in cos(theta_ij), evaluated by Horner
        weight = grad[..., None, None] * 8.0 * ctx.q[..., None] * ctx.means / d  # (..., d, K)
        polynomial = (weight @ _chebyshev_derivatives(modes, weight)).to(x.dtype)  # (..., d, K): c^0..c^(K-1)
        result = torch.empty_like(x)
        for rows in _row_blocks(x):
            if kept:
                first, slope = kept
            else:
                first, sine = _angles(x[..., rows, :])
                slope = _angle_slope(sine, x[..., rows, :])
            if modes == 1:
                total = polynomial[..., None, :, 0].expand_as(first).clone()
            else:
                total = torch.addcmul(polynomial[..., None, :, modes - 2], first, polynomial[..., None, :, modes - 1])
            for p in range(modes - 3, -1, -1):
                total.mul_(first).add_(polynomial[..., None, :, p])
            result[..., rows, :] = total.mul_(slope)
        return result, None


def _set_partitions(items: list[int]):
    """Set partitions of ``items`` with no singleton block (as lists of blocks)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for size in range(1, len(rest) + 1):  # the block of `first` has >= 2 elements
        for others in itertools.combinations(rest, size):
            remaining = [r for r in rest if r not in others]
            for tail in _set_partitions(remaining):
                yield [[first, *others]] + tail


@functools.lru_cache(maxsize=None)
def _cosine_product_mean(frequencies: tuple[int, ...]) -> float:
    """E[prod_p cos(k_p pi t)], t ~ U[0, 1]: the share of sign patterns with sum_p eps_p k_p = 0."""
    hits = sum(1 for signs in itertools.product((1, -1), repeat=len(frequencies))
               if sum(s * k for s, k in zip(signs, frequencies)) == 0)
    return hits / 2 ** len(frequencies)


# smooth_moment_coefficients(p, 4) for p = 2, 4 (exact dyadic rationals; the enumeration takes ~1 s)
_TABULATED = {(2, 4): (0.0, 4.5, 6.0), (4, 4): (0.0, 33.65625, 565.125, 645.0, 120.0)}


@functools.lru_cache(maxsize=16)
def smooth_moment_coefficients(power: int, modes: int = DEFAULT_MODES, tabulated: bool = True) -> tuple[float, ...]:
    r"""Coefficients :math:`C_m` with :math:`E[Q^{p}] = 2^p N^{-p} \sum_m C_m (N)_m`, m = 0..p (index m).

    >>> smooth_moment_coefficients(1)   # E[Q] = 2 (N)_1 K / 2 / N = K
    (0.0, 2.0)
    """
    if tabulated and (power, modes) in _TABULATED:
        return _TABULATED[(power, modes)]
    positions = list(range(2 * power))
    coefficients = [0.0] * (power + 1)
    partitions = list(_set_partitions(positions))
    for ks in itertools.product(range(1, modes + 1), repeat=power):
        frequency = [ks[p // 2] for p in positions]  # positions 2r, 2r + 1 carry k_r
        for partition in partitions:
            value = 1.0
            for block in partition:
                value *= _cosine_product_mean(tuple(sorted(frequency[p] for p in block)))
                if value == 0.0:
                    break
            coefficients[len(partition)] += value
    return tuple(coefficients)


def _moment(power: int, n: int, modes: int) -> float:
    total = 0.0
    for m, c in enumerate(smooth_moment_coefficients(power, modes)):
        falling = math.prod(range(n - m + 1, n + 1)) if m <= n else 0
        total += c * falling
    return total * (2.0 / n) ** power


def coordinate_null_moments(n: int, d: int, modes: int = DEFAULT_MODES) -> tuple[float, float]:
    """Exact null mean and variance of :func:`coordinate_smooth_statistic` at batch size ``n`` in dimension ``d``.

    >>> mean, variance = coordinate_null_moments(10**9, 1)   # N -> infinity: chi2_4 moments
    >>> round(mean, 4), round(variance, 1)                   # E[Q^2] = 24, Var[Q^2] = 1920 - 576
    (24.0, 1344.0)
    """
    if n < 1 or d < 1:
        raise ValueError(f"need n >= 1 and d >= 1, got n={n}, d={d}")
    second, fourth = _moment(2, n, modes), _moment(4, n, modes)
    return second, (fourth - second * second) / d
