r"""Maximum mean discrepancy between a batch and N(0, I), with closed-form Gaussian-side terms.

For the Gaussian kernel :math:`k_s(x, y) = \exp(-\|x - y\|^2 / (2 s^2))` in :math:`\mathbb{R}^d`,

.. math::

    \mathrm{MMD}^2_s(P, N(0, I)) = \mathbb{E}_{x, x' \sim P} k_s(x, x')
        - 2\, \mathbb{E}_{x \sim P} \mathbb{E}_{y} k_s(x, y) + \mathbb{E}_{y, y'} k_s(y, y'),

and the expectations over y, y' ~ N(0, I) are Gaussian integrals:

.. math::

    \mathbb{E}_y k_s(x, y) = \Big(\frac{s^2}{s^2 + 1}\Big)^{d/2} \exp\Big(-\frac{\|x\|^2}{2 (s^2 + 1)}\Big),
    \qquad
    \mathbb{E}_{y, y'} k_s(y, y') = \Big(\frac{s^2}{s^2 + 2}\Big)^{d/2}.

So no Gaussian samples are needed: only the x-x term is estimated from the batch. By default it is
the **unbiased U-statistic** :math:`\frac{1}{N(N-1)} \sum_{i \ne j} k_s(x_i, x_j)`, which makes the
whole estimate unbiased for the population MMD^2 (null mean exactly 0; a batch can give a slightly
negative value). ``unbiased=False`` uses the V-statistic (diagonal included, always >= 0, biased
upward by :math:`(1 - \overline{k}) / N`). Several widths are summed. Cost O(N^2 d) time,
O(N^2) memory per width.

Reference: Gretton, Borgwardt, Rasch, Schoelkopf & Smola (2012), "A kernel two-sample test", JMLR.
"""

from __future__ import annotations

import math
from typing import Hashable, Sequence

import torch
from torch import Tensor

from ..calibration import NullStats
from ..statistic import BatchStatistic
from .closed_form_nulls import mmd_null_moments

__all__ = ["DEFAULT_RELATIVE_BANDWIDTHS", "default_bandwidths", "gaussian_kernel_means", "gaussian_mmd", "GaussianMMD"]

# Widths relative to sqrt(d): pairwise distances of N(0, I) points concentrate around sqrt(2 d),
# so s = c sqrt(d) keeps every kernel informative in any dimension
# (E k(y, y') -> exp(-1 / (2 c^2)) as d grows).
DEFAULT_RELATIVE_BANDWIDTHS: tuple[float, ...] = (0.5, 1.0, 2.0)


def default_bandwidths(d: int) -> tuple[float, ...]:
    r"""Default kernel widths in dimension d: :math:`\sqrt{d} \times (0.5, 1, 2)`.

    >>> default_bandwidths(4)
    (1.0, 2.0, 4.0)
    """
    return tuple(c * math.sqrt(d) for c in DEFAULT_RELATIVE_BANDWIDTHS)


def gaussian_kernel_means(x: Tensor, bandwidth: float) -> tuple[Tensor, float]:
    r"""Closed-form :math:`\mathbb{E}_y k_s(x, y)` for each row of ``x`` ``(..., d)`` and :math:`\mathbb{E} k_s(y, y')`.

    Returns ``(shape x.shape[:-1] tensor, float)``; y, y' ~ N(0, I) independent.

    >>> cross, self_term = gaussian_kernel_means(torch.zeros(1, 2), bandwidth=1.0)
    >>> float(cross[0]), self_term                  # (1/2)^(2/2) and (1/3)^(2/2)
    (0.5, 0.333...)
    """
    s2 = float(bandwidth) ** 2
    d = x.shape[-1]
    # (s^2 / (s^2 + c))^(d/2) in log-space: stays accurate for large d and small widths.
    log_cross_scale = -0.5 * d * math.log1p(1.0 / s2)
    cross = torch.exp(log_cross_scale - (x * x).sum(dim=-1) / (2.0 * (s2 + 1.0)))
    self_term = math.exp(-0.5 * d * math.log1p(2.0 / s2))
    return cross, self_term


def gaussian_mmd(x: Tensor, bandwidths: Sequence[float], unbiased: bool = True) -> Tensor:
    r"""Squared MMD between each batch ``x`` ``(..., N, d)`` and N(0, I), summed over kernel widths.

    See the module docstring for the formula. Returns shape ``x.shape[:-2]``.

    >>> x = torch.randn(200, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> abs(float(gaussian_mmd(x, [1.0]))) < 0.01, float(gaussian_mmd(x + 2.0, [1.0])) > 0.1
    (True, True)
    """
    if len(bandwidths) == 0:
        raise ValueError("need at least one bandwidth")
    n = x.shape[-2]
    squared_norms = (x * x).sum(dim=-1)
    # ||x_i - x_j||^2 by expansion (no sqrt: finite gradients at coincident points); rounding can
    # make it slightly negative, hence the clamp.
    squared_distances = (
        squared_norms.unsqueeze(-1) + squared_norms.unsqueeze(-2) - 2.0 * x @ x.transpose(-1, -2)
    ).clamp_min(0.0)
    diagonal = torch.eye(n, dtype=torch.bool, device=x.device)
    total = x.new_zeros(x.shape[:-2])
    for bandwidth in bandwidths:
        s2 = float(bandwidth) ** 2
        kernel = torch.exp(-squared_distances / (2.0 * s2))
        if unbiased:
            within = torch.where(diagonal, 0.0, kernel).sum(dim=(-2, -1)) / (n * (n - 1))
        else:
            within = torch.where(diagonal, 1.0, kernel).mean(dim=(-2, -1))
        cross, self_term = gaussian_kernel_means(x, bandwidth)
        total = total + within - 2.0 * cross.mean(dim=-1) + self_term
    return total


class GaussianMMD(BatchStatistic):
    r"""Squared maximum mean discrepancy to N(0, I) with Gaussian kernels and closed-form Gaussian side.

    :math:`\sum_s \mathrm{MMD}^2_s` with :math:`k_s(x, y) = \exp(-\|x - y\|^2 / (2 s^2))`; the
    expectations involving N(0, I) are exact (module docstring), the x-x term is the unbiased
    U-statistic (``unbiased=True``, null mean exactly 0) or the V-statistic.

    Args:
        bandwidths: kernel widths s. ``None`` (default) uses :math:`\sqrt{d} \times (0.5, 1, 2)`
            for the batch's d; a sequence gives absolute widths.
        unbiased: U-statistic (True) or V-statistic (False) for the x-x term.
        calibrate: return a z-score against the null at the batch's (N, d).
        null_samples: Monte-Carlo null batches for calibration.
        distributed: under ``torch.distributed``, the MMD of the global batch (every rank's rows are
            all-gathered with gradients; O(N_global^2) per rank), see :mod:`latentshape.distributed`.

    Reference: Gretton et al. (2012), "A kernel two-sample test".

    >>> loss_fn = GaussianMMD()                   # a z-score against its exact null at (N, d)
    >>> x = torch.randn(256, 8, generator=torch.Generator().manual_seed(0))
    >>> abs(float(loss_fn(x))) < 3, float(loss_fn(x + 1.0)) > 100
    (True, True)
    >>> raw = GaussianMMD(calibrate=False)        # the squared MMD itself
    >>> abs(float(raw(x))) < 0.01, float(raw(x + 1.0)) > 0.1
    (True, True)
    """

    def __init__(
        self,
        *,
        bandwidths: Sequence[float] | None = None,
        unbiased: bool = True,
        calibrate: bool = True,
        null_samples: int = 512,
        null_seed: int = 0,
        distributed: bool = False,
    ) -> None:
        super().__init__(calibrate=calibrate, null_samples=null_samples, null_seed=null_seed, distributed=distributed)
        if bandwidths is not None:
            bandwidths = tuple(float(s) for s in bandwidths)
            if len(bandwidths) == 0:
                raise ValueError("bandwidths must be None or a non-empty sequence of positive widths")
            if not all(0.0 < s < float("inf") for s in bandwidths):
                raise ValueError(f"bandwidths must be positive and finite, got {bandwidths}")
        self.bandwidths = bandwidths
        self.unbiased = bool(unbiased)

    def resolved_bandwidths(self, d: int) -> tuple[float, ...]:
        """The widths used for embeddings of dimension ``d``."""
        return self.bandwidths if self.bandwidths is not None else default_bandwidths(d)

    def _evaluate(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return gaussian_mmd(x, self.resolved_bandwidths(x.shape[-1]), self.unbiased)

    def _config(self, d: int) -> Hashable:
        return (self.resolved_bandwidths(d), self.unbiased)

    def _closed_form_null(self, n: int, d: int) -> NullStats:
        """Exact null mean and variance of the degenerate U- (or V-) statistic (:func:`mmd_null_moments`)."""
        return NullStats.from_moments(*mmd_null_moments(n, d, self.resolved_bandwidths(d), self.unbiased))

    def _intermediate_size(self, n: int, d: int) -> int:
        return 3 * n * n + n * d

    def extra_repr(self) -> str:
        widths = "sqrt(d) * " + str(DEFAULT_RELATIVE_BANDWIDTHS) if self.bandwidths is None else str(self.bandwidths)
        return f"bandwidths={widths}, unbiased={self.unbiased}, {self._flags_repr()}"
