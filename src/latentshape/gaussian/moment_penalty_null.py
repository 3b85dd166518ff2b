r"""Null mean and variance of every moment penalty, in closed form (toward MC-free calibration).

:func:`moment_null_moments` gives the mean and variance of
:func:`~latentshape.gaussian.moment_penalties.moment_penalty` for a batch of N rows x ~ N(0, I_d), as a
function of (N, d) only: under a millisecond (N = 1e6, d = 4096: 0.6 ms for ``kl_full``, 0.25 ms
for ``w2``), up to ~20 ms for ``w2`` when d ~ N ~ 4096 (finer quadrature near the hard edge). Notation:
m = N - 1, :math:`\mu` the sample mean, S the unbiased covariance, p = min(d, m), q = max(d, m).

**Null structure.** :math:`\mu \sim N(0, I/N)` is independent of :math:`W = mS \sim
\mathrm{Wishart}_d(m, I)`. The non-zero eigenvalues of W are those of a
:math:`\mathrm{Wishart}_p(q, I)` matrix W' (the companion :math:`X^\top X` when d > m), and
d - p eigenvalues are exactly 0. Bartlett: :math:`W' = LL^\top`, :math:`L_{ii}^2 = c_i \sim
\chi^2_{q-i+1}` (i = 1..p) and p(p-1)/2 off-diagonal N(0, 1), all independent, so
:math:`\operatorname{tr} W = \sum_i c_i + \chi^2_{p(p-1)/2}` and :math:`\log\det W' = \sum_i \log c_i`.
For :math:`c \sim \chi^2_k`: :math:`E\log c = \psi(k/2) + \log 2`,
:math:`\mathrm{Var}\log c = \psi'(k/2)`, :math:`\mathrm{Cov}(c, \log c) = 2`.

**Exact kinds.** The formulas ignore the ``EIGENVALUE_FLOOR`` :math:`\varepsilon` on non-zero
eigenvalues (they do include it on the exact zeros). That is exact up to batches whose smallest
non-zero eigenvalue falls below it, which happens near d = m: the hard-edge estimate of that
probability (:func:`_floor_probability`) must stay below 1% for ``kl_full`` (a floored logarithm
barely moves) and below 1e-6 for ``jeff_full`` (a floored inverse does), otherwise a ``ValueError``
is raised; e.g. N = d = 256 is refused for ``kl_full``, N = d = 64 is not.

- ``mu_only``: :math:`\|\mu\|^2/d = \chi^2_d/(Nd)`: mean 1/N, variance :math:`2/(N^2 d)`.
- ``kl_diag`` / ``jeff_diag``: d i.i.d. terms in :math:`v = \chi^2_m/m` and :math:`\mu_j^2 \sim
  \chi^2_1/N`, using :math:`E v^{-1} = m/(m-2)`, :math:`E v^{-2} = m^2/((m-2)(m-4))` (``jeff_diag``
  needs m > 4 for its variance; ``kl_diag`` needs m >= 2, as :math:`\chi^2_1` hits the floor).
- ``kl_full``: :math:`2d\,P = \operatorname{tr}S + \|\mu\|^2 - d - \sum\log\lambda_{>0} - (d-p)\log
  \varepsilon`, hence :math:`E[2dP] = d/N + \sum_i (\log(m/2) - \psi(k_i/2)) - (d-p)\log\varepsilon`
  and :math:`\mathrm{Var}[2dP] = 2d/N^2 + \sum_i (2k_i/m^2 + \psi'(k_i/2) - 4/m) + p(p-1)/m^2`
  with :math:`k_i = q - i + 1`.
- ``jeff_full``: :math:`4d\,P = \operatorname{tr}W/m + m\operatorname{tr}W'^{-1} + \|\mu\|^2 +
  m\,\nu^\top W'^{-1}\nu - 2d` (+ the floored null space when d > m), with :math:`\nu` the part of
  :math:`\mu` in the range of S. Inverse-Wishart moments (g = q - p - 1): :math:`E W'^{-1} = I/g`,
  :math:`E W'^{-2} = (q-1) I/((g+1)g(g-2))`, :math:`\mathrm{Var}\operatorname{tr}W'^{-1} =
  2p(q-1)/((g+1)g^2(g-2))` (von Rosen 1988), :math:`\mathrm{Cov}(\operatorname{tr}W',
  \operatorname{tr}W'^{-1}) = -2p/g` (Haff's identity); the quadratic form follows by conditioning
  on W'. Second inverse moments exist only for q > p + 3: for m - 3 <= d <= m + 3 (S singular or
  nearly so) there is no closed form and a ``ValueError`` is raised. When d > m + 3 the d - m null
  directions are floored at :math:`\varepsilon` = ``EIGENVALUE_FLOOR`` and contribute
  :math:`(d-m)/\varepsilon + (1 + 1/\varepsilon)\chi^2_{d-m}/N` exactly.

**w2** (asymptotic, except p = 1): :math:`d\,P = \|\mu\|^2 + \sum_{i \le p} f(\lambda_i) +
(d-p)(1-\varepsilon)^2`, :math:`f(x) = (\sqrt x - 1)^2`, the three terms independent
(:math:`\|\mu\|^2 \sim \chi^2_d/N`; the zero eigenvalues are clamped at :math:`\varepsilon^2`). For p = 1 the eigenvalue is
:math:`\chi^2_q/m` and the chi moments :math:`E\chi_q^r = 2^{r/2}\Gamma((q+r)/2)/\Gamma(q/2)` make
it exact. Otherwise :math:`\sum_i f(\lambda_i)` is a linear spectral statistic of
:math:`S' = W'/q` (:math:`\lambda = (q/m)\,\mathrm{eig}(S')`), ratio c = p/q <= 1, and the real
Gaussian CLT of Bai & Silverstein (2004) applies: with
:math:`\varphi(\theta) = f(1 + c + 2\sqrt c\cos\theta) = \sum_k \beta_k \cos k\theta`,

.. math::
    E\sum f \approx p\int f\,dF^{MP}_c + \tfrac12\sum_{k \ge 2\ \mathrm{even}} \beta_k, \qquad
    \mathrm{Var}\sum f \approx \tfrac12\sum_{k \ge 1} k\beta_k^2 + \Delta.

The CLT variance is exact for linear f but misses an O(1/p) term: for
:math:`f \approx (x-1)^2/4` (small c) it gives :math:`p^2/(4m^2)` instead of :math:`p(p+1)/(4m^2)`,
which is 5% of the penalty's sd at d = 2 and 3% at d = 8. The correction :math:`\Delta` was derived from the exact joint moments
:math:`E[\operatorname{tr}W^a \operatorname{tr}W^b]` (Wick pairings, a, b <= 4, confirmed on the six
further pairs (1,5), (2,5), (3,5), (1,6), (2,6), (1,7)): to first order in 1/p, 1/q, the
covariance of :math:`\sum_i T_j(u_i)` and :math:`\sum_i T_k(u_i)` (Chebyshev polynomials of
:math:`u = (x - 1 - c)/(2\sqrt c)`) exceeds the CLT's :math:`\tfrac{j}{2}\delta_{jk}` by
:math:`\frac{jk(\max(j,k) - 1)}{8p}\,(b + (-1)^{j+k} a)` with :math:`a, b = (1 \mp \sqrt c)^2` the
edges of the Marchenko–Pastur support. Summing over j, k:

.. math::
    \Delta = \frac{1}{8p}\big(b\,Q(\beta) + a\,Q(\tilde\beta)\big), \quad
    \tilde\beta_k = (-1)^k\beta_k, \quad
    Q(u) = 2F_1(F_2 - F_1) - \sum_{r \ge 1}\Big(\sum_{k > r} k u_k\Big)^2

with :math:`F_1 = \sum_k k u_k` and :math:`F_2 = \sum_k k^2 u_k`, which is :math:`-\varphi''` at
the edge: :math:`-\varphi''(0) = 2\sqrt c f'(b)`, resp. :math:`-\varphi''(\pi) = -2\sqrt c f'(a)`. The hard edge (c -> 1, a -> 0, where
:math:`\sqrt x` is not analytic) enters only through the a-term, which vanishes there. The
O(1/p) correction of the mean is left out (below 0.01 null sd on the validation grid). Validated
against Monte-Carlo for 64 <= N <= 8192, 2 <= d <= 256, and for 16 <= N <= 2000 near c = 1: mean
within 0.03 null sd (Monte-Carlo noise included), sd within 1.2%; the plain CLT's sd is 5% low at
d = 2 (see ``tests/gaussian/test_null_moments.py``).

References: Bartlett (1933); von Rosen (1988), "Moments for the inverted Wishart distribution";
Haff (1979), "An identity for the Wishart distribution with applications"; Bai & Silverstein
(2004), "CLT for linear spectral statistics of large-dimensional sample covariance matrices";
Dumitriu & Edelman (2002), "Matrix models for beta ensembles" (the tests' sampler).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft
from scipy.special import digamma, gammainc, gammaln, polygamma

from .moment_penalties import EIGENVALUE_FLOOR, MOMENT_PENALTIES

__all__ = ["moment_null_moments"]


def moment_null_moments(kind: str, n: int, d: int) -> tuple[float, float]:
    r"""Mean and variance of ``moment_penalty(x, kind)`` for a batch ``x`` of ``n`` rows ~ N(0, I_d).

    Exact for ``mu_only``, ``kl_diag``, ``jeff_diag``, ``kl_full``, ``jeff_full`` and for ``w2``
    when min(d, n - 1) = 1; otherwise ``w2`` uses the Bai–Silverstein CLT with an O(1/d) variance
    correction (module docstring). Raises ``ValueError`` for an unknown kind, n < 2, d < 1, or
    where the moments do not exist (``jeff_diag`` with n <= 5; ``jeff_full`` with
    n - 4 <= d <= n + 2) or the eigenvalue floor, which the formulas ignore, is hit too often
    (``kl_diag`` with n = 2; ``kl_full`` and ``jeff_full`` with S near-singular, d ~ n): the caller
    then falls back to Monte-Carlo.

    >>> mean, var = moment_null_moments("mu_only", 100, 4)
    >>> mean, var   # ||mu||^2 / d = chi2_4 / 400: mean 1/N, variance 2 / (N^2 d)
    (0.01, 5e-05)
    >>> mean, var = moment_null_moments("w2", 1024, 64)   # Monte-Carlo, 40000 batches: 0.016990, 0.000520
    >>> round(mean, 5), round(var ** 0.5, 6)
    (0.01699, 0.000522)
    >>> moment_null_moments("jeff_full", 64, 64)
    Traceback (most recent call last):
    ...
    ValueError: jeff_full: the inverse moments of S do not exist for n=64, d=64 (need d <= n - 5 or d >= n + 3)
    """
    if kind not in MOMENT_PENALTIES:
        raise ValueError(f"unknown moment penalty {kind!r}; choose one of {', '.join(MOMENT_PENALTIES)}")
    n, d = int(n), int(d)
    if n < 2 or d < 1:
        raise ValueError(f"need n >= 2 rows and d >= 1, got n={n}, d={d}")
    mean, var = _KINDS[kind](n, d)
    return float(mean), float(var)


def _mu_only(n: int, d: int) -> tuple[float, float]:
    return 1.0 / n, 2.0 / (n * n * d)


def _kl_diag(n: int, d: int) -> tuple[float, float]:
    # 2P = mean over j of (v - log v) + mu_j^2 - 1, v = 2G/m with G ~ Gamma(m/2): Cov(v, log v) = 2/m.
    m = n - 1
    if m < 2:  # P(chi2_1 < floor) = 8e-4 per coordinate: the floored log biases the mean of many of them
        raise ValueError(f"kl_diag: the variance floor is hit too often for n={n} (need n >= 3)")
    mean = 0.5 * (math.log(m / 2.0) - digamma(m / 2.0) + 1.0 / n)
    var = (polygamma(1, m / 2.0) - 2.0 / m + 2.0 / n**2) / (4.0 * d)
    return mean, var


def _jeff_diag(n: int, d: int) -> tuple[float, float]:
    # 4P = mean over j of h = A + mu_j^2 B - 2, A = v + 1/v, B = 1 + 1/v, mu_j^2 independent of v.
    m = n - 1
    if m <= 4:
        raise ValueError(f"jeff_diag: E[1/v^2] does not exist for n={n} (need n >= 6)")
    e_inv, e_inv2 = m / (m - 2.0), m * m / ((m - 2.0) * (m - 4.0))
    var_v, var_inv, cov_v_inv = 2.0 / m, e_inv2 - e_inv**2, 1.0 - e_inv
    var_a = var_v + var_inv + 2.0 * cov_v_inv
    e_b, e_b2 = 1.0 + e_inv, 1.0 + 2.0 * e_inv + e_inv2
    e_mu2, e_mu4 = 1.0 / n, 3.0 / n**2
    var_mu2_b = e_mu4 * e_b2 - (e_mu2 * e_b) ** 2
    cov_a_b = cov_v_inv + var_inv  # Cov(v + 1/v, 1 + 1/v)
    mean = (1.0 + e_inv + e_mu2 * e_b - 2.0) / 4.0
    var = (var_a + var_mu2_b + 2.0 * e_mu2 * cov_a_b) / (16.0 * d)
    return mean, var


def _kl_full(n: int, d: int) -> tuple[float, float]:
    m = n - 1
    p, q = min(d, m), max(d, m)
    if _floor_probability(p, q, m) > 0.01:
        raise ValueError(f"kl_full: S is too close to singular for n={n}, d={d}: the eigenvalue floor is hit")
    k = q - np.arange(p, dtype=np.float64)  # Bartlett chi2 degrees of freedom
    floor_log = (d - p) * math.log(EIGENVALUE_FLOOR)  # the exactly-zero eigenvalues, floored
    mean2d = d / n + float(np.sum(math.log(m / 2.0) - digamma(k / 2.0))) - floor_log
    # Var(c/m - log c) = 2k/m^2 + psi'(k/2) - 4/m per diagonal; off-diagonals: chi2_{p(p-1)/2} / m.
    var2d = 2.0 * d / n**2 + float(np.sum(2.0 * k / m**2 + polygamma(1, k / 2.0) - 4.0 / m)) + p * (p - 1.0) / m**2
    return mean2d / (2.0 * d), var2d / (4.0 * d * d)


def _jeff_full(n: int, d: int) -> tuple[float, float]:
    m = n - 1
    p, q = min(d, m), max(d, m)
    g = q - p - 1.0
    if g <= 2.0:
        raise ValueError(
            f"jeff_full: the inverse moments of S do not exist for n={n}, d={d} (need d <= n - 5 or d >= n + 3)"
        )
    if _floor_probability(p, q, m) > 1e-6:  # 1/lambda is heavy-tailed: even rare floor hits bias the variance
        raise ValueError(f"jeff_full: S is too close to singular for n={n}, d={d}: the eigenvalue floor is hit")
    # X = tr W / m + m tr W'^-1 + |nu|^2 + m nu^T W'^-1 nu, nu ~ N(0, I_p / N) independent of W'.
    e_trace, var_trace = p * q, 2.0 * p * q  # tr W' ~ chi2_{pq}
    e_inv = p / g
    e_inv2 = p * (q - 1.0) / ((g + 1.0) * g * (g - 2.0))  # E tr W'^-2
    var_inv = 2.0 * p * (q - 1.0) / ((g + 1.0) * g * g * (g - 2.0))
    cov_trace_inv = -2.0 * p / g
    e_quad = e_inv / n
    var_quad = 2.0 * e_inv2 / n**2 + var_inv / n**2
    cov_trace_quad, cov_inv_quad, cov_mu2_quad = cov_trace_inv / n, var_inv / n, 2.0 * e_inv / n**2
    mean4d = e_trace / m + m * e_inv + p / n + m * e_quad - 2.0 * d
    var4d = (
        var_trace / m**2
        + m * m * (var_inv + var_quad + 2.0 * cov_inv_quad)
        + 2.0 * p / n**2
        + 2.0 * (cov_trace_inv + cov_trace_quad)
        + 2.0 * m * cov_mu2_quad
    )
    null = d - p  # null directions of S: 1/floor in the trace, |mu_null|^2 ~ chi2_null / N weighted 1 + 1/floor
    weight = 1.0 + 1.0 / EIGENVALUE_FLOOR
    mean4d += null / EIGENVALUE_FLOOR + weight * null / n
    var4d += weight**2 * 2.0 * null / n**2
    return mean4d / (4.0 * d), var4d / (16.0 * d * d)


def _floor_probability(p: int, q: int, m: int) -> float:
    r"""Estimate of P(smallest non-zero eigenvalue of S < ``EIGENVALUE_FLOOR``), S = W'/m.

    With t = m * floor and k = q - p, the minimum of two estimates:

    - hard edge: the smallest eigenvalue of :math:`\mathrm{Wishart}_p(q)` lives on the scale 1/q with
      density :math:`\propto \lambda^{(k-1)/2}` near 0; matching a :math:`\chi^2_{k+1}/q` gives
      :math:`P \approx P(\chi^2_{k+1} < qt)`: :math:`0.80\sqrt{qt}` for k = 0 (Edelman's limit law:
      :math:`\sqrt{qt}`), qt/2 for k = 1 (the limit law), an over-estimate for k >= 2 (the smallest
      eigenvalue sits near :math:`k^2/(4q)`, not k/q);
    - soft edge (Davidson & Szarek): :math:`P(\sigma_{\min} < \sqrt q - \sqrt p - r) \le e^{-r^2/2}`,
      which takes over when p << q.
    """
    t = m * EIGENVALUE_FLOOR
    hard = float(gammainc((q - p + 1) / 2.0, q * t / 2.0))
    soft = math.exp(-0.5 * max(math.sqrt(q) - math.sqrt(p) - math.sqrt(t), 0.0) ** 2)
    return min(hard, soft)


def _w2(n: int, d: int) -> tuple[float, float]:
    m = n - 1
    p, q = min(d, m), max(d, m)
    zeros = (d - p) * (1.0 - EIGENVALUE_FLOOR) ** 2  # sqrt(floor^2) - 1 for each zero eigenvalue
    if p == 1:
        spectral_mean, spectral_var = _sqrt_deviation_chi(q, m)
    else:
        scale = q / m  # eigenvalues of S = scale * eigenvalues of W' / q
        spectral_mean, spectral_var = _linear_spectral_moments(
            lambda u: _sqrt_deviation(scale * u), lambda u: scale * (1.0 - 1.0 / np.sqrt(scale * u)), p, q
        )
    mean = (d / n + spectral_mean + zeros) / d
    var = (2.0 * d / n**2 + spectral_var) / (d * d)
    return mean, var


def _sqrt_deviation(x: np.ndarray) -> np.ndarray:
    """(sqrt(x) - 1)^2, written so that x near 1 loses no digits."""
    return ((x - 1.0) / (np.sqrt(x) + 1.0)) ** 2


def _sqrt_deviation_chi(q: int, m: int) -> tuple[float, float]:
    r"""Exact mean and variance of :math:`(\sqrt\lambda - 1)^2`, :math:`\lambda = \chi^2_q / m`.

    With :math:`\rho = q/m` and :math:`E\sqrt{\chi^2_q/q} = 1 - \delta`:
    :math:`E\lambda^{3/2} = \rho^{3/2}(1-\delta)(q+1)/q`, so the mean is
    :math:`\rho - 2\sqrt\rho(1-\delta) + 1` and the variance
    :math:`2\rho/m + 4\rho(2\delta - \delta^2) - 4\rho^{3/2}(1-\delta)/q`. For q = m the terms cancel
    down to ~1/(2m^2), so delta is computed to full relative precision.
    """
    rho = q / m
    delta = -math.expm1(_log_chi_ratio(q))
    mean = rho - 2.0 * math.sqrt(rho) * (1.0 - delta) + 1.0
    var = 2.0 * rho / m + 4.0 * rho * delta * (2.0 - delta) - 4.0 * rho**1.5 * (1.0 - delta) / q
    if q == m:  # same expression, regrouped so that the O(1/m) terms cancel exactly
        mean = 2.0 * delta
        var = (8.0 * delta - 2.0 / m) + 4.0 * delta / m - 4.0 * delta * delta
    return mean, var


def _log_chi_ratio(q: int) -> float:
    r""":math:`\log E\sqrt{\chi^2_q/q} = \log\Gamma(z + 1/2) - \log\Gamma(z) - \tfrac12\log z`, z = q/2.

    ``gammaln`` differences lose all digits for large q; the Stirling series (Bernoulli
    polynomials :math:`B_{k+1}(1/2) - B_{k+1}(0)`) is accurate to 1e-12 relative from z = 20 on.
    """
    z = q / 2.0
    if z < 20.0:
        return float(gammaln(z + 0.5) - gammaln(z) - 0.5 * math.log(z))
    w = 1.0 / (z * z)
    return (-1.0 / 8.0 + w * (1.0 / 192.0 + w * (-1.0 / 640.0 + w * (17.0 / 14336.0 - w * 31.0 / 18432.0)))) / z


def _linear_spectral_moments(f, f_prime, p: int, q: int) -> tuple[float, float]:
    r"""Mean and variance of :math:`\sum_{i \le p} f(\lambda_i)`, :math:`\lambda` the eigenvalues of
    :math:`\mathrm{Wishart}_p(q, I)/q` (p <= q): Bai–Silverstein CLT plus the O(1/p) variance
    correction of the module docstring. ``f_prime`` is f', used at the two edges."""
    c = p / q
    s = math.sqrt(c)
    # phi varies on the angular scale 1 - s near theta = pi: resolve it (16 points across it makes
    # the aliasing ~e^-16). At c = 1 it is a kink, whose coefficients converge as 1/points anyway.
    width = 1.0 - s
    points = 1 << (14 if width <= 0.0 else min(20, max(12, math.ceil(math.log2(16.0 / width)))))
    theta = math.pi * (np.arange(points) + 0.5) / points
    x = 1.0 + c + 2.0 * s * np.cos(theta)
    phi = f(x)
    beta = scipy.fft.dct(phi, type=2) / points  # cosine coefficients beta_k of phi, k >= 1
    k = np.arange(points, dtype=np.float64)
    # Marchenko-Pastur: dF = (2/pi) sin^2(theta) / x dtheta in the theta variable.
    mp_integral = float(np.mean(phi * 2.0 * np.sin(theta) ** 2 / x))
    mean = p * mp_integral + 0.5 * float(beta[2::2].sum())
    var = 0.5 * float(np.sum(k[1:] * beta[1:] ** 2))
    upper, lower = (1.0 + s) ** 2, (1.0 - s) ** 2
    correction = upper * _edge_form(beta, 2.0 * s * float(f_prime(upper)))
    if lower > 0.0:  # at c = 1 the lower edge weight vanishes (and f' may be infinite there)
        sign = np.where(np.arange(points) % 2 == 0, 1.0, -1.0)
        correction += lower * _edge_form(beta * sign, -2.0 * s * float(f_prime(lower)))
    return mean, var + correction / (8.0 * p)


def _edge_form(coef: np.ndarray, second: float) -> float:
    r""":math:`Q(u) = \sum_{j,k \ge 1} jk(\max(j,k) - 1)u_j u_k = 2F_1(F_2 - F_1) - \sum_{r\ge1} R_r^2`.

    Here :math:`F_1 = \sum k u_k`, :math:`F_2 = \sum k^2 u_k` (``second``, from f' at the edge, since
    the series only Abel-converges at c = 1) and :math:`R_r = \sum_{k > r} k u_k`.
    """
    weighted = np.arange(len(coef), dtype=np.float64) * coef
    weighted[0] = 0.0
    first = float(weighted.sum())
    tails = np.cumsum(weighted[::-1])[::-1]  # tails[r] = sum_{k >= r}
    remainder = tails[2:]  # R_r for r >= 1
    return 2.0 * first * (second - first) - float(np.dot(remainder, remainder))


_KINDS = {
    "mu_only": _mu_only,
    "kl_diag": _kl_diag,
    "jeff_diag": _jeff_diag,
    "kl_full": _kl_full,
    "jeff_full": _jeff_full,
    "w2": _w2,
}
