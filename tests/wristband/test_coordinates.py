"""The per-coordinate smooth statistic and its exact null moments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latentshape.wristband.coordinates import (
    coordinate_null_moments,
    coordinate_smooth_statistic,
    smooth_moment_coefficients,
)


def test_tabulated_coefficients_match_the_enumeration():
    for power in (2, 4):
        assert smooth_moment_coefficients(power, 4, tabulated=False) == smooth_moment_coefficients(power, 4)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_moments_are_exact_at_tiny_n(n):
    """E over t in [0,1]^n on a midpoint grid (the integrand is a trigonometric polynomial of low degree)."""
    grid = (np.arange(64) + 0.5) / 64 if n == 3 else (np.arange(2000) + 0.5) / 2000
    k = np.arange(1, 5)
    w = np.cos(math.pi * grid[:, None] * k)
    total = w
    for _ in range(n - 1):
        total = (total[:, None, :] + w[None, :, :]).reshape(-1, 4)
    q = 2.0 / n * (total**2).sum(-1)
    mean, variance = coordinate_null_moments(n, 1)
    assert mean == pytest.approx((q**2).mean(), rel=1e-9)
    assert variance == pytest.approx((q**4).mean() - (q**2).mean() ** 2, rel=1e-9)


def test_second_moment_closed_form_and_large_n_limit():
    for n in (5, 64, 4096):
        assert coordinate_null_moments(n, 1)[0] == pytest.approx(24.0 - 6.0 / n)
    mean, variance = coordinate_null_moments(10**8, 7)
    assert mean == pytest.approx(24.0) and variance == pytest.approx(1344.0 / 7, rel=1e-6)


def test_statistic_matches_a_direct_evaluation_and_its_null_law():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(400, 64, 5, generator=g, dtype=torch.float64)
    t = torch.special.ndtr(x)
    c = torch.cos(math.pi * t[..., None] * torch.arange(1, 5, dtype=torch.float64)).mean(dim=-3)
    direct = ((2 * 64 * (c * c).sum(-1)) ** 2).mean(-1)
    value = coordinate_smooth_statistic(x)
    assert torch.allclose(value, direct, rtol=1e-12)
    mean, variance = coordinate_null_moments(64, 5)
    assert abs(float(value.mean()) - mean) < 4 * math.sqrt(variance / 400)
    assert 0.7 < float(value.var()) / variance < 1.4  # heavy-tailed: a loose check at 400 draws


def test_gradients_are_finite_at_extremes():
    x = torch.tensor([[0.0, 40.0], [-1e4, 1.0], [3.0, -2.0]], requires_grad=True)
    coordinate_smooth_statistic(x).backward()
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ValueError):
        coordinate_smooth_statistic(x, modes=0)


def test_own_backward_passes_gradcheck():
    x = torch.randn(2, 40, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(coordinate_smooth_statistic, (x,))


def test_blocked_forward_and_backward_match_one_block_and_gradcheck(monkeypatch):
    """Rows in many blocks (forward sums and the recomputing backward) give the one-block value and gradient."""
    from latentshape.wristband import coordinates

    x = torch.randn(3, 50, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64, requires_grad=True)
    value = coordinate_smooth_statistic(x)
    grad, = torch.autograd.grad(value.sum(), x)
    monkeypatch.setattr(coordinates, "_BLOCK_ELEMENTS", 28)  # blocks of 7 rows, the last one short
    blocked = coordinate_smooth_statistic(x)
    blocked_grad, = torch.autograd.grad(blocked.sum(), x)
    torch.testing.assert_close(blocked, value, rtol=1e-13, atol=0)
    torch.testing.assert_close(blocked_grad, grad, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda a: coordinate_smooth_statistic(a, modes=3), (x,))
