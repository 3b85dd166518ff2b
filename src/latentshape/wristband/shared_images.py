r"""Chordal pairwise row sums with one exponential shared by the two reflected radial images, each
pair evaluated once.

With :math:`E_{ij} = e^{c(u_i \cdot u_j - 1)}` the chordal angular kernel, the two reflected images
of the radial kernel differ only by a rank-one factor:

.. math::
    E_{ij} e^{-\beta(t_i+t_j)^2} = a_i a_j S_{ij}, \qquad
    E_{ij} e^{-\beta(t_i+t_j-2)^2} = b_i b_j S_{ij}, \qquad
    S_{ij} = E_{ij}\, e^{-2\beta t_i t_j + s_i + s_j},

with :math:`a_i = e^{-\beta t_i^2 - s_i}` and :math:`b_i = e^{-\beta(t_i-2)^2 + 2\beta - s_i}`. The
shift :math:`s_i = -\beta t_i^2 + 2\beta \max(0, 2t_i - 1)` gives :math:`\max(a_i, b_i) = 1` and
:math:`S_{ij} \le e^{\beta}`, so every factor stays in range while :math:`\beta` is below a fraction
of the dtype's exponent range (:func:`shared_images_fit`). The wristband kernel is then

.. math::
    K = D + (a a^\top + b b^\top) \circ S, \qquad D_{ij} = E_{ij} e^{-\beta (t_i - t_j)^2}:

two exponentials per pair (three with E, for the angular row sums) where the three images take
three (four), and K is formed in place of D by one ``addcmul``. All three share one Gram product,
each adding a rank-4 tail. The identities are algebraic: the result is exact, not an approximation.

K, S and E are symmetric, so each pair is evaluated once: the rows are cut into strips, and strip
[p, q) holds rows p:q against columns p:N; its part right of the diagonal square serves, transposed,
the rows q:N. With four strips that is 5/8 of the pairs.

Backward, for :math:`F = \sum_i g_i r_i` (and :math:`h_i` on the angular rows):
:math:`\partial K_{ij}/\partial u_i = c K_{ij} u_j` and, from the three images' slopes
:math:`-2\beta(t_i - t_j), -2\beta(t_i + t_j), -2\beta(t_i + t_j - 2)`,

.. math::
    \partial K_{ij} / \partial t_i = -2\beta t_i K_{ij} + 2\beta t_j (K - 2 (a a^\top + b b^\top) \circ S)_{ij}
    + 4 \beta\, b_i b_j S_{ij},

summed over j with weights :math:`(g_i + g_j) / N`: products of K with [u, g u, 1, g, t, g t] and of S
with [a t, a g t, b t, b g t, b, b g], accumulated over the strips, then combined per point.

With ``sharp = (c_s, radial)`` the same strips also give the sharp term's exact energy
(:mod:`~latentshape.wristband.blocks` with one block),
:math:`E_s = \frac{1}{N^2}\sum_{i,j} P_{ij} R_{ij}`, :math:`P_{ij} = e^{c_s(u_i \cdot u_j - 1)}`,
:math:`R_{ij} = \sum_k a_k \cos(k\pi t_i)\cos(k\pi t_j)`, from the Gram product already formed: one
more exponential per evaluated pair instead of a second pass with its own Gram products.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .blocks import _radial_features, _radial_slopes

__all__ = ["shared_images_fit", "SharedImageRowSums"]

_EXPONENT_FRACTION = 0.4  # beta <= this * log(dtype max): S <= e^beta, and sums of N such terms, stay finite


def shared_images_fit(beta: float, dtype: torch.dtype) -> bool:
    """Whether the shared-image factors stay within ``dtype``'s range at this beta.

    >>> shared_images_fit(8.0, torch.float32), shared_images_fit(100.0, torch.float32)
    (True, False)
    """
    return 0.0 <= beta <= _EXPONENT_FRACTION * math.log(torch.finfo(dtype).max)


class SharedImageRowSums(torch.autograd.Function):
    """``(r, a)`` of :func:`~latentshape.wristband.kernel.pairwise_row_sums` for the chordal kernel
    and the sharp energy ``(B,)`` in float64 (module docstring; zeros without ``sharp``).
    ``apply(direction, t, beta, alpha, strips, keep, sharp)``: ``strips`` consecutive row ranges covering
    all N; ``keep`` whether the forward may hold its strips for the backward instead of recomputing
    them; ``sharp`` None or ``(c_s, (a_0, .., a_K))``.

    >>> u = torch.nn.functional.normalize(torch.randn(1, 5, 3, dtype=torch.float64), dim=-1)
    >>> t = torch.rand(1, 5, dtype=torch.float64)
    >>> r, a, _ = SharedImageRowSums.apply(u, t, 8.0, 12 ** -0.5, [(0, 2), (2, 5)], False, None)
    >>> r.shape, bool((a > 0).all())
    (torch.Size([1, 5]), True)
    """

    @staticmethod
    def forward(ctx, direction, t, beta, alpha, strips, keep, sharp):  # type: ignore[override]
        c = 2.0 * beta * alpha * alpha
        n = direction.shape[-2]
        factors = _factors(direction, t, beta, c)
        sums = torch.zeros(t.shape + (2,), dtype=t.dtype, device=t.device)  # kernel and angular row sums
        sharp_total = torch.zeros(t.shape[:-1], dtype=torch.float64, device=t.device)
        radial = _radial_features(t, sharp[1])[1:] if sharp is not None else None  # cos(k pi t), a_k cos(k pi t)
        keep = keep and any(ctx.needs_input_grad[:2])
        kept = []
        for start, stop in strips:
            strip = _kernel_strip(direction, *factors, c, start, stop, angular=True, sharp=sharp)
            kernel, _, angular = strip[:3]
            sums[:, start:stop, 0] += kernel.sum(dim=-1)
            sums[:, stop:, 0] += kernel[..., stop - start:].sum(dim=-2)
            sums[:, start:stop, 1] += angular.sum(dim=-1) - angular.diagonal(dim1=-2, dim2=-1)
            sums[:, stop:, 1] += angular[..., stop - start:].sum(dim=-2)
            if sharp is not None:  # sum_ij P_ij R_ij = sum_i a w_i . (P w)_i; the pairs right of the square count twice
                w, wa = radial
                square = stop - start
                pw = torch.baddbmm(strip[3][..., :square] @ w[:, start:stop], strip[3][..., square:], w[:, stop:], alpha=2.0)
                sharp_total += pw.mul_(wa[:, start:stop]).sum(dim=(-2, -1), dtype=torch.float64)
            if keep:
                kept.append(strip)
        ctx.save_for_backward(direction, t)
        ctx.set_materialize_grads(False)  # an unused output's gradient arrives as None: no zero tensor to test
        ctx.config = (beta, c, strips, factors, sharp)
        ctx.kept = kept if keep else None
        return sums[..., 0] / n, sums[..., 1] / (n - 1), sharp_total / (n * n)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_kernel_rows, grad_angular_rows, grad_sharp):  # type: ignore[override]
        direction, t = ctx.saved_tensors
        beta, c, strips, factors, sharp = ctx.config
        n, d = direction.shape[-2], direction.shape[-1]
        g = grad_kernel_rows if grad_kernel_rows is not None else torch.zeros_like(t)
        h = grad_angular_rows
        if h is not None and not bool(h.any()):
            h = None  # the usual case (lambda_ang = 0): no angular kernel at all
        kept, ctx.kept = ctx.kept, None
        a, b = factors[-1].unbind(-1)
        ones = torch.ones_like(t)
        columns = [torch.cat([direction, direction * g.unsqueeze(-1), torch.stack([ones, g, t, g * t], -1)], -1),
                   torch.stack([a * t, a * g * t, b * t, b * g * t, b, b * g], dim=-1)]
        if h is not None:
            columns.append(torch.cat([direction, direction * h.unsqueeze(-1)], dim=-1))
        if sharp is not None and grad_sharp is not None:
            angle, w, wa = _radial_features(t, sharp[1])
            sharp_totals = [torch.zeros_like(direction), torch.zeros_like(wa)]  # sum_j (P o R)_ij u_j, sum_j P_ij a w_j
        else:
            sharp = None
        totals = [torch.zeros_like(column) for column in columns]  # sum_j X_ij column_j, X = K, S (, E)
        for index, (start, stop) in enumerate(strips):
            strip = kept[index] if kept is not None else \
                _kernel_strip(direction, *factors, c, start, stop, angular=h is not None, sharp=sharp)
            if h is not None:
                strip[2].diagonal(dim1=-2, dim2=-1).zero_()
            pieces = list(zip(strip[:2] + (strip[2:3] if h is not None else []), columns, totals))
            if sharp is not None:
                weighted = (wa[:, start:stop] @ w[:, start:].transpose(-1, -2)).mul_(strip[3])  # P o R
                pieces += [(weighted, direction, sharp_totals[0]), (strip[3], wa, sharp_totals[1])]
            for pairs, column, total in pieces:
                total[:, start:stop] += pairs @ column[:, start:]
                total[:, stop:] += pairs[..., stop - start:].transpose(-1, -2) @ column[:, start:stop]
        kernel_products = totals[0]
        grad_u = g.unsqueeze(-1) * kernel_products[..., :d] + kernel_products[..., d:2 * d]
        if h is not None:
            grad_u += (n / (n - 1)) * (h.unsqueeze(-1) * totals[2][..., :d] + totals[2][..., d:])
        grad_t = _radial_gradient(kernel_products[..., 2 * d:], totals[1], g, t, a, b, beta)
        grad_u, grad_t = (c / n) * grad_u, grad_t / n
        if sharp is not None:  # dE_s/du_i = 2 c_s / N^2 sum_j P_ij R_ij u_j; dR_ij/dt_i = sum_k -k pi sin(k pi t_i) a_k w_jk
            scale = (2.0 * grad_sharp / (n * n)).to(t.dtype)
            slope_t = _radial_slopes(angle)
            grad_u += (scale * sharp[0]).view(-1, 1, 1) * sharp_totals[0]
            grad_t += scale.view(-1, 1) * (sharp_totals[1] * slope_t).sum(dim=-1)
        return grad_u, grad_t, None, None, None, None, None


def _factors(direction: Tensor, t: Tensor, beta: float, c: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """c u (B, N, d); the rank-4 tails of D and S, left (B, 2, N, 4) and right (B, 4, N); [a, b] (B, N, 2).

    Exponents beyond c u.u': D: 2 beta t t' + (-beta t^2 - c) - beta t'^2; S: -2 beta t t' + (s - c) + s'."""
    square = t * t
    excess = 2.0 * beta * torch.clamp(2.0 * t - 1.0, min=0.0)
    shift = excess - beta * square
    radial = torch.stack([torch.exp(-excess), torch.exp(2.0 * beta * torch.clamp(2.0 * t - 1.0, max=0.0))], dim=-1)
    ones, zeros = torch.ones_like(t), torch.zeros_like(t)
    left = torch.stack([torch.stack([2.0 * beta * t, -beta * square - c, ones, zeros], dim=-1),
                        torch.stack([-2.0 * beta * t, shift - c, zeros, ones], dim=-1)], dim=1)
    right = torch.stack([t, ones, -beta * square, shift], dim=-2)
    return c * direction, left, right, radial


def _kernel_strip(direction: Tensor, scaled: Tensor, left: Tensor, right: Tensor, radial: Tensor, c: float,
                  start: int, stop: int, angular: bool, sharp: tuple | None = None) -> list[Tensor]:
    """K, S (and E if ``angular``; with ``sharp``, always a third entry, E or None, then P) of rows
    start:stop against columns start:N, each (B, rows, N - start)."""
    gram = torch.bmm(scaled[:, start:stop], direction[:, start:].transpose(-1, -2))  # c u_i . u_j
    pairs = [torch.baddbmm(gram, left[:, k, start:stop], right[..., start:]).exp_() for k in range(2)]
    pairs[0].addcmul_(pairs[1], radial[:, start:stop] @ radial[:, start:].transpose(-1, -2))  # a_i a_j + b_i b_j
    if sharp is not None:  # P = e^{c_s (u.u' - 1)} from the same Gram: (c u.u') c_s / c - c_s
        sharp_pairs = torch.mul(gram, sharp[0] / c).sub_(sharp[0]).exp_()
        return pairs + [gram.sub_(c).exp_() if angular else None, sharp_pairs]
    return pairs + [gram.sub_(c).exp_()] if angular else pairs


def _radial_gradient(k_products: Tensor, s_products: Tensor, g: Tensor, t: Tensor, a: Tensor, b: Tensor,
                     beta: float) -> Tensor:
    """N dF/dt_i (module docstring) from K @ [1, g, t, g t] and S @ [a t, a g t, b t, b g t, b, b g]."""
    one, g_k, t_k, gt_k = k_products.unbind(-1)
    at, agt, bt, bgt, b1, bg = s_products.unbind(-1)
    images_t = a * (g * at + agt) + b * (g * bt + bgt)
    return 2.0 * beta * (-t * (g * one + g_k) + (g * t_k + gt_k) - 2.0 * images_t + 2.0 * b * (g * b1 + bg))
