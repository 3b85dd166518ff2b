r"""Closed-form null law of the global spectral wristband: calibration without Monte-Carlo
(docs/theory.md, "Calibration: the closed-form null").

:func:`spectral_null_stats` gives the null mean, sd and correlation of the raw (rep, rad, ang, mom)
at any (N, d) in milliseconds; :class:`~latentshape.wristband.loss.WristbandLoss` uses it on the
global spectral path. ``tests/checkers/wristband_null.py`` validates it against null batches.

**Energy (exact).** Under x ~ N(0, I) the wristband coordinates are independent: t ~ U[0, 1], u
uniform on :math:`S^{d-1}`. The spectral energy is a V-statistic :math:`E = \frac{1}{N^2}\sum_{i,j} h(i, j)` of
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

exactly (the diagonal and off-diagonal parts are uncorrelated by degeneracy). The angular mean A
(off-diagonal, ``ang = log(A)/beta``) is the same with the radial factor dropped.

**Logs (third-order delta method).** rep = log(E)/beta: the relative fluctuation of E is O(1/N),
but E is chi-square-like (a weighted sum of :math:`\chi^2_1 - 1` over the kernel's eigenvalues
:math:`a_k \lambda_l`), and its skewness moves the sd of the log by up to 5% at N = 64; the third
central moment :math:`8 \sum_j \mu_j^3 / N^3` ("triangle" terms) corrects it.

**Other components.** rad: a function of N alone
(:func:`~latentshape.wristband.radial.radial_null_moments`); mom:
:func:`~latentshape.gaussian.moment_penalty_null.moment_null_moments`.

**Correlations (leading order in 1/N).** :func:`spectral_null_covariances`: every component is,
to leading order, a degenerate V-statistic, and the covariance of two such is
:math:`[N\,\mathrm{Cov}(g_A(x,x), g_B(x,x)) + 2N(N-1)E[g_A g_B]] / N^4`; the kernel products reduce to
one-dimensional integrals over t (the chi-square quantile r^2(t), the radial quantile process).
Validated against Monte-Carlo in ``tests/wristband/test_null_moments.py`` and
``benchmarks/calibration_accuracy.py``. Not covered (Monte-Carlo instead): the pairwise path (its
kernel has no finite Mercer expansion) and ``average="per_point"`` (a mean of logs of row sums).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np
from scipy import special

from ..calibration import NullStats

from .mercer import MAX_DEGREE as MAX_LEVEL
from .radial_expectations import radial_expectations as _radial_expectations
from .mercer import zonal_at_one

__all__ = [
    "NullMoments",
    "spectral_energy_null_moments",
    "spectral_rep_null_moments",
    "angular_mean_null_moments",
    "spectral_null_covariances",
    "spectral_null_stats",
]


class NullMoments(NamedTuple):
    """Mean, variance and third central moment of a statistic under x ~ N(0, I)."""

    mean: float
    variance: float
    third: float = 0.0

    @property
    def std(self) -> float:
        return math.sqrt(self.variance)


def spectral_energy_null_moments(n: int, d: int, radial: tuple[float, ...], angular: tuple[float, ...]) -> NullMoments:
    r"""Exact null mean and variance of the spectral energy E at batch size ``n`` in dimension ``d``.

    ``radial`` = :math:`a_0..a_K`, ``angular`` = :math:`\lambda_0..\lambda_L` (see
    :mod:`~latentshape.wristband.spectral`).

    >>> from latentshape.wristband.mercer import radial_coefficients, angular_coefficients
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
    # the kernel's eigenvalues: a_k / 2 (a_0 for k = 0) times lambda_l, multiplicity Z_l(1), (k, l) != (0, 0)
    eigenvalues = [(a0 if k == 0 else a / 2.0) * lam for k, a in enumerate(radial) for lam in angular]
    multiplicity = [zonal_at_one(d, level) for _ in radial for level in levels]
    third = _third_moment(n, eigenvalues[1:], multiplicity[1:]) * ((n - 1) / n) ** 3
    return NullMoments(mean, variance, third)


def _third_moment(n: int, eigenvalues: list[float], multiplicity: list[float]) -> float:
    r"""Leading third central moment of a degenerate U-statistic :math:`\frac{1}{N(N-1)}\sum_{i \ne j} g`
    whose kernel has these eigenvalues: :math:`8 (N - 2) \sum_j \mu_j^3 / (N^2 (N-1)^2)` (the
    "triangle" terms :math:`E[g(1,2) g(2,3) g(3,1)]`; the rest is O(N^-4))."""
    cubes = sum(m * mu**3 for mu, m in zip(eigenvalues, multiplicity))
    return 8.0 * (n - 2) * cubes / (n**2 * (n - 1) ** 2)


def _log_moments(moments: NullMoments) -> NullMoments:
    r"""Delta method to third order: with :math:`\epsilon = (X - m) / m`, :math:`\sigma^2 = E\epsilon^2`,
    :math:`\kappa = E\epsilon^3`: E[log X] ~ log m - sigma^2 / 2 + kappa / 3 and
    Var[log X] ~ sigma^2 - kappa. The skewness term matters at small N: degenerate V-statistics are
    chi-square-like (at d = 1, N = 64 it moves the sd of ang by 5%)."""
    relative = moments.variance / moments.mean**2
    skew = moments.third / moments.mean**3
    return NullMoments(math.log(moments.mean) - 0.5 * relative + skew / 3.0, relative - skew)


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
    higher = [(lam, zonal_at_one(d, level)) for level, lam in enumerate(angular) if level >= 1]
    spread = sum(lam * lam * m for lam, m in higher)
    third = _third_moment(n, [lam for lam, _ in higher], [m for _, m in higher])
    return NullMoments(angular[0], 2.0 * spread / (n * (n - 1)), third)


# --------------------------------------------------------------------------------------------
# Null covariances between the components (leading order in 1/N)
# --------------------------------------------------------------------------------------------
#
# Every component is, to leading order, a degenerate V-statistic (1/N^2) sum_ij g(x_i, x_j) with
# E[g(x, y) | x] = 0; for two of them Cov = [N Cov(g_A(x,x), g_B(x,x)) + 2 N (N-1) E[g_A g_B]] / N^4
# exactly (diagonal and off-diagonal parts are uncorrelated by degeneracy). The kernels:
#   energy E:   h = sum_k a_k cos(k pi t) cos(k pi t') sum_l lambda_l Z_l(u.u')         (exact)
#   angular A:  sum_{l>=1} lambda_l Z_l(u.u')  (off-diagonal U-statistic)              (exact)
#   |mu|^2:     x.x' = r r' u.u'                                                       (exact)
#   ||S - I||^2 ~ (x.x')^2 - r^2 - r'^2 + d ; diagonal kinds: sum_p (x_p^2 - 1)(x'_p^2 - 1)
#   rad:        (1/2) int_0^1 (1[t <= s] - s)(1[t' <= s] - s) omega(s) ds,
#               omega = 12 + 1 / phi(Phi^-1(s))^2  (the quantile process of sorted t and z)
# with r^2 = chi2_d quantile of t. The moment penalties are (c_mu |mu|^2 + Q / 4) / d to second
# order around S = I, Q = ||S - I||_F^2 (or its diagonal part).

# Each moment penalty is (c_mu |mu|^2 + F) / d; to second order around S = I its covariance part is
# F ~ Q / 4 with Q = ||S - I||_F^2 (the "full" kinds) or the squared diagonal of S - I.
_MOMENT_EXPANSION = {  # kind: (c_mu, kernel of Q)
    "w2": (1.0, "full"),
    "kl_full": (0.5, "full"),
    "jeff_full": (0.5, "full"),
    "kl_diag": (0.5, "diagonal"),
    "jeff_diag": (0.5, "diagonal"),
    "mu_only": (1.0, None),
}


def _moment_kernel_terms(q_kind: str | None, d: int, sum_a_nu: float, a0: float, lam: list[float],
                         c2: float, c4: float) -> tuple[float, float, float, float, float]:
    """Covariance terms of the moment penalty's quadratic kernel g (Q = V-statistic of g) with the
    energy kernel h: (E[h g] off-diagonal, Cov of the diagonals, E[g_A g] for A, E[g^2], Var g(i, i))."""
    if q_kind == "full":  # kernel g = tr(A A') = (x.x')^2 - r^2 - r'^2 + d, A = x x^T - I
        h_g = sum_a_nu * (lam[0] + lam[2] * (d - 1)) / d - a0 * lam[0] * d
        self_g = c4 - 2.0 * c2  # Cov(h(i, i), g(i, i) = r^4 - 2 r^2 + d)
        return h_g, self_g, lam[2] * d * (d - 1), 2.0 * d * (d + 1), 8.0 * d * (d * d + 3 * d + 3)
    if q_kind == "diagonal":  # kernel g = sum_p (x_p^2 - 1)(x'_p^2 - 1)
        h_g = sum_a_nu * (lam[0] / d + lam[2] * 2.0 * (d - 1) / (d * (d + 2))) - a0 * lam[0] * d
        return h_g, 3.0 * c4 / (d + 2) - 2.0 * c2, lam[2] * 2.0 * d * (d - 1) / (d + 2), 4.0 * d, 56.0 * d
    return 0.0, 0.0, 0.0, 0.0, 0.0


def spectral_null_covariances(
    n: int,
    d: int,
    radial: tuple[float, ...],
    angular: tuple[float, ...],
    moment: str,
    moment_variance: float | None = None,
) -> dict[tuple[str, str], float]:
    r"""Null covariances between the raw statistics E (spectral energy), A (off-diagonal angular mean),
    rad and mom (kernel table above); keys are pairs like ``("E", "rad")``.

    E-A and the |mu|^2 part of mom are exact; pairs with rad are exact to leading order in 1/N. The
    covariance part F of mom (quadratic in S - I while d << N) enters through its small-(d/N)
    correlations, which barely move up to d/N = 4 (Monte-Carlo), scaled by its actual sd when
    ``moment_variance`` is given. Known gap: for d > N the A-mom correlation is overestimated
    (0.25 against 0.08 at N = 64, d = 256); it matters only with ``lambda_ang > 0``.
    """
    if moment not in _MOMENT_EXPANSION:
        raise ValueError(f"unknown moment penalty {moment!r}")
    c_mu, q_kind = _MOMENT_EXPANSION[moment]
    modes = len(radial) - 1
    a = np.asarray(radial)
    lam = list(angular) + [0.0] * (MAX_LEVEL + 1 - len(angular))
    e = _radial_expectations(d, modes)
    trace = sum(v * zonal_at_one(d, level) for level, v in enumerate(angular))  # h(i, i) = trace * k_r(t, t)
    even = 2 * np.arange(1, modes + 1)  # cos^2(k pi t) = (1 + cos(2 k pi t)) / 2
    c2 = trace * float((a[1:] / 2 * e["nu_r2"][even]).sum())  # Cov(h(i, i), r_i^2)
    c4 = trace * float((a[1:] / 2 * e["nu_r4"][even]).sum())  # Cov(h(i, i), r_i^4)

    def v_statistic(diagonal: float, off: float) -> float:
        return (n * diagonal + 2.0 * n * (n - 1) * off) / n**4

    e_mu = v_statistic(c2, lam[1] * float((a * e["rho"] ** 2).sum()))  # E with |mu|^2: degree 1 meets u.u'
    nu = np.array(e["nu"], copy=True)  # E[cos(k pi t) r^2]
    nu[0] = d
    sum_a_nu = float((a * nu**2).sum())
    h_g, self_g, angular_g, g_square, g_self_variance = _moment_kernel_terms(q_kind, d, sum_a_nu, a[0], lam, c2, c4)
    # F ~ Q / 4 = V-statistic with kernel g / 4; rescaled to F's actual null sd when known
    f_scale = 0.25
    if moment_variance is not None and q_kind is not None:
        f_variance = moment_variance * d * d - c_mu**2 * 2.0 * d / n**2  # |mu|^2 ~ chi2_d / N is independent of S
        small_variance = v_statistic(g_self_variance, g_square) / 16.0
        f_scale *= math.sqrt(max(f_variance, 0.0) / small_variance)
    e_f = f_scale * v_statistic(self_g, h_g)
    # rad with E (radial modes k >= 1 meet lambda_0) and with F; rad is independent of u
    e_rad = v_statistic(0.0, lam[0] * float((a[1:] * e["rad_energy"]).sum()))
    rad_f = f_scale * v_statistic(0.0, e["rad_moment"]) if q_kind is not None else 0.0
    # A (a U-statistic, no diagonal): 2 E[g_A g_B] / N^2
    angular_spread = sum(lam[level] ** 2 * zonal_at_one(d, level) for level in range(1, len(angular)))
    e_a = 2.0 * a[0] * angular_spread / n**2
    a_mu = 2.0 * lam[1] * e["mean_r"] ** 2 / n**2
    a_f = f_scale * 2.0 * angular_g / n**2
    return {
        ("E", "A"): e_a,
        ("E", "rad"): e_rad,
        ("E", "mom"): (c_mu * e_mu + e_f) / d,
        ("A", "rad"): 0.0,
        ("A", "mom"): (c_mu * a_mu + a_f) / d,
        ("rad", "mom"): rad_f / d,
    }


def spectral_null_stats(config, n: int, d: int) -> NullStats:
    r"""Null mean, sd and correlation of the raw ``(rep, rad, ang, mom)`` of the global spectral
    wristband at (N, d), with no Monte-Carlo (milliseconds at any N and d).

    - rep = log(E) / beta: exact moments of E (:func:`spectral_energy_null_moments`), delta method;
    - rad: :func:`~latentshape.wristband.radial.radial_null_moments` (a function of N alone);
    - ang = log(A) / beta: exact moments of A (:func:`angular_mean_null_moments`), delta method;
    - mom: :func:`~latentshape.gaussian.moment_penalty_null.moment_null_moments`;
    - correlations: :func:`spectral_null_covariances`, carried through the logs to first order.

    Raises ``ValueError`` where mom has no valid closed form (the caller then uses Monte-Carlo).

    >>> from latentshape.wristband.components import WristbandConfig
    >>> stats = spectral_null_stats(WristbandConfig(), n=1_000_000, d=4096)
    >>> [round(float(r), 2) for r in stats.corr[0]]   # rep with (rep, rad, ang, mom)
    [1.0, 0.96, 0.03, 0.0]
    """
    from ..gaussian.moment_penalty_null import moment_null_moments
    from .radial import radial_null_moments
    from .mercer import angular_coefficients, radial_coefficients

    if config.method != "spectral" or config.average != "global":
        raise ValueError("closed-form null moments exist for the global spectral path only")
    radial = radial_coefficients(config.beta, config.k_modes)
    angular = angular_coefficients(d, config.degree, config.beta, config.alpha_value, config.angular)
    energy = spectral_energy_null_moments(n, d, radial, angular)
    rep = spectral_rep_null_moments(n, d, config.beta, radial, angular)
    angle = angular_mean_null_moments(n, d, angular)
    ang = _log_moments(angle) if angle.variance > 0 else NullMoments(math.log(angle.mean), 0.0)
    rad = NullMoments(*radial_null_moments(n))
    mom = NullMoments(*moment_null_moments(config.moment, n, d))
    covariances = spectral_null_covariances(n, d, radial, angular, config.moment, mom.variance)
    # first-order (delta) slopes of the logs: d rep / dE = 1 / (beta m_E), d ang / dA = 1 / (beta m_A)
    slope = {"E": 1.0 / (config.beta * energy.mean), "A": 1.0 / (config.beta * angle.mean), "rad": 1.0, "mom": 1.0}
    sd = {"E": rep.std, "A": math.sqrt(ang.variance / config.beta**2), "rad": rad.std, "mom": mom.std}
    mean = {"E": rep.mean, "rad": rad.mean, "A": ang.mean / config.beta, "mom": mom.mean}
    # a component that is constant under the null (ang at degree 0) gets sd 1, as in NullStats.from_samples
    return NullStats.from_covariances(("E", "rad", "A", "mom"), mean, sd, slope, covariances)
