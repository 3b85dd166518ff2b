"""Exact null moments of Henze-Zirkler and Mardia's kurtosis against closed forms and Monte-Carlo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from latentshape.diagnostics.exact_nulls import (
    _set_partitions,
    henze_zirkler_null_moments,
    mardia_kurtosis_null_moments,
)
from latentshape.diagnostics.statistics import henze_zirkler, henze_zirkler_smoothing, mardia_kurtosis, null_p_value


def test_set_partitions_are_counted_by_the_bell_numbers() -> None:
    assert [sum(1 for _ in _set_partitions(k)) for k in range(7)] == [1, 1, 2, 5, 15, 52, 203]


@pytest.mark.parametrize("n, d", [(5, 1), (32, 16), (300, 4)])
def test_henze_zirkler_mean_and_variance_match_their_closed_forms(n: int, d: int) -> None:
    # E T = 1 - e and Var T = 2 (N-1)/N (A2 - e^2) - 4 (N-2)/N (A3 - e^2), from the pair and
    # pair-of-pairs Gaussian integrals (an independent derivation from the pattern expansion)
    beta2 = henze_zirkler_smoothing(n, d) ** 2
    e = (1 + 2 * beta2) ** (-d / 2)
    a2, a3 = (1 + 4 * beta2) ** (-d / 2), ((1 + beta2) * (1 + 3 * beta2)) ** (-d / 2)
    variance = 2 * (n - 1) / n * (a2 - e * e) - 4 * (n - 2) / n * (a3 - e * e)
    moments = henze_zirkler_null_moments(n, d, math.sqrt(beta2))
    assert moments.mean == pytest.approx(1 - e, rel=1e-13)
    assert moments.std == pytest.approx(math.sqrt(variance), rel=1e-9)


@pytest.mark.parametrize("n, d, beta", [(6, 1, 1.0), (12, 3, None), (40, 8, None)])
def test_henze_zirkler_moments_match_monte_carlo(n: int, d: int, beta: float | None) -> None:
    beta = beta or henze_zirkler_smoothing(n, d)
    draws = henze_zirkler(torch.randn(40_000, n, d, generator=torch.Generator().manual_seed(n), dtype=torch.float64),
                          beta=beta).numpy()
    moments = henze_zirkler_null_moments(n, d, beta)
    error = draws.std() / math.sqrt(draws.size)
    assert abs(moments.mean - draws.mean()) < 5 * error
    assert moments.std == pytest.approx(draws.std(), rel=0.03)
    assert moments.skewness == pytest.approx(scipy.stats.skew(draws), abs=0.15)


def test_mardia_kurtosis_moments_match_monte_carlo() -> None:
    n, d = 20, 3
    draws = mardia_kurtosis(torch.randn(40_000, n, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)).numpy()
    moments = mardia_kurtosis_null_moments(n, d)
    assert moments.mean == d * (d + 2)
    assert moments.std == pytest.approx(draws.std(), rel=0.03)
    assert moments.skewness == pytest.approx(scipy.stats.skew(draws), abs=0.15)


def test_exact_moments_set_the_fitted_tail_and_leave_the_empirical_part() -> None:
    null = np.random.default_rng(0).gamma(4.0, size=100)
    inside = float(np.quantile(null, 0.5))
    assert null_p_value(inside, null, moments=(0.0, 1.0, 0.0)) == null_p_value(inside, null)
    far = float(null.max()) + 6.0  # beyond the draws, where the tail is below their 1 / (R + 1)
    normal = float(null_p_value(far, null, moments=(4.0, 2.0, 0.0)))
    assert normal == pytest.approx(scipy.stats.norm.sf(far, 4.0, 2.0), rel=1e-12)
    skewed = float(null_p_value(far, null, moments=(4.0, 2.0, 1.0)))  # gamma(4): skewness 1
    assert skewed == pytest.approx(scipy.stats.gamma(4.0).sf(far), rel=1e-9)


@pytest.mark.parametrize("d", [100, 108, 112])
def test_henze_zirkler_null_below_float64_resolution_never_calls_rounding_noise_impossible(d: int) -> None:
    # At N = 200, d >= 100 the exact spread of T is below what float64 resolves: Gaussian batches'
    # T differ from 1 - e only by rounding. The null's sd is that resolution (a point mass gave a
    # batch whose rounding exceeded every draw p = 1e-300); a real departure still scores p ~ 0.
    n = 200
    moments = henze_zirkler_null_moments(n, d, henze_zirkler_smoothing(n, d))
    assert 0 < moments.std <= 1e-11 and moments.skewness == 0.0
    generator = torch.Generator().manual_seed(1)
    draws = np.array([float(henze_zirkler(torch.randn(n, d, generator=generator, dtype=torch.float64)))
                      for _ in range(60)])
    p_values = [float(null_p_value(draws[i], np.delete(draws, i), "greater", moments)) for i in range(draws.size)]
    assert min(p_values) >= 1.0 / draws.size - 1e-12  # the Monte-Carlo floor 1 / (1 + R), never below
    clustered = 0.05 * torch.randn(n, d, generator=generator, dtype=torch.float64)
    assert float(null_p_value(float(henze_zirkler(clustered)), draws, "greater", moments)) < 1e-100
