r"""The wristband map :math:`x \mapsto (u, t)` (docs/theory.md, \"The wristband map\").

For :math:`x \in \mathbb{R}^d`: :math:`s = \|x\|^2`, :math:`u = x / \|x\| \in S^{d-1}` and
:math:`t = P(d/2, s/2) \in [0, 1]`, the regularized lower incomplete gamma function, i.e. the
CDF of :math:`\chi^2_d` at s. Under x ~ N(0, I), u is uniform on the sphere, t is uniform on
[0, 1] and the two are independent; only N(0, I) has this law (Parakhin, *Wristband Gaussian
Loss*). We also return :math:`z = \Phi^{-1}(t)`, the Gaussian score of the radius used by the
radial component.

Numerics: t and z are computed in float64 from log-tail probabilities, with the asymptotic
tails of the incomplete gamma function and a Newton-refined inverse normal CDF where
``gammainc`` underflows, so values stay finite and monotone for ||x||^2 from 1e-300 to 1e300
and d up to thousands. The backward pass uses the exact derivatives
:math:`dt/ds = f_{\chi^2_d}(s)` and :math:`dz/ds = f_{\chi^2_d}(s) / \varphi(z)`, taken with
respect to the norm and in log-space (capped at 1e30 in magnitude).
A zero row has no direction: its u is the zero vector (with zero gradient) and its t, z are
those of s = 1e-300.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["WristbandPoint", "wristband_map", "chi2_cdf_and_score"]

_SMALLEST_HALF_S = 1e-300  # s / 2 is floored here so that x = 0 gives finite t, z
_LOG_HALF = math.log(0.5)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_NDTRI_DIRECT_LIMIT = -700.0
_MAX_SLOPE = 1e30  # below this log-probability, exp() loses precision: use Newton


class WristbandPoint(NamedTuple):
    """Wristband coordinates of a batch: ``direction`` (..., N, d); ``cdf`` t and ``score`` z (..., N), float64."""

    direction: Tensor
    cdf: Tensor
    score: Tensor


def wristband_map(x: Tensor) -> WristbandPoint:
    r"""Map points ``x`` of shape ``(..., N, d)`` to wristband coordinates ``(u, t, z)``.

    ``u`` keeps ``x``'s dtype; ``t = P(d/2, ||x||^2/2)`` and ``z = Phi^-1(t)`` are float64.

    >>> x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    >>> point = wristband_map(x)
    >>> point.direction
    tensor([[0.6000, 0.8000],
            [0.0000, 0.0000]])
    >>> [round(v, 6) for v in point.cdf.tolist()]   # chi2_2 CDF: 1 - exp(-s / 2)
    [1.0, 0.0]
    """
    squared_norm = (x * x).sum(dim=-1)
    positive = squared_norm > 0
    norm = torch.sqrt(torch.where(positive, squared_norm, torch.ones_like(squared_norm)))
    # Masking the N-vector 1/|x| (not the N x d quotient) keeps this to one pass over x, each way.
    inverse_norm = torch.where(positive, 1.0 / norm, torch.zeros_like(norm))
    direction = x * inverse_norm.unsqueeze(-1)
    norm = torch.where(positive, norm, torch.zeros_like(norm))
    cdf, score = _Chi2CdfAndScore.apply(norm.to(torch.float64), float(x.shape[-1]))
    return WristbandPoint(direction, cdf, score)


def chi2_cdf_and_score(squared_norm: Tensor, d: int) -> tuple[Tensor, Tensor]:
    r"""CDF :math:`t = P(d/2, s/2)` of :math:`\chi^2_d` at ``s`` and its Gaussian score :math:`\Phi^{-1}(t)`.

    Differentiable in ``s`` (float64 in, float64 out).

    >>> t, z = chi2_cdf_and_score(torch.tensor([0.0, 1.0, 1e6], dtype=torch.float64), 1)
    >>> [round(v, 4) for v in z.tolist()]   # chi2_1 CDF at 1 is P(|N(0,1)| < 1) = 0.6827
    [-26.1183, 0.4752, 999.9993]
    """
    positive = squared_norm > 0
    norm = torch.sqrt(torch.where(positive, squared_norm, torch.ones_like(squared_norm)))
    return _Chi2CdfAndScore.apply(torch.where(positive, norm, torch.zeros_like(norm)), float(d))


class _Chi2CdfAndScore(torch.autograd.Function):
    """(t, z) as functions of the norm r = sqrt(s); the slope dz/dr = 2 r f(s) / phi(z) is formed in
    log-space so it stays representable even where dz/ds alone would overflow float32."""

    @staticmethod
    def forward(ctx, norm: Tensor, d: float) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        cdf, score, saved = chi2_forward(norm, d)
        ctx.save_for_backward(*saved)
        return cdf, score

    @staticmethod
    def backward(ctx, grad_cdf: Tensor, grad_score: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        d_cdf, d_score = chi2_norm_slopes(*ctx.saved_tensors)
        return norm_gradient(grad_cdf * d_cdf + grad_score * d_score, ctx.saved_tensors[2]), None


def chi2_forward(norm: Tensor, d: float) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
    """t = P(d/2, r^2/2) and z = Phi^-1(t) for float64 norms r, and what their slopes need."""
    a = 0.5 * d
    half = (0.5 * norm * norm).clamp_min(_SMALLEST_HALF_S)
    log_half = torch.log(half)
    lower, upper = _gamma_tails(a, half)
    # Leading-order tail expansions where the float64 tails underflow to 0.
    log_lower = torch.where(
        lower > 0,
        torch.log(lower.clamp_min(1e-320)),
        a * log_half - half - math.lgamma(a + 1.0) + torch.log1p(half / (a + 1.0)),
    )
    log_upper = torch.where(
        upper > 0,
        torch.log(upper.clamp_min(1e-320)),
        (a - 1.0) * log_half - half - math.lgamma(a) + torch.log1p((a - 1.0) / half),
    )
    # One quantile evaluation per point, on its smaller tail: z = -q(log lower) or +q(log upper).
    on_lower = log_lower <= _LOG_HALF
    score = _normal_quantile_of_log(torch.where(on_lower, log_lower, log_upper))
    score = torch.where(on_lower, score, -score)
    # log of dt/dr = 2 r f_chi2(r^2), f_chi2(s) = (s/2)^(a-1) e^(-s/2) / (2 Gamma(a))
    log_slope = torch.log(norm.clamp_min(1e-300)) + (a - 1.0) * log_half - half - math.lgamma(a)
    floored = 0.5 * norm * norm < _SMALLEST_HALF_S  # like clamp: no slope below the floor
    return lower, score, (log_slope, score, floored)


def _gamma_tails(a: float, half: Tensor) -> tuple[Tensor, Tensor]:
    """(P(a, x), Q(a, x)) with one special-function evaluation per point: each point evaluates its
    smaller tail (P below x = a, Q above; the float64 tails stay exact) and takes 1 - it for the
    other, which is >= ~1/2 there and loses nothing."""
    below = half < a
    lower = torch.empty_like(half)
    upper = torch.empty_like(half)
    small, large = half[below], half[~below]
    lower[below] = torch.special.gammainc(torch.full_like(small, a), small)
    upper[~below] = torch.special.gammaincc(torch.full_like(large, a), large)
    upper[below] = 1.0 - lower[below]
    lower[~below] = 1.0 - upper[~below]
    return lower, upper


def chi2_norm_slopes(log_slope: Tensor, score: Tensor, floored: Tensor) -> tuple[Tensor, Tensor]:
    """dt/dr and dz/dr (float64) from :func:`chi2_forward`'s saved values."""
    d_cdf = torch.exp(log_slope)
    log_normal_density = -0.5 * score * score - _HALF_LOG_2PI
    return d_cdf, torch.exp(log_slope - log_normal_density)


def norm_gradient(grad: Tensor, floored: Tensor) -> Tensor:
    """A gradient with respect to the norm: zero below the floor, and capped to stay finite in float32
    (near r = 0 in d <= 2 the score is genuinely steep, ~ 1/r)."""
    return torch.where(floored, 0.0, grad).clamp(-_MAX_SLOPE, _MAX_SLOPE)


def _normal_quantile_of_log(log_p: Tensor) -> Tensor:
    r""":math:`\Phi^{-1}(e^{\ell})` for log-probabilities :math:`\ell \le \log(1/2)`, accurate in the far tail."""
    direct = torch.special.ndtri(torch.exp(log_p.clamp_min(_NDTRI_DIRECT_LIMIT)))
    # Far tail: Phi(z) ~ phi(z) / |z| gives a start; Newton on log Phi(z) = log_p finishes it.
    minus_two_log_p = (-2.0 * log_p).clamp_min(-2.0 * _NDTRI_DIRECT_LIMIT)
    z = -torch.sqrt(minus_two_log_p - torch.log(minus_two_log_p) - 2.0 * _HALF_LOG_2PI)
    target = log_p.clamp_max(_NDTRI_DIRECT_LIMIT)
    for _ in range(3):
        log_cdf = torch.special.log_ndtr(z)
        slope = torch.exp(-0.5 * z * z - _HALF_LOG_2PI - log_cdf)
        z = z - (log_cdf - target) / slope
    return torch.where(log_p > _NDTRI_DIRECT_LIMIT, direct, z)
