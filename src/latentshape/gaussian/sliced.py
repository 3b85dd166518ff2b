r"""Sliced Wasserstein distance between a batch and N(0, I).

For unit directions :math:`\theta_1, \dots, \theta_M` and a batch :math:`x_1, \dots, x_N`, the
projections :math:`p_{m,i} = \theta_m^\top x_i` are sorted and compared with the Gaussian
quantiles at the mid-points :math:`q_i = \Phi^{-1}((i + 1/2) / N)`, i = 0, ..., N - 1:

.. math::

    SW_2^2(x) = \frac{1}{M} \sum_m \frac{1}{N} \sum_i \big(p_{m,(i)} - q_i\big)^2 .

Every projection of N(0, I) is N(0, 1), so each term is the squared 1-D 2-Wasserstein distance
between the sorted projections and the (quantized) standard normal: the sorted order is the
optimal transport plan in one dimension.

References: Bonneel, Rabin, Peyre & Pfister (2015), "Sliced and Radon Wasserstein barycenters of
measures"; Deshpande, Zhang & Schwing (2018), "Generative modeling using the sliced Wasserstein
distance".
"""

from __future__ import annotations

from typing import Hashable

import torch
from torch import Tensor

from .._validation import _compiling, representable
from ..distributed import GlobalBatch, all_gather_rows
from ._statistic import RandomSlicingLoss

__all__ = ["gaussian_quantiles", "sliced_wasserstein_gaussian", "SlicedWassersteinGaussian"]


def gaussian_quantiles(n: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> Tensor:
    r"""Mid-point standard normal quantiles :math:`\Phi^{-1}((i + 1/2) / n)`, i = 0..n-1 (computed in float64).

    >>> gaussian_quantiles(3, dtype=torch.float64)
    tensor([-0.9674,  0.0000,  0.9674], dtype=torch.float64)
    """
    levels = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return torch.special.ndtri(levels).to(device=device, dtype=dtype)


def sliced_wasserstein_gaussian(x: Tensor, directions: Tensor) -> Tensor:
    r"""Squared sliced 2-Wasserstein distance of each batch ``x`` ``(..., N, d)`` to N(0, I).

    ``directions`` holds unit vectors as columns, shape ``(d, M)`` or ``(..., d, M)`` broadcasting
    against ``x``'s leading dims. Returns shape ``x.shape[:-2]`` (broadcast with the directions'
    leading dims): the mean over slices and points of (sorted projection - Gaussian quantile)^2.

    >>> x = torch.tensor([[-0.9674], [0.0], [0.9674]])       # exactly the quantiles: distance 0
    >>> float(sliced_wasserstein_gaussian(x, torch.ones(1, 1))) < 1e-8
    True
    >>> float(sliced_wasserstein_gaussian(x + 1.0, torch.ones(1, 1)))  # a shift by 1 costs 1
    1.0
    """
    return _sliced_from_projections(torch.matmul(x, directions))


def _sliced_from_projections(projections: Tensor) -> Tensor:
    """Mean over slices and points of (sorted projection - Gaussian quantile)^2; projections ``(..., N, M)``."""
    ordered, _ = torch.sort(projections, dim=-2)
    quantiles = gaussian_quantiles(projections.shape[-2], dtype=ordered.dtype, device=ordered.device)
    value = ((ordered - quantiles.unsqueeze(-1)) ** 2).mean(dim=(-2, -1))
    if _compiling() or bool(torch.isfinite(value).all()):
        return value
    # A square (~ scale^2) overflowed: the float64 mean may still fit; if not, say so, with its size.
    wide = ((ordered.to(torch.float64) - quantiles.to(torch.float64).unsqueeze(-1)) ** 2).mean(dim=(-2, -1))
    return representable(wide, value.dtype, "the sliced Wasserstein distance")


class SlicedWassersteinGaussian(RandomSlicingLoss):
    r"""Sliced Wasserstein distance to N(0, I) on fresh random slices each call.

    Computes :func:`sliced_wasserstein_gaussian` (the formula is in this module's docstring) on
    ``slices`` directions drawn uniformly on the sphere from a generator seeded with ``seed``; every
    call draws new directions (one independent set per leading batch), and the sequence is
    reproducible. Cost O(N d M + N log N M).

    With ``calibrate=True`` the result is a z-score against the statistic's law under
    x ~ N(0, I) at the batch's (N, d), **with the random slicing included**: each null batch gets
    its own random directions, so the null covers the slice randomness of a training step.

    Args:
        slices: number of random directions M per call.
        seed: seed of the slice generator (the same on every rank when ``distributed``).
        calibrate: return z-scores instead of raw distances.
        null_samples: Monte-Carlo null batches for calibration.
        distributed: under ``torch.distributed``, the distance of the global batch: the (N, M)
            projections are all-gathered with gradients and sorted globally, see
            :mod:`latentshape.distributed`.

    References: Bonneel et al. (2015); Deshpande et al. (2018).

    >>> loss_fn = SlicedWassersteinGaussian(slices=64, seed=0)
    >>> x = torch.randn(256, 8, generator=torch.Generator().manual_seed(1))
    >>> float(loss_fn(x)) < 0.05, float(loss_fn(3 * x)) > 1.0
    (True, True)
    """

    def __init__(
        self,
        slices: int = 256,
        seed: int = 0,
        calibrate: bool = False,
        null_samples: int = 512,
        distributed: bool = False,
    ) -> None:
        super().__init__(slices=slices, seed=seed, calibrate=calibrate, null_samples=null_samples,
                         distributed=distributed)

    def _evaluate(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return sliced_wasserstein_gaussian(x, self.directions(x, generator))

    def _evaluate_global(self, x: Tensor, generator: torch.Generator | None, rows: GlobalBatch) -> Tensor:
        # Sorting needs every point: gather the projections (M numbers per row, not d) and sort globally.
        projections = torch.matmul(x, self.directions(x, generator))
        return _sliced_from_projections(all_gather_rows(projections, dim=-2, sizes=rows))

    def _config(self, d: int) -> Hashable:
        return (self.slices,)

    def _intermediate_size(self, n: int, d: int) -> int:
        return n * self.slices + n * d
