r"""The VAE KL term for stochastic encoders, and the reparameterization trick.

A stochastic encoder outputs, per input, a Gaussian :math:`q(z|x) = N(\mu, \Sigma)` in
:math:`\mathbb{R}^n` and the code is sampled as :math:`z = \mu + L \varepsilon`,
:math:`\varepsilon \sim N(0, I)`, :math:`\Sigma = L L^\top` (differentiable in mu and L). Its KL
divergence to the prior N(0, I) is

.. math::

    KL = \tfrac12 \big[ -\log|\Sigma| - n + \operatorname{tr}\Sigma + \mu^\top\mu \big],

which for a diagonal :math:`\Sigma = \operatorname{diag}(\sigma^2)` parameterized by
:math:`\log\sigma^2` is :math:`\tfrac12 \sum_j (\sigma_j^2 + \mu_j^2 - 1 - \log\sigma_j^2)`.
Unlike the batch statistics of this package, the KL is a per-sample term: it shapes each
posterior, and the aggregate of the codes approaches N(0, I) only together with a task loss that
keeps the posteriors apart.

Reference: Kingma & Welling (2014), "Auto-encoding variational Bayes", ICLR.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from ..validation import as_embeddings, computed_in_range, is_compiling

__all__ = ["gaussian_kl_diag", "gaussian_kl_full", "reparameterize", "reparameterize_full", "GaussianKL"]

_SERIES_RADIUS = 0.1  # |logvar| below which e^v - 1 - v is summed as its Taylor series


def gaussian_kl_diag(mu: Tensor, logvar: Tensor) -> Tensor:
    r""":math:`KL(N(\mu, \operatorname{diag} e^{\text{logvar}}) \,\|\, N(0, I))` per sample: shape ``mu.shape[:-1]``.

    :math:`\tfrac12 \sum_j (e^{\text{logvar}_j} + \mu_j^2 - 1 - \text{logvar}_j)`.

    >>> float(gaussian_kl_diag(torch.tensor([[1.0, 0.0]]), torch.zeros(1, 2))[0])   # ||mu||^2 / 2
    0.5
    """
    mu, logvar = _checked_posterior(mu, logvar, "diagonal")
    return computed_in_range(_kl_diag, (mu, logvar), "the Gaussian KL divergence")


def _kl_diag(mu: Tensor, logvar: Tensor) -> Tensor:
    return 0.5 * (_exp_excess(logvar) + mu * mu).sum(dim=-1)


def _exp_excess(v: Tensor) -> Tensor:
    """:math:`e^v - 1 - v` without cancellation: its Taylor series for :math:`|v| < 0.1`
    (e^v - 1 - v in float32 loses every digit there; the series' remainder is below 1e-17)."""
    small = v.clamp(-_SERIES_RADIUS, _SERIES_RADIUS)  # clamped, so the unused branch has no inf gradient
    series = torch.zeros_like(small)
    for k in range(10, 1, -1):  # Horner: v^2 (1/2! + v (1/3! + ... + v / 10!))
        series = (series + 1.0 / math.factorial(k)) * (small if k > 2 else small * small)
    return torch.where(v.abs() < _SERIES_RADIUS, series, torch.expm1(v) - v)


def gaussian_kl_full(mu: Tensor, scale_tril: Tensor) -> Tensor:
    r""":math:`KL(N(\mu, L L^\top) \,\|\, N(0, I))` per sample, L = ``scale_tril`` ``(..., n, n)``; shape ``mu.shape[:-1]``.

    :math:`\tfrac12 [ -\log|\Sigma| - n + \operatorname{tr}\Sigma + \mu^\top\mu ]` with
    :math:`\log|\Sigma| = 2 \sum_j \log|L_{jj}|` and :math:`\operatorname{tr}\Sigma = \|L\|_F^2`.
    Only the lower triangle of ``scale_tril`` is used.

    >>> L = torch.tensor([[[2.0, 0.0], [0.0, 1.0]]])      # Sigma = diag(4, 1)
    >>> float(gaussian_kl_full(torch.zeros(1, 2), L)[0])   # (4 - 1 - log 4) / 2
    0.806...
    """
    mu, scale_tril = _checked_posterior(mu, scale_tril, "full")
    if not is_compiling() and bool((scale_tril.diagonal(dim1=-2, dim2=-1) == 0).any()):
        raise ValueError("scale_tril has a zero on its diagonal: the covariance L L^T is singular and its KL "
                         "to N(0, I) is infinite; keep the diagonal away from 0 (e.g. softplus + eps)")
    return computed_in_range(_kl_full, (mu, scale_tril), "the Gaussian KL divergence")


def _kl_full(mu: Tensor, scale_tril: Tensor) -> Tensor:
    n = mu.shape[-1]
    lower = torch.tril(scale_tril)
    log_det = 2.0 * torch.log(lower.diagonal(dim1=-2, dim2=-1).abs()).sum(dim=-1)
    trace = (lower * lower).sum(dim=(-2, -1))
    return 0.5 * (-log_det - n + trace + (mu * mu).sum(dim=-1))


def _checked_posterior(mu: Tensor, spread: Tensor, covariance: str) -> tuple[Tensor, Tensor]:
    """Validated (mu, logvar) or (mu, scale_tril): floating, finite, matching shapes, one dtype."""
    mu = as_embeddings(mu, name="mu", min_points=1)
    name, expected = ("logvar", mu.shape) if covariance == "diagonal" else ("scale_tril", mu.shape + mu.shape[-1:])
    if not isinstance(spread, Tensor) or spread.shape != expected:
        got = tuple(spread.shape) if isinstance(spread, Tensor) else type(spread).__name__
        raise ValueError(f"{name} must have shape {tuple(expected)} for mu of shape {tuple(mu.shape)}, got {got}")
    return mu, as_embeddings(spread, name=name, min_points=1).to(mu.dtype)


def _check_floating(value: Tensor, name: str) -> None:
    if not isinstance(value, Tensor) or not torch.is_floating_point(value):
        raise TypeError(f"{name} must be a floating tensor, got {type(value).__name__}"
                        + (f" of dtype {value.dtype}" if isinstance(value, Tensor) else ""))


def _standard_normal(like: Tensor, generator: torch.Generator | None) -> Tensor:
    if generator is None:
        return torch.randn_like(like)
    # Draw on the generator's device, then move: a CPU generator works for any tensor.
    noise = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=generator.device)
    return noise.to(like.device)


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""Sample :math:`z = \mu + e^{\text{logvar}/2} \odot \varepsilon`, :math:`\varepsilon \sim N(0, I)`, differentiably.

    >>> logvar = torch.log(torch.tensor([4.0, 0.25])).expand(5000, 2)
    >>> z = reparameterize(torch.zeros(5000, 2), logvar, generator=torch.Generator().manual_seed(0))
    >>> [round(v, 1) for v in z.std(dim=0).tolist()]
    [2.0, 0.5]
    """
    _check_floating(mu, "mu")
    _check_floating(logvar, "logvar")
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape, got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    return mu + torch.exp(0.5 * logvar) * _standard_normal(mu, generator)


def reparameterize_full(mu: Tensor, scale_tril: Tensor, generator: torch.Generator | None = None) -> Tensor:
    r"""Sample :math:`z = \mu + L \varepsilon`, :math:`\varepsilon \sim N(0, I)`, L = lower triangle of ``scale_tril``.

    >>> L = torch.tensor([[1.0, 0.0], [1.0, 1.0]])       # Sigma = [[1, 1], [1, 2]]
    >>> z = reparameterize_full(torch.zeros(20000, 2), L.expand(20000, 2, 2), torch.Generator().manual_seed(0))
    >>> torch.cov(z.T).round(decimals=1)
    tensor([[1., 1.],
            [1., 2.]])
    """
    _check_floating(mu, "mu")
    _check_floating(scale_tril, "scale_tril")
    if mu.dim() < 1 or scale_tril.shape != mu.shape + mu.shape[-1:]:
        raise ValueError(f"scale_tril must have shape {tuple(mu.shape + mu.shape[-1:])}, got {tuple(scale_tril.shape)}")
    noise = _standard_normal(mu, generator)
    return mu + (torch.tril(scale_tril) @ noise.unsqueeze(-1)).squeeze(-1)


class GaussianKL(nn.Module):
    r"""KL divergence from a stochastic encoder's Gaussian posteriors to N(0, I), averaged over samples.

    ``forward(mu, logvar)`` (``covariance="diagonal"``) or ``forward(mu, scale_tril)``
    (``covariance="full"``) with ``mu`` of shape ``(..., N, n)``: the per-sample KL
    :math:`\tfrac12[-\log|\Sigma| - n + \operatorname{tr}\Sigma + \mu^\top\mu]` summed over the n
    latent dims and reduced over samples by ``reduction`` (``"mean"`` or ``"sum"``), a 0-d tensor.
    Use :func:`reparameterize` / :func:`reparameterize_full` to sample the codes. This is not a
    batch statistic, so it has no ``calibrate`` option.

    Reference: Kingma & Welling (2014).

    >>> kl = GaussianKL()
    >>> mu, logvar = torch.zeros(8, 3), torch.zeros(8, 3)
    >>> float(kl(mu, logvar)), float(kl(mu + 1.0, logvar))     # 0 at the prior; ||mu||^2 / 2 = 1.5
    (0.0, 1.5)
    """

    def __init__(self, *, covariance: Literal["diagonal", "full"] = "diagonal", reduction: Literal["mean", "sum"] = "mean") -> None:
        super().__init__()
        if covariance not in ("diagonal", "full"):
            raise ValueError(f"covariance must be 'diagonal' or 'full', got {covariance!r}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.covariance = covariance
        self.reduction = reduction

    def per_sample(self, mu: Tensor, spread: Tensor) -> Tensor:
        """The KL of each posterior, shape ``mu.shape[:-1]`` (``spread`` is logvar or scale_tril)."""
        if self.covariance == "diagonal":
            return gaussian_kl_diag(mu, spread)
        return gaussian_kl_full(mu, spread)

    def forward(self, mu: Tensor, spread: Tensor) -> Tensor:
        """Reduced KL, a 0-d tensor."""
        values = self.per_sample(mu, spread)
        # A float32 sum of near-max per-sample values can overflow where each value fits.
        reduce = Tensor.mean if self.reduction == "mean" else Tensor.sum
        return computed_in_range(reduce, (values,), "the Gaussian KL divergence")

    def extra_repr(self) -> str:
        return f"covariance={self.covariance!r}, reduction={self.reduction!r}"
