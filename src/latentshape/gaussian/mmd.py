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
upward by :math:`(1 - \overline{k}) / N`). Several widths are summed. Cost O(N^2 d) time and
O(N * block) memory: the x-x term walks over blocks of rows and its backward recomputes each
block, so no N x N matrix is ever kept for autograd.

The pairs are evaluated on the rows centred at their (detached) mean -- distances do not change,
and the expansion :math:`\|a\|^2 + \|b\|^2 - 2 a \cdot b` then loses nothing to a batch far from
the origin -- and divided by a power of two near their largest magnitude, the widths being
rescaled to match: values stay finite at any scale. Far beyond the widths (scale >~ 30 sqrt(d))
every kernel value, and hence the gradient, underflows to 0: the MMD of fixed widths has nothing
to say there. Near collapse (scale s -> 0) its gradient is O(s): about :math:`2 s / (N w^2)` per
row for width w, pointing outward.

Reference: Gretton, Borgwardt, Rasch, Schoelkopf & Smola (2012), "A kernel two-sample test", JMLR.
"""

from __future__ import annotations

import math
from typing import Hashable, Sequence

import torch
from torch import Tensor

from ..calibration import NullStats, check_flag
from ..statistic import BatchStatistic
from ..validation import as_embeddings
from .closed_form_nulls import mmd_null_moments

__all__ = ["DEFAULT_RELATIVE_BANDWIDTHS", "checked_bandwidths", "default_bandwidths", "gaussian_kernel_means", "gaussian_mmd", "GaussianMMD"]

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


def checked_bandwidths(bandwidths: Sequence[float]) -> tuple[float, ...]:
    """``bandwidths`` as a non-empty tuple of positive finite floats, else a ValueError naming them."""
    try:
        if isinstance(bandwidths, (str, bytes)):
            raise TypeError
        widths = tuple(float(b) for b in bandwidths)
    except (TypeError, ValueError):
        raise TypeError(f"bandwidths must be a sequence of kernel widths such as (1.0,), got {bandwidths!r}") from None
    if not widths:
        raise ValueError("bandwidths must be a non-empty sequence of positive widths")
    if not all(0.0 < s < float("inf") for s in widths):
        raise ValueError(f"bandwidths must be positive and finite, got {widths}")
    return widths


def gaussian_mmd(x: Tensor, bandwidths: Sequence[float], unbiased: bool = True) -> Tensor:
    r"""Squared MMD between each batch ``x`` ``(..., N, d)`` and N(0, I), summed over kernel widths.

    See the module docstring for the formula. Returns shape ``x.shape[:-2]``.

    >>> x = torch.randn(200, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> abs(float(gaussian_mmd(x, [1.0]))) < 0.01, float(gaussian_mmd(x + 2.0, [1.0])) > 0.1
    (True, True)
    """
    widths = checked_bandwidths(bandwidths)
    x = as_embeddings(x)
    n = x.shape[-2]
    flat = x.reshape((math.prod(x.shape[:-2]),) + tuple(x.shape[-2:]))
    pair_sums = _PairwiseKernelSums.apply(flat, tuple(0.5 / (w * w) for w in widths)).reshape(x.shape[:-2])
    if unbiased:
        within = pair_sums / (n * (n - 1))
    else:  # the diagonal adds k(x_i, x_i) = 1 for each point and width
        within = (pair_sums + n * len(widths)) / (n * n)
    total = within.to(x.dtype)
    for bandwidth in widths:
        cross, self_term = gaussian_kernel_means(x, bandwidth)
        total = total - 2.0 * cross.mean(dim=-1) + self_term
    return total


_PAIR_BLOCK_ELEMENTS = 1 << 17  # (rows of a block) x N per batch: a few such blocks live at once, in cache (0.5 MiB in float32)


def _pair_blocks(batch: int, n: int) -> list[tuple[int, int]]:
    rows = max(1, min(n, _PAIR_BLOCK_ELEMENTS // max(1, batch * n)))
    # a loop over the block count, not range(0, n, rows): under torch.compile a guard on the count, not on n
    return [(i * rows, min(n, (i + 1) * rows)) for i in range(-(-n // rows))]


def _centred_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """Rows centred at their detached mean and divided by a power of two f near their largest |entry|
    (exact), and 1/f per batch (float64, shape (B,))."""
    with torch.no_grad():
        centred = x - x.mean(dim=-2, keepdim=True, dtype=torch.float64).to(x.dtype)
        peak = centred.abs().amax(dim=(-2, -1)).to(torch.float64)
        reach = 120 if x.dtype != torch.float64 else 1000  # powers of two the dtype holds
        exponent = torch.frexp(peak).exponent.clamp(-reach, reach)  # 0 for an exactly collapsed batch
        unit = torch.ldexp(torch.ones_like(peak), exponent)  # = 1/f
        return centred / unit.to(x.dtype)[:, None, None], unit


class _PairwiseKernelSums(torch.autograd.Function):
    r""":math:`\sum_{i \ne j} \sum_w \exp(-\gamma_w \|x_i - x_j\|^2)` per batch ``(B,)`` (float64), in row blocks.

    Rows are centred and rescaled (:func:`_centred_rows`); the exponents follow, as
    :math:`\gamma_w u^2` with u = 1/f. The backward recomputes every block:
    :math:`\partial F / \partial x_i = -4 \sum_w \gamma_w u \sum_j k^w_{ij} (y_i - y_j)`.
    """

    @staticmethod
    def forward(ctx, x, exponents):  # type: ignore[override]
        rows, unit = _centred_rows(x)
        batch, n = rows.shape[0], rows.shape[1]
        limit = torch.finfo(x.dtype).max ** 0.75  # finite exponent x distance (distances are O(d) here)
        gammas = [(gamma * unit * unit).clamp_max(limit).to(x.dtype)[:, None, None] for gamma in exponents]
        squared = (rows * rows).sum(dim=-1)
        total = torch.zeros(batch, dtype=torch.float64, device=x.device)
        for start, stop in _pair_blocks(batch, n):
            distances = _block_distances(rows, squared, start, stop)
            for gamma in gammas:
                total += torch.exp(-gamma * distances).sum(dim=(-2, -1)).to(torch.float64)
        ctx.save_for_backward(rows, squared, unit)
        ctx.exponents = exponents
        return total - n * len(gammas)  # the diagonal's k(x_i, x_i) = 1, one per point and width

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_total):  # type: ignore[override]
        rows, squared, unit = ctx.saved_tensors
        batch, n = rows.shape[0], rows.shape[1]
        limit = torch.finfo(rows.dtype).max ** 0.75
        scaled = [((gamma * unit * unit).clamp_max(limit).to(rows.dtype)[:, None, None],
                   (-4.0 * gamma * unit * grad_total).clamp(-limit, limit).to(rows.dtype)[:, None, None])
                  for gamma in ctx.exponents]
        grad = torch.empty_like(rows)
        for start, stop in _pair_blocks(batch, n):
            distances = _block_distances(rows, squared, start, stop)
            weights = sum(coefficient * torch.exp(-gamma * distances) for gamma, coefficient in scaled)
            weights.diagonal(offset=start, dim1=-2, dim2=-1).zero_()  # y_i - y_i = 0: keep rounding out
            grad[:, start:stop] = rows[:, start:stop] * weights.sum(dim=-1, keepdim=True) - weights @ rows
        return grad, None


def _block_distances(rows: Tensor, squared: Tensor, start: int, stop: int) -> Tensor:
    """Squared distances (B, stop - start, N) from rows start:stop to all rows, with an exact zero
    diagonal (the expansion leaves rounding there) and no negative rounding."""
    block = rows[:, start:stop]
    distances = squared[:, start:stop, None] + squared[:, None, :] - 2.0 * block @ rows.transpose(-1, -2)
    distances = distances.clamp_min_(0.0)
    distances.diagonal(offset=start, dim1=-2, dim2=-1).zero_()
    return distances


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

    Collapse: at an exactly collapsed batch (all rows equal) the gradient is 0; near collapse
    (scale s) it points outward but is O(s), about :math:`2 s / (N w^2)` per row (3.6e-7 in total
    at s = 1e-6, N = 64, d = 8): MMD barely pulls a collapsing encoder back. Far beyond the widths
    its kernels underflow and the gradient is 0 as well.

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
        self.bandwidths = None if bandwidths is None else checked_bandwidths(bandwidths)
        self.unbiased = check_flag("unbiased", unbiased)

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
        return 2 * n * d + min(n * n, _PAIR_BLOCK_ELEMENTS)

    def extra_repr(self) -> str:
        widths = "sqrt(d) * " + str(DEFAULT_RELATIVE_BANDWIDTHS) if self.bandwidths is None else str(self.bandwidths)
        return f"bandwidths={widths}, unbiased={self.unbiased}, {self._flags_repr()}"
