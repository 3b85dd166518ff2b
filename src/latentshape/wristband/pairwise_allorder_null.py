r"""Closed-form null law of the exact pairwise wristband with its sharp and coordinate terms.

The components are those of the default loss, (rep, rad, ang, mom, sharp, coord), with rep and ang
from the exact kernel at every angular degree (:mod:`~latentshape.wristband.pairwise_null`) in place
of the spectral degree-<= 2 sums. What changes are the covariances of the exact energy E and
angular mean A with the sharp energy S and the coordinate term C (docs/theory.md):

- Cov(E, S). Both are V-statistics whose kernels :math:`h = k_{ang}(u \cdot u')\,r(t, t')` are
  degenerate (E[h(x, y) | x] constant, up to ~e^-beta for the three radial images). With
  :math:`\Lambda_{\le 2} = \sum_{l \le 2}\lambda^b_l\lambda^s_l Z_l(1)`, :math:`\Lambda_{>2}` the rest
  (the chordal kernels multiply into one, :math:`e^{c_b(x-1)} e^{c_s(x-1)} = e^{(c_b+c_s)(x-1)}`, so
  the full sum is :math:`\lambda_0` at scale :math:`c_b + c_s`), :math:`R_2 = E[r_b r_s]` over
  independent t, t', :math:`v = \mathrm{Cov}(r_b(t,t), r_s(t,t))`, traces :math:`T_{\le 2}` and
  :math:`T_{>2}` of the sharp kernel and :math:`P = \sum_b n_b^2` pairs on the residual's blocks,

  .. math::
      \mathrm{Cov}(E, S) = \frac{N T_{\le 2} v + 2N(N-1)(R_2\Lambda_{\le 2} - E[h_b]E[h_s])}{N^4}
          + \frac{T_{>2}\, v}{N P} + \frac{2(P - N) R_2 \Lambda_{>2}}{N^2 P}.

- Cov(A, S) :math:`= \frac{2 a_0}{N^2}\big(\sum_{l=1,2}\lambda^b_l\lambda^s_l Z_l(1)
  + \frac{N (P - N)}{(N-1) P}\Lambda_{>2}\big)` (the radial mean of S's kernel is :math:`a_0`).
- Cov(C, E) and Cov(C, A): the coordinate term's overlaps with the broad kernel at every degree
  (:func:`~latentshape.wristband.coordinates_null.exact_broad_coordinate_covariances`).

Every other moment is the one the spectral default uses (:mod:`~latentshape.wristband.allorder_null`).
"""

from __future__ import annotations

from ..calibration import NullStats
from .allorder_null import _add_sharp, assemble_null
from .blocks import block_sizes
from .blocks_null import residual_kernel_sums
from .closed_form_null import NullMoments, _log_moments
from .coordinates import coordinate_null_moments
from .coordinates_null import coordinate_null_covariances, exact_broad_coordinate_covariances
from .harmonics import mercer_coefficients
from .mercer import radial_coefficients, zonal_at_one
from .pairwise_null import _covariance_modes, pairwise_null_pieces

__all__ = ["pairwise_allorder_null_stats"]


def pairwise_allorder_null_stats(config, n: int, d: int) -> NullStats:
    r"""Null mean, sd and correlation of the raw ``(rep, rad, ang, mom, sharp, coord)`` of the global
    pairwise wristband (chordal kernel) with its sharp and coordinate terms, at (N, d).

    Raises ``ValueError`` where a piece has no closed form (the caller then uses Monte-Carlo).

    >>> from latentshape.wristband.components import WristbandConfig
    >>> stats = pairwise_allorder_null_stats(WristbandConfig(method="pairwise"), n=1024, d=16)
    >>> round(float(stats.corr[0, 4]), 2)   # rep with sharp
    0.31
    """
    if config.method != "pairwise" or config.average != "global" or config.angular != "chordal":
        raise ValueError("this closed form is for the global chordal pairwise path")
    beta, c = float(config.beta), 2.0 * config.beta * config.alpha_value**2
    energy, angle, rad, mom, covariances = pairwise_null_pieces(config, n, d)
    logs = {"E": _log_moments(energy), "A": _log_moments(angle)}
    means = {"E": energy.mean, "A": angle.mean}
    if config.sharp:
        radial = radial_coefficients(beta, config.k_modes)
        sharp_energy = _add_sharp(covariances, config, n, d, radial, mercer_coefficients(int(d), 2, c), mom.variance)
        _exact_sharp_covariances(covariances, config, n, d, radial, beta, c)
        logs["S"], means["S"] = _log_moments(sharp_energy), sharp_energy.mean
    coord = None
    if config.coordinates:
        coord = NullMoments(*coordinate_null_moments(n, d))
        shared = dict(beta=beta, broad=c, sharp=config.sharp_scale, k_modes=config.k_modes)
        spectral = coordinate_null_covariances(n, d, **shared, moment=config.moment, block=config.block_size(n, d))
        exact = exact_broad_coordinate_covariances(n, d, **shared)
        for other in ("rad", "mom", "E", "A") + (("S",) if config.sharp else ()):
            covariances[("C", other)] = exact.get(other, spectral[other])
    return assemble_null(beta, logs, means, rad, mom, coord, covariances)


def _exact_sharp_covariances(covariances: dict, config, n: int, d: int, radial, beta: float, c: float) -> None:
    """Replace Cov(E, S) and Cov(A, S) by those of the exact all-degree E and A (module docstring)."""
    scale = float(config.sharp_scale)
    sharp = mercer_coefficients(int(d), 2, scale)
    broad = mercer_coefficients(int(d), 2, c)
    dims = [zonal_at_one(d, level) for level in range(3)]
    low = sum(b * s * m for b, s, m in zip(broad, sharp, dims))
    high = max(mercer_coefficients(int(d), 0, c + scale)[0] - low, 0.0)
    exact_radial = radial_coefficients(beta, _covariance_modes(beta))
    pair_radial = exact_radial[0] * radial[0] + sum(a * r for a, r in zip(radial[1:], exact_radial[1:])) / 4.0
    diagonal_cov = sum(a * r for a, r in zip(radial[1:], exact_radial[1:])) / 8.0
    trace_low = sum(s * m for s, m in zip(sharp, dims))
    trace_high = residual_kernel_sums(int(d), (scale,), (1.0,))[0]
    pairs = float(sum(b * b for b in block_sizes(n, config.block_size(n, d))))
    mean_product = exact_radial[0] * radial[0] * broad[0] * sharp[0]
    covariances[("E", "S")] = ((n * trace_low * diagonal_cov + 2.0 * n * (n - 1) * (pair_radial * low - mean_product)) / n**4
                               + trace_high * diagonal_cov / (n * pairs) + 2.0 * (pairs - n) * pair_radial * high / (n * n * pairs))
    spread = low - broad[0] * sharp[0] + n * (pairs - n) / ((n - 1) * pairs) * high
    covariances[("S", "A")] = 2.0 * radial[0] * spread / n**2
