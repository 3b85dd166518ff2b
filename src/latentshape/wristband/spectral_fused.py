r"""The global spectral path in one pass over x: wristband map and feature sums fused.

:func:`fused_spectral_sums` returns what :func:`~latentshape.wristband.map.wristband_map`
followed by :func:`~latentshape.wristband.spectral.spectral_sums` would, without materializing the
N x d directions for autograd. The forward reads x twice (norms, then blocks of rows); the
backward reads x once more and writes the gradient once, block by block, using

.. math::
    \frac{\partial L}{\partial x_i} = \frac{1}{r_i}\Big(g_i - u_i (u_i \cdot g_i)\Big)
        + \frac{\partial L}{\partial r_i} u_i,
    \qquad \frac{\partial L}{\partial r_i} = \Big(\frac{\partial L}{\partial t_i}\Big) \frac{dt_i}{dr_i}
        + \frac{\partial L}{\partial z_i} \frac{dz_i}{dr_i},

with :math:`u_i = x_i / r_i`, :math:`r_i = \|x_i\|`, :math:`g_i = \partial L / \partial u_i` from
the feature sums, and the chi-square slopes of :mod:`latentshape.wristband.map`. Zero rows have
u = 0 and a zero gradient through the map, as in ``wristband_map``. The directions u are never
formed: 1/r_i scales the (rows x modes) weights instead (:meth:`FeatureBlocks.sums`), which saves
N x d passes both ways.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .map import _finite, chi2_forward, chi2_norm_slopes, norm_gradient, scaled_rows
from .spectral import FeatureBlocks, SpectralSums

__all__ = ["fused_spectral_sums"]


def fused_spectral_sums(x: Tensor, modes: int, degree: int) -> tuple[SpectralSums, Tensor, Tensor]:
    """Feature sums of ``x`` ``(B, N, d)`` with cosine modes 0..modes-1 and harmonic degree <= ``degree``,
    and the radial coordinates ``(t, z)`` ``(B, N)`` (float64), all differentiable in x.

    >>> from latentshape.wristband import wristband_map
    >>> from latentshape.wristband.spectral import spectral_sums
    >>> x = torch.randn(1, 50, 3, dtype=torch.float64)
    >>> sums, t, z = fused_spectral_sums(x, 4, 2)
    >>> point = wristband_map(x)
    >>> reference = spectral_sums(point.direction, point.cdf, 4, 2)
    >>> all(torch.allclose(a, b) for a, b in zip(sums, reference)), torch.allclose(t, point.cdf)
    (True, True)
    """
    zeroth, first, second, cdf, score = _FusedSpectralSums.apply(x, modes, degree)
    return SpectralSums(zeroth, first, second), cdf, score


class _FusedSpectralSums(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, modes, degree):  # type: ignore[override]
        scale = scaled_rows(x)  # x itself unless some row norm is extreme (then rescaled rows)
        rows, inverse = scale.rows, scale.inverse
        cdf, score, chi2_saved = chi2_forward(scale.norm, float(x.shape[-1]))
        t = cdf.to(x.dtype)
        blocks = FeatureBlocks(rows, modes, degree, keep=ctx.needs_input_grad[0])
        zeroth, first, second = blocks.sums((rows[:, a:b], t[:, a:b], inverse[:, a:b]) for a, b in blocks.ranges)
        ctx.save_for_backward(rows, inverse, t, *chi2_saved)
        ctx.blocks = blocks
        ctx.factor = scale.factor
        return zeroth, first, second, cdf, score

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_zeroth, grad_first, grad_second, grad_cdf, grad_score):  # type: ignore[override]
        x, inverse, t, log_density, log_score_slope = ctx.saved_tensors
        blocks, factor = FeatureBlocks(x, ctx.blocks.modes, ctx.blocks.degree), ctx.factor  # fresh: the forward's is not mutated
        blocks.prepare_backward(grad_zeroth, grad_first, grad_second)
        d_cdf, d_score = chi2_norm_slopes(log_density, log_score_slope)
        external = torch.zeros_like(d_cdf)  # dL/dr through the radial coordinates used elsewhere
        if grad_cdf is not None:
            external = external + grad_cdf * d_cdf
        if grad_score is not None:
            external = external + grad_score * d_score
        grad_x = torch.empty_like(x)  # every block below writes its rows
        for index, (a, b) in enumerate(blocks.ranges):
            rows, inv = x[:, a:b], inverse[:, a:b]
            # g_i / r_i and x_i . g_i / r_i
            target = grad_x[:, a:b] if factor is None and grad_x.shape[0] == 1 else None  # contiguous: written in place
            scaled_grad_u, grad_t, rows_dot = blocks.block_gradients(rows, t[:, a:b], inv, index=index, out=target)
            grad_norm = norm_gradient(grad_t.to(d_cdf.dtype) * d_cdf[:, a:b] + external[:, a:b])
            if factor is not None:  # rescaled rows (extreme norms): see _rescaled_block_gradient
                grad_x[:, a:b] = _rescaled_block_gradient(rows, inv, scaled_grad_u, rows_dot, grad_norm, factor[:, a:b])
                continue
            # u_i . g_i / r_i = (x_i . g_i / r_i) / r_i, and u_i * c = x_i * (c / r_i): u is never formed
            radial = grad_norm.to(x.dtype) - inv * rows_dot
            if target is not None:
                target.addcmul_(rows, (inv * radial).unsqueeze(-1))
            else:
                torch.addcmul(scaled_grad_u, rows, (inv * radial).unsqueeze(-1), out=grad_x[:, a:b])
        blocks.release()
        return grad_x, None, None


def _rescaled_block_gradient(rows, inverse, scaled_grad_u, rows_dot, grad_norm, factor) -> Tensor:
    """dL/dx for a block of rows stored as x * factor: the same formula with r = ||rows|| / factor, i.e.
    factor * [(g - u (u . g)) / ||rows|| + u (dL/dr) / factor], in float64 (1/r may exceed x's range)."""
    wide = torch.float64
    radial = grad_norm / factor - inverse.to(wide) * rows_dot.to(wide)
    grad = scaled_grad_u.to(wide) + rows.to(wide) * (inverse.to(wide) * radial).unsqueeze(-1)
    return _finite(grad * factor.unsqueeze(-1), rows.dtype).to(rows.dtype)
