"""The blocked (O(block) memory) paths of SIGReg, sliced Wasserstein and MMD against plain autograd references."""

from __future__ import annotations

import math

import pytest
import torch

from latentshape.gaussian import mmd, sigreg, sliced


def _references():
    def sigreg_reference(x, directions):
        return sigreg.epps_pulley(x @ directions).mean(dim=-1)

    def sliced_reference(x, directions):
        return sliced._sliced_from_projections(x @ directions)

    def mmd_reference(x, widths, unbiased):
        n = x.shape[-2]
        distances = ((x.unsqueeze(-2) - x.unsqueeze(-3)) ** 2).sum(dim=-1)
        off = ~torch.eye(n, dtype=torch.bool)
        total = 0.0
        for w in widths:
            kernel = torch.exp(-distances / (2 * w * w))
            within = (kernel * off).sum(dim=(-2, -1)) / (n * (n - 1)) if unbiased else kernel.mean(dim=(-2, -1))
            cross, self_term = mmd.gaussian_kernel_means(x, w)
            total = total + within - 2 * cross.mean(dim=-1) + self_term
        return total

    return sigreg_reference, sliced_reference, mmd_reference


@pytest.fixture
def tiny_blocks(monkeypatch):
    # A handful of rows or slices per block: every loop runs many times and hits a ragged last block.
    monkeypatch.setattr(sigreg, "_BLOCK_ELEMENTS", 3 * 5 * 9)
    monkeypatch.setattr(sliced, "_BLOCK_ELEMENTS", 2 * 37)
    monkeypatch.setattr(mmd, "_PAIR_BLOCK_ELEMENTS", 2 * 7 * 37)


def _data(seed: int, leading=(2,), n=37, d=3, m=5):
    g = torch.Generator().manual_seed(seed)
    x = (1.3 * torch.randn(*leading, n, d, generator=g, dtype=torch.float64) + 0.2).requires_grad_(True)
    directions = torch.nn.functional.normalize(torch.randn(*leading, d, m, generator=g, dtype=torch.float64), dim=-2)
    return x, directions.requires_grad_(True)


@pytest.mark.parametrize("name", ["sigreg", "sliced"])
def test_blocked_slicing_values_and_both_gradients_match_autograd(name, tiny_blocks) -> None:
    sigreg_reference, sliced_reference, _ = _references()
    blocked = {"sigreg": sigreg.sigreg_statistic, "sliced": sliced.sliced_wasserstein_gaussian}[name]
    reference = {"sigreg": sigreg_reference, "sliced": sliced_reference}[name]
    x, directions = _data(0)
    value = blocked(x, directions)
    grads = torch.autograd.grad(value.sum(), (x, directions))
    expected = reference(x, directions)
    expected_grads = torch.autograd.grad(expected.sum(), (x, directions))
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads, expected_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["sigreg", "sliced"])
def test_blocked_slicing_passes_gradcheck_and_broadcasts_shared_directions(name, tiny_blocks) -> None:
    blocked = {"sigreg": sigreg.sigreg_statistic, "sliced": sliced.sliced_wasserstein_gaussian}[name]
    x, directions = _data(1, leading=(), n=9, d=2, m=3)
    assert torch.autograd.gradcheck(lambda a, b: blocked(a, b), (x, directions))
    batched = x.detach().expand(4, 9, 2).clone().requires_grad_(True)
    values = blocked(batched, directions.detach())  # (d, M) directions shared by every leading batch
    assert values.shape == (4,) and torch.allclose(values, blocked(x, directions).detach().expand(4))


@pytest.mark.parametrize("unbiased", [True, False])
def test_blocked_mmd_matches_the_dense_reference_with_gradients(unbiased, tiny_blocks) -> None:
    _, _, mmd_reference = _references()
    x, _ = _data(2, leading=(3,))
    widths = [0.5, 1.0, 3.0]
    value = mmd.gaussian_mmd(x, widths, unbiased=unbiased)
    expected = mmd_reference(x, widths, unbiased)
    torch.testing.assert_close(value, expected, rtol=1e-11, atol=1e-12)
    grad, = torch.autograd.grad(value.sum(), x)
    expected_grad, = torch.autograd.grad(expected.sum(), x)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-9, atol=1e-12)


def test_blocked_mmd_is_translation_and_scale_equivariant_at_extreme_scales() -> None:
    x, _ = _data(3, leading=())
    x = x.detach()
    reference = mmd._PairwiseKernelSums.apply(x.unsqueeze(0), (0.5, 0.125))
    for scale in (1e-150, 1e150):
        scaled = mmd._PairwiseKernelSums.apply((x * scale + 7.0 * scale).unsqueeze(0), (0.5 / scale**2, 0.125 / scale**2))
        torch.testing.assert_close(scaled, reference, rtol=1e-10, atol=0)


def test_sigreg_and_sliced_never_hold_the_full_phase_or_projection_tensors(monkeypatch) -> None:
    # With blocks of at most 2^12 elements, a (4096 x 64) batch never allocates an N x M x T or an
    # N x M tensor: every intermediate the blocked functions create is small (checked via torch.cos/sort).
    monkeypatch.setattr(sigreg, "_BLOCK_ELEMENTS", 1 << 12)
    monkeypatch.setattr(sliced, "_BLOCK_ELEMENTS", 1 << 12)
    largest = []
    real_cos, real_sort = torch.cos, torch.sort

    def spy_cos(t, *args, **kwargs):
        largest.append(t.numel())
        return real_cos(t, *args, **kwargs)

    def spy_sort(t, *args, **kwargs):
        largest.append(t.numel())
        return real_sort(t, *args, **kwargs)

    monkeypatch.setattr(torch, "cos", spy_cos)
    monkeypatch.setattr(torch, "sort", spy_sort)
    x = torch.randn(4096, 8, requires_grad=True)
    directions = torch.nn.functional.normalize(torch.randn(8, 64), dim=0)
    (sigreg.sigreg_statistic(x, directions) + sliced.sliced_wasserstein_gaussian(x, directions)).backward()
    assert max(largest) <= 4096 * math.ceil((1 << 12) / 4096) * 9 and max(largest) < 4096 * 64
