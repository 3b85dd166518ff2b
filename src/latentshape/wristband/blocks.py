r"""The wristband energy's angular degrees >= 3, exactly, on blocks of the batch: O(N B d) time, O(N B) memory.

The angular kernel :math:`k(x) = \sum_s w_s e^{c_s (x - 1)}` (a weighted sum of chordal scales;
Mercer weights add) splits into its degrees <= 2, which the spectral path evaluates on the whole
batch from d x d moments, and the *residual*

.. math::
    k_{>2}(x) = k(x) - \lambda_0 - \lambda_1 Z_1(x) - \lambda_2 Z_2(x), \qquad
    Z_1(x) = d x,\; Z_2(x) = \tfrac{d+2}{2}(d x^2 - 1),

a positive-definite kernel holding every higher degree. With the spectral radial kernel
:math:`r(t, t') = \sum_{k \le K} a_k \cos(k\pi t)\cos(k\pi t')`, the residual energy over a partition
of the N points into consecutive blocks b of sizes :math:`n_b \le B` is

.. math::
    E_{>2} = \frac{1}{\sum_b n_b^2} \sum_b \sum_{i, j \in b} k_{>2}(u_i \cdot u_j)\, r(t_i, t_j),

an unbiased estimate of the population residual energy whose null law is closed-form
(:mod:`~latentshape.wristband.blocks_null`). With one block (B >= N) it is the exact all-pairs
value, and :math:`E_{\le 2} + E_{>2}` is then the exact all-degree energy. Blocks are consecutive
rows (a batch is already in random order); the sizes differ by at most one.

:func:`block_residual_energy` has its own backward pass that recomputes each group of blocks, so
memory stays O(N B) whatever N.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .harmonics import mercer_coefficients

__all__ = ["block_sizes", "low_degree_coefficients", "block_residual_energy", "allorder_energy"]

_GROUP_ELEMENTS = 1 << 17  # pairs held at once: the pair matrices stay in cache
# Up to this many evaluated pairs (4 MiB in float32) the whole kernel of one scale keeps its forward
# tiles for the backward instead of recomputing their Gram products and exponentials.
_KEEP_ELEMENTS = 1 << 20


def block_sizes(n: int, block: int) -> list[int]:
    """Sizes of the ceil(n / block) consecutive blocks, as equal as possible (they differ by <= 1).

    >>> block_sizes(10, 4)
    [4, 3, 3]
    """
    if n < 1 or block < 1:
        raise ValueError(f"need n >= 1 and block >= 1, got n={n}, block={block}")
    count = -(-n // block)
    small, extra = n // count, n % count  # not divmod: torch.compile cannot trace it on a symbolic n
    return [small + 1] * extra + [small] * (count - extra)


def low_degree_coefficients(d: int, scales: tuple[float, ...], weights: tuple[float, ...]) -> tuple[float, float, float]:
    r""":math:`\lambda_0, \lambda_1, \lambda_2` of :math:`\sum_s w_s e^{c_s(x-1)}` on :math:`S^{d-1}`.

    >>> [round(v, 4) for v in low_degree_coefficients(3, (4.0 / 3.0,), (1.0,))]
    [0.3489, 0.1393, 0.0354]
    """
    per_scale = [mercer_coefficients(int(d), 2, float(c)) for c in scales]
    return tuple(sum(w * lam[level] for w, lam in zip(weights, per_scale)) for level in range(3))


def _residual_and_slope(cosine: Tensor, d: int, scales, weights, low, slope: bool = True) -> tuple[Tensor, Tensor | None]:
    """k_{>2}(x) and (optionally) its derivative, elementwise, in a few in-place passes over the pairs.

    ``cosine`` (a fresh pair matrix) may be overwritten."""
    if len(scales) == 1 and not any(low):  # the whole kernel of one scale (one exact block): e^{c(x-1)}, in place
        value = cosine.sub_(1.0).mul_(scales[0]).exp_()
        if weights[0] != 1.0:
            value.mul_(weights[0])
        return value, (value * scales[0] if slope else None)
    half = (d + 2) / 2.0
    # the degree <= 2 part lambda_0 + lambda_1 d x + lambda_2 (d+2)/2 (d x^2 - 1), by Horner
    value = cosine * (-low[2] * half * d)
    value.sub_(low[1] * d).mul_(cosine).sub_(low[0] - low[2] * half)
    derivative = None
    if slope:
        derivative = cosine * (-2.0 * low[2] * half * d)
        derivative.sub_(low[1] * d)
    for c, w in zip(scales, weights):
        e = (cosine - 1.0).mul_(c).exp_()
        value.add_(e, alpha=w)
        if derivative is not None:
            derivative.add_(e, alpha=w * c)
    return value, derivative


def _groups(sizes: list[int]) -> list[tuple[int, int, int]]:
    """(first row, block size, number of blocks) of runs of equal-size blocks, cut to ~_GROUP_ELEMENTS pairs."""
    out, row, index = [], 0, 0
    while index < len(sizes):
        size = sizes[index]
        run = 1
        while index + run < len(sizes) and sizes[index + run] == size and (run + 1) * size * size <= _GROUP_ELEMENTS:
            run += 1
        out.append((row, size, run))
        row += size * run
        index += run
    return out


def _tiles(sizes: list[int]) -> list[tuple[int, int, int, int, int]]:
    """Units of work (first row, block size, number of blocks, first and end row within each block).

    Runs of small blocks are batched; a block larger than the group budget is cut into row tiles,
    so that every pair matrix held at once has ~_GROUP_ELEMENTS entries and stays in cache.
    """
    out = []
    for row, size, count in _groups(sizes):
        rows = max(1, _GROUP_ELEMENTS // size)
        # a loop over the tile count, not range(0, size, rows): under torch.compile a guard on the
        # count, not on the batch size
        out.extend((row, size, count, i * rows, min(size, (i + 1) * rows)) for i in range(-(-size // rows)))
    return out


def block_residual_energy(
    direction: Tensor,
    t: Tensor,
    radial: tuple[float, ...],
    scales: tuple[float, ...],
    weights: tuple[float, ...],
    block: int,
    low: tuple[float, float, float] | None = None,
) -> Tensor:
    r"""Residual (degrees >= 3) wristband energy :math:`E_{>2}` of ``(B, N, d)`` directions and ``(B, N)`` radii.

    ``radial`` = :math:`a_0..a_K` (:func:`~latentshape.wristband.spectral.radial_coefficients`),
    ``scales`` the chordal :math:`c_s` and ``weights`` their :math:`w_s`, ``block`` the largest block,
    ``low`` the kernel's :math:`\lambda_0..\lambda_2` if already known (:func:`low_degree_coefficients`;
    passing them keeps the coefficient cache out of a ``torch.compile`` trace). Returns shape ``(B,)``.

    >>> g = torch.Generator().manual_seed(0)
    >>> u = torch.nn.functional.normalize(torch.randn(1, 64, 3, generator=g, dtype=torch.float64), dim=-1)
    >>> t = torch.rand(1, 64, generator=g, dtype=torch.float64)
    >>> from latentshape.wristband.mercer import radial_coefficients
    >>> e = block_residual_energy(u, t, radial_coefficients(8.0, 6), (4.0,), (1.0,), block=64)
    >>> bool(e > 0)   # a positive-definite kernel: E >= 0
    True
    """
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    if len(scales) != len(weights) or not scales:
        raise ValueError("scales and weights must be non-empty and of the same length")
    if low is None:
        low = low_degree_coefficients(direction.shape[-1], tuple(scales), tuple(weights))
    return _BlockResidual.apply(direction, t, tuple(float(a) for a in radial), tuple(float(c) for c in scales),
                                tuple(float(w) for w in weights), int(block), tuple(float(v) for v in low))


def _radial_features(t: Tensor, radial: tuple[float, ...]) -> tuple[Tensor, Tensor, Tensor]:
    """Angles k pi t_i ``(B, N, K+1)``, the cosine features w_ik and the weighted a_k w_ik."""
    a = torch.tensor(radial, dtype=t.dtype, device=t.device)
    angle = t.unsqueeze(-1) * (math.pi * torch.arange(len(radial), dtype=t.dtype, device=t.device))
    w = torch.cos(angle)
    return angle, w, w * a


def _radial_slopes(angle: Tensor) -> Tensor:
    """d cos(k pi t) / dt = -k pi sin(k pi t), from the angles k pi t of :func:`_radial_features`."""
    k = torch.arange(angle.shape[-1], dtype=angle.dtype, device=angle.device)
    return torch.sin(angle).mul_(-math.pi * k)


def _blocks(x: Tensor, row: int, size: int, count: int) -> Tensor:
    """Rows row .. row + size * count of ``(B, N, m)`` as ``(B * count, size, m)``."""
    return x[:, row : row + size * count].reshape(x.shape[0] * count, size, x.shape[-1])


def _in_blocks(x: Tensor, row: int, size: int, count: int) -> Tensor:
    """The view of rows row .. row + size * count of ``(B, N, m)`` as ``(B, count, size, m)``."""
    return x[:, row : row + size * count].view(x.shape[0], count, size, x.shape[-1])


class _BlockResidual(torch.autograd.Function):
    # The pair matrix of a block is symmetric: a unit of rows [start, end) pairs only with the
    # columns from start on; its square part counts once, the columns past it twice (as (i, j) and
    # (j, i)). Each pair's kernel is computed once, and every pair matrix fits in cache.
    # sum_ij k_ij r_ij = sum_i sum_k a_k w_ik (K w)_ik avoids forming the radial matrix.
    @staticmethod
    def forward(ctx, direction, t, radial, scales, weights, block, low):  # type: ignore[override]
        batch, n, d = direction.shape
        sizes = block_sizes(n, block)
        _, w, wa = _radial_features(t, radial)
        total = direction.new_zeros(batch, dtype=torch.float64)
        tiles = _tiles(sizes)
        # the whole kernel of one scale: its slope is c times the kernel, so the kept tiles give both
        keep = (len(scales) == 1 and not any(low) and any(ctx.needs_input_grad[:2])
                and batch * sum(count * (end - start) * (size - start) for _, size, count, start, end in tiles) <= _KEEP_ELEMENTS)
        kept = []
        for row, size, count, start, end in tiles:
            u, w_block = _blocks(direction, row, size, count), _blocks(w, row, size, count)
            kernel, _ = _residual_and_slope(u[:, start:end] @ u[:, start:].transpose(-1, -2), d, scales, weights, low, slope=False)
            square = end - start
            kw = torch.baddbmm(kernel[..., :square] @ w_block[:, start:end], kernel[..., square:], w_block[:, end:], alpha=2.0)
            energy = kw.mul_(_blocks(wa, row, size, count)[:, start:end])
            total += energy.sum(dim=(-2, -1), dtype=torch.float64).view(batch, count).sum(-1)
            if keep:
                kept.append(kernel)
        ctx.save_for_backward(direction, t)
        ctx.config = (radial, scales, weights, block, low, sum(s * s for s in sizes))
        ctx.kept = kept if keep else None
        return total / ctx.config[-1]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_energy):  # type: ignore[override]
        direction, t = ctx.saved_tensors
        radial, scales, weights, block, low, pairs = ctx.config
        batch, n, d = direction.shape
        angle, w, wa = _radial_features(t, radial)
        # row sums sum_j S_ij u_j and sum_j k_ij (a w_j), S_ij = k'_ij r_ij, gathered over the units
        pulled_u, pulled_w = torch.zeros_like(direction), torch.zeros_like(wa)
        kept, ctx.kept = ctx.kept, None
        for index, (row, size, count, start, end) in enumerate(_tiles(block_sizes(n, block))):
            u, w_block, wa_block = (_blocks(x, row, size, count) for x in (direction, w, wa))
            radial_pairs = wa_block[:, start:end] @ w_block[:, start:].transpose(-1, -2)
            if kept is not None:  # k' = c k: the factor c joins pulled_u at the end
                kernel = kept[index]
                slope = radial_pairs.mul_(kernel)
            else:
                kernel, slope = _residual_and_slope(u[:, start:end] @ u[:, start:].transpose(-1, -2), d, scales, weights, low)
                slope.mul_(radial_pairs)
            rows = end - start  # also the width of the unit's square part
            into_u, into_w = _in_blocks(pulled_u, row, size, count), _in_blocks(pulled_w, row, size, count)
            into_u[:, :, start:end] += (slope @ u[:, start:]).view(batch, count, rows, d)
            into_w[:, :, start:end] += (kernel @ wa_block[:, start:]).view(batch, count, rows, -1)
            if end < size:  # the columns past the square: their (j, i) halves
                into_u[:, :, end:] += (slope[..., rows:].transpose(-1, -2) @ u[:, start:end]).view(batch, count, size - end, d)
                into_w[:, :, end:] += (kernel[..., rows:].transpose(-1, -2) @ wa_block[:, start:end]).view(batch, count, size - end, -1)
        scale = (2.0 * grad_energy / pairs).to(direction.dtype).view(batch, 1, 1)  # K symmetric: each pair twice
        # dr(t_i, t_j)/dt_i = sum_k a_k (-k pi sin(k pi t_i)) w_jk
        slope_t = _radial_slopes(angle)
        pulled_u.mul_(scale * scales[0] if kept is not None else scale)
        return pulled_u, pulled_w.mul_(slope_t).sum(-1).mul_(scale.view(batch, 1)), None, None, None, None, None


def allorder_energy(
    direction: Tensor,
    t: Tensor,
    radial: tuple[float, ...],
    scales: tuple[float, ...],
    weights: tuple[float, ...],
    block: int,
) -> tuple[Tensor, Tensor]:
    r"""All-degree energy :math:`E_{\le 2} + E_{>2}` ``(B,)`` and the degree-<= 2 off-diagonal angular mean ``(B,)``.

    :math:`E_{\le 2}` is the spectral path's energy with the multi-scale kernel's
    :math:`\lambda_0..\lambda_2` (O(N d^2 K)); :math:`E_{>2}` is :func:`block_residual_energy`
    (O(N B d)). With ``block >= N`` the sum is the exact all-pairs energy of the kernel.

    >>> g = torch.Generator().manual_seed(0)
    >>> u = torch.nn.functional.normalize(torch.randn(1, 200, 4, generator=g, dtype=torch.float64), dim=-1)
    >>> t = torch.rand(1, 200, generator=g, dtype=torch.float64)
    >>> from latentshape.wristband.mercer import radial_coefficients
    >>> radial = radial_coefficients(8.0, 12)
    >>> energy, _ = allorder_energy(u, t, radial, (4.0,), (1.0,), block=200)
    >>> a = torch.tensor(radial, dtype=torch.float64)
    >>> w = torch.cos(t[0, :, None] * math.pi * torch.arange(len(radial), dtype=torch.float64))
    >>> exact = (torch.exp(4.0 * (u[0] @ u[0].T - 1.0)) * ((w * a) @ w.T)).mean()
    >>> bool(torch.isclose(energy[0], exact, rtol=1e-10))
    True
    """
    from .spectral import spectral_kernel_sums

    low = low_degree_coefficients(direction.shape[-1], scales, weights)
    head, angular_mean = spectral_kernel_sums(direction, t, radial, low)
    return head + block_residual_energy(direction, t, radial, scales, weights, block, low=low), angular_mean
