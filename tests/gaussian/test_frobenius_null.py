"""Closed-form null of the Frobenius moment-matching loss against Monte-Carlo, and its use by the module."""

import math

import pytest
import torch

from latentshape import MomentMatchingLoss
from latentshape.functional import moment_matching_loss
from latentshape.gaussian.frobenius_null import frobenius_null_moments


@pytest.mark.parametrize("n, d", [(2, 1), (5, 3), (8, 16), (64, 8)])
def test_mean_and_variance_match_monte_carlo(n, d):
    draws = 100_000
    x = torch.randn(draws, n, d, generator=torch.Generator().manual_seed(n * 100 + d), dtype=torch.float64)
    values = moment_matching_loss(x, 0.7, 1.3)
    mean, variance = frobenius_null_moments(n, d, 0.7, 1.3)
    centred = values - values.mean()
    # standard errors of the sample mean and variance from the draws' own fourth moment
    assert abs(float(values.mean()) - mean) < 4 * math.sqrt(variance / draws)
    variance_se = math.sqrt(float((centred ** 4).mean() - centred.var() ** 2) / draws)
    assert abs(float(values.var()) - variance) < 4 * variance_se


def test_default_module_calibrates_without_monte_carlo():
    loss = MomentMatchingLoss(calibrate=True)
    stats = loss.null_stats(300, 7)
    assert stats.samples == 0
    mean, variance = frobenius_null_moments(300, 7)
    assert float(stats.mean) == pytest.approx(mean) and float(stats.std) == pytest.approx(math.sqrt(variance))
    assert MomentMatchingLoss(calibrate=True, cov=2 * torch.eye(7)).null_stats(50, 7).samples == 512
    assert MomentMatchingLoss(calibrate=True, penalty="kl_diag").null_stats(50, 7).samples == 0
