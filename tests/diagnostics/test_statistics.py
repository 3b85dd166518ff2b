"""The goodness-of-fit statistics against float64 loops, quadrature and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats
import torch

from latentshape.diagnostics.statistics import (
    chi2_cdf,
    dimension_moments_test,
    gaussian_fit_statistics,
    henze_zirkler,
    henze_zirkler_smoothing,
    holm,
    knn_kl_divergence,
    ks_uniform,
    mardia_kurtosis,
    marginal_ks_test,
    mardia_skewness,
    null_p_value,
)


def _sample(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Skewed, correlated, shifted: every term of the statistics matters.
    return rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) + rng.exponential(size=(n, 1)) + 0.3


def _whitened_loop(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(axis=0)
    covariance = centred.T @ centred / len(x)
    return centred @ np.linalg.inv(np.linalg.cholesky(covariance)).T


@pytest.mark.parametrize("standardize", [False, True])
def test_mardia_against_float64_loop(standardize: bool) -> None:
    x = _sample(23, 3)
    y = _whitened_loop(x) if standardize else x
    n = len(y)
    skew = sum(float(y[i] @ y[j]) ** 3 for i in range(n) for j in range(n)) / n**2
    kurt = sum(float(y[i] @ y[i]) ** 2 for i in range(n)) / n
    assert float(mardia_skewness(torch.from_numpy(x), standardize=standardize)) == pytest.approx(skew, rel=1e-10)
    assert float(mardia_kurtosis(torch.from_numpy(x), standardize=standardize)) == pytest.approx(kurt, rel=1e-10)


def test_mardia_skewness_equals_third_moment_tensor_norm() -> None:
    x = _sample(40, 3, seed=1)
    third = np.einsum("ia,ib,ic->abc", x, x, x) / len(x)
    assert float(mardia_skewness(x)) == pytest.approx(float((third**2).sum()), rel=1e-10)


def test_mardia_classical_is_affine_invariant() -> None:
    x = _sample(50, 4, seed=2)
    a = np.random.default_rng(3).standard_normal((4, 4))
    moved = x @ a + 5.0
    for statistic in (mardia_skewness, mardia_kurtosis):
        assert float(statistic(moved, standardize=True)) == pytest.approx(float(statistic(x, standardize=True)), rel=1e-8)


def test_henze_zirkler_is_the_weighted_characteristic_function_distance_d1() -> None:
    x = np.array([[-1.3], [0.2], [0.25], [2.0], [0.7]])
    n, beta = len(x), 0.8

    def integrand(s: float) -> float:
        empirical = np.exp(1j * s * x[:, 0]).mean()
        weight = math.exp(-s * s / (2 * beta * beta)) / math.sqrt(2 * math.pi * beta * beta)
        return abs(empirical - math.exp(-s * s / 2)) ** 2 * weight

    integral = scipy.integrate.quad(integrand, -np.inf, np.inf, epsabs=1e-13, epsrel=1e-12)[0]
    assert float(henze_zirkler(x, beta=beta)) == pytest.approx(n * integral, rel=1e-8)


def test_henze_zirkler_classical_against_loop_d2() -> None:
    x = _sample(17, 2, seed=4)
    y = _whitened_loop(x)
    n, d = y.shape
    beta = henze_zirkler_smoothing(n, d)
    b2 = beta * beta
    pairs = sum(math.exp(-b2 / 2 * float((y[i] - y[j]) @ (y[i] - y[j]))) for i in range(n) for j in range(n)) / n
    points = sum(math.exp(-b2 / (2 * (1 + b2)) * float(y[i] @ y[i])) for i in range(n))
    expected = pairs - 2 * (1 + b2) ** (-d / 2) * points + n * (1 + 2 * b2) ** (-d / 2)
    assert float(henze_zirkler(x, standardize=True)) == pytest.approx(expected, rel=1e-10)


def test_henze_zirkler_null_mean_closed_form() -> None:
    # E T = 1 - (1 + 2 beta^2)^(-d/2) under N(0, I) (the kernel is degenerate; only the diagonal survives).
    n, d = 30, 2
    draws = torch.randn(4000, n, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    values = henze_zirkler(draws)
    beta = henze_zirkler_smoothing(n, d)
    expected = 1 - (1 + 2 * beta * beta) ** (-d / 2)
    assert float(values.mean()) == pytest.approx(expected, abs=4 * float(values.std()) / math.sqrt(4000))


def test_knn_kl_matches_brute_force_neighbours() -> None:
    x = _sample(60, 3, seed=5)
    n, d, k = len(x), 3, 4
    distances = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    np.fill_diagonal(distances, np.inf)
    kth = np.sort(distances, axis=1)[:, k - 1]
    log_ball = d / 2 * math.log(math.pi) - math.lgamma(d / 2 + 1)
    entropy = scipy.special.digamma(n) - scipy.special.digamma(k) + log_ball + d * np.log(kth).mean()
    expected = d / 2 * math.log(2 * math.pi) + 0.5 * (x**2).sum(1).mean() - entropy
    assert float(knn_kl_divergence(x, k=k)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("d, shift, scale", [(2, 0.0, 1.0), (2, 1.0, 1.0), (3, 0.5, 1.5), (2, 0.0, 0.6)])
def test_knn_kl_against_gaussian_closed_form(d: int, shift: float, scale: float) -> None:
    x = torch.randn(3000, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64) * scale + shift
    exact = 0.5 * (d * scale**2 + d * shift**2 - d - 2 * d * math.log(scale))
    assert float(knn_kl_divergence(x)) == pytest.approx(exact, abs=0.06)


def test_knn_kl_duplicates_stay_finite_and_large() -> None:
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    duplicated = torch.cat([x[:100], x[:100]])  # every nearest neighbour is at distance 0
    value = float(knn_kl_divergence(duplicated, k=1))
    assert math.isfinite(value) and value > float(knn_kl_divergence(x, k=1)) + 10.0
    assert math.isfinite(float(knn_kl_divergence(torch.zeros(20, 2, dtype=torch.float64))))


def test_gaussian_fit_statistics_batched_equals_single() -> None:
    x = torch.randn(3, 40, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    batched = gaussian_fit_statistics(x)
    for b in range(3):
        single = gaussian_fit_statistics(x[b])
        for many, one in zip(batched, single):
            assert float(many[b]) == pytest.approx(float(one), rel=1e-12)


def test_ks_uniform_matches_scipy() -> None:
    t = np.random.default_rng(0).beta(1.3, 1.0, size=(5, 80))
    statistic, p_value = ks_uniform(t)
    for row, s, p in zip(t, statistic, p_value):
        expected = scipy.stats.kstest(row, "uniform", method="exact")
        assert s == pytest.approx(expected.statistic, rel=1e-12)
        assert p == pytest.approx(expected.pvalue, rel=1e-6)


def test_chi2_cdf_matches_scipy() -> None:
    s = np.array([0.5, 3.0, 70.0])
    assert np.allclose(chi2_cdf(s, 64), scipy.stats.chi2.cdf(s, 64), rtol=1e-12)


def test_dimension_moments_exact_tests_are_uniform_under_null() -> None:
    x = np.random.default_rng(0).standard_normal((400, 30, 4))
    result = dimension_moments_test(x)
    for p in (result.p_mean.ravel(), result.p_variance.ravel(), result.p_value):
        assert scipy.stats.kstest(p, "uniform").pvalue > 0.01


def test_dimension_moments_names_the_bad_dimension() -> None:
    x = np.random.default_rng(1).standard_normal((500, 6))
    x[:, 4] *= 1.3
    result = dimension_moments_test(x)
    assert int(np.argmin(np.minimum(result.p_mean, result.p_variance))) == 4 and result.p_value < 1e-4


def test_holm_against_brute_force_definition() -> None:
    p = np.array([0.2, 0.001, 0.04, 0.012, 0.5])
    m = p.size
    order = np.argsort(p)
    expected = np.empty(m)
    for rank, i in enumerate(order):
        expected[i] = min(1.0, max((m - r) * p[order[r]] for r in range(rank + 1)))
    assert np.allclose(holm(p), expected)


def test_null_p_value_empirical_inside_fitted_beyond() -> None:
    null = np.arange(1.0, 100.0)  # 99 draws
    assert float(null_p_value(50.0, null)) == pytest.approx((1 + 50) / 100)
    assert float(null_p_value(0.0, null)) == 1.0
    beyond = float(null_p_value(140.0, null))
    assert 0 < beyond <= 1 / 100
    assert float(null_p_value(1000.0, null)) < beyond
    # Two-sided: symmetric null, symmetric answer; a value in the middle gets p = 1.
    assert float(null_p_value(5.0, null, "two-sided")) == pytest.approx(float(null_p_value(95.0, null, "two-sided")))
    assert float(null_p_value(50.0, null, "two-sided")) == 1.0


def test_null_p_value_short_side_is_not_lighter_than_normal() -> None:
    null = np.random.default_rng(0).chisquare(3, size=200)  # strongly right-skewed: bounded left tail
    low = null.min() - 0.5
    p = float(null_p_value(low, null, "two-sided")) / 2
    assert p >= min(1 / 201, scipy.stats.norm.sf((null.mean() - low) / null.std(ddof=1))) * 0.999


def test_null_p_value_tail_follows_the_fitted_gamma() -> None:
    null = np.random.default_rng(1).chisquare(4, size=4000)
    far = scipy.stats.chi2.isf(1e-6, 4)
    assert float(null_p_value(far, null)) == pytest.approx(1e-6, rel=0.5)


@pytest.mark.parametrize("n, d", [(24, 1), (24, 3), (40, 8)])
def test_monte_carlo_p_values_are_uniform_under_null(n: int, d: int) -> None:
    # 1000 null draws define the p-values; 200 fresh null batches must then give ~U[0, 1] p-values.
    generator = torch.Generator().manual_seed(n * d)
    null = torch.stack(list(gaussian_fit_statistics(torch.randn(1000, n, d, generator=generator, dtype=torch.float64))), -1)
    fresh = torch.stack(list(gaussian_fit_statistics(torch.randn(200, n, d, generator=generator, dtype=torch.float64))), -1)
    sides = ("two-sided", "two-sided", "greater", "two-sided")
    for column, side in enumerate(sides):
        p = null_p_value(fresh[:, column].numpy(), null[:, column].numpy(), side)
        assert scipy.stats.kstest(p, "uniform").pvalue > 0.01, (column, side)


@pytest.mark.parametrize("d", [2, 5])
def test_heavy_tails_are_rejected_by_kurtosis_and_henze_zirkler(d: int) -> None:
    n = 300
    generator = torch.Generator().manual_seed(7)
    null = torch.stack(list(gaussian_fit_statistics(torch.randn(400, n, d, generator=generator, dtype=torch.float64))), -1)
    heavy = torch.from_numpy(np.random.default_rng(d).standard_t(3.0, size=(n, d)) / math.sqrt(3.0))  # unit variance
    stats = torch.stack(list(gaussian_fit_statistics(heavy)), -1)
    p_kurtosis = float(null_p_value(float(stats[1]), null[:, 1].numpy(), "two-sided"))
    p_hz = float(null_p_value(float(stats[2]), null[:, 2].numpy(), "greater"))
    assert p_kurtosis < 1e-3 and p_hz < 1e-2


def test_marginal_ks_matches_scipy_and_is_uniform_under_null() -> None:
    x = np.random.default_rng(4).standard_normal((300, 50, 3))
    distance, p_values, combined = marginal_ks_test(x)
    expected = scipy.stats.kstest(x[0, :, 1], "norm", method="exact")
    assert distance[0, 1] == pytest.approx(expected.statistic, rel=1e-10)
    assert p_values[0, 1] == pytest.approx(expected.pvalue, rel=1e-6)
    assert scipy.stats.kstest(combined, "uniform").pvalue > 0.01
