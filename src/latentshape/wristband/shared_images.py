r"""Chordal pairwise row sums with one exponential shared by the two reflected radial images.

With :math:`E_{ij} = e^{c(u_i \cdot u_j - 1)}` the chordal angular kernel, the two reflected images
of the radial kernel differ only by a rank-one factor:

.. math::
    E_{ij} e^{-\beta(t_i+t_j)^2} = a_i a_j S_{ij}, \qquad
    E_{ij} e^{-\beta(t_i+t_j-2)^2} = b_i b_j S_{ij}, \qquad
    S_{ij} = E_{ij}\, e^{-2\beta t_i t_j + s_i + s_j},

with :math:`a_i = e^{-\beta t_i^2 - s_i}`, :math:`b_i = e^{-\beta(t_i-2)^2 + 2\beta - s_i}`. The shift
:math:`s_i = -\beta t_i^2 + 2\beta \max(0, 2t_i - 1)` makes :math:`\max(a_i, b_i) = 1` and
:math:`S_{ij} \le e^{\beta}`, so everything stays in range for :math:`\beta` up to a fraction of the
dtype's exponent range (:func:`shared_images_fit`). The wristband kernel is then

.. math::
    K = D + (a a^\top + b b^\top) \circ S, \qquad D_{ij} = E_{ij} e^{-\beta (t_i - t_j)^2},

two exponentials per pair instead of three. A row block of D, S and E comes from one product
:math:`[c\,u_i, \ell_i] \cdot [u_j, m_j]` (width d + 4) and one ``exp``; the row sums are
:math:`r_i = \frac1N\,(D\mathbf 1 + a \circ S a + b \circ S b)_i`. The backward contracts D with
[u, g u, t, g t, 1, g] and S with the same columns scaled by a and by b (t - 1 for the third image):
two products per block, no N x N temporaries beyond the block itself.

Exact (no approximation): the identities above are algebraic; float32 rounding of the exponents is
the same as for the three separate images.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["shared_images_fit", "SharedImageRowSums"]

_EXPONENT_FRACTION = 0.4  # beta <= this * log(dtype max): S <= e^beta and sums of N such terms stay finite


def shared_images_fit(beta: float, dtype: torch.dtype) -> bool:
    """Whether the shared-image factors stay within ``dtype``'s range at this beta.

    >>> shared_images_fit(8.0, torch.float32), shared_images_fit(100.0, torch.float32)
    (True, False)
    """
    return 0.0 <= beta <= _EXPONENT_FRACTION * math.log(torch.finfo(dtype).max)


def _factors(direction: Tensor, t: Tensor, beta: float, c: float) -> tuple[Tensor, Tensor, Tensor]:
    """Left rows (B, 3, N, d + 4) of D, S and E, the shared right factor (B, d + 4, N), and [a, b] (B, N, 2).

    Exponents: D: c u.u' + 2 beta t t' - beta t^2 - c - beta t'^2; S: c u.u' - 2 beta t t' + s - c + s';
    E: c u.u' - c. Right columns: [u', t', 1, -beta t'^2, s']."""
    square = t * t
    excess = 2.0 * beta * torch.clamp(2.0 * t - 1.0, min=0.0)
    shift = excess - beta * square
    a = torch.exp(-excess)
    b = torch.exp(2.0 * beta * torch.clamp(2.0 * t - 1.0, max=0.0))
    ones, zeros = torch.ones_like(t), torch.zeros_like(t)
    scaled = c * direction
    tails = (
        (2.0 * beta * t, -beta * square - c, ones, zeros),
        (-2.0 * beta * t, shift - c, zeros, ones),
        (zeros, zeros - c, zeros, zeros),
    )
    left = torch.stack([torch.cat([scaled, torch.stack(tail, dim=-1)], dim=-1) for tail in tails], dim=1)
    right = torch.cat([direction, torch.stack([t, ones, -beta * square, shift], dim=-1)], dim=-1)
    return left, right.transpose(-1, -2), torch.stack([a, b], dim=-1)


class SharedImageRowSums(torch.autograd.Function):
    """``(r, a)`` of :func:`~latentshape.wristband.kernel.pairwise_row_sums` for the chordal kernel
    (module docstring). ``apply(direction, t, beta, alpha, strips, keep)``: ``strips`` consecutive row
    ranges covering all N, ``keep`` whether the forward may hold its strips for the backward instead
    of recomputing them.

    Each pair is evaluated once: strip [start, stop) holds rows start:stop against columns start:N, and
    its part right of the diagonal square also serves, transposed, the rows stop:N.

    >>> u = torch.nn.functional.normalize(torch.randn(1, 5, 3, dtype=torch.float64), dim=-1)
    >>> r, a = SharedImageRowSums.apply(u, torch.rand(1, 5, dtype=torch.float64), 8.0, 12 ** -0.5, [(0, 2), (2, 5)], False)
    >>> r.shape, bool((a > 0).all())
    (torch.Size([1, 5]), True)
    """

    @staticmethod
    def forward(ctx, direction, t, beta, alpha, strips, keep):  # type: ignore[override]
        c = 2.0 * beta * alpha * alpha
        n = direction.shape[-2]
        factors = _factors(direction, t, beta, c)
        sums = torch.zeros(t.shape + (2,), dtype=t.dtype, device=t.device)  # kernel and angular row sums
        keep = keep and any(ctx.needs_input_grad[:2])
        kept = []
        for start, stop in strips:
            kernel, _, angular = strip = _kernel_strip(*factors, start, stop, 3)
            sums[:, start:stop, 0] += kernel.sum(dim=-1)
            sums[:, stop:, 0] += kernel[..., stop - start:].sum(dim=-2)
            sums[:, start:stop, 1] += angular.sum(dim=-1) - angular.diagonal(dim1=-2, dim2=-1)
            sums[:, stop:, 1] += angular[..., stop - start:].sum(dim=-2)
            if keep:
                kept.append(strip)
        ctx.save_for_backward(direction, t)
        ctx.config = (beta, c, strips, factors)
        ctx.kept = kept if keep else None
        return sums[..., 0] / n, sums[..., 1] / (n - 1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_kernel_rows, grad_angular_rows):  # type: ignore[override]
        direction, t = ctx.saved_tensors
        beta, c, strips, factors = ctx.config
        n, d = direction.shape[-2], direction.shape[-1]
        g = grad_kernel_rows if grad_kernel_rows is not None else torch.zeros_like(t)
        h = grad_angular_rows
        if h is not None and not bool(h.any()):
            h = None  # the usual case (lambda_ang = 0): no angular kernel at all
        a, b = factors[2].unbind(-1)
        kept, ctx.kept = ctx.kept, None
        # sum_j X_ij v_j for X = K, S, E: K @ [u, g u, 1, g, t, g t], S @ [a t, a g t, b t, b g t, b, b g], E @ [u, h u]
        columns = [torch.cat([direction, direction * g.unsqueeze(-1), torch.stack([torch.ones_like(t), g, t, g * t], -1)], -1),
                   torch.stack([a * t, a * g * t, b * t, b * g * t, b, b * g], dim=-1)]
        if h is not None:
            columns.append(torch.cat([direction, direction * h.unsqueeze(-1)], dim=-1))
            h = h * (n / (n - 1))
        totals = [torch.zeros_like(column) for column in columns]
        for index, (start, stop) in enumerate(strips):
            strip = kept[index] if kept is not None else _kernel_strip(*factors, start, stop, len(columns))
            if h is not None:
                strip[2].diagonal(dim1=-2, dim2=-1).zero_()
            for pairs, column, total in zip(strip, columns, totals):
                total[:, start:stop] += pairs @ column[:, start:]
                total[:, stop:] += pairs[..., stop - start:].transpose(-1, -2) @ column[:, start:stop]
        kernel_products, shared_products = totals[0], totals[1]
        grad_u = g.unsqueeze(-1) * kernel_products[..., :d] + kernel_products[..., d:2 * d]
        if h is not None:
            grad_u = grad_u + h.unsqueeze(-1) * totals[2][..., :d] + (n / (n - 1)) * totals[2][..., d:]
        grad_t = _radial_gradient(kernel_products[..., 2 * d:], shared_products, g, t, a, b, beta)
        return (c / n) * grad_u, grad_t / n, None, None, None, None


def _kernel_strip(left: Tensor, right: Tensor, radial: Tensor, start: int, stop: int, parts: int) -> list[Tensor]:
    """The first ``parts`` of (K, S, E), rows start:stop against columns start:N, each (B, rows, N - start),
    from one product; K = D + (a a^T + b b^T) o S is formed in place of D."""
    rows = stop - start
    block = torch.bmm(left[:, :parts, start:stop].flatten(1, 2), right[..., start:]).exp_()
    pairs = [block[:, k * rows:(k + 1) * rows] for k in range(parts)]
    pairs[0].addcmul_(pairs[1], radial[:, start:stop] @ radial[:, start:].transpose(-1, -2))  # a_i a_j + b_i b_j
    return pairs


def _radial_gradient(k_products: Tensor, s_products: Tensor, g: Tensor, t: Tensor, a: Tensor, b: Tensor,
                     beta: float) -> Tensor:
    r"""N dF/dt_i for F = sum_i g_i r_i over rows i, from K @ [1, g, t, g t] and S @ [a t, a g t, b t, b g t, b, b g]:

    dK_ij/dt_i = -2 beta t_i K_ij + 2 beta t_j (K - 2 (a a^T + b b^T) o S)_ij + 4 beta b_i b_j S_ij (the three
    images' slopes -2 beta (t_i - t_j), -2 beta (t_i + t_j), -2 beta (t_i + t_j - 2)), summed with weights g_i + g_j."""
    one, gk, tk, gtk = k_products.unbind(-1)
    at, agt, bt, bgt, b1, bg = s_products.unbind(-1)
    weighted = lambda plain, scaled: g * plain + scaled  # noqa: E731  sum_j (g_i + g_j) X_ij v_j
    images_t = a * weighted(at, agt) + b * weighted(bt, bgt)
    return 2.0 * beta * (-t * weighted(one, gk) + weighted(tk, gtk) - 2.0 * images_t + 2.0 * b * weighted(b1, bg))
