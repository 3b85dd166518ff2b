r"""Mercer coefficients of the wristband kernel: radial cosines and angular zonal harmonics.

- radial: :math:`k_{rad}(t,t') = \sum_{k \ge 0} a_k \cos(k\pi t)\cos(k\pi t')` with
  :math:`a_0 = \sqrt{\pi/\beta}`, :math:`a_k = 2\sqrt{\pi/\beta}\, e^{-\pi^2 k^2 / (4\beta)}`
  (Poisson summation of the full set of Neumann images);
- angular: :math:`k_{ang}(u \cdot u') = \sum_l \lambda_l Z_l(u \cdot u')` with zonal harmonics
  :math:`Z_0 = 1`, :math:`Z_1(x) = d x`, :math:`Z_2(x) = (d+2)(d x^2 - 1)/2` (normalized sphere
  measure). For the chordal kernel :math:`\exp(c(x-1))`,
  :math:`\lambda_l = \Gamma(\nu+1)(2/c)^\nu e^{-c} I_{\nu+l}(c)`, :math:`\nu = (d-2)/2`,
  evaluated as :math:`e^{-c}(c/2)^l \frac{\Gamma(\nu+1)}{\Gamma(\nu+l+1)}\,{}_0F_1(;\nu+l+1;c^2/4)`
  so nothing underflows at large d. For the geodesic kernel, by Funk-Hecke quadrature.

docs/theory.md, "The spectral expansion", derives both. References: Funk-Hecke and the addition
theorem, e.g. Atkinson & Han, *Spherical Harmonics and Approximations on the Unit Sphere* (2012), ch. 2.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

__all__ = ["MAX_DEGREE", "default_alpha", "radial_coefficients", "angular_coefficients", "zonal_at_one"]

MAX_DEGREE = 2


def default_alpha(angular: str) -> float:
    r"""Default angular scale :math:`\alpha`: :math:`\alpha^2 = 1/12` (chordal), :math:`2/(3\pi^2)` (geodesic).

    Chosen so that :math:`E[\alpha^2 \|u-u'\|^2]` (resp. :math:`\alpha^2\theta^2`) matches
    :math:`E[(t-t')^2] = 1/6` for independent uniform points.

    >>> round(default_alpha("chordal") ** 2 * 12, 12)
    1.0
    """
    if angular == "chordal":
        return math.sqrt(1.0 / 12.0)
    if angular == "geodesic":
        return math.sqrt(2.0 / (3.0 * math.pi**2))
    raise ValueError(f"angular must be 'chordal' or 'geodesic', got {angular!r}")


def radial_coefficients(beta: float, k_modes: int) -> tuple[float, ...]:
    r"""Cosine coefficients :math:`a_0, \dots, a_K` (K = ``k_modes``) of the Neumann radial kernel.

    >>> [round(a, 4) for a in radial_coefficients(8.0, 2)]
    [0.6267, 0.9207, 0.365]
    """
    if k_modes < 0:
        raise ValueError(f"k_modes must be >= 0, got {k_modes}")
    root = math.sqrt(math.pi / beta)
    return tuple([root] + [2.0 * root * math.exp(-(math.pi**2) * k * k / (4.0 * beta)) for k in range(1, k_modes + 1)])


def zonal_at_one(d: int, degree: int) -> float:
    """:math:`Z_l(1)`, the dimension of the degree-l harmonic space on :math:`S^{d-1}` (l <= 2; the spectral path's degrees).

    >>> [zonal_at_one(3, l) for l in range(3)]
    [1.0, 3.0, 5.0]
    """
    return (1.0, float(d), (d + 2) * (d - 1) / 2.0)[degree]


@functools.lru_cache(maxsize=256)
def angular_coefficients(d: int, degree: int, beta: float, alpha: float, angular: str = "chordal") -> tuple[float, ...]:
    r"""Mercer coefficients :math:`\lambda_0, \dots, \lambda_L` of the angular kernel on :math:`S^{d-1}`.

    >>> lam = angular_coefficients(3, 2, 8.0, 12 ** -0.5)   # c = 4/3
    >>> round(lam[0], 6) == round((1 - math.exp(-8 / 3)) / (8 / 3), 6)   # mean of e^{c(x-1)}, x ~ U[-1, 1]
    True
    """
    if degree < 0:
        raise ValueError(f"degree must be >= 0, got {degree}")
    if angular == "chordal":
        coefficients = _chordal_coefficients(d, degree, 2.0 * beta * alpha * alpha)
    elif angular == "geodesic":
        scale = beta * alpha * alpha
        coefficients = _funk_hecke_coefficients(d, degree, lambda x: np.exp(-scale * np.arccos(np.clip(x, -1, 1)) ** 2))
    else:
        raise ValueError(f"angular must be 'chordal' or 'geodesic', got {angular!r}")
    return tuple(float(v) for v in coefficients)


def _chordal_coefficients(d: int, degree: int, c: float) -> list[float]:
    if d == 1:  # S^0 = {-1, +1}: Z_1(x) = x and no harmonics of degree >= 2
        return ([0.5 * (1 + math.exp(-2 * c)), 0.5 * (1 - math.exp(-2 * c))] + [0.0] * degree)[: degree + 1]
    nu = (d - 2) / 2.0
    out = []
    for level in range(degree + 1):
        log_value = (
            -c
            + level * math.log(c / 2.0)
            + math.lgamma(nu + 1.0)
            - math.lgamma(nu + level + 1.0)
            + math.log(special.hyp0f1(nu + level + 1.0, c * c / 4.0))
        )
        out.append(math.exp(log_value))
    return out


def _funk_hecke_coefficients(d: int, degree: int, kernel) -> list[float]:
    r"""Funk-Hecke: :math:`\lambda_l = E[k(X) Z_l(X)] / Z_l(1)`, X = u.u' for independent uniform u, u'."""
    if d == 1:
        plus, minus = float(kernel(np.array(1.0))), float(kernel(np.array(-1.0)))
        return ([0.5 * (plus + minus), 0.5 * (plus - minus)] + [0.0] * degree)[: degree + 1]
    # X has density proportional to (1 - x^2)^((d-3)/2): Gauss-Jacobi quadrature while scipy's nodes
    # are reliable; beyond, X ~ N(0, 1/d) is concentrated and Gauss-Legendre on |x| < 20 / sqrt(d)
    # with the exact log-density as weights is accurate to rounding.
    exponent = (d - 3) / 2.0
    if d <= _JACOBI_MAX_DIMENSION:
        nodes, weights = special.roots_jacobi(200, exponent, exponent)
    else:
        nodes, weights = special.roots_legendre(400)
        nodes = nodes * min(1.0, 20.0 / math.sqrt(d))
        log_density = exponent * np.log1p(-nodes * nodes)
        weights = weights * np.exp(log_density - log_density.max())
    weights = weights / weights.sum()
    values = kernel(nodes)
    return [float(np.sum(weights * values * _legendre(level, d, nodes))) for level in range(degree + 1)]


_JACOBI_MAX_DIMENSION = 256


def _legendre(level: int, d: int, x: np.ndarray) -> np.ndarray:
    """Legendre polynomial of S^{d-1} normalized to 1 at x = 1: Z_l(x) / Z_l(1) (d >= 2)."""
    if level <= 2:  # explicit: stable at any d (scipy's Gegenbauer overflows at large nu)
        return (np.ones_like(x), x, (d * x * x - 1.0) / (d - 1.0))[level]
    if d == 2:
        return special.eval_chebyt(level, x)
    nu = (d - 2) / 2.0
    return special.eval_gegenbauer(level, nu, x) / special.eval_gegenbauer(level, nu, 1.0)
