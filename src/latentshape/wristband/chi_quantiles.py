r"""Chi-square quantiles at normal scores, to full relative precision in both tails.

:math:`q(z) = F_{\chi^2_d}^{-1}(\Phi(z))`: from the lower tail, :math:`P(d/2, q/2) = \Phi(z)`, where
z < 0, and from the upper tail, :math:`Q(d/2, q/2) = \Phi(-z)`, elsewhere (P, Q the regularized
incomplete gammas, DLMF 8.2), so that nothing is lost to rounding near t = 0 or 1. Each inverse runs
on its own side only: scipy's inverses cost ~0.7 us a point, the bulk of a closed-form null's
first call at a new width when both ran on the whole grid.

>>> import numpy as np
>>> q = chi_square_quantiles(3, np.array([-1.0, 0.0, 1.0]))
>>> [round(v, 4) for v in q.tolist()]   # chi2_3 quantiles at 0.159, 0.5 and 0.841
[1.0312, 2.366, 4.3936]
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["chi_square_quantiles"]


def chi_square_quantiles(d: int, z: np.ndarray) -> np.ndarray:
    r""":math:`F_{\chi^2_d}^{-1}(\Phi(z))` for an array of normal scores ``z`` (float64, same shape)."""
    z = np.asarray(z, dtype=np.float64)
    if d < 1:
        raise ValueError(f"need d >= 1, got {d}")
    half, lower = 0.5 * d, z < 0
    out = np.empty_like(z)
    out[lower] = special.gammaincinv(half, special.ndtr(z[lower]))
    out[~lower] = special.gammainccinv(half, special.ndtr(-z[~lower]))
    return 2.0 * out
