r"""Spherical harmonics of every degree for the wristband's angular kernel.

On :math:`S^{d-1}` (normalized surface measure) a zonal kernel expands as
:math:`k(u \cdot u') = \sum_{l \ge 0} \lambda_l Z_l(u \cdot u')`, where :math:`Z_l` is the zonal
harmonic of degree l, :math:`Z_l(1) = \dim \mathcal{H}_l` (:func:`zonal_dimension`) and
:math:`Z_l(x) = Z_l(1) P_l(x)` with :math:`P_l` the Legendre polynomial of the sphere, normalized
to :math:`P_l(1) = 1` (:func:`legendre_table`; Gegenbauer :math:`C_l^{(d-2)/2}` up to scale).

- Chordal kernel :math:`e^{c(x - 1)}`: :math:`\lambda_l = e^{-c}(c/2)^l
  \frac{\Gamma(\nu+1)}{\Gamma(\nu+l+1)}\,{}_0F_1(;\nu+l+1;c^2/4)`, :math:`\nu = (d-2)/2`
  (the modified-Bessel form :math:`\Gamma(\nu+1)(2/c)^\nu e^{-c} I_{\nu+l}(c)`, in log-space).
- Any zonal kernel, e.g. the geodesic :math:`e^{-s\theta^2}`: Funk-Hecke,
  :math:`\lambda_l = E[k(X) P_l(X)]`, X = u.u' of two independent uniform directions, whose
  density is proportional to :math:`(1 - x^2)^{(d-3)/2}`.

The kernel's trace :math:`k(1) = \sum_l \lambda_l Z_l(1)` splits over degrees;
:func:`trace_share` is the part kept up to degree L, and :func:`kernel_power_sums` the sums
:math:`\sum_l \lambda_l^p Z_l(1)` (p = 2: :math:`E[k(X)^2]`; p = 3: the "triangle"
:math:`E[k(u_1 \cdot u_2) k(u_2 \cdot u_3) k(u_3 \cdot u_1)]`) that the null law of the exact
pairwise statistic needs.

Reference: K. Atkinson and W. Han, *Spherical Harmonics and Approximations on the Unit Sphere*
(Springer, 2012), ch. 2 (dimensions, addition theorem, Funk-Hecke, the three-term recurrence).

>>> [zonal_dimension(3, l) for l in range(4)]
[1.0, 3.0, 5.0, 7.0]
>>> lam = chordal_coefficients(3, 40, 4.0 / 3.0)
>>> round(sum(v * zonal_dimension(3, l) for l, v in enumerate(lam)), 12)   # k(1) = 1
1.0
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import numpy as np
from scipy import special

__all__ = [
    "zonal_dimension",
    "log_zonal_dimension",
    "log_zonal_dimensions",
    "legendre_table",
    "chordal_coefficients",
    "funk_hecke_coefficients",
    "mercer_coefficients",
    "trace_share",
    "degree_for_share",
    "kernel_power_sums",
]

_TAIL = 1e-18  # relative size of the last kept term of a Mercer series


def zonal_dimension(d: int, level: int) -> float:
    r""":math:`Z_l(1)`: the dimension of the degree-l harmonics on :math:`S^{d-1}`, any l >= 0 and d >= 1.

    :math:`\frac{2l + d - 2}{l + d - 2}\binom{l + d - 2}{l}` for d >= 3; 2 for d = 2, l >= 1;
    on :math:`S^0 = \{-1, 1\}` only degrees 0 and 1 exist. Float; inf where it overflows (use
    :func:`log_zonal_dimension` there).

    >>> zonal_dimension(2, 5), zonal_dimension(16, 2), zonal_dimension(1, 2)
    (2.0, 135.0, 0.0)
    """
    log_value = log_zonal_dimension(d, level)
    return math.exp(log_value) if log_value < 709.0 else math.inf


def log_zonal_dimension(d: int, level: int) -> float:
    """Natural log of :func:`zonal_dimension` (-inf where the dimension is 0).

    >>> round(log_zonal_dimension(1024, 400), 1)   # ~ 10^365: beyond float range
    841.4
    """
    if d < 1 or level < 0:
        raise ValueError(f"need d >= 1 and level >= 0, got d={d}, level={level}")
    if level == 0:
        return 0.0
    if d == 1:
        return 0.0 if level == 1 else -math.inf
    if d == 2:
        return math.log(2.0)
    log_binomial = math.lgamma(level + d - 1) - math.lgamma(level + 1) - math.lgamma(d - 1)
    return math.log((2 * level + d - 2) / (level + d - 2)) + log_binomial


def log_zonal_dimensions(d: int, max_level: int) -> np.ndarray:
    """:func:`log_zonal_dimension` for l = 0..``max_level`` (an array, cached per (d, length)).

    >>> log_zonal_dimensions(16, 5).tolist() == [log_zonal_dimension(16, l) for l in range(6)]
    True
    """
    if max_level < 0:
        raise ValueError(f"need max_level >= 0, got {max_level}")
    return np.array(_log_zonal_series(int(d), int(max_level) + 1))


@functools.lru_cache(maxsize=512)
def _log_zonal_series(d: int, length: int) -> tuple[float, ...]:
    return tuple(log_zonal_dimension(d, level) for level in range(length))


def legendre_table(max_level: int, d: int, x: np.ndarray) -> np.ndarray:
    r"""Legendre polynomials of :math:`S^{d-1}`, :math:`P_l(x) = Z_l(x)/Z_l(1)`, for l = 0..L: shape (L+1, *x.shape).

    Three-term recurrence :math:`(l + d - 2) P_{l+1} = (2l + d - 2)\, x P_l - l\, P_{l-1}`, stable
    for every d (the unnormalized Gegenbauer values overflow at large d); d = 2 gives Chebyshev
    :math:`T_l`, d = 3 the classical Legendre polynomials. d >= 2.

    >>> legendre_table(3, 3, np.array([0.5])).ravel().tolist()   # 1, x, (3x^2-1)/2, (5x^3-3x)/2
    [1.0, 0.5, -0.125, -0.4375]
    """
    if d < 2:
        raise ValueError(f"legendre_table needs d >= 2, got {d}")
    x = np.asarray(x, dtype=np.float64)
    table = np.empty((max_level + 1,) + x.shape)
    table[0] = 1.0
    if max_level >= 1:
        table[1] = x
    for level in range(1, max_level):
        table[level + 1] = ((2 * level + d - 2) * x * table[level] - level * table[level - 1]) / (level + d - 2)
    return table


def chordal_coefficients(d: int, max_level: int, c: float) -> tuple[float, ...]:
    r"""Mercer coefficients :math:`\lambda_0..\lambda_L` of :math:`e^{c(x-1)}` on :math:`S^{d-1}` (exact, log-space).

    >>> lam = chordal_coefficients(2, 3, 1.0)   # d = 2: e^{-c} I_l(c)
    >>> bool(abs(lam[3] - math.exp(-1.0) * float(special.iv(3, 1.0))) < 1e-15)
    True
    """
    return tuple(math.exp(v) for v in _chordal_log_coefficients(d, max_level, c))


def _chordal_log_coefficients(d: int, max_level: int, c: float) -> tuple[float, ...]:
    if not c > 0:
        raise ValueError(f"the chordal scale c must be positive, got {c!r}")
    length = int(max_level) + 1
    # one vectorized evaluation serves every shorter request at (d, c): the terms are elementwise
    return _chordal_log_series(int(d), float(c), max(_SHORTEST_SERIES, 1 << (length - 1).bit_length()))[:length]


_SHORTEST_SERIES = 128  # one 128-term evaluation (~0.1 ms) serves the many short requests of a new d


@functools.lru_cache(maxsize=512)
def _chordal_log_series(d: int, c: float, length: int) -> tuple[float, ...]:
    """log lambda_l of e^{c(x-1)} for l < ``length``."""
    max_level = length - 1
    if d == 1:  # S^0: k(1) = 1, k(-1) = e^{-2c}
        head = [math.log(0.5 * (1 + math.exp(-2 * c))), math.log(-0.5 * math.expm1(-2 * c))]
        return tuple((head + [-math.inf] * max_level)[: max_level + 1])
    nu = (d - 2) / 2.0
    level = np.arange(max_level + 1, dtype=np.float64)
    # 0F1(; b; z) = Gamma(b) z^{(1-b)/2} I_{b-1}(2 sqrt z); ive keeps the exponential outside
    b, z = nu + level + 1.0, c * c / 4.0
    with np.errstate(divide="ignore"):
        direct = np.log(special.hyp0f1(b, z))
        bessel = special.gammaln(b) + (1.0 - b) / 2.0 * math.log(z) + np.log(special.ive(b - 1.0, c)) + c
    log_series = np.where(z < 50.0 * b, direct, bessel)
    out = -c + level * math.log(c / 2.0) + special.gammaln(nu + 1.0) - special.gammaln(b) + log_series
    return tuple(float(v) for v in out)


def _log_mercer(d: int, max_level: int, c: float, angular: str) -> np.ndarray:
    """log lambda_l (chordal: exact in log-space; otherwise the log of the Funk-Hecke values)."""
    if angular == "chordal":
        return np.array(_chordal_log_coefficients(d, max_level, c))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.abs(np.array(mercer_coefficients(d, max_level, c, angular))))


def _weighted_parts(d: int, max_level: int, c: float, angular: str, power: int) -> np.ndarray:
    """lambda_l^power Z_l(1) for l = 0..L, without overflow of Z_l(1) or underflow of lambda_l."""
    log_lam = _log_mercer(d, max_level, c, angular)
    log_dim = log_zonal_dimensions(d, max_level)
    with np.errstate(invalid="ignore"):
        parts = np.exp(power * log_lam + log_dim)
    parts = np.nan_to_num(parts, nan=0.0)
    if angular != "chordal" and power % 2 == 1:  # Funk-Hecke values may be (slightly) negative
        parts *= np.sign(np.array(mercer_coefficients(d, max_level, c, angular)))
    return parts


def _sphere_quadrature(d: int, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Nodes x and weights (summing to 1) for E[f(X)], X = u.u' = cos(theta), theta with density ~ sin^(d-2).

    Gauss-Legendre in theta, not in x: kernels of the angle (the geodesic one) are smooth in theta
    but not in x at the antipode. For d > 64 the law of theta is concentrated near pi/2 (sd
    ~ 1/sqrt(d)) and the nodes cover pi/2 +- 24/sqrt(d) only (the rest weighs < 1e-100).
    """
    half = min(math.pi / 2.0, 24.0 / math.sqrt(d)) if d > 64 else math.pi / 2.0
    t, w = special.roots_legendre(nodes)
    theta = math.pi / 2.0 + half * t
    log_weight = np.log(w) + (d - 2) * np.log(np.sin(theta)) if d > 2 else np.log(w)
    weight = np.exp(log_weight - log_weight.max())
    return np.cos(theta), weight / weight.sum()


def funk_hecke_coefficients(d: int, max_level: int, kernel: Callable[[np.ndarray], np.ndarray],
                            nodes: int | None = None) -> tuple[float, ...]:
    r"""Mercer coefficients :math:`\lambda_l = E[k(X) P_l(X)]` of any zonal kernel, by Gauss-Jacobi quadrature.

    Gauss-Legendre in the angle (``nodes`` of them, default max(200, 2L + 100)): smooth kernels of
    x or of the angle converge exponentially.

    >>> lam = funk_hecke_coefficients(3, 2, lambda x: x * x)   # x^2 = 1/3 + (2/15) Z_2 on S^2
    >>> [round(v, 12) + 0.0 for v in lam]
    [0.333333333333, 0.0, 0.133333333333]
    """
    if d == 1:
        plus, minus = float(kernel(np.array(1.0))), float(kernel(np.array(-1.0)))
        return tuple(([0.5 * (plus + minus), 0.5 * (plus - minus)] + [0.0] * max_level)[: max_level + 1])
    x, w = _sphere_quadrature(d, nodes or max(200, 2 * max_level + 100))
    values = w * kernel(x)
    return tuple(float(v) for v in legendre_table(max_level, d, x) @ values)


@functools.lru_cache(maxsize=512)
def mercer_coefficients(d: int, max_level: int, c: float, angular: str = "chordal") -> tuple[float, ...]:
    r"""Angular Mercer coefficients up to degree L for the wristband's kernels, cached.

    ``c`` is :math:`2\beta\alpha^2`: chordal :math:`e^{c(x-1)}`, geodesic :math:`e^{-(c/2)\theta^2}`.

    >>> lam = mercer_coefficients(16, 6, 4.0)
    >>> lam == chordal_coefficients(16, 6, 4.0)
    True
    """
    if angular == "chordal":
        return chordal_coefficients(d, max_level, c)
    if angular == "geodesic":
        scale = c / 2.0
        return funk_hecke_coefficients(d, max_level, lambda x: np.exp(-scale * np.arccos(np.clip(x, -1, 1)) ** 2))
    raise ValueError(f"angular must be 'chordal' or 'geodesic', got {angular!r}")


@functools.lru_cache(maxsize=512)
def _series_length(d: int, c: float, angular: str) -> int:
    """A degree beyond which the Mercer series is negligible (chordal: lambda_l Z_l(1) falls like (c/2)^l / l!)."""
    if angular != "chordal":
        return 120
    level = 32
    while level < 4096:
        parts = _weighted_parts(d, 2 * level, c, angular, 1)  # its prefixes are the shorter series
        for candidate in (level, 2 * level):
            if parts[candidate] < _TAIL * parts[: candidate + 1].sum():
                return candidate
        level *= 4
    return 4096


def trace_share(d: int, max_level: int, c: float, angular: str = "chordal") -> tuple[float, ...]:
    r"""Cumulative share :math:`\sum_{l \le L} \lambda_l Z_l(1) / k(1)` for L = 0..``max_level``.

    >>> [round(s, 2) for s in trace_share(2, 2, 4.0 / 3.0)]   # the default kernel in 2-D
    [0.39, 0.83, 0.97]
    """
    parts = _weighted_parts(d, max(max_level, _series_length(d, c, angular)), c, angular, 1)
    return tuple(float(s) for s in np.cumsum(parts)[: max_level + 1] / parts.sum())


def degree_for_share(d: int, c: float, share: float, angular: str = "chordal") -> int:
    """Smallest degree L whose :func:`trace_share` reaches ``share``.

    >>> degree_for_share(3, 4.0 / 3.0, 0.99), degree_for_share(3, 8.0, 0.99)
    (4, 8)
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    top = _series_length(d, c, angular)
    shares = trace_share(d, top, c, angular)
    return next((level for level, s in enumerate(shares) if s >= share - 1e-15), top)


@functools.lru_cache(maxsize=512)
def kernel_power_sums(d: int, c: float, angular: str = "chordal") -> tuple[float, float, float]:
    r"""(:math:`\lambda_0`, :math:`\sum_l \lambda_l^2 Z_l(1)`, :math:`\sum_l \lambda_l^3 Z_l(1)`) over all degrees.

    The second is :math:`E[k(X)^2]`; for the chordal kernel it is :math:`\lambda_0` at scale 2c
    (:math:`k^2 = e^{2c(x-1)}`), which the doctest checks. The third is the "triangle"
    :math:`E[k(u_1 \cdot u_2)\,k(u_2 \cdot u_3)\,k(u_3 \cdot u_1)]`.

    >>> lam0, square, cube = kernel_power_sums(8, 4.0)
    >>> bool(abs(square - chordal_coefficients(8, 0, 8.0)[0]) < 1e-14)
    True
    """
    top = _series_length(d, c, angular)
    lam0 = mercer_coefficients(d, 0, c, angular)[0]
    square = float(_weighted_parts(d, top, c, angular, 2).sum())
    if angular != "chordal" and d >= 2:  # the geodesic's antipodal kink slows the series: E[k^2] directly
        x, w = _sphere_quadrature(d, 400)
        square = float(w @ np.exp(-c * np.arccos(np.clip(x, -1, 1)) ** 2))
    cube = float(_weighted_parts(d, top, c, angular, 3).sum())
    return lam0, square, cube
