"""Closed-form null moments of the spectral energy against Monte-Carlo (issue 3, step 1)."""

import pytest
import torch

from latentshape.wristband.components import WristbandConfig, _kernel_sums
from latentshape.wristband.null_moments import (
    angular_mean_null_moments,
    spectral_energy_null_moments,
    spectral_rep_null_moments,
)
from latentshape.wristband.spectral import angular_coefficients, radial_coefficients

BETA, ALPHA = 8.0, 12**-0.5


@pytest.mark.parametrize("n,d,degree", [(64, 1, 1), (32, 3, 2), (128, 8, 2), (48, 96, 2)])
def test_closed_form_matches_monte_carlo(n, d, degree):
    """Mean within 0.05 null sd and sd within 3% (issue 3's tolerances), 8000 null batches."""
    generator = torch.Generator().manual_seed(n + d)
    config = WristbandConfig(degree=degree)
    energy, angular_mean = zip(*[
        _kernel_sums(torch.randn(1000, n, d, generator=generator, dtype=torch.float64), config, per_point=False)[:2]
        for _ in range(8)
    ])
    energy, angular_mean = torch.cat(energy), torch.cat(angular_mean)
    radial, angular = radial_coefficients(BETA, 6), angular_coefficients(d, degree, BETA, ALPHA)
    rep = energy.log() / BETA
    for closed, sample in (
        (spectral_energy_null_moments(n, d, radial, angular), energy),
        (spectral_rep_null_moments(n, d, BETA, radial, angular), rep),
        (angular_mean_null_moments(n, d, angular), angular_mean),
    ):
        sd = sample.std().item()
        assert abs(closed.mean - sample.mean().item()) < 0.05 * sd
        assert closed.std == pytest.approx(sd, rel=0.03)


def test_energy_mean_tends_to_the_off_diagonal_mean():
    radial, angular = radial_coefficients(BETA, 6), angular_coefficients(16, 2, BETA, ALPHA)
    moments = spectral_energy_null_moments(10**7, 16, radial, angular)
    assert moments.mean == pytest.approx(radial[0] * angular[0], rel=1e-6)
    assert moments.std * 10**7 == pytest.approx(spectral_energy_null_moments(10**6, 16, radial, angular).std * 10**6, rel=1e-5)


def test_small_batches_are_rejected():
    with pytest.raises(ValueError):
        spectral_energy_null_moments(1, 3, (1.0,), (1.0,))
