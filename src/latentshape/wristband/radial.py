r"""Radial component of the wristband loss: 1-D optimal transport of t to U[0, 1] (DESIGN 3.5).

With the sorted radial coordinates :math:`t_{(i)}`, their Gaussian scores
:math:`z_{(i)} = \Phi^{-1}(t_{(i)})` and the mid-quantiles :math:`q_i = (i + 1/2)/N`:

.. math::
    \mathrm{rad} = \tfrac12 \Big[ 12\, \overline{(t_{(i)} - q_i)^2}
                   + \overline{(z_{(i)} - \Phi^{-1}(q_i))^2} \Big].

The first term (scaled by 12 = 1/Var U[0,1]) is the squared W2 distance of t to the uniform
law; the second is the squared W2 distance of the radius's Gaussian score to N(0, 1), which keeps
a gradient when t saturates at 0 or 1.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["radial_distance"]


def radial_distance(t: Tensor, score: Tensor) -> Tensor:
    r"""Radial transport cost of ``t`` (..., N) with scores ``score`` = Phi^-1(t); shape ``(...)``.

    Both inputs share dtype (float64 from :func:`~latentshape.wristband.map.wristband_map`).

    >>> t = torch.tensor([0.125, 0.375, 0.625, 0.875], dtype=torch.float64)   # exactly the q_i
    >>> float(radial_distance(t, torch.special.ndtri(t)))
    0.0
    """
    n = t.shape[-1]
    order = torch.argsort(t, dim=-1)
    t_sorted = torch.gather(t, -1, order)
    score_sorted = torch.gather(score, -1, order)
    quantiles = (torch.arange(n, dtype=t.dtype, device=t.device) + 0.5) / n
    uniform_part = 12.0 * ((t_sorted - quantiles) ** 2).mean(dim=-1)
    gaussian_part = ((score_sorted - torch.special.ndtri(quantiles)) ** 2).mean(dim=-1)
    return 0.5 * (uniform_part + gaussian_part)
