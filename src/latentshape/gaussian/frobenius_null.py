r"""Exact null mean and variance of the Frobenius moment-matching loss (no Monte-Carlo).

For N rows x ~ N(0, I_d), :math:`L = \alpha \|\hat\mu\|^2 + \gamma \|\hat\Sigma - I\|_F^2` with the
sample mean :math:`\hat\mu \sim N(0, I/N)`, independent of :math:`W = m \hat\Sigma \sim
\mathrm{Wishart}_d(m, I)`, m = N - 1. Then :math:`\|\hat\mu\|^2 = \chi^2_d / N` (mean d/N,
variance 2d/N^2) and :math:`\|\hat\Sigma - I\|_F^2 = (T_2 - 2m T_1)/m^2 + d` with
:math:`T_1 = \operatorname{tr} W \sim \chi^2_{md}` and :math:`T_2 = \operatorname{tr} W^2 = \sum_{k,l} (g_k \cdot g_l)^2`
over the m i.i.d. N(0, I_d) vectors :math:`g_k` behind W. Gaussian moments of :math:`a = \|g\|^2`
and :math:`c = (g_k \cdot g_l)^2` (:math:`E c = d`, :math:`E c^2 = 3d(d+2)`,
:math:`E[c_{kl} c_{kj}] = E a^2`, :math:`E[a_k^2 c_{kl}] = E a^3`) give :math:`E T_2 = md(m+d+1)`,
:math:`E T_2^2` below, and :math:`\mathrm{Cov}(T_2, T_1) = 4md(m+d+1)` (T_1 is independent of
W / T_1). Mean: :math:`\alpha d/N + \gamma d(d+1)/m` (Muirhead, *Aspects of Multivariate
Statistical Theory*, 1982, ch. 3, for the Wishart facts).
"""

from __future__ import annotations

__all__ = ["frobenius_null_moments"]


def frobenius_null_moments(n: int, d: int, alpha: float = 1.0, gamma: float = 1.0) -> tuple[float, float]:
    r"""Mean and variance of :math:`\alpha \|\hat\mu\|^2 + \gamma \|\hat\Sigma - I\|_F^2` for n rows ~ N(0, I_d).

    >>> frobenius_null_moments(2, 1)   # m = 1: (g^2 - 1)^2 + chi2_1 / 2: Var = 56 + 1/2
    (2.5, 56.5)
    """
    if n < 2 or d < 1:
        raise ValueError(f"need n >= 2 rows and d >= 1, got n={n}, d={d}")
    m = n - 1
    a2, a3, a4 = d * (d + 2), d * (d + 2) * (d + 4), d * (d + 2) * (d + 4) * (d + 6)
    pairs = m * (m - 1) / 2
    square_sums = m * a4 + m * (m - 1) * a2 * a2                                   # E (sum_k a_k^2)^2
    cross = pairs * (2 * a3 + (m - 2) * d * a2)                                     # E sum_j a_j^2 sum_{k<l} c_kl
    pair_sums = pairs * (3 * a2 + 2 * (m - 2) * a2 + (pairs - 1 - 2 * (m - 2)) * d * d)  # E (sum_{k<l} c_kl)^2
    mean_t2 = m * d * (m + d + 1)
    var_t2 = square_sums + 4 * cross + 4 * pair_sums - mean_t2 * mean_t2
    var_q = var_t2 - 4 * m * 4 * m * d * (m + d + 1) + 4 * m * m * 2 * m * d      # Q = T_2 - 2m T_1
    mean = alpha * d / n + gamma * d * (d + 1) / m
    variance = alpha * alpha * 2 * d / (n * n) + gamma * gamma * var_q / m ** 4
    return float(mean), float(variance)
