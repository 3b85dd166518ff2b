"""The exact null laws of SIGReg and GaussianMMD against Monte-Carlo, and their ingredients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentshape import GaussianMMD, SIGReg
from latentshape.gaussian.closed_form_nulls import mmd_null_moments, sphere_cosine_quadrature

SAMPLES = 3000  # Monte-Carlo error: 0.018 sd on the mean, ~0.03 on the sd ratio of these skewed laws


@pytest.mark.parametrize(
    "build,n,d",
    [
        (lambda: GaussianMMD(null_samples=SAMPLES, null_seed=7), 48, 2),
        (lambda: GaussianMMD(unbiased=False, bandwidths=(0.7, 3.0), null_samples=SAMPLES, null_seed=7), 40, 3),
        (lambda: SIGReg(slices=8, null_samples=SAMPLES, null_seed=7), 48, 1),
        (lambda: SIGReg(slices=6, points=9, t_max=2.5, null_samples=SAMPLES, null_seed=7), 64, 5),
    ],
)
def test_closed_form_null_matches_monte_carlo(build, n, d):
    loss_fn = build()
    closed = loss_fn._closed_form_null(n, d)
    empirical = loss_fn._monte_carlo_null(n, d, "cpu")
    assert closed.samples == 0
    assert abs(float((closed.mean - empirical.mean) / empirical.std)) < 0.08
    assert float(closed.std / empirical.std) == pytest.approx(1.0, abs=0.1)


def test_mmd_null_variance_is_the_degenerate_u_statistic_formula_in_one_dimension():
    """Brute force: E[h^2] by 2-D Gauss-Hermite quadrature of the explicit kernel h(x, y)."""
    s2 = 1.5**2
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    x, y = np.meshgrid(nodes, nodes, indexing="ij")
    m = lambda v: np.sqrt(s2 / (s2 + 1)) * np.exp(-v * v / (2 * (s2 + 1)))  # noqa: E731
    c = np.sqrt(s2 / (s2 + 2))
    h = np.exp(-(x - y) ** 2 / (2 * s2)) - m(x) - m(y) + c
    expected = 2.0 * float((weights[:, None] * weights[None, :] * h * h).sum()) / (30 * 29)
    assert mmd_null_moments(30, 1, (1.5,))[1] == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("d", [1, 2, 3, 10, 300])
def test_sphere_cosine_quadrature_has_the_moments_of_the_cosine(d):
    nodes, weights = sphere_cosine_quadrature(d)
    assert weights.sum() == pytest.approx(1.0)
    assert float(weights @ nodes**2) == pytest.approx(1.0 / d, rel=1e-8)
    assert float(weights @ nodes**4) == pytest.approx(3.0 / (d * (d + 2)), rel=1e-6)


def test_calibrated_sigreg_and_mmd_are_standardized_under_the_null():
    x = torch.randn(400, 32, 4, generator=torch.Generator().manual_seed(3))
    for loss_fn in (SIGReg(slices=16), GaussianMMD()):
        z = loss_fn.zscore(x)
        assert abs(float(z.mean())) < 0.2 and 0.8 < float(z.std()) < 1.2
