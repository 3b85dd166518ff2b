"""Closed-form chi-square tails of the wristband map against scipy and against the special-function path."""

import math

import numpy as np
import pytest
import torch
from scipy import special

from latentshape.wristband import gamma_tails as tails
from latentshape.wristband import map as wristband_map_module

EDGES = [0.0, 1e-300, 1e-20, 1e-3, 0.5, 700.0, 720.0, 745.0, 760.0, 1e5, 1e300]


def _points(d: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(d)
    bulk = torch.randn(4096, d, generator=g, dtype=torch.float64).square().sum(-1) / 2
    return torch.cat([bulk, d * torch.logspace(-3, 2, 200, dtype=torch.float64), torch.tensor(EDGES, dtype=torch.float64)])


@pytest.mark.parametrize("d", [1, 2, 3, 4, 7, 16, 17, 33, 64, 127, 128])
def test_closed_form_tails_match_scipy(d):
    x = _points(d)
    lower, upper = tails.gamma_tails(d / 2, x)
    assert torch.isfinite(lower).all() and torch.isfinite(upper).all()
    # The upper tail: relative accuracy ~ x eps in the far tail (745 eps ~ 2e-13), as the incomplete gamma
    # functions'. The small lower tail is torch's gammainc, good to ~1e-9 from a ~ 32 on.
    lower_rtol = 5e-12 if d < 64 else 5e-9
    for ours, reference, rtol in ((lower, special.gammainc(d / 2, x.numpy()), lower_rtol),
                                  (upper, special.gammaincc(d / 2, x.numpy()), 5e-12)):
        normal = reference > 1e-300
        np.testing.assert_allclose(ours.numpy()[normal], reference[normal], rtol=rtol, atol=0)
        assert bool((ours.numpy()[~normal] <= 1e-290).all())


@pytest.mark.parametrize("d", [1, 2, 5, 16, 40])
def test_closed_form_tails_match_the_special_function_path(d):
    x = _points(d)
    lower, upper = tails.gamma_tails(d / 2, x)
    old_lower, old_upper = tails._special_tails(d / 2, x)
    torch.testing.assert_close(lower, old_lower, rtol=1e-12, atol=1e-300)
    torch.testing.assert_close(upper, old_upper, rtol=1e-12, atol=1e-300)


def test_small_lower_tail_is_gammainc_exactly():
    x = torch.tensor([1e-30, 1e-3, 0.4, 2.0], dtype=torch.float64)
    lower, _ = tails.gamma_tails(8.0, x)  # all below the lower quartile: the blend must return gammainc bit for bit
    assert torch.equal(lower, torch.special.gammainc(torch.tensor(8.0, dtype=torch.float64), x))
    assert bool((lower > 0).all())


def test_wide_batches_keep_the_special_functions():
    x = torch.tensor([10.0, 100.0, 200.0], dtype=torch.float64)
    lower, upper = tails.gamma_tails(100.0, x)
    assert torch.equal(lower, tails._special_tails(100.0, x)[0]) and torch.equal(upper, tails._special_tails(100.0, x)[1])


@pytest.mark.parametrize("d", [1, 3, 16, 64])
def test_map_values_and_slopes_match_the_special_function_path(d, monkeypatch):
    """The chi-square part of the map with the closed-form tails and the bulk slope log f - log phi equals
    the previous implementation (both special functions, the hazard/erfcx slope) on random radii."""
    g = torch.Generator().manual_seed(d)
    norm = torch.randn(2000, d, generator=g, dtype=torch.float64).norm(dim=-1) * torch.exp(0.3 * torch.randn(2000, generator=g, dtype=torch.float64))
    cdf, score, (log_density, log_slope) = wristband_map_module.chi2_forward(norm, float(d))
    monkeypatch.setattr(tails, "CLOSED_FORM_MAX_DIM", 0)
    old_cdf, old_score, (old_density, _) = wristband_map_module.chi2_forward(norm, float(d))
    rtol = 1e-12 if d < 64 else 5e-9  # torch's float64 gammainc(c) err by ~1e-9 from a ~ 32 on
    torch.testing.assert_close(cdf, old_cdf, rtol=rtol, atol=1e-300)
    torch.testing.assert_close(score, old_score, rtol=100 * rtol, atol=1e-12 if d < 64 else 1e-8)
    torch.testing.assert_close(log_density, old_density, rtol=0, atol=0)
    tail = torch.minimum(*tails._special_tails(d / 2, 0.5 * norm * norm))
    hazard_form = (log_density - torch.log(tail) - 0.5 * math.log(2.0 / math.pi)
                   + torch.log(torch.special.erfcx(old_score.abs() / math.sqrt(2.0))))
    torch.testing.assert_close(log_slope, hazard_form, rtol=0, atol=100 * rtol)
