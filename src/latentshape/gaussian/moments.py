r"""Moment penalties between the batch's Gaussian fit N(mu, S) and N(0, I).

One implementation serves the wristband loss (its ``mom`` component, DESIGN 3.5) and the
stand-alone :class:`~latentshape.MomentMatchingLoss`. With ``mu`` the sample mean and ``S`` the
unbiased sample covariance (divisor N - 1) of a batch ``x`` of shape ``(..., N, d)``:

- ``w2``: squared 2-Wasserstein distance between N(mu, S) and N(0, I), divided by d:
  :math:`(\|\mu\|^2 + \sum_i (\sqrt{\lambda_i} - 1)^2) / d` with :math:`\lambda_i` the eigenvalues
  of S. When d > N the covariance has at most N - 1 non-zero eigenvalues: they are taken from the
  N x N Gram matrix and the missing ones count as 0.
- ``kl_diag``: :math:`\frac{1}{2d} \sum_j (v_j + \mu_j^2 - 1 - \log v_j)`, v the diagonal of S.
- ``kl_full``: :math:`\frac{1}{2d} (\operatorname{tr} S + \|\mu\|^2 - d - \log\det S)`.
- ``jeff_diag`` / ``jeff_full``: half the Jeffreys divergence, (KL(p||q) + KL(q||p)) / 2, over d:
  :math:`\frac{1}{4d} (\operatorname{tr} S + \operatorname{tr} S^{-1} + \mu^\top (I + S^{-1}) \mu - 2d)`.
- ``mu_only``: :math:`\|\mu\|^2 / d`.

Eigenvalues entering a logarithm or an inverse are floored at ``EIGENVALUE_FLOOR`` so that a
rank-deficient batch (d >= N) gives a large finite penalty rather than ``inf``.

References: Givens & Shortt (1984), "A class of Wasserstein metrics for probability
distributions"; the Wristband Gaussian Loss (Parakhin) for the choice of penalties.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["MOMENT_PENALTIES", "EIGENVALUE_FLOOR", "moment_penalty", "covariance_eigenvalues"]

MomentKind = Literal["w2", "kl_diag", "kl_full", "jeff_diag", "jeff_full", "mu_only"]
MOMENT_PENALTIES: tuple[str, ...] = ("w2", "kl_diag", "kl_full", "jeff_diag", "jeff_full", "mu_only")
EIGENVALUE_FLOOR = 1e-6


def covariance_eigenvalues(centered: Tensor) -> Tensor:
    r"""Eigenvalues of the unbiased covariance of ``centered`` rows ``(..., N, d)``, shape ``(..., d)``.

    Uses the d x d covariance when d <= N and the N x N Gram matrix otherwise (same non-zero
    spectrum); the missing eigenvalues are exact zeros. Computed in float64, ascending order.

    >>> x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]], dtype=torch.float64)
    >>> covariance_eigenvalues(x)
    tensor([0.6667, 2.6667], dtype=torch.float64)
    """
    n, d = centered.shape[-2], centered.shape[-1]
    c = centered.to(torch.float64)
    if d <= n:
        gram = c.transpose(-1, -2) @ c
        return torch.linalg.eigvalsh(gram) / (n - 1)
    eig = torch.linalg.eigvalsh(c @ c.transpose(-1, -2)) / (n - 1)
    zeros = eig.new_zeros(eig.shape[:-1] + (d - n,))
    return torch.cat([zeros, eig], dim=-1)


def moment_penalty(x: Tensor, kind: MomentKind = "w2") -> Tensor:
    r"""Moment penalty of a batch ``x`` of shape ``(..., N, d)`` against N(0, I); shape ``x.shape[:-2]``.

    See the module docstring for the formulas. The result is computed in float64 and returned
    in ``x``'s dtype.

    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> x = 3.0 * torch.randn(2000, 4, dtype=torch.float64)   # std 3: W2^2 / d = (3 - 1)^2 = 4
    >>> round(float(moment_penalty(x, "w2")), 1)
    4.0
    >>> float(moment_penalty(x, "mu_only")) < 0.05   # ||mu||^2 / d ~ 9 / 2000
    True
    """
    if kind not in MOMENT_PENALTIES:
        raise ValueError(f"unknown moment penalty {kind!r}; choose one of {', '.join(MOMENT_PENALTIES)}")
    n, d = x.shape[-2], x.shape[-1]
    x64 = x.to(torch.float64)
    mu = x64.mean(dim=-2)
    mean_sq = (mu * mu).sum(dim=-1)
    if kind == "mu_only":
        value = mean_sq
    elif kind in ("kl_diag", "jeff_diag"):
        var = x64.var(dim=-2, unbiased=True).clamp_min(EIGENVALUE_FLOOR)
        if kind == "kl_diag":
            value = 0.5 * (var + mu * mu - 1.0 - torch.log(var)).sum(dim=-1)
        else:
            value = 0.25 * (var + 1.0 / var + mu * mu * (1.0 + 1.0 / var) - 2.0).sum(dim=-1)
    else:
        centered = x64 - mu.unsqueeze(-2)
        eig = covariance_eigenvalues(centered)
        if kind == "w2":
            # sqrt has an infinite slope at 0: flooring keeps gradients finite for rank-deficient S.
            root = torch.sqrt(eig.clamp_min(EIGENVALUE_FLOOR**2))
            value = mean_sq + ((root - 1.0) ** 2).sum(dim=-1)
        else:
            floored = eig.clamp_min(EIGENVALUE_FLOOR)
            trace = eig.sum(dim=-1)
            if kind == "kl_full":
                value = 0.5 * (trace + mean_sq - d - torch.log(floored).sum(dim=-1))
            else:  # jeff_full
                inv_mean_sq = _inverse_quadratic_form(centered, mu, n)
                value = 0.25 * (trace + (1.0 / floored).sum(dim=-1) + mean_sq + inv_mean_sq - 2.0 * d)
    return (value / d).to(x.dtype if x.dtype == torch.float64 else torch.float32)


def _inverse_quadratic_form(centered: Tensor, mu: Tensor, n: int) -> Tensor:
    """mu^T S^-1 mu with S floored at EIGENVALUE_FLOOR (ridge), by a Cholesky solve."""
    d = centered.shape[-1]
    cov = centered.transpose(-1, -2) @ centered / (n - 1)
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    chol = torch.linalg.cholesky(cov + EIGENVALUE_FLOOR * eye)
    solved = torch.cholesky_solve(mu.unsqueeze(-1), chol).squeeze(-1)
    return (mu * solved).sum(dim=-1)
