"""The all-degree energy (degrees <= 2 spectral + residual on blocks) and its closed-form null."""

from __future__ import annotations

import math

import pytest
import torch

from latentshape.calibration import NullStats
from latentshape.gaussian.moment_penalties import moment_penalty
from latentshape.wristband.blocks import allorder_energy, block_residual_energy, block_sizes, low_degree_coefficients
from latentshape.wristband.blocks_null import allorder_null_stats, residual_kernel_sums
from latentshape.wristband.harmonics import kernel_power_sums
from latentshape.wristband.map import wristband_map
from latentshape.wristband.radial import radial_distance
from latentshape.wristband.mercer import radial_coefficients

RADIAL = radial_coefficients(8.0, 6)


def _points(batch, n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    u = torch.nn.functional.normalize(torch.randn(batch, n, d, generator=g, dtype=torch.float64), dim=-1)
    return u, torch.rand(batch, n, generator=g, dtype=torch.float64)


def _brute_residual(u, t, scales, weights, block):
    d = u.shape[-1]
    low = low_degree_coefficients(d, scales, weights)
    a = torch.tensor(RADIAL, dtype=torch.float64)
    out = []
    for b in range(u.shape[0]):
        total, start = 0.0, 0
        for size in block_sizes(u.shape[1], block):
            uu, tt = u[b, start : start + size], t[b, start : start + size]
            g = uu @ uu.T
            k = sum(w * torch.exp(c * (g - 1)) for c, w in zip(scales, weights))
            k = k - low[0] - low[1] * d * g - low[2] * (d + 2) / 2 * (d * g * g - 1)
            w = torch.cos(tt[:, None] * math.pi * torch.arange(len(RADIAL), dtype=torch.float64))
            total = total + (k * ((w * a) @ w.T)).sum()
            start += size
        out.append(total / sum(s * s for s in block_sizes(u.shape[1], block)))
    return torch.stack(out)


@pytest.mark.parametrize("n,d,block", [(23, 5, 7), (40, 2, 40), (17, 3, 4), (9, 1, 3)])
def test_residual_matches_brute_force_and_gradcheck(n, d, block):
    u, t = _points(2, n, d)
    scales, weights = (4.0, 1.5), (0.3, 0.7)
    value = block_residual_energy(u, t, RADIAL, scales, weights, block)
    assert torch.allclose(value, _brute_residual(u, t, scales, weights, block), rtol=1e-12)
    u.requires_grad_(), t.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: block_residual_energy(a, b, RADIAL, scales, weights, block), (u, t))


@pytest.mark.parametrize("n,block,budget", [(23, 23, 50), (30, 7, 20), (31, 8, 200)])
def test_row_tiles_and_batched_blocks_match_brute_force(monkeypatch, n, block, budget):
    # a tiny pair budget cuts blocks into row tiles (first two) or batches several blocks (last)
    import latentshape.wristband.blocks as blocks

    monkeypatch.setattr(blocks, "_GROUP_ELEMENTS", budget)
    assert any(end - start < size for _, size, _, start, end in blocks._tiles(block_sizes(n, block))) == (budget < block * block)
    u, t = _points(2, n, 4, seed=3)
    scales, weights = (8.0,), (1.0,)
    value = block_residual_energy(u, t, RADIAL, scales, weights, block)
    assert torch.allclose(value, _brute_residual(u, t, scales, weights, block), rtol=1e-12)
    u.requires_grad_(), t.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: block_residual_energy(a, b, RADIAL, scales, weights, block), (u, t))


@pytest.mark.parametrize("weight,block", [(1.0, 29), (0.4, 29), (1.0, 10)])
@pytest.mark.parametrize("kept", [True, False])
def test_whole_kernel_of_one_scale_matches_brute_force_and_gradcheck(monkeypatch, weight, block, kept):
    # low = 0 with one scale takes the in-place e^{c(x-1)} route, its backward from the kept forward
    # tiles or recomputed; low = 0 makes the brute force's k the whole kernel
    import latentshape.wristband.blocks as blocks

    monkeypatch.setattr(blocks, "_KEEP_ELEMENTS", 1 << 30 if kept else 0)
    if kept:  # several row tiles, each kept
        monkeypatch.setattr(blocks, "_GROUP_ELEMENTS", 60)
    u, t = _points(2, 29, 5, seed=4)
    value = block_residual_energy(u, t, RADIAL, (8.0,), (weight,), block, low=(0.0, 0.0, 0.0))
    a = torch.tensor(RADIAL, dtype=torch.float64)
    w = torch.cos(t[..., None] * math.pi * torch.arange(len(RADIAL), dtype=torch.float64))
    pair = weight * torch.exp(8.0 * (u @ u.transpose(-1, -2) - 1.0)) * ((w * a) @ w.transpose(-1, -2))
    mask = torch.block_diag(*[torch.ones(s, s, dtype=torch.float64) for s in block_sizes(29, block)])
    expected = (pair * mask).sum(dim=(-2, -1)) / mask.sum()
    assert torch.allclose(value, expected, rtol=1e-12)
    u.requires_grad_(), t.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a_, b_: block_residual_energy(a_, b_, RADIAL, (8.0,), (weight,), block, low=(0.0, 0.0, 0.0)), (u, t))


def test_one_block_gives_the_exact_all_degree_energy_and_the_residual_is_psd():
    u, t = _points(3, 64, 6, seed=1)
    energy, _ = allorder_energy(u, t, RADIAL, (8.0,), (1.0,), block=64)
    a = torch.tensor(RADIAL, dtype=torch.float64)
    w = torch.cos(t[..., None] * math.pi * torch.arange(len(RADIAL), dtype=torch.float64))
    exact = (torch.exp(8.0 * (u @ u.transpose(-1, -2) - 1.0)) * ((w * a) @ w.transpose(-1, -2))).mean(dim=(-2, -1))
    assert torch.allclose(energy, exact, rtol=1e-10)
    assert (block_residual_energy(u, t, RADIAL, (8.0,), (1.0,), 16) > 0).all()


def test_block_sizes_partition_the_batch():
    for n in (1, 7, 64, 1000):
        for block in (1, 3, 64, 5000):
            sizes = block_sizes(n, block)
            assert sum(sizes) == n and max(sizes) <= block and max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError):
        block_sizes(0, 3)


def test_residual_sums_against_the_full_kernel_series():
    lam0, square, cube = kernel_power_sums(16, 4.0)
    trace, residual_square, residual_cube = residual_kernel_sums(16, (4.0,), (1.0,))
    low = low_degree_coefficients(16, (4.0,), (1.0,))
    dims = (1, 16, 135)
    assert trace == pytest.approx(1 - sum(v * m for v, m in zip(low, dims)))
    assert residual_square == pytest.approx(square - sum(v * v * m for v, m in zip(low, dims)), rel=1e-9)
    assert residual_cube == pytest.approx(cube - sum(v**3 * m for v, m in zip(low, dims)), rel=1e-7)


@pytest.mark.parametrize("n,d,block", [(96, 3, 32), (64, 10, 64)])
def test_null_stats_against_monte_carlo(n, d, block):
    scales, weights = (4.0 / 3.0, 8.0), (0.5, 0.5)
    generator = torch.Generator().manual_seed(5)
    rows = []
    for _ in range(6):
        x = torch.randn(500, n, d, generator=generator, dtype=torch.float64)
        u, t, z = wristband_map(x)
        energy, angular = allorder_energy(u, t, RADIAL, scales, weights, block)
        rows.append(torch.stack([energy.log() / 8, radial_distance(t, z), angular.log() / 8, moment_penalty(x, "w2")], -1))
    raw = torch.cat(rows)
    empirical, closed = NullStats.from_samples(raw), allorder_null_stats(n, d, scales=scales, weights=weights, block=block)
    active = [0, 2, 3]
    assert ((closed.mean - empirical.mean) / empirical.std)[active].abs().max() < 0.1
    assert ((closed.std / empirical.std)[active] - 1).abs().max() < 0.06
    assert (closed.corr - empirical.corr).abs().max() < 0.1


def test_two_scale_null_stats_against_monte_carlo():
    from latentshape.wristband.blocks_null import two_scale_null_stats
    from latentshape.wristband.spectral import spectral_kernel_sums

    n, d, block = 80, 6, 40
    generator = torch.Generator().manual_seed(11)
    rows = []
    for _ in range(6):
        x = torch.randn(500, n, d, generator=generator, dtype=torch.float64)
        u, t, z = wristband_map(x)
        broad, angular = spectral_kernel_sums(u, t, RADIAL, low_degree_coefficients(d, (4.0 / 3.0,), (1.0,)))
        sharp, _ = allorder_energy(u, t, RADIAL, (8.0,), (1.0,), block)
        rows.append(torch.stack([broad.log() / 8, sharp.log() / 8, radial_distance(t, z), angular.log() / 8,
                                 moment_penalty(x, "w2")], -1))
    raw = torch.cat(rows)
    empirical, closed = NullStats.from_samples(raw), two_scale_null_stats(n, d, block=block)
    active = [0, 1, 3, 4]
    assert ((closed.mean - empirical.mean) / empirical.std)[active].abs().max() < 0.1
    assert ((closed.std / empirical.std)[active] - 1).abs().max() < 0.06
    assert (closed.corr - empirical.corr).abs().max() < 0.1
