"""The sliced Wasserstein closed-form null: exact pieces against quadrature, the table, the plumbing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate
from scipy.special import betaln, comb, gammaln, ndtri
from scipy.stats import norm

import latentshape.statistic as statistic_module
from latentshape.calibration import clear_null_cache
from latentshape.gaussian._sliced_null_table import ROWS
from latentshape.gaussian.sliced import SlicedWassersteinGaussian
from latentshape.gaussian.sliced_null import (TABLE_ORDERS, direction_moments, slice_mean, slice_second_chaos,
                                              sliced_null_moments, tail_shape)


def _order_statistic_moment(n: int, i: int, power: int) -> float:
    """E y_(i)^power for the i-th smallest (0-based) of n standard normals, by adaptive quadrature."""
    def integrand(y: float) -> float:
        return y**power * n * comb(n - 1, i) * norm.cdf(y) ** i * norm.sf(y) ** (n - 1 - i) * norm.pdf(y)
    return integrate.quad(integrand, -12, 12, epsabs=1e-13, epsrel=1e-11, limit=100)[0]


@pytest.mark.parametrize("n", [2, 3, 6])
def test_the_mean_is_the_brute_force_mean_over_order_statistics(n: int) -> None:
    q = ndtri((np.arange(n) + 0.5) / n)
    expected = sum(_order_statistic_moment(n, i, 2) - 2 * q[i] * _order_statistic_moment(n, i, 1) + q[i] ** 2
                   for i in range(n)) / n
    assert slice_mean(n) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def _two_point_chaos(orders: np.ndarray) -> np.ndarray:
    r"""Exact b_k at N = 2: s = u^2/2 + w^2/2 - a sqrt(2) |w| + a^2 with u, w independent N(0, 1), a = q_1.

    The Hermite coefficients of |w|: E |w| He_2k(w) = 2 phi(0) (-1)^(k-1) (2k - 3)!!, with
    (2k - 3)!! = (2k - 2)! / (2^(k-1) (k - 1)!), in logs."""
    a = float(ndtri(0.75))
    m = a / math.sqrt(math.pi)
    k = orders.astype(np.float64)
    log_double_factorial = gammaln(2 * k - 1) - (k - 1) * math.log(2) - gammaln(k)
    log_b = math.log(2 * a * a) + 2 * (math.log(2 / math.sqrt(2 * math.pi)) + log_double_factorial) - gammaln(2 * k + 1)
    # k = 1: u^2/2 and (w^2/2 - a sqrt(2) |w|)'s He_2 parts
    return np.where(orders == 1, 0.5 + 2.0 * (0.5 - m) ** 2, np.exp(log_b))


def test_the_order_two_chaos_and_the_variance_match_the_exact_two_point_law() -> None:
    a = float(ndtri(0.75))
    exact_variance = 1.0 + 2 * a * a * (1 - 2 / math.pi) - 2 * a / math.sqrt(math.pi)  # Var s at N = 2
    orders = np.arange(1, 20001)
    b = _two_point_chaos(orders)
    assert b.sum() == pytest.approx(exact_variance, rel=1e-6)  # Mehler: the chaos norms add up to Var s
    assert slice_second_chaos(2) == pytest.approx(b[0], rel=1e-12)
    for d, slices in [(1, 1), (2, 8), (3, 64), (16, 256)]:
        exact = exact_variance / slices + (1 - 1 / slices) * float(b @ direction_moments(d, orders))
        assert sliced_null_moments(2, d, slices)[1] == pytest.approx(exact, rel=0.003)  # the table: 3e-4 seen


def test_direction_moments_are_the_beta_moments_of_rho_squared() -> None:
    for d in (1, 2, 3, 8, 100):
        # E t^k = B(1/2 + k, (d - 1)/2) / B(1/2, (d - 1)/2) for t ~ Beta(1/2, (d - 1)/2); t = 1 at d = 1
        expected = [1.0 if d == 1 else math.exp(betaln(0.5 + k, (d - 1) / 2) - betaln(0.5, (d - 1) / 2))
                    for k in (1, 2, 3, 7)]
        assert direction_moments(d, np.array([1, 2, 3, 7])) == pytest.approx(expected, rel=1e-12)


def test_the_table_is_consistent_and_the_null_is_smooth_in_n() -> None:
    table = np.asarray(ROWS)
    assert (np.diff(table[:, 0]) > 0).all() and (table[:, 1:] >= 0).all() and table[0, 0] == 2
    fitted = table[:, 2:2 + len(TABLE_ORDERS)].sum(axis=1) + table[:, -1] * float(tail_shape(np.array(1.0)))
    assert fitted == pytest.approx(table[:, 1], rel=0.02)  # the split adds up to v (held there by the fit)
    sds = [n * math.sqrt(sliced_null_moments(n, 8, 256)[1]) for n in (100, 101, 1000, 1001, 40000, 80000)]
    assert all(0.4 < sd < 0.7 for sd in sds) and sds[0] == pytest.approx(sds[1], rel=1e-3)
    assert sds[4] == pytest.approx(sds[5], rel=1e-4)  # beyond the table: its last row (b_1 and the mean stay exact)


def test_a_new_shape_is_calibrated_without_monte_carlo(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Monte-Carlo was called")

    monkeypatch.setattr(statistic_module, "monte_carlo_null", refuse)
    clear_null_cache()
    loss_fn = SlicedWassersteinGaussian()
    x = torch.randn(333, 7, generator=torch.Generator().manual_seed(0), requires_grad=True)
    loss_fn(x).backward()
    stats = loss_fn.null_stats(333, 7)
    assert stats.samples == 0 and torch.isfinite(x.grad).all()
    assert float(stats.mean) == pytest.approx(sliced_null_moments(333, 7, 256)[0], rel=1e-12)
    with pytest.raises(AssertionError, match="Monte-Carlo was called"):  # the Monte-Carlo path stays reachable
        SlicedWassersteinGaussian(null="monte_carlo")(x)


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="N >= 2"):
        sliced_null_moments(1, 3, 8)
    with pytest.raises(ValueError, match="slices"):
        sliced_null_moments(8, 3, 0)
    with pytest.raises(ValueError, match="null must be"):
        SlicedWassersteinGaussian(null="exact")


@pytest.mark.slow
@pytest.mark.parametrize("n, d, slices", [(48, 3, 16), (160, 24, 64)])
def test_calibrated_values_of_fresh_null_batches_have_mean_zero_and_unit_sd(n: int, d: int, slices: int) -> None:
    loss_fn = SlicedWassersteinGaussian(slices=slices, seed=7)
    z = loss_fn.zscore(torch.randn(4000, n, d, generator=torch.Generator().manual_seed(n)))
    # sd of the mean of 4000 z's is 0.016; of their sd ~0.03 (a heavy right tail)
    assert abs(float(z.mean())) < 0.07
    assert 0.92 < float(z.std()) < 1.08
