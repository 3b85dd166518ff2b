r"""Closed-form null laws of :class:`~latentshape.SIGReg` and :class:`~latentshape.GaussianMMD`.

Both statistics are, under x ~ N(0, I), *degenerate* V- or U-statistics
:math:`\frac{1}{N^2}\sum_{i,j} h(x_i, x_j)` with :math:`E[h(x, y) \mid x] = 0`, so only identical
pairs are correlated and the null mean and variance are exact for every N and d
(docs/theory.md, "Calibration: the closed-form null"):

.. math::
    \mathrm{Var}\Big[\frac{1}{N}\sum_{i \ne j} h\Big] = \frac{2(N-1)}{N} E[h(x, y)^2],
    \qquad \mathrm{Cov}\Big[\sum_i h(x_i, x_i), \sum_{i \ne j} h(x_i, x_j)\Big] = 0.

**SIGReg.** On one slice, :math:`EP = N\sum_k W_k |\varphi_N(t_k) - \varphi(t_k)|^2` (folded
trapezoid weights :math:`W_k`, :math:`\varphi(t) = e^{-t^2/2}`), so
:math:`E[EP] = \sum_k W_k (1 - \varphi_k^2)` exactly. Two slices with cosine
:math:`\rho = \theta \cdot \theta'` see projections with correlation :math:`\rho`, and with
:math:`A_{kl}(\rho) = \mathrm{Cov}(\cos t_k p, \cos t_l p')`, :math:`B_{kl}(\rho) = E[\sin t_k p \sin t_l p']`
(Gaussian characteristic functions)

.. math::
    \mathrm{Cov}(EP_\theta, EP_{\theta'} \mid \rho) = \frac{4}{N} \sum_{kl} W_k W_l \varphi_k \varphi_l A_{kl}
        + \frac{2(N-1)}{N} \sum_{kl} W_k W_l (A_{kl}^2 + B_{kl}^2).

The mean over M fresh slices has variance :math:`V(1)/M + (1 - 1/M) E_\rho[V(\rho)]`, the
expectation over the law of the cosine of two independent uniform directions on
:math:`S^{d-1}` (Gauss-Jacobi quadrature).

**MMD** (unbiased): :math:`h = \sum_s [k_s(x, y) - m_s(x) - m_s(y) + c_s]` with the Gaussian-side
means :math:`m_s`, :math:`c_s` of :mod:`~latentshape.gaussian.mmd`; mean 0 and variance
:math:`\frac{2}{N(N-1)} E[h^2]`, with :math:`E[h^2] = \sum_{s,s'} (E[k_s k_{s'}] - 2E[m_s m_{s'}] + c_s c_{s'})`
all Gaussian integrals. The V-statistic adds :math:`(1 - \sum_s c_s)/N` to the mean and
:math:`4\,\mathrm{Var}[m(x)]/N^3` to the variance.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import special

__all__ = ["sigreg_null_moments", "mmd_null_moments", "sphere_cosine_quadrature"]


def sphere_cosine_quadrature(d: int, points: int = 64) -> tuple[np.ndarray, np.ndarray]:
    r"""Nodes and weights (summing to 1) for :math:`E[f(\theta \cdot \theta')]`, independent uniform on :math:`S^{d-1}`.

    The cosine has density :math:`\propto (1 - \rho^2)^{(d-3)/2}` (d >= 2); d = 1 gives :math:`\pm 1`.

    >>> nodes, weights = sphere_cosine_quadrature(3)
    >>> round(float(weights @ nodes**2), 10)   # E[rho^2] = 1/d
    0.3333333333
    """
    if d == 1:
        return np.array([-1.0, 1.0]), np.array([0.5, 0.5])
    exponent = (d - 3) / 2.0
    if d <= 256:  # scipy's Jacobi nodes are reliable here
        nodes, weights = special.roots_jacobi(points, exponent, exponent)
    else:  # concentrated around 0 with sd 1/sqrt(d): Legendre nodes on |rho| < 20/sqrt(d), exact log-density
        nodes, weights = special.roots_legendre(4 * points)
        nodes = nodes * min(1.0, 20.0 / math.sqrt(d))
        log_density = exponent * np.log1p(-nodes * nodes)
        weights = weights * np.exp(log_density - log_density.max())
    return nodes, weights / weights.sum()


def sigreg_null_moments(n: int, d: int, slices: int, nodes: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    r"""Exact null mean and variance of SIGReg (mean Epps-Pulley over ``slices`` fresh random slices).

    ``nodes`` t_k >= 0 and ``weights`` W_k are the folded trapezoid rule of
    :func:`~latentshape.gaussian.sigreg.epps_pulley_quadrature` (weights include :math:`e^{-t^2/2}`).

    >>> import torch
    >>> from latentshape.gaussian.sigreg import epps_pulley_quadrature
    >>> t, w = (v.numpy() for v in epps_pulley_quadrature(dtype=torch.float64))
    >>> mean, variance = sigreg_null_moments(256, 8, 256, t, w)
    >>> round(mean, 4)    # sum_k W_k (1 - exp(-t_k^2)), any N, d, M
    1.0519
    """
    t, w = np.asarray(nodes, dtype=np.float64), np.asarray(weights, dtype=np.float64)
    phi = np.exp(-0.5 * t * t)
    mean = float(w @ (1.0 - phi * phi))

    def covariance(rho: float) -> float:
        square_sum = t[:, None] ** 2 + t[None, :] ** 2
        cross = t[:, None] * t[None, :] * rho
        minus, plus = np.exp(-0.5 * (square_sum - 2 * cross)), np.exp(-0.5 * (square_sum + 2 * cross))
        cosines = 0.5 * (minus + plus) - phi[:, None] * phi[None, :]  # A_kl(rho)
        sines = 0.5 * (minus - plus)  # B_kl(rho)
        weight = w[:, None] * w[None, :]
        diagonal = 4.0 * float((weight * phi[:, None] * phi[None, :] * cosines).sum())
        pairs = float((weight * (cosines * cosines + sines * sines)).sum())
        return diagonal / n + 2.0 * (n - 1) / n * pairs

    same = covariance(1.0)
    rhos, rho_weights = sphere_cosine_quadrature(d)
    between = float(sum(q * covariance(float(r)) for r, q in zip(rhos, rho_weights)))
    return mean, same / slices + (1.0 - 1.0 / slices) * between


def mmd_null_moments(n: int, d: int, bandwidths: Sequence[float], unbiased: bool = True) -> tuple[float, float]:
    r"""Exact null mean and variance of :func:`~latentshape.gaussian.mmd.gaussian_mmd` (summed widths).

    >>> mean, variance = mmd_null_moments(256, 8, (1.0, 2.0))
    >>> mean, variance > 0
    (0.0, True)
    """
    s2 = np.array([float(s) ** 2 for s in bandwidths])
    a, b = s2[:, None], s2[None, :]
    scale = np.exp(-0.5 * d * np.log1p(1.0 / s2))  # (s^2/(s^2+1))^(d/2): m_s(x) = scale e^{-|x|^2/(2(s^2+1))}
    self_terms = np.exp(-0.5 * d * np.log1p(2.0 / s2))  # c_s
    # x - y ~ N(0, 2I): E exp(-|x-y|^2 (1/(2a) + 1/(2b))) = (1 + 2 (1/a + 1/b))^(-d/2)
    kernel_products = np.exp(-0.5 * d * np.log1p(2.0 * (1.0 / a + 1.0 / b)))
    # E exp(-|x|^2 (1/(2(a+1)) + 1/(2(b+1)))) = (1 + 1/(a+1) + 1/(b+1))^(-d/2)
    mean_products = scale[:, None] * scale[None, :] * np.exp(-0.5 * d * np.log1p(1.0 / (a + 1.0) + 1.0 / (b + 1.0)))
    pair_square = float((kernel_products - 2.0 * mean_products + np.outer(self_terms, self_terms)).sum())
    pair_square = max(pair_square, 0.0)  # rounding only: E[h^2] >= 0
    if unbiased:
        return 0.0, 2.0 * pair_square / (n * (n - 1))
    mean_variance = float((mean_products - np.outer(self_terms, self_terms)).sum())
    return (len(s2) - float(self_terms.sum())) / n, 2.0 * (n - 1) * pair_square / n**3 + 4.0 * mean_variance / n**3
