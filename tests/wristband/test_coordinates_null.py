"""Null covariances of the per-coordinate term with the other wristband components."""

from __future__ import annotations

import math

import pytest
import torch

from latentshape.gaussian.moment_penalties import moment_penalty
from latentshape.wristband.blocks import low_degree_coefficients
from latentshape.wristband.coordinates import coordinate_smooth_statistic
from latentshape.wristband.coordinates_null import (
    coordinate_feature_moments,
    coordinate_null_covariances,
    marchenko_pastur_root_mean,
)
from latentshape.wristband.map import wristband_map
from latentshape.wristband.mercer import radial_coefficients
from latentshape.wristband.radial import radial_distance
from latentshape.wristband.spectral import spectral_kernel_sums

RADIAL = radial_coefficients(8.0, 6)


def _covariance_and_se(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    products = (a - a.mean()) * (b - b.mean())
    return float(products.mean()), float(products.std() / math.sqrt(len(products)))


@pytest.mark.parametrize("d", [2, 3, 16])
def test_parity_zeros(d):
    """Phi(-x) = 1 - Phi(x): cos(k pi Phi) has parity (-1)^k, P_l parity (-1)^l; mu vanishes unless k + l is even."""
    mu = coordinate_feature_moments(d, 4, 6, 5)["mu"]
    for k in range(1, 5):
        for level in range(6):
            if (k + level) % 2:
                assert abs(mu[k - 1, :, level]).max() < 1e-12
    assert abs(mu[0, 0, 1]) > 0.01 and abs(mu[1, 1, 0]) > 1e-3  # and the allowed ones are not all zero


@pytest.mark.parametrize("d", [1, 3, 8])
def test_kernel_overlaps_match_independent_pairs(d):
    """sum_k E[phi_k(x_j) h(x, y) phi_k(y_j)] from the Funk-Hecke tables against 200k independent pairs (x, y)."""
    from latentshape.wristband.coordinates_null import _per_dimension

    g = torch.Generator().manual_seed(d)
    x, y = (torch.randn(200_000, d, generator=g, dtype=torch.float64) for _ in range(2))
    (ux, tx, _), (uy, ty, _) = wristband_map(x), wristband_map(y)
    cosine = (ux * uy).sum(-1)
    lam = low_degree_coefficients(d, (4.0 / 3.0,), (1.0,))
    angular = lam[0] + lam[1] * d * cosine + (lam[2] * (d + 2) / 2 * (d * cosine**2 - 1) if d > 1 else 0.0)
    freq = math.pi * torch.arange(len(RADIAL), dtype=torch.float64)
    radial = (torch.cos(tx[:, None] * freq) * torch.cos(ty[:, None] * freq) * torch.tensor(RADIAL)).sum(-1)
    sharp = torch.exp(8.0 * (cosine - 1.0)) * radial
    feature = sum(torch.cos(k * math.pi * torch.special.ndtr(x[:, 0])) * torch.cos(k * math.pi * torch.special.ndtr(y[:, 0]))
                  for k in range(1, 5))
    pieces = _per_dimension(d, 8.0, 4.0 / 3.0, 8.0, 6, 4)
    for values, closed in ((feature * angular * radial, pieces["broad"]), (feature * angular, pieces["angular"]),
                           (feature * sharp, pieces["sharp_low"] + pieces["sharp_high"])):
        se = float(values.std()) / math.sqrt(len(values))
        assert abs(float(values.mean()) - closed) < 4.0 * se + 1e-4


def test_marchenko_pastur_root_mean():
    assert marchenko_pastur_root_mean(1.0) == pytest.approx(8.0 / (3.0 * math.pi), rel=1e-10)  # (1/2pi) int sqrt(4-x)
    assert 1.0 - marchenko_pastur_root_mean(1e-3) == pytest.approx(1e-3 / 8.0, rel=0.01)
    # gamma > 1: mass 1 - 1/gamma at 0; the rest is gamma times the ratio-1/gamma law (the N x N Gram matrix)
    assert marchenko_pastur_root_mean(4.0) == pytest.approx(marchenko_pastur_root_mean(0.25) / 2.0, rel=1e-9)


def test_scaling_limits_and_blocks():
    small, large = coordinate_null_covariances(4096, 3), coordinate_null_covariances(8192, 3)
    for key in small:
        assert small[key] / large[key] == pytest.approx(2.0, rel=2e-3)  # O(1/N)
    whole = coordinate_null_covariances(512, 16)
    assert coordinate_null_covariances(512, 16, block=512) == pytest.approx(whole)
    blocked = coordinate_null_covariances(512, 16, block=8)
    assert blocked["E"] == whole["E"] and blocked["S"] != whole["S"]
    for d in (1, 2):
        assert all(math.isfinite(v) for v in coordinate_null_covariances(64, d).values())


def test_bad_arguments():
    with pytest.raises(ValueError, match="moment='w2' only"):
        coordinate_null_covariances(256, 4, moment="kl_full")
    with pytest.raises(ValueError, match="need n >= 2"):
        coordinate_null_covariances(1, 4)
    with pytest.raises(ValueError, match="d >= 1"):
        coordinate_null_covariances(64, 0)


def test_one_dimension_against_monte_carlo():
    """d = 1: coord = Q^2 of the only coordinate; rad and mom against 20000 batches of N = 64."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(20_000, 64, 1, generator=g, dtype=torch.float64)
    _, t, z = wristband_map(x)
    coord = coordinate_smooth_statistic(x)
    closed = coordinate_null_covariances(64, 1)
    for key, values in (("rad", radial_distance(t, z)), ("mom", moment_penalty(x, "w2"))):
        cov, se = _covariance_and_se(coord, values)
        assert abs(cov - closed[key]) < 4.0 * se + 0.05 * abs(closed[key]), key


@pytest.mark.parametrize("d", [3, 16])
def test_energy_and_angular_mean_against_monte_carlo(d):
    """Cov(coord, E) and Cov(coord, A) against 6000 null batches of N = 128 (tolerance: 4 se + 5% for O(1/N))."""
    g = torch.Generator().manual_seed(100 + d)
    x = torch.randn(6000, 128, d, generator=g, dtype=torch.float64)
    u, t, _ = wristband_map(x)
    energy, angular = spectral_kernel_sums(u, t, RADIAL, low_degree_coefficients(d, (4.0 / 3.0,), (1.0,)))
    coord = coordinate_smooth_statistic(x)
    closed = coordinate_null_covariances(128, d)
    for key, values in (("E", energy), ("A", angular)):
        cov, se = _covariance_and_se(coord, values)
        assert abs(cov - closed[key]) < 4.0 * se + 0.05 * abs(closed[key]), key
