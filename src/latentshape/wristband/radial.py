r"""Radial component of the wristband loss: 1-D optimal transport of t to U[0, 1]
(docs/theory.md, "The radial and moment terms").

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

import math

import numpy as np
import torch
from torch import Tensor

from ..validation import is_compiling
from . import _radial_null_table as _null

__all__ = ["radial_distance", "radial_null_moments"]


def radial_distance(t: Tensor, score: Tensor) -> Tensor:
    r"""Radial transport cost of ``t`` (..., N) with scores ``score`` = Phi^-1(t); shape ``(...)``.

    Both inputs share dtype (float64 from :func:`~latentshape.wristband_map`).

    >>> t = torch.tensor([0.125, 0.375, 0.625, 0.875], dtype=torch.float64)   # exactly the q_i
    >>> float(radial_distance(t, torch.special.ndtri(t)))
    0.0
    """
    return radial_cost(*_checked_radial(t, score))


def radial_cost(t: Tensor, score: Tensor) -> Tensor:
    """:func:`radial_distance` of inputs already known to be valid (the loss's own (t, z))."""
    n = t.shape[-1]
    order = _ascending_order(t)
    t_sorted = torch.gather(t, -1, order)
    score_sorted = torch.gather(score, -1, order)
    quantiles, normal_quantiles = _mid_quantiles(n, t.dtype, t.device)
    uniform_part = 12.0 * ((t_sorted - quantiles) ** 2).mean(dim=-1)
    gaussian_part = ((score_sorted - normal_quantiles) ** 2).mean(dim=-1)
    return 0.5 * (uniform_part + gaussian_part)


def _checked_radial(t: Tensor, score: Tensor) -> tuple[Tensor, Tensor]:
    for name, value in (("t", t), ("score", score)):
        if not isinstance(value, Tensor) or not torch.is_floating_point(value) or value.dim() < 1 or value.shape[-1] < 1:
            raise ValueError(f"{name} must be a floating tensor of shape (..., N) with N >= 1")
    if t.shape != score.shape:
        raise ValueError(f"t and score must have the same shape, got {tuple(t.shape)} and {tuple(score.shape)}")
    if not is_compiling() and not (bool(((t >= 0) & (t <= 1)).all()) and bool(torch.isfinite(score).all())):
        raise ValueError("t must lie in [0, 1] and score must be finite")
    return t, score.to(t.dtype)


def _ascending_order(t: Tensor) -> Tensor:
    """argsort along the last axis. On the CPU numpy's introsort is ~7x faster than torch's sort at
    N = 65536 (the radial term's largest cost there); the order carries no gradient."""
    if t.device.type == "cpu" and not is_compiling():
        return torch.from_numpy(np.argsort(t.detach().numpy(), axis=-1))
    return torch.argsort(t, dim=-1)


_QUANTILES: dict[tuple[int, torch.dtype, torch.device], tuple[Tensor, Tensor]] = {}


_CACHED_UP_TO = 1 << 16  # larger batches recompute them (~20 ns a point): two float64 N-vectors fewer kept


def _mid_quantiles(n: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """(i + 1/2) / n and their normal quantiles, kept per (n, dtype, device) up to n = 65536: a constant
    of the batch shape."""
    key = (n, dtype, device)
    hit = None if is_compiling() else _QUANTILES.get(key)
    if hit is None:
        quantiles = (torch.arange(n, dtype=dtype, device=device) + 0.5) / n
        hit = (quantiles, torch.special.ndtri(quantiles))
        if not is_compiling() and len(_QUANTILES) < 64 and n <= _CACHED_UP_TO:
            _QUANTILES[key] = hit
    return hit


def radial_null_moments(n: int) -> tuple[float, float]:
    r"""Mean and variance of :func:`radial_distance` under x ~ N(0, I) at batch size ``n``.

    Under the null t is exactly U[0, 1] and its score exactly N(0, 1) whatever d, so the law of
    ``rad`` depends on N alone. It has no elementary closed form (the score part is a tail-driven
    sum of normal order statistics; its mean grows like :math:`\log\log N / (2N)`), so its moments
    come from a one-off Monte-Carlo of the 1-D statistic over N = 2 .. 2^20 (``scripts/radial_null_table.py``):
    the table itself below N = 24, and above it the weighted fit
    :math:`N m = A + B \log\log N + C/\sqrt N` (likewise for N * sd; chi^2 per degree of freedom ~1,
    B ~ 1/2 as the theory says), which carries on smoothly beyond 2^20.

    >>> mean, variance = radial_null_moments(1024)
    >>> round(1024 * mean, 2), round(1024 * variance ** 0.5, 2)
    (2.57, 1.68)
    """
    if n < 2:
        raise ValueError(f"the radial term needs n >= 2, got {n}")
    if n < _null.FIT_FROM:
        _, scaled_mean, scaled_sd, _ = _null.TABLE[n - 2]
    else:
        terms = (1.0, math.log(math.log(n)), n**-0.5)
        scaled_mean = sum(c * v for c, v in zip(_null.MEAN_FIT, terms))
        scaled_sd = sum(c * v for c, v in zip(_null.SD_FIT, terms))
    return scaled_mean / n, (scaled_sd / n) ** 2
