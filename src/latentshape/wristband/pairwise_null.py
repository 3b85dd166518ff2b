r"""Closed-form null law of the exact pairwise wristband statistics (every angular degree).

The pairwise path evaluates :math:`K = k_{ang}(u \cdot u')\,k_3(t, t')` exactly, with the
three-image reflected radial kernel :math:`k_3(t, s) = \sum_{m \in \{t, -t, 2 - t\}} e^{-\beta (s - m)^2}`
(:mod:`~latentshape.wristband.kernel`). Under x ~ N(0, I), u is uniform on the sphere, t uniform
on [0, 1], independent. For the V-statistic :math:`E = \frac{1}{N^2}\sum_{i,j} h(x_i, x_j)` of any
symmetric kernel h, with :math:`g(x) = E[h(x, y) \mid x]`,

.. math::
    E[E] = \frac{N\,E[h(x,x)] + N(N-1)\,E[h(x,y)]}{N^2}, \qquad
    N^4\,\mathrm{Var}[E] = N\,\mathrm{Var}[h(x,x)] + 2N(N-1)\,\mathrm{Var}[h(x,y)]
        + 4N(N-1)(N-2)\,\mathrm{Var}[g] + 4N(N-1)\,\mathrm{Cov}(h(x,x), g(x))

exactly. Here :math:`E[k_{ang} \mid u] = \lambda_0` and :math:`g = \lambda_0 m(t)`,
:math:`m(t) = \int_0^1 k_3(t, s)\,ds`: the full Neumann kernel would make g constant (a
*degenerate* kernel); the three images leave :math:`m(t)` constant up to ~:math:`e^{-\beta}`,
kept here so the formulas match the computed statistic exactly. Every radial expectation is a
1-D Gauss-Legendre integral of closed-form (erf) inner integrals (:func:`radial_image_moments`);
every angular one comes from the Mercer coefficients of all degrees
(:func:`~latentshape.wristband.harmonics.kernel_power_sums`): :math:`E[k_{ang}^2] = \sum_l
\lambda_l^2 Z_l(1)`.

The off-diagonal angular mean A (``ang``) is a degenerate U-statistic: mean :math:`\lambda_0`,
variance :math:`2(E[k_{ang}^2] - \lambda_0^2)/(N(N-1))`.

Logs (rep = log(E)/beta, ang = log(A)/beta) by the third-order delta method, whose third central
moment is the leading "triangle" term :math:`8(N-2)\sum_j \mu_j^3 / (N^2 (N-1)^2)` over the
kernel's eigenvalues :math:`\mu_j = \lambda_l \times (a_0` or :math:`a_k / 2)` with multiplicity
:math:`Z_l(1)`, summed in closed form as :math:`(\sum_k r_k^3)(\sum_l \lambda_l^3 Z_l(1)) -
(a_0\lambda_0)^3`.

Correlations with rad and mom (:func:`kernel_null_covariances`): leading-order V-statistic
covariances; mom's kernels are polynomials of degree <= 2 in u.u' and rad does not see u, so only
:math:`\lambda_0, \lambda_1, \lambda_2`, the kernel's diagonal value :math:`k_{ang}(1)` and
:math:`E[k_{ang}^2]` of the full kernel enter.

Reference: A. J. Lee, *U-Statistics: Theory and Practice* (1990), ch. 1 and 3 (variances of
U- and V-statistics, degenerate kernels).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from scipy import special

from ..calibration import NullStats
from .harmonics import kernel_power_sums, mercer_coefficients
from .closed_form_null import _MOMENT_EXPANSION, NullMoments, _log_moments, _radial_expectations, _third_moment
from .mercer import radial_coefficients

__all__ = [
    "RadialImageMoments",
    "radial_image_moments",
    "pairwise_energy_null_moments",
    "pairwise_angular_null_moments",
    "kernel_null_covariances",
    "pairwise_null_pieces",
    "pairwise_null_stats",
]


class RadialImageMoments(NamedTuple):
    """Null expectations of the three-image radial kernel :math:`k_3` for t, t' ~ U[0, 1] independent."""

    off_mean: float  # E k3(t, t')
    off_square: float  # E k3(t, t')^2
    row_variance: float  # Var m(t), m(t) = E[k3(t, t') | t]
    diagonal_mean: float  # E k3(t, t)
    diagonal_variance: float  # Var k3(t, t)
    diagonal_row_covariance: float  # Cov(k3(t, t), m(t))


def _gauss_integral(beta: float, center: np.ndarray) -> np.ndarray:
    r""":math:`\int_0^1 e^{-\beta (s - m)^2} ds` for an array of centres m."""
    root = math.sqrt(beta)
    return 0.5 * math.sqrt(math.pi / beta) * (special.erf(root * (1.0 - center)) + special.erf(root * center))


@functools.lru_cache(maxsize=64)
def radial_image_moments(beta: float) -> RadialImageMoments:
    r"""Exact null moments of :math:`k_3` by Gauss-Legendre in t of closed-form inner integrals in s.

    :math:`k_3(t,s)^2 = \sum_{m, m'} e^{-\beta(m - m')^2/2} e^{-2\beta(s - (m + m')/2)^2}` with
    m, m' in {t, -t, 2 - t}; :math:`k_3(t, t) = 1 + e^{-4\beta t^2} + e^{-4\beta (1-t)^2}`.

    >>> moments = radial_image_moments(8.0)
    >>> round(moments.off_mean, 6), round(math.sqrt(math.pi / 8.0), 6)   # all images would give sqrt(pi / beta)
    (0.626655, 0.626657)
    """
    if not beta > 0:
        raise ValueError(f"beta must be positive, got {beta!r}")
    panels = max(8, int(math.ceil(2.0 * math.sqrt(beta))))  # panel width ~ the kernel's width
    nodes, weights = special.roots_legendre(48)
    edges = np.linspace(0.0, 1.0, panels + 1)
    t = (0.5 * (edges[:-1, None] + edges[1:, None]) + 0.5 * (edges[1:, None] - edges[:-1, None]) * nodes).ravel()
    w = np.repeat(0.5 * np.diff(edges), nodes.size) * np.tile(weights, panels)
    centers = np.stack([t, -t, 2.0 - t])  # (3, T)
    row = _gauss_integral(beta, centers).sum(axis=0)  # m(t)
    square = np.zeros_like(t)
    for a in range(3):
        for b in range(3):
            gap = centers[a] - centers[b]
            square += np.exp(-0.5 * beta * gap * gap) * _gauss_integral(2.0 * beta, 0.5 * (centers[a] + centers[b]))
    diagonal = 1.0 + np.exp(-4.0 * beta * t * t) + np.exp(-4.0 * beta * (1.0 - t) ** 2)
    mean = lambda values: float(w @ values)  # noqa: E731  E over t ~ U[0, 1]
    row_mean, diagonal_mean = mean(row), mean(diagonal)
    return RadialImageMoments(
        off_mean=row_mean,
        off_square=mean(square),
        row_variance=max(mean((row - row_mean) ** 2), 0.0),
        diagonal_mean=diagonal_mean,
        diagonal_variance=mean((diagonal - diagonal_mean) ** 2),
        diagonal_row_covariance=mean((diagonal - diagonal_mean) * (row - row_mean)),
    )


def _radial_eigenvalue_cubes(beta: float) -> float:
    """sum_k r_k^3 for the Neumann radial kernel's eigenvalues r_0 = a_0, r_k = a_k / 2."""
    a = radial_coefficients(beta, _radial_modes(beta))
    return a[0] ** 3 + sum((v / 2.0) ** 3 for v in a[1:])


def _radial_modes(beta: float) -> int:
    """Cosine modes after which a_k = 2 sqrt(pi/beta) exp(-pi^2 k^2 / (4 beta)) is below e^-40."""
    return int(math.ceil(math.sqrt(160.0 * beta) / math.pi))


def _covariance_modes(beta: float) -> int:
    """Cosine modes for the covariances: the rest weighs < 1e-6 of a_0 (and the 1-D tables are cached per modes)."""
    return int(math.ceil(math.sqrt(4.0 * beta * math.log(1e6)) / math.pi))


def pairwise_energy_null_moments(n: int, d: int, beta: float, c: float, angular: str = "chordal") -> NullMoments:
    r"""Null mean, variance (exact) and leading third central moment of the pairwise energy E.

    ``c`` = :math:`2\beta\alpha^2` (chordal :math:`e^{c(x-1)}`, geodesic :math:`e^{-(c/2)\theta^2}`).

    >>> moments = pairwise_energy_null_moments(1024, 16, 8.0, 4.0 / 3.0)
    >>> round(moments.mean, 4), round(moments.std / moments.mean, 5)
    (0.1757, 0.00124)
    """
    if n < 2:
        raise ValueError(f"need n >= 2, got {n}")
    radial = radial_image_moments(float(beta))
    lam0, angular_square, angular_cube = kernel_power_sums(int(d), float(c), angular)
    off_mean = lam0 * radial.off_mean
    off_variance = angular_square * radial.off_square - off_mean**2
    # k_ang(1) = 1 for both angular kernels, so h(x, x) = k3(t, t)
    mean = (n * radial.diagonal_mean + n * (n - 1) * off_mean) / n**2
    variance = (
        n * radial.diagonal_variance
        + 2.0 * n * (n - 1) * off_variance
        + 4.0 * n * (n - 1) * (n - 2) * lam0**2 * radial.row_variance
        + 4.0 * n * (n - 1) * lam0 * radial.diagonal_row_covariance
    ) / n**4
    cubes = _radial_eigenvalue_cubes(float(beta)) * angular_cube - (radial_coefficients(beta, 0)[0] * lam0) ** 3
    third = _third_moment(n, [cubes ** (1.0 / 3.0)], [1.0]) * ((n - 1) / n) ** 3 if cubes > 0 else 0.0
    return NullMoments(mean, variance, third)


def pairwise_angular_null_moments(n: int, d: int, c: float, angular: str = "chordal") -> NullMoments:
    r"""Exact null mean :math:`\lambda_0`, variance :math:`2(E[k^2] - \lambda_0^2)/(N(N-1))` and leading
    third moment of the off-diagonal mean :math:`A = \frac{1}{N(N-1)}\sum_{i \ne j} k_{ang}(u_i \cdot u_j)`.

    >>> moments = pairwise_angular_null_moments(256, 3, 4.0)
    >>> round(moments.mean, 4)                        # (1 - e^{-2c}) / (2c) on S^2
    0.125
    """
    if n < 2:
        raise ValueError(f"need n >= 2, got {n}")
    lam0, angular_square, angular_cube = kernel_power_sums(int(d), float(c), angular)
    spread = max(angular_square - lam0**2, 0.0)
    cubes = angular_cube - lam0**3
    third = _third_moment(n, [cubes ** (1.0 / 3.0)], [1.0]) if cubes > 0 else 0.0
    return NullMoments(lam0, 2.0 * spread / (n * (n - 1)), third)


def kernel_null_covariances(
    n: int,
    d: int,
    radial: tuple[float, ...],
    low: tuple[float, float, float],
    trace: float,
    angular_spread: float,
    moment: str,
    moment_variance: float | None = None,
) -> dict[tuple[str, str], float]:
    r"""Null covariances of the raw E, A, rad and mom for any angular kernel (keys like ``("E", "rad")``).

    The kernel table of :func:`~latentshape.wristband.closed_form_null.spectral_null_covariances`,
    for a kernel given by its radial cosine coefficients ``radial``, its angular coefficients of
    degrees <= 2 ``low``, its diagonal value ``trace`` = :math:`k_{ang}(1) = \sum_l \lambda_l Z_l(1)`
    and ``angular_spread`` = :math:`\sum_{l \ge 1}\lambda_l^2 Z_l(1) = E[k_{ang}^2] - \lambda_0^2`
    (all degrees): the spectral path of degree L <= 2 passes its truncated sums, the pairwise path
    1 and the full series.
    """
    if moment not in _MOMENT_EXPANSION:
        raise ValueError(f"unknown moment penalty {moment!r}")
    c_mu, q_kind = _MOMENT_EXPANSION[moment]
    modes, a, lam = len(radial) - 1, np.asarray(radial), list(low)
    e = _radial_expectations(d, modes)
    even = 2 * np.arange(1, modes + 1)  # cos^2(k pi t) = (1 + cos(2 k pi t)) / 2
    c2 = trace * float((a[1:] / 2 * e["nu_r2"][even]).sum())  # Cov(h(i, i), r_i^2)
    c4 = trace * float((a[1:] / 2 * e["nu_r4"][even]).sum())  # Cov(h(i, i), r_i^4)

    def v_statistic(diagonal: float, off: float) -> float:
        return (n * diagonal + 2.0 * n * (n - 1) * off) / n**4

    e_mu = v_statistic(c2, lam[1] * float((a * e["rho"] ** 2).sum()))
    nu = np.array(e["nu"], copy=True)
    nu[0] = d
    sum_a_nu = float((a * nu**2).sum())
    if q_kind == "full":  # g = (x.x')^2 - r^2 - r'^2 + d
        h_g = sum_a_nu * (lam[0] + lam[2] * (d - 1)) / d - a[0] * lam[0] * d
        self_g, angular_g = c4 - 2.0 * c2, lam[2] * d * (d - 1)
        g_square, g_self_variance = 2.0 * d * (d + 1), 8.0 * d * (d * d + 3 * d + 3)
    elif q_kind == "diagonal":  # g = sum_p (x_p^2 - 1)(x'_p^2 - 1)
        h_g = sum_a_nu * (lam[0] / d + lam[2] * 2.0 * (d - 1) / (d * (d + 2))) - a[0] * lam[0] * d
        self_g, angular_g = 3.0 * c4 / (d + 2) - 2.0 * c2, lam[2] * 2.0 * d * (d - 1) / (d + 2)
        g_square, g_self_variance = 4.0 * d, 56.0 * d
    else:
        h_g = self_g = angular_g = g_square = g_self_variance = 0.0
    f_scale = 0.25  # F ~ Q / 4, rescaled to F's actual null sd when known
    if moment_variance is not None and q_kind is not None:
        f_variance = moment_variance * d * d - c_mu**2 * 2.0 * d / n**2
        f_scale *= math.sqrt(max(f_variance, 0.0) / (v_statistic(g_self_variance, g_square) / 16.0))
    rad_f = f_scale * v_statistic(0.0, e["rad_moment"]) if q_kind is not None else 0.0
    return {
        ("E", "A"): 2.0 * a[0] * angular_spread / n**2,
        ("E", "rad"): v_statistic(0.0, lam[0] * float((a[1:] * e["rad_energy"]).sum())),
        ("E", "mom"): (c_mu * e_mu + f_scale * v_statistic(self_g, h_g)) / d,
        ("A", "rad"): 0.0,
        ("A", "mom"): (c_mu * 2.0 * lam[1] * e["mean_r"] ** 2 / n**2 + f_scale * 2.0 * angular_g / n**2) / d,
        ("rad", "mom"): rad_f / d,
    }


def pairwise_null_pieces(config, n: int, d: int) -> tuple[NullMoments, NullMoments, NullMoments, NullMoments, dict]:
    """Null moments of the raw E, A, rad, mom of the pairwise path and their covariances (a dict keyed like
    ``("E", "rad")``), shared by :func:`pairwise_null_stats` and the path with its sharp and coordinate terms."""
    from ..gaussian.moment_penalty_null import moment_null_moments
    from .radial import radial_null_moments

    beta, c = float(config.beta), 2.0 * config.beta * config.alpha_value**2
    energy = pairwise_energy_null_moments(n, d, beta, c, config.angular)
    angle = pairwise_angular_null_moments(n, d, c, config.angular)
    rad = NullMoments(*radial_null_moments(n))
    mom = NullMoments(*moment_null_moments(config.moment, n, d))
    lam0, angular_square, _ = kernel_power_sums(int(d), c, config.angular)
    covariances = dict(kernel_null_covariances(
        n, d, radial_coefficients(beta, _covariance_modes(beta)), mercer_coefficients(int(d), 2, c, config.angular),
        1.0, max(angular_square - lam0**2, 0.0), config.moment, mom.variance))
    return energy, angle, rad, mom, covariances


def pairwise_null_stats(config, n: int, d: int) -> NullStats:
    r"""Null mean, sd and correlation of the raw ``(rep, rad, ang, mom)`` of the global pairwise
    wristband (a :class:`~latentshape.wristband.components.WristbandConfig` with
    ``method="pairwise"``, ``average="global"``) at (N, d), in closed form (milliseconds).

    Raises ``ValueError`` where mom has no valid closed form (the caller then uses Monte-Carlo).

    >>> from latentshape.wristband.components import WristbandConfig
    >>> stats = pairwise_null_stats(WristbandConfig(method="pairwise"), n=1024, d=16)
    >>> [round(float(r), 2) for r in stats.corr[0]]   # rep with (rep, rad, ang, mom)
    [1.0, 0.83, 0.38, 0.32]
    """
    if config.method != "pairwise" or config.average != "global":
        raise ValueError("this closed form is for the global pairwise path")
    beta = float(config.beta)
    energy, angle, rad, mom, covariances = pairwise_null_pieces(config, n, d)
    rep, ang = _log_moments(energy), _log_moments(angle)
    slope = {"E": 1.0 / (beta * energy.mean), "A": 1.0 / (beta * angle.mean), "rad": 1.0, "mom": 1.0}
    sd = {"E": rep.std / beta, "A": ang.std / beta, "rad": rad.std, "mom": mom.std}
    mean = {"E": rep.mean / beta, "rad": rad.mean, "A": ang.mean / beta, "mom": mom.mean}
    return NullStats.from_covariances(("E", "rad", "A", "mom"), mean, sd, slope, covariances)
