r"""Closed-form null law of the all-degree wristband energy "degrees <= 2 on the batch + the rest on blocks".

The energy is :math:`E = E_{\le 2} + E_{>2}`: the spectral energy of the angular degrees <= 2
over all N points (:mod:`~latentshape.wristband.spectral`) plus the residual over blocks
(:mod:`~latentshape.wristband.blocks`), both with the radial kernel
:math:`\sum_{k \le K} a_k \cos(k\pi t)\cos(k\pi t')` and the angular kernel
:math:`k = \sum_s w_s e^{c_s(x-1)}`, :math:`\sum_s w_s = 1`. Under x ~ N(0, I):

- :math:`E_{\le 2}`: :func:`~latentshape.wristband.closed_form_null.spectral_energy_null_moments`.
- :math:`E_{>2}`: each block is a degenerate V-statistic whose kernel has *zero* mean (no degree
  0): with :math:`P = \sum_b n_b^2`, :math:`T = k(1) - \sum_{l \le 2}\lambda_l Z_l(1)`,
  :math:`S = \sum_{l \ge 3}\lambda_l^2 Z_l(1)` and the diagonal :math:`h(i,i) = T\,r(t_i, t_i)`,

  .. math::
      E[E_{>2}] = \frac{N\,T\,E[r(t,t)]}{P},\qquad
      \mathrm{Var}[E_{>2}] = \sum_b \frac{n_b T^2 \mathrm{Var}[r(t,t)] + 2 n_b (n_b - 1)
      (a_0^2 + \sum_{k \ge 1} a_k^2 / 4)\, S}{P^2}.

- Off-diagonal terms of different angular degrees are uncorrelated, so the two parts covary
  only through the diagonal: :math:`\mathrm{Cov} = N\,T_{\le 2}\,T\,\mathrm{Var}[r(t,t)] / (N^2 P)`.
- Third moment (for the log): the parts' "triangle" terms add (mixed triangles vanish by
  orthogonality of the harmonics); blocks contribute :math:`\sum_b 8 n_b(n_b-1)(n_b-2)\sum_j\mu_j^3/P^3`.

Correlations with rad, ang (the spectral degree-<= 2 angular mean) and mom: the residual has no
degree <= 2 part, so it meets them only through its diagonal, which enters
:func:`~latentshape.wristband.pairwise_null.kernel_null_covariances` as the effective trace
:math:`T_{\le 2} + T N^2 / P`.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..calibration import NullStats
from .blocks import block_sizes, low_degree_coefficients
from .harmonics import _log_mercer, _series_length, chordal_coefficients, log_zonal_dimensions
from .closed_form_null import NullMoments, _log_moments, angular_mean_null_moments, spectral_energy_null_moments
from .pairwise_null import kernel_null_covariances
from .mercer import radial_coefficients, zonal_at_one

__all__ = [
    "residual_kernel_sums",
    "allorder_energy_null_moments",
    "allorder_null_stats",
    "energy_cross_covariance",
    "two_scale_null_stats",
]


@functools.lru_cache(maxsize=256)
def residual_kernel_sums(d: int, scales: tuple[float, ...], weights: tuple[float, ...]) -> tuple[float, float, float]:
    r"""(:math:`T`, :math:`S`, :math:`\sum_{l \ge 3}\lambda_l^3 Z_l(1)`) of the residual of :math:`\sum_s w_s e^{c_s(x-1)}`.

    :math:`E[k^2] = \sum_{s,s'} w_s w_{s'} \lambda_0(c_s + c_{s'})` in closed form.

    >>> trace, square, cube = residual_kernel_sums(3, (4.0 / 3.0,), (1.0,))
    >>> round(trace, 4)   # 6% of the default kernel's trace is above degree 2 on S^2
    0.056
    """
    low = low_degree_coefficients(d, scales, weights)
    dims = [zonal_at_one(d, level) for level in range(3)]
    trace = sum(weights) - sum(lam * m for lam, m in zip(low, dims))
    full_square = sum(w * v * chordal_coefficients(d, 0, c + e)[0] for c, w in zip(scales, weights) for e, v in zip(scales, weights))
    square = full_square - sum(lam * lam * m for lam, m in zip(low, dims))
    top = max(_series_length(d, float(c), "chordal") for c in scales)
    lam = sum(w * np.exp(_log_mercer(d, top, float(c), "chordal")) for c, w in zip(scales, weights))
    log_dim = log_zonal_dimensions(d, top)[3:]
    with np.errstate(divide="ignore"):
        cube = float(np.exp(3.0 * np.log(lam[3:]) + log_dim).sum())
    return max(trace, 0.0), max(square, 0.0), cube


def allorder_energy_null_moments(
    n: int, d: int, radial: tuple[float, ...], scales: tuple[float, ...], weights: tuple[float, ...], block: int
) -> NullMoments:
    """Null mean, variance and leading third moment of E = E_{<=2} (spectral) + E_{>2} (blocks of <= ``block``).

    >>> from latentshape.wristband.mercer import radial_coefficients
    >>> m = allorder_energy_null_moments(1024, 16, radial_coefficients(8.0, 6), (4.0 / 3.0, 8.0), (0.5, 0.5), 1024)
    >>> round(m.mean, 4)
    0.0891
    """
    if n < 2:
        raise ValueError(f"need n >= 2, got {n}")
    low = low_degree_coefficients(d, scales, weights)
    head = spectral_energy_null_moments(n, d, radial, low)
    trace, square, cube = residual_kernel_sums(int(d), tuple(scales), tuple(weights))
    a0, higher = radial[0], radial[1:]
    diagonal_mean, diagonal_variance = a0 + sum(higher) / 2.0, sum(a * a for a in higher) / 8.0
    sizes = np.array(block_sizes(n, block), dtype=np.float64)
    pairs = float((sizes * sizes).sum())
    off_square = (a0 * a0 + sum(a * a for a in higher) / 4.0) * square
    mean = n * trace * diagonal_mean / pairs
    variance = float((sizes * trace**2 * diagonal_variance + 2.0 * sizes * (sizes - 1) * off_square).sum()) / pairs**2
    head_trace = sum(lam * zonal_at_one(d, level) for level, lam in enumerate(low))
    covariance = trace * head_trace * diagonal_variance / (n * pairs)
    radial_cubes = a0**3 + sum((a / 2.0) ** 3 for a in higher)
    third = float((8.0 * sizes * (sizes - 1) * (sizes - 2)).sum()) * radial_cubes * cube / pairs**3
    return NullMoments(head.mean + mean, head.variance + variance + 2.0 * covariance, head.third + third)


def allorder_null_stats(
    n: int,
    d: int,
    beta: float = 8.0,
    scales: tuple[float, ...] = (4.0 / 3.0, 8.0),
    weights: tuple[float, ...] = (0.5, 0.5),
    k_modes: int = 6,
    block: int = 1024,
    moment: str = "w2",
) -> NullStats:
    r"""Closed-form null mean, sd and correlation of the raw ``(rep, rad, ang, mom)`` of the all-degree
    energy (rep = log(E)/beta, E = E_{<=2} + E_{>2}; ang from the degree-<= 2 angular mean), at (N, d).

    Raises ``ValueError`` where mom has no valid closed form.

    >>> stats = allorder_null_stats(4096, 64, block=128)
    >>> stats.std.shape, bool((stats.std > 0).all())
    (torch.Size([4]), True)
    """
    from ..gaussian.moment_penalty_null import moment_null_moments
    from .radial import radial_null_moments

    radial = radial_coefficients(beta, k_modes)
    low = low_degree_coefficients(d, scales, weights)
    energy = allorder_energy_null_moments(n, d, radial, scales, weights, block)
    rep = _log_moments(energy)
    angle = angular_mean_null_moments(n, d, low)
    ang = _log_moments(angle) if angle.variance > 0 else NullMoments(math.log(angle.mean), 0.0)
    rad = NullMoments(*radial_null_moments(n))
    mom = NullMoments(*moment_null_moments(moment, n, d))
    trace, _, _ = residual_kernel_sums(int(d), tuple(scales), tuple(weights))
    sizes = block_sizes(n, block)
    head_trace = sum(lam * zonal_at_one(d, level) for level, lam in enumerate(low))
    effective_trace = head_trace + trace * n * n / sum(s * s for s in sizes)
    spread = sum(low[level] ** 2 * zonal_at_one(d, level) for level in (1, 2))
    covariances = kernel_null_covariances(n, d, radial, low, effective_trace, spread, moment, mom.variance)
    slope = {"E": 1.0 / (beta * energy.mean), "A": 1.0 / (beta * angle.mean), "rad": 1.0, "mom": 1.0}
    sd = {"E": rep.std / beta, "A": ang.std / beta, "rad": rad.std, "mom": mom.std}
    mean = {"E": rep.mean / beta, "rad": rad.mean, "A": ang.mean / beta, "mom": mom.mean}
    return NullStats.from_covariances(("E", "rad", "A", "mom"), mean, sd, slope, covariances)


def energy_cross_covariance(
    n: int, d: int, radial: tuple[float, ...], low_a: tuple[float, ...], low_b: tuple[float, ...],
    residual_trace_b: float = 0.0, pairs_b: float | None = None,
) -> float:
    r"""Null covariance of two energies with the same radial kernel: :math:`E_a` (degrees <= 2 of kernel a, all
    pairs) and :math:`E_b = E_{b, \le 2} + E_{b, >2}` (the residual, of trace ``residual_trace_b``, on blocks
    with :math:`\sum_b n_b^2` = ``pairs_b``).

    .. math::
        N^4\,\mathrm{Cov} = N T_a T_b v + 2N(N-1)\Big[(a_0^2 + \sum_{k \ge 1} a_k^2/4)\sum_{l \le 2}
        \lambda^a_l \lambda^b_l Z_l(1) - a_0^2 \lambda^a_0 \lambda^b_0\Big] \;(+\; N^3 T_a T^{>2}_b v / P),

    :math:`v = \sum_{k \ge 1} a_k^2 / 8` the variance of :math:`r(t, t)`, T the degree-<= 2 traces; the
    residual meets :math:`E_a` only on the diagonal (different degrees are orthogonal).

    >>> from latentshape.wristband.mercer import radial_coefficients
    >>> low = low_degree_coefficients(8, (4.0 / 3.0,), (1.0,))
    >>> m = spectral_energy_null_moments(256, 8, radial_coefficients(8.0, 6), low)
    >>> bool(abs(energy_cross_covariance(256, 8, radial_coefficients(8.0, 6), low, low) / m.variance - 1) < 1e-12)
    True
    """
    a0, higher = radial[0], radial[1:]
    v = sum(a * a for a in higher) / 8.0
    dims = [zonal_at_one(d, level) for level in range(3)]
    trace_a = sum(lam * m for lam, m in zip(low_a, dims))
    trace_b = sum(lam * m for lam, m in zip(low_b, dims))
    product = sum(x * y * m for x, y, m in zip(low_a, low_b, dims))
    off = (a0 * a0 + sum(a * a for a in higher) / 4.0) * product - a0 * a0 * low_a[0] * low_b[0]
    covariance = (n * trace_a * trace_b * v + 2.0 * n * (n - 1) * off) / n**4
    if residual_trace_b and pairs_b:
        covariance += trace_a * residual_trace_b * v / (n * pairs_b)
    return covariance


def two_scale_null_stats(
    n: int,
    d: int,
    beta: float = 8.0,
    broad: float = 4.0 / 3.0,
    sharp: float = 8.0,
    k_modes: int = 6,
    block: int = 1024,
    moment: str = "w2",
) -> NullStats:
    r"""Closed-form null of ``(rep, rep_sharp, rad, ang, mom)``: rep = log(E_broad)/beta (the spectral degree-<= 2
    energy of :math:`e^{c_b(x-1)}`), rep_sharp = log(E_sharp)/beta (the all-degree energy of
    :math:`e^{c_s(x-1)}`, residual on blocks of <= ``block``), ang from the broad kernel.

    >>> stats = two_scale_null_stats(1024, 16)
    >>> round(float(stats.corr[0, 1]), 2)   # rep with rep_sharp
    0.3
    """
    from ..gaussian.moment_penalty_null import moment_null_moments
    from .closed_form_null import spectral_null_covariances
    from .radial import radial_null_moments

    radial = radial_coefficients(beta, k_modes)
    low_a = low_degree_coefficients(d, (broad,), (1.0,))
    low_b = low_degree_coefficients(d, (sharp,), (1.0,))
    broad_energy = spectral_energy_null_moments(n, d, radial, low_a)
    sharp_energy = allorder_energy_null_moments(n, d, radial, (sharp,), (1.0,), block)
    angle = angular_mean_null_moments(n, d, low_a)
    logs = {"E": _log_moments(broad_energy), "S": _log_moments(sharp_energy), "A": _log_moments(angle)}
    rad, mom = NullMoments(*radial_null_moments(n)), NullMoments(*moment_null_moments(moment, n, d))
    sizes = block_sizes(n, block)
    pairs = float(sum(s * s for s in sizes))
    residual_trace = residual_kernel_sums(int(d), (sharp,), (1.0,))[0]
    dims = [zonal_at_one(d, level) for level in range(3)]
    covariances = dict(spectral_null_covariances(n, d, radial, low_a, moment, mom.variance))
    effective_trace = sum(lam * m for lam, m in zip(low_b, dims)) + residual_trace * n * n / pairs
    cross_spread = sum(low_a[level] * low_b[level] * dims[level] for level in (1, 2))
    sharp_table = kernel_null_covariances(n, d, radial, low_b, effective_trace, cross_spread, moment, mom.variance)
    for other in ("A", "rad", "mom"):
        covariances[("S", other)] = sharp_table[("E", other)]
    covariances[("E", "S")] = energy_cross_covariance(n, d, radial, low_a, low_b, residual_trace, pairs)
    means = {"E": broad_energy.mean, "S": sharp_energy.mean, "A": angle.mean}
    slope = {k: 1.0 / (beta * m) for k, m in means.items()} | {"rad": 1.0, "mom": 1.0}
    sd = {k: logs[k].std / beta for k in ("E", "S", "A")} | {"rad": rad.std, "mom": mom.std}
    mean = {k: logs[k].mean / beta for k in ("E", "S", "A")} | {"rad": rad.mean, "mom": mom.mean}
    return NullStats.from_covariances(("E", "S", "rad", "A", "mom"), mean, sd, slope, covariances)
