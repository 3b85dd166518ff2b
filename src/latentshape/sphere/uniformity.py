"""Uniformity and alignment on the hypersphere (Wang & Isola, 2020)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..calibration import check_flag
from ..validation import as_embeddings
from ..geometry import check_unit_rows, normalize_rows

__all__ = ["uniformity_loss", "alignment_loss", "UniformityLoss", "AlignmentLoss"]


def _on_sphere(x: Tensor, normalize: bool, name: str, min_points: int = 2) -> Tensor:
    values = as_embeddings(x, name, min_points=min_points)
    if normalize:
        return normalize_rows(values)
    check_unit_rows(values, x.dtype, name)
    return values


def _check_positive(value: float, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def uniformity_loss(x: Tensor, t: float = 2.0, normalize: bool = True) -> Tensor:
    r"""Log of the mean Gaussian potential between distinct points on the sphere.

    .. math::
        L_{unif} = \log \frac{1}{N(N-1)} \sum_{i \ne j} e^{-t \lVert u_i - u_j \rVert^2},
        \qquad u_i = x_i / \lVert x_i \rVert .

    Lower is more uniform; the population minimum is the uniform law on ``S^{d-1}``.
    Computed with ``logsumexp`` (stable for any ``t``). Leading dims of ``x`` are
    independent batches; their losses are averaged.

    Args:
        x: embeddings ``(..., N, d)`` with ``N >= 2``.
        t: potential sharpness, ``t > 0`` (paper default 2).
        normalize: L2-normalize rows first (zero rows map to 0 with zero gradient).
            With ``False`` the rows must already have unit norm, else ``ValueError``.

    Reference: T. Wang and P. Isola, "Understanding Contrastive Representation Learning
    through Alignment and Uniformity on the Hypersphere", ICML 2020.

    >>> import torch
    >>> square = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    >>> round(uniformity_loss(square).item(), 4)  # log((2 e^-4 + e^-8) / 3)
    -4.3963
    """
    t = _check_positive(t, "t")
    units = _on_sphere(x, normalize, "x")
    n = units.shape[-2]
    squared_norms = (units * units).sum(dim=-1)
    gram = units @ units.transpose(-1, -2)
    squared_distances = (squared_norms.unsqueeze(-1) + squared_norms.unsqueeze(-2) - 2.0 * gram).clamp_min(0.0)
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=units.device)
    log_potentials = (-t * squared_distances).masked_fill(~off_diagonal, -math.inf)
    per_batch = torch.logsumexp(log_potentials.flatten(-2), dim=-1) - math.log(n * (n - 1))
    return per_batch.mean()


def alignment_loss(x: Tensor, y: Tensor, alpha: float = 2.0, normalize: bool = True) -> Tensor:
    r"""Mean distance (to the power ``alpha``) between positive pairs on the sphere.

    .. math::
        L_{align} = \frac{1}{N} \sum_i \lVert u_i - v_i \rVert^{\alpha},
        \qquad u_i = x_i / \lVert x_i \rVert,\; v_i = y_i / \lVert y_i \rVert .

    Row ``i`` of ``x`` and row ``i`` of ``y`` are two views of the same sample. For
    ``alpha < 2`` the gradient at coinciding pairs is taken as 0 (the norm is not
    differentiable there).

    Args:
        x, y: paired embeddings of the same shape ``(..., N, d)``.
        alpha: exponent, ``alpha > 0`` (paper default 2).
        normalize: as in :func:`uniformity_loss`.

    Reference: T. Wang and P. Isola, ICML 2020 (see :func:`uniformity_loss`).

    >>> import torch
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    >>> y = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    >>> round(alignment_loss(x, y).item(), 4)  # (||e1 - e2||^2 + 0) / 2
    1.0
    """
    alpha = _check_positive(alpha, "alpha")
    if isinstance(x, Tensor) and isinstance(y, Tensor) and x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape (paired views), got {tuple(x.shape)} and {tuple(y.shape)}")
    u = _on_sphere(x, normalize, "x", min_points=1)
    v = _on_sphere(y, normalize, "y", min_points=1)
    if u.dtype != v.dtype:
        common = torch.promote_types(u.dtype, v.dtype)
        u, v = u.to(common), v.to(common)
    difference = u - v
    squared_distances = (difference * difference).sum(dim=-1)
    if alpha == 2.0:
        powered = squared_distances
    else:
        # where-trick: the power's derivative is infinite at 0 for alpha < 2; use 0 there.
        positive = squared_distances > 0
        safe = torch.where(positive, squared_distances, torch.ones_like(squared_distances))
        powered = torch.where(positive, safe.pow(alpha / 2.0), torch.zeros_like(squared_distances))
    return powered.mean()


class UniformityLoss(nn.Module):
    r"""Module form of :func:`~latentshape.functional.uniformity_loss`:
    :math:`\log \operatorname{mean}_{i \ne j} \exp(-t \lVert u_i - u_j \rVert^2)`.

    Reference: Wang & Isola, ICML 2020.

    >>> import torch
    >>> loss_fn = UniformityLoss(t=2.0)
    >>> x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)
    >>> loss = loss_fn(x)
    >>> loss.backward()
    >>> loss.shape, x.grad.shape
    (torch.Size([]), torch.Size([64, 8]))
    """

    def __init__(self, *, t: float = 2.0, normalize: bool = True) -> None:
        super().__init__()
        self.t = _check_positive(t, "t")
        self.normalize = check_flag("normalize", normalize)

    def forward(self, x: Tensor) -> Tensor:
        return uniformity_loss(x, t=self.t, normalize=self.normalize)

    def extra_repr(self) -> str:
        return f"t={self.t}, normalize={self.normalize}"


class AlignmentLoss(nn.Module):
    r"""Module form of :func:`~latentshape.functional.alignment_loss`:
    :math:`\operatorname{mean}_i \lVert u_i - v_i \rVert^{\alpha}`, called as ``loss_fn(x, y)``.

    Reference: Wang & Isola, ICML 2020.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(16, 4, generator=g)
    >>> y = x + 0.01 * torch.randn(16, 4, generator=g)
    >>> AlignmentLoss(alpha=2.0)(x, y).item() < 1e-3
    True
    """

    def __init__(self, *, alpha: float = 2.0, normalize: bool = True) -> None:
        super().__init__()
        self.alpha = _check_positive(alpha, "alpha")
        self.normalize = check_flag("normalize", normalize)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return alignment_loss(x, y, alpha=self.alpha, normalize=self.normalize)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, normalize={self.normalize}"
