"""The wristband map against scipy's chi-square law, in the bulk and in the far tails."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

from latentshape.wristband.map import chi2_cdf_and_score, wristband_map


def reference_score(s: np.ndarray, d: int) -> np.ndarray:
    log_cdf, log_sf = stats.chi2.logcdf(s, d), stats.chi2.logsf(s, d)
    return np.where(log_cdf < np.log(0.5), special.ndtri_exp(log_cdf), -special.ndtri_exp(log_sf))


@pytest.mark.parametrize("d", [1, 2, 3, 16, 512, 4096])
def test_cdf_and_score_match_scipy(d):
    s = d * np.array([1e-3, 0.1, 0.5, 0.9, 1.0, 1.1, 2.0, 5.0])
    t, z = chi2_cdf_and_score(torch.tensor(s, dtype=torch.float64), d)
    # torch's float64 gammainc is good to ~1e-9 relative when a = d/2 is in the thousands
    np.testing.assert_allclose(t.numpy(), stats.chi2.cdf(s, d), rtol=1e-9, atol=1e-300)
    reference = reference_score(s, d)
    ok = np.isfinite(reference)  # scipy's tails underflow at large d; the far tails are tested below
    assert ok.sum() >= 5
    np.testing.assert_allclose(z.numpy()[ok], reference[ok], rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("d", [2, 64, 4096])
def test_score_in_far_tails_is_finite_monotone_and_close_to_scipy(d):
    s = d * np.logspace(-6, 6, 200)
    t, z = chi2_cdf_and_score(torch.tensor(s, dtype=torch.float64), d)
    assert torch.isfinite(z).all() and torch.isfinite(t).all()
    assert bool((z[1:] > z[:-1]).all())
    reference = reference_score(s, d)
    ok = np.isfinite(reference)
    # leading-order tail expansions where scipy's float64 tails underflow: ~1e-3 relative
    np.testing.assert_allclose(z.numpy()[ok], reference[ok], rtol=2e-3)


@pytest.mark.parametrize("d", [1, 2, 3, 64, 4096])
def test_gradients_finite_from_zero_to_huge(d):
    s = torch.tensor([0.0, 1e-300, 1e-6 * d, d, 1e6 * d, 1e300], dtype=torch.float64, requires_grad=True)
    t, z = chi2_cdf_and_score(s, d)
    (t.sum() + z.sum()).backward()
    assert torch.isfinite(s.grad).all()
    assert bool((s.grad[2:5] > 0).all())  # the score keeps a slope at extreme radii


def test_gradcheck():
    s = torch.tensor([0.05, 0.7, 3.0, 9.0], dtype=torch.float64, requires_grad=True)
    for d in (1, 2, 5):
        assert torch.autograd.gradcheck(lambda v: chi2_cdf_and_score(v, d), (s,))


def test_zero_row_has_zero_direction_and_finite_gradient():
    x = torch.zeros(3, 4, requires_grad=True)
    point = wristband_map(x)
    assert torch.equal(point.direction, torch.zeros(3, 4))
    (point.direction.sum() + point.cdf.sum() + point.score.sum()).backward()
    assert torch.isfinite(x.grad).all()


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(2, 20), st.integers(0, 10_000))
def test_rotation_equivariance(d, n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    a, b = wristband_map(x), wristband_map(x @ rotation)
    torch.testing.assert_close(a.direction @ rotation, b.direction)
    torch.testing.assert_close(a.cdf, b.cdf)
    torch.testing.assert_close(a.score, b.score)


def test_map_backward_overwrites_only_a_gradient_it_owns():
    """The backward writes over its incoming gradient only when nothing else holds it: a gradient shared
    with a leaf (through an addition) stays intact, and both ways x gets the gradient of x / ||x||."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(6, 3, generator=g, dtype=torch.float64)
    reference, = torch.autograd.grad(((x / x.norm(dim=-1, keepdim=True)) * weights).sum(), x)
    leaf = torch.zeros(6, 3, dtype=torch.float64, requires_grad=True)
    ((wristband_map(x).direction + leaf) * weights).sum().backward()
    torch.testing.assert_close(leaf.grad, weights, rtol=0, atol=0)
    torch.testing.assert_close(x.grad, reference, rtol=1e-12, atol=1e-14)
    x.grad = None
    direction = wristband_map(x).direction
    (direction + direction).mul(weights).sum().backward()  # one gradient buffer, reached twice
    torch.testing.assert_close(x.grad, 2 * reference, rtol=1e-12, atol=1e-14)
    x.grad = None
    (wristband_map(x).direction * weights).sum().backward()  # a fresh gradient: overwritten in place
    torch.testing.assert_close(x.grad, reference, rtol=1e-12, atol=1e-14)
