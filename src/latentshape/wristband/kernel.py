r"""The wristband kernel and its exact pairwise evaluation in O(N * chunk) memory
(docs/theory.md, "The kernel").

:math:`K((u,t),(u',t')) = k_{ang}(u,u')\, k_{rad}(t,t')` with

- chordal: :math:`k_{ang} = \exp(c\,(u \cdot u' - 1))`, :math:`c = 2\beta\alpha^2`;
- geodesic: :math:`k_{ang} = \exp(-\beta\alpha^2 \theta^2)`, :math:`\theta = \arccos(u \cdot u')`;
- :math:`k_{rad}` the reflected (Neumann) Gaussian on [0, 1], truncated to the three nearest images:
  :math:`e^{-\beta(t-t')^2} + e^{-\beta(t+t')^2} + e^{-\beta(t+t'-2)^2}` (error ~ :math:`e^{-\beta}`).

:func:`pairwise_row_sums` returns, for every point i, :math:`r_i = \frac1N \sum_j K(i, j)` (the
diagonal included) and :math:`a_i = \frac{1}{N-1}\sum_{j \ne i} k_{ang}(u_i, u_j)`. It walks over
row blocks and has its own backward pass that recomputes each block, so memory is
O(N * chunk) whatever N, never an N x N autograd graph.

The chordal kernel goes through :mod:`~latentshape.wristband.shared_images`: the two reflected
images share one exponential and each pair is evaluated once (two ``exp`` per pair for the
radial part, each on 5/8 of the pairs or fewer). Past that module's range (:math:`\beta` above a
fraction of the dtype's exponent range) it falls back to the three images below, each an
exponential of a Gram matrix plus a rank-3 update,

.. math::
    K_{ij} = \sum_{k=1}^{3} \exp\big(c\, u_i \cdot u_j + \sigma_k q^k_i q^k_j + \rho^k_i + \rho^k_j - c\big),

with :math:`(q, \sigma, \rho) = (t, 2\beta, -\beta t^2), (t, -2\beta, -\beta t^2), (t - 1, -2\beta, -\beta (t-1)^2)`
(every exponent is <= 0, so no range limit), one rank-3 ``baddbmm`` and one ``exp`` per image.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from .blocks import block_residual_energy
from .mercer import default_alpha
from .shared_images import SharedImageRowSums, shared_images_fit

__all__ = ["AngularKernel", "default_alpha", "angular_kernel", "radial_kernel", "pairwise_row_sums",
           "pairwise_row_sums_and_sharp"]

AngularKernel = Literal["chordal", "geodesic"]
_CHUNK_ELEMENTS = 1 << 20  # rows-per-block * N; a few such blocks live at once
# Below this many kernel entries (B * N^2) the chordal forward keeps its pair matrices for the backward
# (K, S, E and, with the sharp term, P: ~10 MiB in float32 at N = 1024) instead of recomputing their
# Gram products and exponentials.
_KEEP_IMAGES_ELEMENTS = 1 << 20
# Strips of the shared-image path (each pair once): with k strips (k + 1) / 2k of the pairs are
# evaluated; more strips, more calls. At N = 1024, 4 and 8 were within noise of each other
# (benchmarks/results/cost_ratios.md).
_SYMMETRIC_STRIPS = 4
_FUSED_IMAGE_WIDTH = 64  # up to this d, each image is one (d + 3)-wide product (see _block_images)


def angular_kernel(cosine: Tensor, beta: float, alpha: float, angular: AngularKernel) -> Tensor:
    r"""Angular kernel as a function of :math:`u \cdot u'` (elementwise).

    >>> angular_kernel(torch.tensor([1.0, -1.0]), beta=8.0, alpha=12 ** -0.5, angular="chordal")
    tensor([1.0000, 0.0695])
    """
    return _angular_value_and_slope(cosine, beta * alpha * alpha, angular, want_slope=False)[0]


def radial_kernel(t: Tensor, t_other: Tensor, beta: float) -> Tensor:
    r"""Three-image reflected Gaussian :math:`k_{rad}(t, t')` on [0, 1] (broadcasting).

    >>> radial_kernel(torch.tensor(0.0), torch.tensor(0.0), beta=8.0)   # 1 + 1 + e^-32
    tensor(2.)
    """
    return _radial_value_and_slope(t, t_other, beta, want_slope=False)[0]


def pairwise_row_sums(
    direction: Tensor, t: Tensor, beta: float, alpha: float, angular: AngularKernel
) -> tuple[Tensor, Tensor]:
    r"""Row means of the wristband kernel and off-diagonal row means of the angular kernel.

    Args:
        direction: unit directions ``(B, N, d)``.
        t: radial coordinates ``(B, N)`` in [0, 1], same dtype.

    Returns:
        ``(r, a)`` of shape ``(B, N)``: :math:`r_i = \frac1N\sum_j K(i,j)`,
        :math:`a_i = \frac1{N-1}\sum_{j\ne i} k_{ang}(u_i,u_j)`.

    >>> u = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    >>> r, a = pairwise_row_sums(u, torch.tensor([[0.5, 0.5]], dtype=torch.float64), 8.0, 12 ** -0.5, "chordal")
    >>> a   # exp(c (0 - 1)) with c = 4/3
    tensor([[0.2636, 0.2636]], dtype=torch.float64)
    """
    if angular == "chordal":
        if shared_images_fit(float(beta), direction.dtype):
            return _shared_images(direction, t, beta, alpha, None)[:2]
        return _ChordalPairwiseRowSums.apply(direction, t, float(beta), float(alpha))
    return _PairwiseRowSums.apply(direction, t, float(beta), float(alpha), angular)


def pairwise_row_sums_and_sharp(
    direction: Tensor, t: Tensor, beta: float, alpha: float, angular: AngularKernel,
    sharp_scale: float, radial: tuple[float, ...],
) -> tuple[Tensor, Tensor, Tensor]:
    r""":func:`pairwise_row_sums` and the sharp term's exact all-pairs energy
    :math:`\frac1{N^2}\sum_{i,j} e^{c_s(u_i \cdot u_j - 1)} \sum_k a_k \cos(k\pi t_i)\cos(k\pi t_j)`
    ``(B,)`` in float64 (:func:`~latentshape.wristband.blocks.block_residual_energy` with one block).

    The chordal kernel shares its Gram products with the sharp kernel
    (:mod:`~latentshape.wristband.shared_images`); otherwise the two are separate passes.

    >>> from latentshape.wristband.mercer import radial_coefficients
    >>> u = torch.nn.functional.normalize(torch.randn(1, 50, 3, dtype=torch.float64), dim=-1)
    >>> t = torch.rand(1, 50, dtype=torch.float64)
    >>> r, a, sharp = pairwise_row_sums_and_sharp(u, t, 8.0, 12 ** -0.5, "chordal", 8.0, radial_coefficients(8.0, 6))
    >>> alone = block_residual_energy(u, t, radial_coefficients(8.0, 6), (8.0,), (1.0,), 50, low=(0.0, 0.0, 0.0))
    >>> bool(torch.allclose(sharp, alone, rtol=1e-12))
    True
    """
    radial = tuple(float(v) for v in radial)
    if angular == "chordal" and shared_images_fit(float(beta), direction.dtype):
        return _shared_images(direction, t, beta, alpha, (float(sharp_scale), radial))
    rows, angular_rows = pairwise_row_sums(direction, t, beta, alpha, angular)
    n = direction.shape[-2]
    return rows, angular_rows, block_residual_energy(direction, t, radial, (float(sharp_scale),), (1.0,), n, low=(0.0, 0.0, 0.0))


def _shared_images(direction: Tensor, t: Tensor, beta: float, alpha: float, sharp) -> tuple[Tensor, Tensor, Tensor]:
    n = direction.shape[-2]
    keep = direction.shape[0] * n * n <= _KEEP_IMAGES_ELEMENTS
    strips = _row_blocks(n, parts=_SYMMETRIC_STRIPS)
    return SharedImageRowSums.apply(direction, t, float(beta), float(alpha), strips, keep, sharp)


def _angular_value_and_slope(
    cosine: Tensor, scale: float, angular: str, want_slope: bool = True
) -> tuple[Tensor, Tensor | None]:
    """k_ang and dk_ang/d(cosine); ``scale`` is beta * alpha^2."""
    if angular == "chordal":
        value = torch.exp(2.0 * scale * (cosine - 1.0))
        return value, (2.0 * scale * value if want_slope else None)
    if angular != "geodesic":
        raise ValueError(f"angular must be 'chordal' or 'geodesic', got {angular!r}")
    cosine = cosine.clamp(-1.0, 1.0)
    theta = torch.arccos(cosine)
    value = torch.exp(-scale * theta * theta)
    if not want_slope:
        return value, None
    # d(theta^2)/d(cos) = -2 theta / sin(theta): finite (-> -2) at theta = 0; the antipode is a
    # genuine kink of the geodesic distance, so its slope is capped.
    sine = torch.sqrt((1.0 - cosine * cosine).clamp_min(0.0))
    ratio = torch.where(sine > 1e-4, theta / sine.clamp_min(1e-4), 1.0 + theta * theta / 6.0)
    return value, 2.0 * scale * ratio * value


def _radial_value_and_slope(
    t: Tensor, t_other: Tensor, beta: float, want_slope: bool = True
) -> tuple[Tensor, Tensor | None]:
    """Three-image k_rad(t, t') and its derivative in the first argument t."""
    gaps = (t - t_other, t + t_other, t + t_other - 2.0)
    images = [torch.exp(-beta * g * g) for g in gaps]
    value = images[0] + images[1] + images[2]
    if not want_slope:
        return value, None
    slope = -2.0 * beta * (gaps[0] * images[0] + gaps[1] * images[1] + gaps[2] * images[2])
    return value, slope


def _row_blocks(n: int, parts: int = 1) -> list[tuple[int, int]]:
    """Consecutive row ranges of at most _CHUNK_ELEMENTS / n and at most ceil(n / parts) rows each."""
    rows = max(1, min(-(-n // parts), _CHUNK_ELEMENTS // max(1, n)))
    # a loop over the block count, not range(0, n, rows): under torch.compile a guard on the count, not on n
    return [(i * rows, min(n, (i + 1) * rows)) for i in range(-(-n // rows))]


class _PairwiseRowSums(torch.autograd.Function):
    @staticmethod
    def forward(ctx, direction, t, beta, alpha, angular):  # type: ignore[override]
        scale = beta * alpha * alpha
        n = direction.shape[-2]
        kernel_rows = torch.empty_like(t)
        angular_rows = torch.empty_like(t)
        for start, stop in _row_blocks(n):
            cosine = direction[:, start:stop] @ direction.transpose(-1, -2)
            k_ang, _ = _angular_value_and_slope(cosine, scale, angular, want_slope=False)
            k_rad, _ = _radial_value_and_slope(t[:, start:stop, None], t[:, None, :], beta, want_slope=False)
            kernel_rows[:, start:stop] = (k_ang * k_rad).sum(dim=-1) / n
            diagonal = k_ang.diagonal(offset=start, dim1=-2, dim2=-1)
            angular_rows[:, start:stop] = (k_ang.sum(dim=-1) - diagonal) / (n - 1)
        ctx.save_for_backward(direction, t)
        ctx.config = (beta, scale, angular)
        return kernel_rows, angular_rows

    @staticmethod
    def backward(ctx, grad_kernel_rows, grad_angular_rows):  # type: ignore[override]
        direction, t = ctx.saved_tensors
        beta, scale, angular = ctx.config
        n = direction.shape[-2]
        g_kernel = grad_kernel_rows if grad_kernel_rows is not None else torch.zeros_like(t)
        g_angular = grad_angular_rows if grad_angular_rows is not None else torch.zeros_like(t)
        grad_direction = torch.empty_like(direction)  # every block below writes its rows
        grad_t = torch.empty_like(t)
        # F = sum_i g_i r_i with K symmetric: dF/dy_i = sum_j (g_i + g_j) dK(i, j)/dy_i / N.
        for start, stop in _row_blocks(n):
            cosine = direction[:, start:stop] @ direction.transpose(-1, -2)
            k_ang, dk_ang = _angular_value_and_slope(cosine, scale, angular)
            k_rad, dk_rad = _radial_value_and_slope(t[:, start:stop, None], t[:, None, :], beta)
            weight_kernel = (g_kernel[:, start:stop, None] + g_kernel[:, None, :]) / n
            weight_angular = (g_angular[:, start:stop, None] + g_angular[:, None, :]) / (n - 1)
            weight_angular.diagonal(offset=start, dim1=-2, dim2=-1).zero_()
            cosine_weight = weight_kernel * k_rad * dk_ang + weight_angular * dk_ang
            grad_direction[:, start:stop] = cosine_weight @ direction
            grad_t[:, start:stop] = (weight_kernel * k_ang * dk_rad).sum(dim=-1)
        return grad_direction, grad_t, None, None, None


class _ChordalPairwiseRowSums(torch.autograd.Function):
    """Chordal row sums from one Gram product and three rank-3 exponentials per block (module docstring)."""

    @staticmethod
    def forward(ctx, direction, t, beta, alpha):  # type: ignore[override]
        c = 2.0 * beta * alpha * alpha
        n = direction.shape[-2]
        images = _images(t, beta, c)
        kernel_rows = torch.zeros_like(t)
        angular_rows = torch.empty_like(t)
        keep = direction.shape[0] * n * n <= _KEEP_IMAGES_ELEMENTS and any(ctx.needs_input_grad[:2])
        kept: list[list[Tensor]] = []
        for start, stop in _row_blocks(n):
            block, angular = _block_images(direction, images, c, start, stop)
            for image in block:
                kernel_rows[:, start:stop] += image.sum(dim=-1)
            if keep:
                kept.append(block)
            diagonal = angular.diagonal(offset=start, dim1=-2, dim2=-1)
            angular_rows[:, start:stop] = (angular.sum(dim=-1) - diagonal) / (n - 1)
        ctx.save_for_backward(direction, t)
        ctx.config = (beta, c)
        ctx.kept = kept if keep else None
        return kernel_rows / n, angular_rows

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_kernel_rows, grad_angular_rows):  # type: ignore[override]
        direction, t = ctx.saved_tensors
        beta, c = ctx.config
        n = direction.shape[-2]
        g = grad_kernel_rows if grad_kernel_rows is not None else torch.zeros_like(t)
        h = grad_angular_rows
        if h is not None and not bool(h.any()):
            h = None  # the usual case (lambda_ang = 0): skip the angular kernel entirely
        images = _images(t, beta, c)
        # F = sum_i g_i r_i: dF/dt_i = (1/N) sum_k sum_j (g_i + g_j) M^k_ij (sigma_k q_j - 2 beta q_i)
        probes = [torch.stack([q, g * q, torch.ones_like(q), g], dim=-1) for _, _, q, _ in images]
        weighted = torch.cat([direction, direction * g.unsqueeze(-1)], dim=-1)
        if h is not None:
            weighted_angular = torch.cat([direction, direction * h.unsqueeze(-1)], dim=-1)
        grad_direction = torch.empty_like(direction)
        grad_t = torch.zeros_like(t)
        d = direction.shape[-1]
        kept, ctx.kept = ctx.kept, None
        for index, (start, stop) in enumerate(_row_blocks(n)):
            rows = slice(start, stop)
            angular = block = None
            if kept is None or h is not None:
                block, angular = _block_images(direction, images, c, start, stop, images_too=kept is None)
            block = kept[index] if kept is not None else block
            kernel = None
            for (_, _, q, sigma), probe, image in zip(images, probes, block):
                p = image @ probe  # (B, rows, 4)
                grad_t[:, rows] += sigma * (g[:, rows] * p[..., 0] + p[..., 1]) \
                    - 2.0 * beta * q[:, rows] * (g[:, rows] * p[..., 2] + p[..., 3])
                kernel = image if kernel is None else kernel.add_(image)
            products = kernel @ weighted  # (B, rows, 2d): K u and K (g u)
            grad_u = g[:, rows, None] * products[..., :d] + products[..., d:]
            if h is not None:
                angular.diagonal(offset=start, dim1=-2, dim2=-1).zero_()
                products = angular @ weighted_angular
                grad_u = grad_u + (n / (n - 1)) * (h[:, rows, None] * products[..., :d] + products[..., d:])
            grad_direction[:, rows] = (c / n) * grad_u
        return grad_direction, grad_t / n, None, None


def _block_images(direction: Tensor, images, c: float, start: int, stop: int,
                  images_too: bool = True) -> tuple[list[Tensor], Tensor]:
    """The three radial images of rows start:stop against all rows (if ``images_too``) and the angular
    kernel exp(c (u_i . u_j - 1)) of the same block.

    Narrow rows (d <= _FUSED_IMAGE_WIDTH): the rank-3 update rides in the Gram product itself
    ([c u_i, left_i] . [u_j, right_j], K = d + 3), so each image is written once instead of Gram, copy
    and update. Wide rows keep one Gram product and rank-3 updates: the extra flops would cost more."""
    rows = slice(start, stop)
    if direction.shape[-1] > _FUSED_IMAGE_WIDTH:
        gram = direction[:, rows] @ direction.transpose(-1, -2)
        block = [torch.baddbmm(gram, left[:, rows], right, beta=c).exp_() for left, right, _, _ in images] \
            if images_too else []
        return block, gram.mul_(c).sub_(c).exp_()
    scaled = c * direction[:, rows]
    block = [torch.cat([scaled, left[:, rows]], dim=-1).bmm(torch.cat([direction, right.transpose(-1, -2)], dim=-1)
                                                              .transpose(-1, -2)).exp_()
             for left, right, _, _ in images] if images_too else []
    ones = direction.new_ones(direction.shape[:-1] + (1,))
    angular_right = torch.cat([direction, -c * ones], dim=-1)
    angular = torch.cat([scaled, ones[:, rows]], dim=-1).bmm(angular_right.transpose(-1, -2)).exp_()
    return block, angular


def _images(t: Tensor, beta: float, c: float) -> list[tuple[Tensor, Tensor, Tensor, float]]:
    """Per radial image: the rank-3 factors (left (B, N, 3), right (B, 3, N)) of
    sigma q_i q_j + rho_i + rho_j - c, and (q, sigma)."""
    out = []
    for shift, sigma in ((0.0, 2.0 * beta), (0.0, -2.0 * beta), (-1.0, -2.0 * beta)):
        q = t + shift
        rho = -beta * q * q
        ones = torch.ones_like(q)
        left = torch.stack([q, rho, ones], dim=-1)
        right = torch.stack([sigma * q, ones, rho - c], dim=-2)
        out.append((left, right, q, sigma))
    return out
