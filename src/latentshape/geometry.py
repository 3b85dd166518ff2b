"""Small geometric helpers shared by the hypersphere and neighbor shapers."""

from __future__ import annotations

import torch
from torch import Tensor

from .validation import is_compiling

__all__ = ["normalize_rows", "check_unit_rows", "pairwise_squared_distances"]

# How far a row's norm may be from 1 when the caller promises L2-normalized input.
_UNIT_NORM_TOLERANCE = {torch.float64: 1e-6, torch.float32: 1e-4}
_LOW_PRECISION_TOLERANCE = 1e-2


def normalize_rows(x: Tensor) -> Tensor:
    """Return ``x / ||x||`` along the last dim, with finite values and gradients everywhere.

    The row is first divided by its (detached) largest absolute entry, so squaring cannot
    overflow or underflow; this is exact, also for gradients, because ``x / ||x||`` is
    scale invariant. A zero row maps to the zero vector with zero gradient (the direction
    of a zero vector is undefined; this choice keeps training alive instead of giving NaN).
    """
    scale = x.detach().abs().amax(dim=-1, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    scaled = x / scale
    squared_norm = (scaled * scaled).sum(dim=-1, keepdim=True)
    nonzero = squared_norm > 0
    safe_squared_norm = torch.where(nonzero, squared_norm, torch.ones_like(squared_norm))
    inverse_norm = torch.where(nonzero, safe_squared_norm.rsqrt(), torch.zeros_like(squared_norm))
    return scaled * inverse_norm


def check_unit_rows(x: Tensor, input_dtype: torch.dtype, name: str = "x") -> None:
    """Raise ``ValueError`` unless every row of ``x`` has norm 1 (within the dtype's tolerance)."""
    if is_compiling():
        return
    tolerance = _UNIT_NORM_TOLERANCE.get(input_dtype, _LOW_PRECISION_TOLERANCE)
    deviation = (torch.linalg.vector_norm(x.detach(), dim=-1) - 1.0).abs()
    if bool((deviation > tolerance).any()):
        worst = float(deviation.max())
        raise ValueError(
            f"{name} must be L2-normalized along the last dim when normalize=False "
            f"(largest | ||row|| - 1 | is {worst:.3g} > {tolerance:g}); "
            "pass normalize=True to normalize inside the loss"
        )


def pairwise_squared_distances(x: Tensor) -> Tensor:
    """Squared Euclidean distances ``||x_i - x_j||^2`` of the rows of ``x``: ``(..., N, d) -> (..., N, N)``.

    Uses the Gram-matrix identity (no ``N x N x d`` intermediate) after centering the
    rows, which leaves distances unchanged but reduces cancellation when the cloud sits
    far from the origin. Clamped at 0 against rounding; the diagonal is set to exactly 0.
    """
    centered = x - x.mean(dim=-2, keepdim=True)
    squared_norms = (centered * centered).sum(dim=-1)
    gram = centered @ centered.transpose(-1, -2)
    distances = squared_norms.unsqueeze(-1) + squared_norms.unsqueeze(-2) - 2.0 * gram
    distances = distances.clamp_min(0.0)
    n = x.shape[-2]
    diagonal = torch.eye(n, dtype=torch.bool, device=x.device)
    return distances.masked_fill(diagonal, 0.0)
