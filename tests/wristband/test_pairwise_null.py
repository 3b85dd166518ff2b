"""Closed-form null law of the exact pairwise wristband against brute force and Monte-Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from latentshape.calibration import NullStats
from latentshape.wristband.components import WristbandConfig, raw_components
from latentshape.wristband.pairwise_null import (
    kernel_null_covariances,
    pairwise_angular_null_moments,
    pairwise_energy_null_moments,
    pairwise_null_stats,
    radial_image_moments,
)
from latentshape.wristband.closed_form_null import spectral_null_covariances
from latentshape.wristband.mercer import angular_coefficients, radial_coefficients, zonal_at_one


def _k3(t, s, beta):
    return np.exp(-beta * (t - s) ** 2) + np.exp(-beta * (t + s) ** 2) + np.exp(-beta * (t + s - 2) ** 2)


@pytest.mark.parametrize("beta", [2.0, 8.0, 40.0])
def test_radial_image_moments_against_a_fine_grid(beta):
    grid = (np.arange(4000) + 0.5) / 4000  # midpoint rule on [0, 1]^2: error ~1e-7 for these widths
    k = _k3(grid[:, None], grid[None, :], beta)
    row = k.mean(axis=1)
    diagonal = _k3(grid, grid, beta)
    moments = radial_image_moments(beta)
    assert moments.off_mean == pytest.approx(k.mean(), rel=1e-6)
    assert moments.off_square == pytest.approx((k * k).mean(), rel=1e-6)
    assert moments.row_variance == pytest.approx(row.var(), rel=1e-3, abs=1e-12)
    assert moments.diagonal_mean == pytest.approx(diagonal.mean(), rel=1e-6)
    assert moments.diagonal_variance == pytest.approx(diagonal.var(), rel=1e-4)
    covariance = ((diagonal - diagonal.mean()) * (row - row.mean())).mean()
    assert moments.diagonal_row_covariance == pytest.approx(covariance, rel=1e-3, abs=1e-12)


def _energy_draws(n, d, beta, c, draws, seed):
    """Direct float64 evaluation of E and A for `draws` null batches of n points (small n)."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((draws, n, d))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    t = rng.random((draws, n))
    k = np.exp(c * (u @ u.transpose(0, 2, 1) - 1.0))
    energy = (k * _k3(t[:, :, None], t[:, None, :], beta)).mean(axis=(1, 2))
    off = (k.sum(axis=(1, 2)) - np.trace(k, axis1=1, axis2=2)) / (n * (n - 1))
    return energy, off


@pytest.mark.parametrize("n,d,c", [(2, 3, 4.0), (3, 2, 8.0), (5, 6, 1.5)])
def test_exact_mean_and_variance_at_tiny_n(n, d, c):
    """The formulas are exact for every N, the non-degenerate corrections of the three images included."""
    beta = 3.0  # a wide radial kernel: the images' corrections are not negligible here
    energy, off = _energy_draws(n, d, beta, c, 400_000, seed=n)
    moments = pairwise_energy_null_moments(n, d, beta, c)
    assert moments.mean == pytest.approx(energy.mean(), abs=4 * energy.std() / 632)
    assert moments.variance == pytest.approx(energy.var(), rel=0.02)
    angle = pairwise_angular_null_moments(n, d, c)
    assert angle.mean == pytest.approx(off.mean(), abs=4 * off.std() / 632)
    assert angle.variance == pytest.approx(off.var(), rel=0.02)


def test_kernel_null_covariances_reproduce_the_spectral_ones():
    for d in (2, 16, 128):
        radial, angular = radial_coefficients(8.0, 6), angular_coefficients(d, 2, 8.0, 12**-0.5)
        trace = sum(v * zonal_at_one(d, level) for level, v in enumerate(angular))
        spread = sum(angular[level] ** 2 * zonal_at_one(d, level) for level in (1, 2))
        for moment in ("w2", "kl_diag", "mu_only"):
            old = spectral_null_covariances(100, d, radial, angular, moment, 1e-3)
            new = kernel_null_covariances(100, d, radial, angular, trace, spread, moment, 1e-3)
            assert new == pytest.approx(old, rel=1e-12)


@pytest.mark.parametrize("n,d,c,angular", [(48, 3, 4.0, "chordal"), (64, 12, 8.0, "chordal"), (40, 5, 2.0, "geodesic")])
def test_null_stats_against_monte_carlo(n, d, c, angular):
    beta = 8.0
    config = WristbandConfig(method="pairwise", beta=beta, alpha=math.sqrt(c / (2 * beta)), angular=angular,
                             sharp=False, coordinates=False)
    generator = torch.Generator().manual_seed(99)
    draws = 3000
    raw = torch.cat([raw_components(torch.randn(500, n, d, generator=generator, dtype=torch.float64), config)
                     for _ in range(draws // 500)])[..., :4]
    empirical = NullStats.from_samples(raw)
    closed = pairwise_null_stats(config, n, d)
    active = [0, 2, 3]  # rep, ang, mom (rad's law is tabulated elsewhere)
    mean_error = ((closed.mean - empirical.mean) / empirical.std)[active]
    assert mean_error.abs().max() < 0.1  # MC noise 1/sqrt(3000) = 0.018
    assert ((closed.std / empirical.std)[active] - 1).abs().max() < 0.05  # MC noise ~0.015
    assert (closed.corr - empirical.corr).abs().max() < 0.1
    weights = torch.tensor([1.0, 0.1, 0.0, 1.0], dtype=torch.float64)
    total = (closed.standardize(raw) * weights).sum(-1) / closed.combined_std(weights)
    assert abs(float(total.mean())) < 0.1 and abs(float(total.std()) - 1) < 0.06


def test_null_stats_validate_the_path_and_are_cheap_to_repeat():
    with pytest.raises(ValueError, match="pairwise"):
        pairwise_null_stats(WristbandConfig(), 64, 3)
    with pytest.raises(ValueError):
        pairwise_energy_null_moments(1, 3, 8.0, 1.0)
    stats = pairwise_null_stats(WristbandConfig(method="pairwise"), 10_000_000, 4096)  # huge N, d: finite
    assert torch.isfinite(stats.mean).all() and (stats.std > 0).all()
