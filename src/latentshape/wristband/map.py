r"""The wristband map :math:`x \mapsto (u, t)` (docs/theory.md, \"The wristband map\").

For :math:`x \in \mathbb{R}^d`: :math:`s = \|x\|^2`, :math:`u = x / \|x\| \in S^{d-1}` and
:math:`t = P(d/2, s/2) \in [0, 1]`, the regularized lower incomplete gamma function, i.e. the
CDF of :math:`\chi^2_d` at s. Under x ~ N(0, I), u is uniform on the sphere, t is uniform on
[0, 1] and the two are independent; only N(0, I) has this law (Parakhin, *Wristband Gaussian
Loss*). We also return :math:`z = \Phi^{-1}(t)`, the Gaussian score of the radius used by the
radial component.

Numerics: t and z are computed in float64 from log-tail probabilities (both tails of the
chi-square law in closed form for d <= 128, :mod:`~latentshape.wristband.gamma_tails`), with the
asymptotic tails of the incomplete gamma function and a Newton-refined inverse normal CDF where
the tails underflow, so values stay finite and monotone for ||x||^2 from 1e-300 to 1e300
and d up to thousands. The backward pass uses the exact derivatives
:math:`dt/ds = f_{\chi^2_d}(s)` and :math:`dz/ds = f_{\chi^2_d}(s) / \varphi(z)`, taken with
respect to the norm and in log-space (capped at 1e30 in magnitude).
Rows whose norm is too small or too large for plain float arithmetic (float32: outside
2^-60..2^52) are rescaled by powers of two before the direction is formed, so every finite row
of any scale maps to finite (u, t, z) with finite gradients; a squared norm within 2^24 of the
dtype's range is refused with a ValueError (the loss would overflow).
A zero row has no direction: its u is the zero vector (with zero gradient) and its t, z are
those of s = 1e-300. A batch of zero rows (exact collapse) therefore gets an exactly zero
gradient: any non-zero one would have to pick a direction, and every rotation-invariant loss
differentiable at 0 has gradient 0 there.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from ..validation import as_embeddings, is_compiling
from .gamma_tails import gamma_tails

__all__ = ["WristbandPoint", "RowScale", "wristband_map", "chi2_cdf_and_score", "scaled_rows"]

_ZERO_ROW_NORM = 1e-150  # a zero row takes the t, z of s = 1e-300
_LOG_HALF = math.log(0.5)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_HALF_LOG_2_OVER_PI = 0.5 * math.log(2.0 / math.pi)
_NDTRI_DIRECT_LIMIT = -700.0  # below this log-probability, exp() loses precision: use Newton
_DIRECT_TAIL = math.exp(_NDTRI_DIRECT_LIMIT)
_NEWTON_USELESS = -1e30  # below this the asymptotic start is exact to rounding (and z^2 nears overflow)
_SMALLEST_NORMAL = 2.2250738585072014e-308
_MAX_SLOPE = 1e30
# Row norms whose squares neither underflow nor overflow in the plain vector_norm of each dtype.
_SAFE_NORMS = {torch.float32: (2.0**-60, 2.0**52), torch.float64: (2.0**-480, 2.0**480)}
# A calibrated loss grows like N ||x||^2: squared norms within 2^24 of the dtype's range are refused.
_RANGE_MARGIN = 2.0**-24


class WristbandPoint(NamedTuple):
    """Wristband coordinates of a batch: ``direction`` (..., N, d); ``cdf`` t and ``score`` z (..., N), float64."""

    direction: Tensor
    cdf: Tensor
    score: Tensor


class RowScale(NamedTuple):
    """Rows of a batch ready for the map, from :func:`scaled_rows`.

    ``rows`` is x itself, or (when some row norm is too small or too large for plain float
    arithmetic) x with each row multiplied by ``factor``, a power of two (float64), so that
    ``rows * inverse[..., None]`` is the unit direction; ``inverse`` is 1/||rows|| (0 for a zero
    row) in x's dtype; ``norm`` is ||x|| in float64, exact at every finite scale.
    """

    rows: Tensor
    inverse: Tensor
    norm: Tensor
    factor: Tensor | None


def scaled_rows(x: Tensor) -> RowScale:
    """:class:`RowScale` of a float32/float64 batch ``(..., N, d)``: one pass over x when every row norm
    lies in a safe range, and a rescaled copy otherwise.

    Raises ValueError when a squared row norm comes within 2^24 of x's dtype range (float32: norms
    above ~4e15): the calibrated wristband loss, which grows like N ||x||^2, would overflow.

    >>> x = torch.tensor([[3e-30, 4e-30], [0.0, 0.0]])
    >>> scale = scaled_rows(x)
    >>> scale.norm.tolist(), (scale.rows * scale.inverse[:, None]).tolist()
    ([5.000000...e-30, 0.0], [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]])
    """
    norm = torch.linalg.vector_norm(x, dim=-1)
    low, high = _SAFE_NORMS[x.dtype]
    if is_compiling():
        positive = norm > 0
        inverse = torch.where(positive, 1.0 / torch.where(positive, norm, torch.ones_like(norm)), torch.zeros_like(norm))
        return RowScale(x, inverse, norm.to(torch.float64), None)
    smallest, largest = torch.aminmax(norm) if norm.numel() else (norm.new_ones(()), norm.new_ones(()))
    if low < float(smallest) and float(largest) < high:  # no zero row, nothing to rescale
        return RowScale(x, 1.0 / norm, norm.to(torch.float64), None)
    return _rescaled_rows(x)


def _rescaled_rows(x: Tensor) -> RowScale:
    wide = x.detach().to(torch.float64)
    peak = wide.abs().amax(dim=-1)
    exponent = torch.frexp(peak).exponent.clamp(-1000, 1000)  # peak = m 2^e, m in [1/2, 1); 0 for a zero row
    factor = torch.ldexp(torch.ones_like(peak), -exponent)
    rows = wide * factor.unsqueeze(-1)  # exact: entries now below 1 in magnitude, the peak above 1/2
    scaled_norm = torch.linalg.vector_norm(rows, dim=-1)
    norm = scaled_norm / factor
    largest = float(norm.max()) if norm.numel() else 0.0
    if largest * largest > torch.finfo(x.dtype).max * _RANGE_MARGIN:
        raise ValueError(
            f"a row of x has norm {largest:.3g}: the wristband loss grows like N ||x||^2 and would overflow "
            f"{x.dtype}; rescale the embeddings" + (" (or use float64)" if x.dtype != torch.float64 else "")
        )
    positive = scaled_norm > 0
    inverse = torch.where(positive, 1.0 / torch.where(positive, scaled_norm, torch.ones_like(scaled_norm)), 0.0)
    return RowScale(rows.to(x.dtype), inverse.to(x.dtype), norm, factor)


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
    return map_unchecked(as_embeddings(x, min_points=1))


def map_unchecked(x: Tensor) -> WristbandPoint:
    """:func:`wristband_map` of rows already validated by the caller (a rank of a distributed batch
    may hold none)."""
    return WristbandPoint(*_WristbandMap.apply(x))


class _WristbandMap(torch.autograd.Function):
    """(u, t, z) of x with the backward dL/dx = (g - u (u . g)) / r + (dL/dr) u, g = dL/du, formed from
    the saved rows and 1/r so that no quotient is differentiated at tiny or huge norms."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[override]
        scale = scaled_rows(x)
        direction = scale.rows * scale.inverse.unsqueeze(-1)
        cdf, score, saved = chi2_forward(scale.norm, float(x.shape[-1]))
        ctx.save_for_backward(direction, scale.inverse, *saved)
        ctx.factor = scale.factor
        return direction, cdf, score

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_direction, grad_cdf, grad_score):  # type: ignore[override]
        direction, inverse, *saved = ctx.saved_tensors
        d_cdf, d_score = chi2_norm_slopes(*saved)
        grad_norm = torch.zeros_like(d_cdf)
        if grad_cdf is not None:
            grad_norm = grad_norm + grad_cdf * d_cdf
        if grad_score is not None:
            grad_norm = grad_norm + grad_score * d_score
        grad_norm = norm_gradient(grad_norm)
        if grad_direction is None:
            return direction * grad_norm.to(direction.dtype).unsqueeze(-1)
        if ctx.factor is None:  # (g - u (u . g)) / r + (dL/dr) u in three passes over the rows
            along = _row_dots(direction, grad_direction)
            radial = (grad_norm.to(direction.dtype) - inverse * along).unsqueeze(-1)
            # written over g when nothing else holds it: one N x d buffer fewer at the peak
            grad = grad_direction if _owned(grad_direction) else grad_direction.clone()
            return grad.mul_(inverse.unsqueeze(-1)).addcmul_(direction, radial)
        along = (direction * grad_direction).sum(dim=-1, keepdim=True)
        tangent = grad_direction - direction * along
        # Rescaled rows: 1/r = factor / ||rows||, applied in float64 (it may exceed x's range).
        inverse_norm = (inverse.to(torch.float64) * ctx.factor).unsqueeze(-1)
        grad = tangent.to(torch.float64) * inverse_norm + direction.to(torch.float64) * grad_norm.unsqueeze(-1)
        return _finite(grad, direction.dtype).to(direction.dtype)


_DOT_ROWS = 8192


def _row_dots(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise a . b over the last axis, in blocks of rows: vecdot forms the (..., N, d) product first."""
    n = a.shape[-2]
    if n <= _DOT_ROWS:
        return torch.linalg.vecdot(a, b)
    out = a.new_empty(a.shape[:-1])
    for start in range(0, n, _DOT_ROWS):
        out[..., start : start + _DOT_ROWS] = torch.linalg.vecdot(a[..., start : start + _DOT_ROWS, :], b[..., start : start + _DOT_ROWS, :])
    return out


def _owned(grad: Tensor) -> bool:
    """Whether an incoming gradient may be overwritten: a dense tensor that alone holds its storage (a
    gradient passed on unchanged to another node, or stolen into a leaf's .grad, shares it).

    The count is read from the storage's address: a Python storage object (``untyped_storage()``)
    would outlive this check, held by the storage itself, and count as a second owner from then
    on, so that the autograd engine could no longer add other gradients into this one in place."""
    use_count = getattr(torch._C, "_storage_Use_Count", None)
    address = getattr(torch._C, "_storage_address", None)
    if use_count is None or address is None or is_compiling() or not grad.is_contiguous() or grad.storage_offset() != 0:
        return False
    return use_count(address(grad)) == 1


def _finite(grad: Tensor, dtype: torch.dtype) -> Tensor:
    """Clamp to ``dtype``'s range: near r = 0 the true slope ~ 1/r exceeds it (float32: below r ~ 1e-38)."""
    limit = torch.finfo(dtype).max
    return grad.clamp(-limit, limit)


def chi2_cdf_and_score(squared_norm: Tensor, d: int) -> tuple[Tensor, Tensor]:
    r"""CDF :math:`t = P(d/2, s/2)` of :math:`\chi^2_d` at ``s`` and its Gaussian score :math:`\Phi^{-1}(t)`.

    Differentiable in ``s`` (float64 in, float64 out).

    >>> t, z = chi2_cdf_and_score(torch.tensor([0.0, 1.0, 1e6], dtype=torch.float64), 1)
    >>> [round(v, 4) for v in z.tolist()]   # chi2_1 CDF at 1 is P(|N(0,1)| < 1) = 0.6827
    [-26.1316, 0.4752, 999.9993]
    """
    positive = squared_norm > 0
    norm = torch.sqrt(torch.where(positive, squared_norm, torch.ones_like(squared_norm)))
    return _Chi2CdfAndScore.apply(torch.where(positive, norm, torch.zeros_like(norm)), float(d))


class _Chi2CdfAndScore(torch.autograd.Function):
    """(t, z) as functions of the norm r = sqrt(s), with the slopes of :func:`chi2_norm_slopes`."""

    @staticmethod
    def forward(ctx, norm: Tensor, d: float) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        cdf, score, saved = chi2_forward(norm, d)
        ctx.save_for_backward(*saved)
        return cdf, score

    @staticmethod
    def backward(ctx, grad_cdf: Tensor, grad_score: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        d_cdf, d_score = chi2_norm_slopes(*ctx.saved_tensors)
        return norm_gradient(grad_cdf * d_cdf + grad_score * d_score), None


def chi2_forward(norm: Tensor, d: float) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor, Tensor]]:
    r"""t = P(d/2, r^2/2) and z = Phi^-1(t) for float64 norms r, and what their slopes need.

    Everything is formed from :math:`\log(r^2/2)` (no floor on r > 0) and from the log of the
    smaller tail :math:`\ell` (of t, or of 1 - t); the slope of z is assembled from two ratios that
    stay O(r) and O(1/|z|) at every radius -- the hazard :math:`f(r) / e^{\ell}` and the normal Mills
    ratio -- because :math:`f(r)` and :math:`\varphi(z)` alone both underflow for r beyond ~40.
    """
    a = 0.5 * d
    if is_compiling() or not (norm.numel() == 0 or float(norm.amin()) > 0):
        r = torch.where(norm == 0, _ZERO_ROW_NORM, norm)
    else:
        r = norm
    log_r = torch.log(r)
    log_half = 2.0 * log_r + _LOG_HALF
    half = 0.5 * r * r  # may underflow to 0 at tiny r: it then only enters additively
    lower, upper = gamma_tails(a, half)
    log_density = log_r + (a - 1.0) * log_half - half - math.lgamma(a)  # log dt/dr
    # One quantile evaluation per point, on its smaller tail: z = -q(lower) or +q(upper). (min, sign
    # and products rather than masks: boolean selects cost ~10 float passes on CPU.)
    tail = torch.minimum(lower, upper)
    if is_compiling() or not float(tail.amin() if tail.numel() else 1.0) > _DIRECT_TAIL:
        log_tail, log_hazard = _far_tail_logs(a, log_r, log_half, half, lower, upper, lower <= 0.5, log_density)
        tail_score = _normal_quantile_of_log(log_tail)  # <= 0
        # log dz/dr = log hazard - log(phi(z) / Phi(-|z|)), the latter from erfcx without cancellation
        log_score_slope = log_hazard - _HALF_LOG_2_OVER_PI + torch.log(torch.special.erfcx(-tail_score / math.sqrt(2.0)))
    else:  # the common case: every tail is a normal float64 number, ndtri is exact on it
        tail_score = torch.special.ndtri(tail)
        # log dz/dr = log f(r) - log phi(z): both terms are below ~710 in magnitude here, so the
        # difference keeps ~1e-13 absolute accuracy (the hazard form above is for the far tails)
        log_score_slope = log_density + (0.5 * tail_score).mul_(tail_score).add_(_HALF_LOG_2PI)
    score = tail_score * torch.sign(upper - lower)  # z = +q(tail) on the upper side; 0 at the median
    return lower, score, (log_density, log_score_slope)


def _far_tail_logs(a, log_r, log_half, half, lower, upper, on_lower, log_density) -> tuple[Tensor, Tensor]:
    """(log tail, log hazard) where some tail is below e^-700: the exact logs while the float64 tail
    is a normal number, the leading-order expansions beyond -- and the hazard of an expansion in
    closed form, since f(r) and the tail then share their huge exponent (no cancellation)."""
    lower_exact, upper_exact = lower > _SMALLEST_NORMAL, upper > _SMALLEST_NORMAL
    lower_series, upper_series = torch.log1p(half / (a + 1.0)), torch.log1p((a - 1.0) / half)
    log_lower = torch.where(lower_exact, torch.log(lower.clamp_min(_SMALLEST_NORMAL)),
                            a * log_half - half - math.lgamma(a + 1.0) + lower_series)
    log_upper = torch.where(upper_exact, torch.log(upper.clamp_min(_SMALLEST_NORMAL)),
                            (a - 1.0) * log_half - half - math.lgamma(a) + upper_series)
    log_tail = torch.where(on_lower, log_lower, log_upper)
    log_hazard = torch.where(
        on_lower,
        torch.where(lower_exact, log_density - log_lower, math.log(2.0 * a) - log_r - lower_series),
        torch.where(upper_exact, log_density - log_upper, log_r - upper_series),
    )
    return log_tail, log_hazard


def chi2_norm_slopes(log_density: Tensor, log_score_slope: Tensor) -> tuple[Tensor, Tensor]:
    """dt/dr and dz/dr (float64) from :func:`chi2_forward`'s saved values."""
    return torch.exp(log_density), torch.exp(log_score_slope)


def norm_gradient(grad: Tensor) -> Tensor:
    """A gradient with respect to the norm, capped to stay finite in float32 (near r = 0 in d <= 2 the
    score is genuinely steep, ~ 1/r). A zero row gets none through it: its direction u = 0 multiplies it."""
    return grad.clamp(-_MAX_SLOPE, _MAX_SLOPE)


def _normal_quantile_of_log(log_p: Tensor) -> Tensor:
    r""":math:`\Phi^{-1}(e^{\ell})` for log-probabilities :math:`\ell \le \log(1/2)`, accurate in the far tail."""
    direct = torch.special.ndtri(torch.exp(log_p.clamp_min(_NDTRI_DIRECT_LIMIT)))
    if not is_compiling() and not bool((log_p < _NDTRI_DIRECT_LIMIT).any()):
        return direct  # the common case: no point in the far tail, no Newton work
    # Far tail: Phi(z) ~ phi(z) / |z| gives a start; Newton on log Phi(z) = log_p finishes it, with
    # the slope phi/Phi = sqrt(2/pi) / erfcx(-z/sqrt 2) (exact, no cancellation at any z < 0).
    target = log_p.clamp(_NEWTON_USELESS, _NDTRI_DIRECT_LIMIT)
    minus_two_log_p = -2.0 * log_p.clamp_max(_NDTRI_DIRECT_LIMIT)
    start = -torch.sqrt(minus_two_log_p - torch.log(minus_two_log_p) - 2.0 * _HALF_LOG_2PI)
    z = start.clamp_min(-math.sqrt(-2.0 * _NEWTON_USELESS))
    for _ in range(3):
        slope = math.sqrt(2.0 / math.pi) / torch.special.erfcx(-z / math.sqrt(2.0))
        z = z - (torch.special.log_ndtr(z) - target) / slope
    far = torch.where(log_p < _NEWTON_USELESS, start, z)
    return torch.where(log_p > _NDTRI_DIRECT_LIMIT, direct, far)
