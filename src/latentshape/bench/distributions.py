r"""Source distributions for the benchmarks: standardized non-Gaussian point clouds.

Each function returns an ``(n, d)`` tensor whose coordinates have mean 0 and variance 1, so
that moment-based tests cannot tell it from N(0, I) by the first two moments alone.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["x_shape"]


def x_shape(
    n: int, d: int = 2, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    r"""The X shape: points uniform along both diagonals of a square, standardized.

    In 2-D, :math:`x = \sqrt{3}\,(t, s t)` with :math:`t \sim U[-1, 1]` and a fair sign s: each
    coordinate has mean 0 and variance 1 and the two are uncorrelated, so the mean is 0 and the
    covariance is I, yet the law is singular (supported on two lines). For d > 2, independent X's
    fill the coordinate pairs (0, 1), (2, 3), ...; an odd last coordinate is
    :math:`\sqrt{3}\, U[-1, 1]` (also standardized). Drawn on the CPU from ``generator``.

    >>> x = x_shape(4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> torch.allclose(x[:, 0].abs(), x[:, 1].abs())          # on the diagonals
    True
    >>> torch.cov(x.T).round(decimals=1).abs()
    tensor([[1., 0.],
            [0., 1.]], dtype=torch.float64)
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if int(d) != d or d < 1:
        raise ValueError(f"d must be a positive integer, got {d!r}")
    along = (2.0 * torch.rand(n, d, generator=generator, dtype=torch.float64) - 1.0) * math.sqrt(3.0)
    pairs = d // 2
    if pairs:
        signs = torch.randint(0, 2, (n, pairs), generator=generator).to(torch.float64) * 2.0 - 1.0
        # The second coordinate of each pair is the first times the diagonal's sign.
        along[:, 1 : 2 * pairs : 2] = along[:, 0 : 2 * pairs : 2] * signs
    return along.to(dtype)
