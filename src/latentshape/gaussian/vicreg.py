r"""VICReg's variance and covariance terms: keep every coordinate spread out and decorrelated.

For a batch :math:`z_1, \dots, z_N \in \mathbb{R}^d` with mean :math:`\bar z` and unbiased
covariance :math:`C = \frac{1}{N-1} \sum_i (z_i - \bar z)(z_i - \bar z)^\top`,

.. math::

    v(Z) = \frac{1}{d} \sum_{j=1}^d \max\!\big(0,\ \gamma - \sqrt{C_{jj} + \epsilon}\big),
    \qquad
    c(Z) = \frac{1}{d} \sum_{i \ne j} C_{ij}^2,

and the loss is :math:`\mu\, v(Z) + \nu\, c(Z)`. The paper trains a joint-embedding network with
:math:`\lambda\, s(Z, Z') + \mu [v(Z) + v(Z')] + \nu [c(Z) + c(Z')]`, where
:math:`s(Z, Z') = \frac1N \sum_i \|z_i - z'_i\|^2` is the invariance term between two views, at
:math:`\lambda = \mu = 25`, :math:`\nu = 1`, :math:`\gamma = 1`, :math:`\epsilon = 10^{-4}`
(the defaults here). The variance hinge stops the collapse of a coordinate; the covariance
term spreads information over coordinates. Neither is a test of Gaussianity: any law with unit
(or larger) variances and no correlations scores 0, whatever its shape or its mean.

Reference: Bardes, Ponce & LeCun (2022), "VICReg: Variance-Invariance-Covariance Regularization
for Self-Supervised Learning", ICLR.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..validation import as_embeddings, computed_in_range, is_real_number

__all__ = ["vicreg_variance_covariance", "VICRegLoss"]


def vicreg_variance_covariance(
    x: Tensor,
    *,
    variance_weight: float = 25.0,
    covariance_weight: float = 1.0,
    target_std: float = 1.0,
    eps: float = 1e-4,
) -> Tensor:
    r""":math:`\mu\, v(Z) + \nu\, c(Z)` of each batch ``x`` ``(..., N, d)`` (formulas in the module docstring).

    ``variance_weight`` is :math:`\mu`, ``covariance_weight`` :math:`\nu`, ``target_std``
    :math:`\gamma`. When d > N the off-diagonal sum comes from the N x N Gram matrix
    (:math:`\|C\|_F^2 = \|G\|_F^2`, :math:`G = \frac{1}{N-1} Z_c Z_c^\top`), O(N^2 d) instead of
    O(N d^2). Returns shape ``x.shape[:-2]``.

    >>> x = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 0.5], [0.0, -0.5]])
    >>> # variances 8/3 and 1/6: one hinge, (1 - sqrt(1/6 + 1e-4)) / 2 over d = 2; no covariance
    >>> round(float(vicreg_variance_covariance(x, variance_weight=1.0)), 4)
    0.2958
    """
    _check_weights(variance_weight, covariance_weight, target_std, eps)
    x = as_embeddings(x)
    # The covariance term grows like scale^4: it overflows float32 long before x does.
    return computed_in_range(lambda rows: _variance_covariance(rows, variance_weight, covariance_weight, target_std, eps),
                             (x,), "the VICReg loss")


def _variance_covariance(x: Tensor, variance_weight: float, covariance_weight: float, target_std: float,
                         eps: float) -> Tensor:
    n, d = x.shape[-2], x.shape[-1]
    centered = x - x.mean(dim=-2, keepdim=True)
    variances = centered.square().sum(dim=-2) / (n - 1)
    variance_term = torch.relu(target_std - torch.sqrt(variances + eps)).mean(dim=-1)
    if d > n:
        # ||G||_F^2 - sum_j C_jj^2 cancels when some variance dominates: accumulate it in float64.
        wide = centered.to(torch.float32 if x.device.type == "mps" else torch.float64)  # MPS has no float64
        gram = wide @ wide.transpose(-1, -2) / (n - 1)
        wide_variances = wide.square().sum(dim=-2) / (n - 1)
        off_diagonal = (gram.square().sum(dim=(-2, -1)) - wide_variances.square().sum(dim=-1)).to(x.dtype)
    else:
        cov = centered.transpose(-1, -2) @ centered / (n - 1)
        # The diagonal is removed before squaring: ||C||_F^2 - sum_j C_jj^2 would cancel.
        diagonal = torch.eye(d, dtype=torch.bool, device=x.device)
        off_diagonal = cov.masked_fill(diagonal, 0.0).square().sum(dim=(-2, -1))
    return variance_weight * variance_term + covariance_weight * off_diagonal / d


def _check_weights(variance_weight: float, covariance_weight: float, target_std: float, eps: float) -> None:
    for name, value, low_ok in (("variance_weight", variance_weight, True), ("covariance_weight", covariance_weight, True),
                                ("target_std", target_std, False), ("eps", eps, False)):
        if not is_real_number(value):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not (value < float("inf") and (value >= 0 if low_ok else value > 0)):
            raise ValueError(f"{name} must be a finite number {'>= 0' if low_ok else '> 0'}, got {value!r}")


class VICRegLoss(nn.Module):
    r"""VICReg's variance + covariance regularizer of one batch of embeddings: :math:`\mu\, v(Z) + \nu\, c(Z)`.

    Add your own invariance term between two views, and apply the loss to each view, as in the
    paper: ``25 * mse(z1, z2) + vicreg(z1) + vicreg(z2)`` with the defaults here (the module
    docstring has the formulas). Not a batch statistic of N(0, I), so it has no calibration: it
    asks for unit-or-larger spread and no correlation, not for a Gaussian shape. Configuration is
    keyword-only.

    Args:
        variance_weight: :math:`\mu` (>= 0), default 25.
        covariance_weight: :math:`\nu` (>= 0), default 1.
        target_std: :math:`\gamma` (> 0), the standard deviation the hinge asks for, default 1.
        eps: :math:`\epsilon` (> 0) inside the square root, which keeps the gradient finite at
            zero variance, default 1e-4.

    Reference: Bardes, Ponce & LeCun (2022), ICLR.

    >>> loss_fn = VICRegLoss()
    >>> generator = torch.Generator().manual_seed(0)
    >>> x = torch.randn(2000, 4, generator=generator)
    >>> float(loss_fn(x)) < 0.5             # unit variances, no correlation: near 0 (sampling noise)
    True
    >>> float(loss_fn(torch.zeros(16, 4)))  # collapsed: the hinge is 1 - sqrt(1e-4) = 0.99 per dim
    24.75
    """

    def __init__(
        self,
        *,
        variance_weight: float = 25.0,
        covariance_weight: float = 1.0,
        target_std: float = 1.0,
        eps: float = 1e-4,
    ) -> None:
        super().__init__()
        _check_weights(variance_weight, covariance_weight, target_std, eps)
        self.variance_weight = float(variance_weight)
        self.covariance_weight = float(covariance_weight)
        self.target_std = float(target_std)
        self.eps = float(eps)

    def forward(self, x: Tensor) -> Tensor:
        """The regularizer of ``x`` ``(..., N, d)``, N >= 2: shape ``x.shape[:-2]`` (0-d for one batch)."""
        return vicreg_variance_covariance(x, variance_weight=self.variance_weight, covariance_weight=self.covariance_weight,
                                          target_std=self.target_std, eps=self.eps)

    def extra_repr(self) -> str:
        return (f"variance_weight={self.variance_weight}, covariance_weight={self.covariance_weight}, "
                f"target_std={self.target_std}, eps={self.eps}")
