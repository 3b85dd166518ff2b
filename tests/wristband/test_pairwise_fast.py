"""The shared-image chordal path (two radial exponentials per pair, each pair once) against a float64
brute force, the three-image path, gradcheck, both keep/recompute paths, strips and extreme t."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import latentshape.wristband.kernel as kernel_module
from latentshape import WristbandLoss
from latentshape.wristband.kernel import _ChordalPairwiseRowSums, default_alpha, pairwise_row_sums
from latentshape.wristband.shared_images import shared_images_fit

ALPHA = default_alpha("chordal")


def brute_force(u: torch.Tensor, t: torch.Tensor, beta: float, alpha: float = ALPHA):
    """(r, a) from the kernel's definition, float64 numpy, all pairs at once."""
    u, t = u.detach().double().numpy(), t.detach().double().numpy()
    n = u.shape[-2]
    dot = np.einsum("bid,bjd->bij", u, u)
    k_ang = np.exp(2.0 * beta * alpha**2 * (dot - 1.0))
    ti, tj = t[:, :, None], t[:, None, :]
    k_rad = sum(np.exp(-beta * gap**2) for gap in (ti - tj, ti + tj, ti + tj - 2.0))
    off_diagonal = k_ang * (1.0 - np.eye(n))
    return (k_ang * k_rad).sum(-1) / n, off_diagonal.sum(-1) / (n - 1)


def sample(batch, n, d, dtype=torch.float64, seed=0, t=None):
    g = torch.Generator().manual_seed(seed)
    u = torch.nn.functional.normalize(torch.randn(batch, n, d, generator=g, dtype=torch.float64), dim=-1)
    t = torch.rand(batch, n, generator=g, dtype=torch.float64) if t is None else t
    return u.to(dtype), t.to(dtype)


def with_grads(u, t, beta, weights, rows=pairwise_row_sums):
    u, t = u.clone().requires_grad_(), t.clone().requires_grad_()
    r, a = rows(u, t, beta, ALPHA, "chordal") if rows is pairwise_row_sums else rows(u, t, beta, ALPHA)
    objective = (weights[0] * r).sum() + (weights[1] * a).sum()
    return (r.detach(), a.detach()) + torch.autograd.grad(objective, (u, t))


@pytest.fixture(params=["kept", "recomputed"])
def keep_path(request, monkeypatch):
    monkeypatch.setattr(kernel_module, "_KEEP_IMAGES_ELEMENTS", 1 << 30 if request.param == "kept" else 0)
    return request.param


@pytest.mark.parametrize("n, chunk", [(37, 1 << 20), (37, 200), (64, 500), (5, 1 << 20)])
@pytest.mark.parametrize("angular_weight", [0.0, 1.0])
def test_matches_three_images_and_brute_force_float64(monkeypatch, keep_path, n, chunk, angular_weight):
    """Several strips of uneven size (N not a multiple), B = 2, with and without an angular gradient."""
    monkeypatch.setattr(kernel_module, "_CHUNK_ELEMENTS", chunk)
    u, t = sample(2, n, 6, seed=n)
    weights = torch.randn(2, 2, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    weights[1] *= angular_weight
    ours = with_grads(u, t, 8.0, weights)
    three = with_grads(u, t, 8.0, weights, rows=_ChordalPairwiseRowSums.apply)
    for mine, reference in zip(ours, three):
        torch.testing.assert_close(mine, reference, rtol=1e-12, atol=1e-12 * float(reference.abs().max()))
    r, a = brute_force(u, t, 8.0)
    np.testing.assert_allclose(ours[0].numpy(), r, rtol=1e-12)
    np.testing.assert_allclose(ours[1].numpy(), a, rtol=1e-12)


@pytest.mark.parametrize("n, d", [(300, 32), (129, 3)])
def test_float32_values_within_1e6_of_float64(keep_path, n, d):
    u, t = sample(1, n, d, dtype=torch.float32, seed=d)
    r, a = pairwise_row_sums(u, t, 8.0, ALPHA, "chordal")
    reference = brute_force(u, t, 8.0)
    np.testing.assert_allclose(r.double().numpy(), reference[0], rtol=1e-6)
    np.testing.assert_allclose(a.double().numpy(), reference[1], rtol=1e-6)


def test_float32_gradients_as_accurate_as_three_images():
    """The t-gradient sums signed terms ~2 beta K; float32 rounding of the exponents bounds it for both paths."""
    u, t = sample(1, 400, 16, seed=3)
    weights = torch.randn(2, 1, 400, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    truth = with_grads(u, t, 8.0, weights)
    for rows in (pairwise_row_sums, _ChordalPairwiseRowSums.apply):
        low = with_grads(u.float(), t.float(), 8.0, weights.float(), rows=rows)
        for mine, reference, bound in zip(low[2:], truth[2:], (2e-6, 2e-4)):
            assert float((mine.double() - reference).abs().max() / reference.abs().max()) < bound


@pytest.mark.parametrize("chunk", [1 << 20, 30])
def test_gradcheck_strips_and_both_outputs(monkeypatch, keep_path, chunk):
    """gradcheck probes r and a separately: the backward's angular-free and angular branches."""
    monkeypatch.setattr(kernel_module, "_CHUNK_ELEMENTS", chunk)  # N = 11: 3 or 4 strips
    u, t = sample(2, 11, 3, seed=5)
    u.requires_grad_()
    t.requires_grad_()
    assert torch.autograd.gradcheck(lambda u_, t_: pairwise_row_sums(u_, t_, 8.0, ALPHA, "chordal"), (u, t))


@pytest.mark.parametrize("t_values", ["zeros", "ones", "ends", "halves"])
def test_extreme_t(keep_path, t_values):
    """t exactly 0 or 1 (a or b at their extremes e^-2beta) and t = 1/2 (where the shift changes branch)."""
    n = 20
    ends = torch.tensor([0.0, 1.0] * (n // 2), dtype=torch.float64)
    t = {"zeros": torch.zeros(n), "ones": torch.ones(n), "ends": ends,
         "halves": torch.full((n,), 0.5)}[t_values].to(torch.float64)[None]
    u, t = sample(1, n, 4, seed=7, t=t)
    weights = torch.randn(2, 1, n, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    r, a = brute_force(u, t, 8.0)
    ours = with_grads(u, t, 8.0, weights)
    np.testing.assert_allclose(ours[0].numpy(), r, rtol=1e-12)
    three = with_grads(u, t, 8.0, weights, rows=_ChordalPairwiseRowSums.apply)
    # at t = 1 everywhere the t-gradient is ~e^-4beta: compare on the scale of its terms, 2 beta |g| K
    scale = 2 * 8.0 * float(weights.abs().max() * ours[0].max())
    for mine, reference in zip(ours[2:], three[2:]):
        torch.testing.assert_close(mine, reference, rtol=1e-12, atol=1e-13 * scale)
    low = with_grads(u.float(), t.float(), 8.0, weights.float())
    assert all(bool(torch.isfinite(v).all()) for v in low)
    np.testing.assert_allclose(low[0].double().numpy(), r, rtol=1e-6)
    assert torch.autograd.gradcheck(lambda t_: pairwise_row_sums(u, t_, 8.0, ALPHA, "chordal"), (t.clone().requires_grad_(),))


def test_range_limit_and_fallback():
    assert shared_images_fit(8.0, torch.float32) and shared_images_fit(200.0, torch.float64)
    assert not shared_images_fit(40.0, torch.float32) and not shared_images_fit(8.0, torch.float16)
    u, t = sample(1, 50, 5, dtype=torch.float32, seed=9, t=torch.tensor([[0.0, 1.0] * 25]))
    for beta in (35.0, 60.0):  # inside the float32 range (shared images); past it (three images)
        r, a = pairwise_row_sums(u, t, beta, ALPHA, "chordal")
        reference = brute_force(u, t, beta)
        np.testing.assert_allclose(r.double().numpy(), reference[0], rtol=1e-5)
        np.testing.assert_allclose(a.double().numpy(), reference[1], rtol=1e-5)
    fallback = _ChordalPairwiseRowSums.apply(u, t, 60.0, ALPHA)
    assert all(torch.equal(x, y) for x, y in zip(pairwise_row_sums(u, t, 60.0, ALPHA, "chordal"), fallback))


@pytest.mark.parametrize("n, chunk, parts", [(1024, 1 << 20, 4), (20000, 1 << 20, 4), (11, 30, 4), (5, 1 << 20, 4), (1, 10, 4)])
def test_strips_cover_the_rows_within_the_chunk(monkeypatch, n, chunk, parts):
    monkeypatch.setattr(kernel_module, "_CHUNK_ELEMENTS", chunk)
    strips = kernel_module._row_blocks(n, parts=parts)
    assert strips[0][0] == 0 and strips[-1][1] == n
    assert all(stop == next_start for (_, stop), (next_start, _) in zip(strips, strips[1:]))
    rows = max(stop - start for start, stop in strips)
    assert rows * n <= max(chunk, n) and rows <= math.ceil(n / parts)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 30), d=st.integers(1, 6), beta=st.floats(0.5, 30.0), chunk=st.sampled_from([8, 64, 1 << 20]),
       seed=st.integers(0, 10**6))
def test_random_shapes_match_brute_force(n, d, beta, chunk, seed):
    original = kernel_module._CHUNK_ELEMENTS
    kernel_module._CHUNK_ELEMENTS = chunk
    try:
        u, t = sample(1, n, d, seed=seed)
        r, a = pairwise_row_sums(u, t, beta, ALPHA, "chordal")
    finally:
        kernel_module._CHUNK_ELEMENTS = original
    reference = brute_force(u, t, beta)
    np.testing.assert_allclose(r.numpy(), reference[0], rtol=1e-11)
    np.testing.assert_allclose(a.numpy(), reference[1], rtol=1e-11)


def test_float32_loss_gradient_close_to_float64():
    x = torch.randn(600, 12, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    loss = WristbandLoss(method="pairwise", lambda_sharp=0, lambda_coord=0, lambda_ang=0.3, calibrate=False)
    grads = []
    for dtype in (torch.float64, torch.float32):
        y = x.to(dtype).clone().requires_grad_()
        loss(y).backward()
        grads.append(y.grad.double())
    assert float((grads[1] - grads[0]).norm() / grads[0].norm()) < 2e-5


# ---- the sharp term's energy from the same strips ----------------------------------------------

from latentshape.wristband.blocks import block_residual_energy  # noqa: E402
from latentshape.wristband.kernel import pairwise_row_sums_and_sharp  # noqa: E402
from latentshape.wristband.mercer import radial_coefficients  # noqa: E402

RADIAL = radial_coefficients(8.0, 6)


def sharp_brute_force(u, t, scale):
    """(1/N^2) sum_ij e^{c_s(u_i.u_j - 1)} sum_k a_k cos(k pi t_i) cos(k pi t_j), float64."""
    u, t = u.detach().double(), t.detach().double()
    w = torch.cos(t[..., None] * math.pi * torch.arange(len(RADIAL), dtype=torch.float64))
    pair = torch.exp(scale * (u @ u.transpose(-1, -2) - 1.0)) * ((w * torch.tensor(RADIAL, dtype=torch.float64)) @ w.transpose(-1, -2))
    return pair.mean(dim=(-2, -1))


def fused_and_separate(u, t, weights, scale=8.0):
    """Values and (u, t) gradients of r, a and the sharp energy, fused and as two separate passes."""
    out = []
    for fused in (True, False):
        uu, tt = u.clone().requires_grad_(), t.clone().requires_grad_()
        if fused:
            r, a, s = pairwise_row_sums_and_sharp(uu, tt, 8.0, ALPHA, "chordal", scale, RADIAL)
        else:
            r, a = pairwise_row_sums(uu, tt, 8.0, ALPHA, "chordal")
            s = block_residual_energy(uu, tt, RADIAL, (scale,), (1.0,), u.shape[-2], low=(0.0, 0.0, 0.0))
        objective = (weights[0] * r).sum() + (weights[1] * a).sum() + (weights[2, :, 0] * s).sum()
        out.append((r.detach(), a.detach(), s.detach()) + torch.autograd.grad(objective, (uu, tt)))
    return out


@pytest.mark.parametrize("n", [37, 5, 64])
@pytest.mark.parametrize("angular_weight", [0.0, 1.0])
def test_sharp_from_the_shared_strips_matches_the_separate_pass(keep_path, n, angular_weight):
    u, t = sample(2, n, 6, seed=n + 1)
    weights = torch.randn(3, 2, n, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    weights[1] *= angular_weight
    fused, separate = fused_and_separate(u, t, weights)
    assert fused[2].dtype == torch.float64
    assert torch.allclose(fused[2], sharp_brute_force(u, t, 8.0), rtol=1e-12)
    for ours, reference in zip(fused, separate):
        assert torch.allclose(ours, reference, rtol=1e-10, atol=1e-13)


def test_sharp_from_the_shared_strips_gradcheck_and_no_sharp_gradient(keep_path):
    u, t = sample(1, 11, 3, seed=5)
    u.requires_grad_(), t.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda u_, t_: pairwise_row_sums_and_sharp(u_, t_, 8.0, ALPHA, "chordal", 5.0, RADIAL), (u, t))
    # only the row sums used: the sharp energy's zero gradient must leave the row sums' gradient as it was
    r, _, _ = pairwise_row_sums_and_sharp(u, t, 8.0, ALPHA, "chordal", 5.0, RADIAL)
    alone, _ = pairwise_row_sums(u, t, 8.0, ALPHA, "chordal")
    assert all(torch.allclose(x, y, rtol=1e-12) for x, y in zip(torch.autograd.grad(r.sum(), (u, t)),
                                                                   torch.autograd.grad(alone.sum(), (u, t))))


@pytest.mark.parametrize("kept", [True, False])
def test_sharp_float32_values_and_gradients_close_to_float64(monkeypatch, kept):
    monkeypatch.setattr(kernel_module, "_KEEP_IMAGES_ELEMENTS", 1 << 30 if kept else 0)
    u, t = sample(1, 300, 16, seed=7)
    weights = torch.randn(3, 1, 300, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    double = fused_and_separate(u, t, weights)[0]
    single = fused_and_separate(u.float(), t.float(), weights.float())[0]
    assert torch.allclose(single[2].double(), sharp_brute_force(u, t, 8.0), rtol=1e-5)
    # the u and t gradients relative to their largest entry; the rows' t-gradient (a sum of signed terms
    # of size ~2 beta K) is the float32 bound of the shared images, 2e-5 to 4e-5 (module docstring)
    for ours, reference, bound in zip(single[3:], double[3:], (2e-6, 5e-5)):
        assert float((ours.double() - reference).abs().max() / reference.abs().max()) < bound


@pytest.mark.parametrize("angular, beta, dtype", [("geodesic", 8.0, torch.float64), ("chordal", 60.0, torch.float32)])
def test_sharp_without_shared_images_is_the_separate_pass(angular, beta, dtype):
    # geodesic, or beta past the shared images' range (35 in float32): rows and sharp energy separately
    assert not (angular == "chordal" and shared_images_fit(beta, dtype))
    u, t = sample(1, 120, 6, seed=9, dtype=dtype)
    u.requires_grad_(), t.requires_grad_()
    r, a, s = pairwise_row_sums_and_sharp(u, t, beta, ALPHA, angular, 8.0, RADIAL)
    alone_r, alone_a = pairwise_row_sums(u, t, beta, ALPHA, angular)
    alone_s = block_residual_energy(u, t, RADIAL, (8.0,), (1.0,), 120, low=(0.0, 0.0, 0.0))
    assert torch.equal(r, alone_r) and torch.equal(a, alone_a) and torch.equal(s, alone_s)
    assert torch.allclose(s.double(), sharp_brute_force(u, t, 8.0), rtol=1e-5 if dtype == torch.float32 else 1e-12)
    grads = torch.autograd.grad((r.sum() + a.sum() + s.sum()), (u, t))
    alone = torch.autograd.grad((alone_r.sum() + alone_a.sum() + alone_s.sum()), (u, t))
    assert all(torch.equal(x, y) for x, y in zip(grads, alone))


def test_default_pairwise_loss_unchanged_by_the_shared_strips(monkeypatch):
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64, requires_grad=True)
    loss = WristbandLoss(method="pairwise", calibrate=False)
    value = loss(x)
    grad, = torch.autograd.grad(value, x)
    import latentshape.wristband.components as components

    def separate(direction, t, beta, alpha, angular, scale, radial):
        r, a = pairwise_row_sums(direction, t, beta, alpha, angular)
        return r, a, block_residual_energy(direction, t, radial, (scale,), (1.0,), direction.shape[-2], low=(0.0, 0.0, 0.0))

    monkeypatch.setattr(components, "pairwise_row_sums_and_sharp", separate)
    other = loss(x)
    assert torch.allclose(value, other, rtol=1e-12)
    assert torch.allclose(grad, torch.autograd.grad(other, x)[0], rtol=1e-9, atol=1e-12)
