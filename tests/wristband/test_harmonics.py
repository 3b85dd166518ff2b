"""All-degree Mercer coefficients and zonal dimensions against brute-force quadrature and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special

from latentshape.wristband.harmonics import (
    chordal_coefficients,
    degree_for_share,
    funk_hecke_coefficients,
    kernel_power_sums,
    legendre_table,
    mercer_coefficients,
    trace_share,
    zonal_dimension,
)
from latentshape.wristband.mercer import angular_coefficients, zonal_at_one


def _brute_dimension(d: int, level: int) -> int:
    """dim H_l = (number of monomials of degree l) - (of degree l - 2) in d variables."""
    count = lambda p: math.comb(p + d - 1, d - 1) if p >= 0 else 0  # noqa: E731
    return count(level) - count(level - 2)


@pytest.mark.parametrize("d", [2, 3, 4, 7, 16, 64])
def test_zonal_dimension_counts_harmonic_polynomials(d):
    for level in range(12):
        assert zonal_dimension(d, level) == pytest.approx(_brute_dimension(d, level), rel=1e-12)


def test_zonal_dimension_matches_the_spectral_paths_degrees():
    for d in (1, 2, 3, 9, 128):
        for level in range(3 if d > 1 else 2):
            assert zonal_dimension(d, level) == pytest.approx(zonal_at_one(d, level))


def _brute_coefficient(d: int, level: int, kernel) -> float:
    """lambda_l = int k(x) P_l(x) (1 - x^2)^((d-3)/2) dx / int (1 - x^2)^((d-3)/2) dx, by adaptive quadrature."""
    nu = (d - 2) / 2.0
    gegenbauer = lambda x: special.eval_gegenbauer(level, nu, x) / special.eval_gegenbauer(level, nu, 1.0)  # noqa: E731
    if d == 2:
        gegenbauer = lambda x: special.eval_chebyt(level, x)  # noqa: E731
    density = lambda x: (1.0 - x * x) ** ((d - 3) / 2.0)  # noqa: E731
    top = integrate.quad(lambda x: kernel(x) * gegenbauer(x) * density(x), -1, 1, limit=400, epsabs=1e-15)[0]
    bottom = integrate.quad(density, -1, 1, limit=400)[0]
    return top / bottom


@pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")
@pytest.mark.parametrize("d", [2, 3, 5, 10])
@pytest.mark.parametrize("c", [4.0 / 3.0, 8.0])
def test_chordal_coefficients_against_quadrature(d, c):
    lam = chordal_coefficients(d, 8, c)
    for level in (0, 1, 3, 5, 8):
        brute = _brute_coefficient(d, level, lambda x: math.exp(c * (x - 1.0)))
        assert lam[level] == pytest.approx(brute, rel=1e-7, abs=1e-15)


@pytest.mark.parametrize("d", [3, 6])
def test_geodesic_coefficients_against_quadrature(d):
    scale = 0.54
    kernel = lambda x: math.exp(-scale * math.acos(max(-1.0, min(1.0, x))) ** 2)  # noqa: E731
    lam = mercer_coefficients(d, 6, 2 * scale, "geodesic")
    for level in (0, 2, 5):
        assert lam[level] == pytest.approx(_brute_coefficient(d, level, kernel), rel=1e-6, abs=1e-12)


def test_coefficients_extend_the_spectral_paths_degrees():
    for d in (1, 2, 3, 16, 512):
        for angular, alpha in (("chordal", 12**-0.5), ("geodesic", (2 / (3 * math.pi**2)) ** 0.5)):
            old = angular_coefficients(d, 2, 8.0, alpha, angular)
            new = mercer_coefficients(d, 2, 2 * 8.0 * alpha**2, angular)
            # the spectral path's geodesic quadrature is in x, where the kernel has a kink: ~1e-7
            assert np.allclose(old, new, rtol=1e-8 if angular == "chordal" else 1e-6, atol=1e-15)


def test_geodesic_in_two_dimensions_is_a_cosine_series():
    scale = 0.54  # lambda_l = (1/pi) int_0^pi exp(-s theta^2) cos(l theta) d theta on the circle
    lam = mercer_coefficients(2, 7, 2 * scale, "geodesic")
    for level in (0, 1, 4, 7):
        brute = integrate.quad(lambda t: math.exp(-scale * t * t) * math.cos(level * t), 0, math.pi, epsabs=1e-15)[0]
        assert lam[level] == pytest.approx(brute / math.pi, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("d", [1, 2, 3, 16, 128, 1024])
@pytest.mark.parametrize("c", [4.0 / 3.0, 4.0, 12.0])
def test_traces_sum_to_one_and_powers_match_closed_forms(d, c):
    assert trace_share(d, 400, c)[-1] == pytest.approx(1.0, abs=1e-12)
    lam0, square, cube = kernel_power_sums(d, c)
    assert lam0 == pytest.approx(chordal_coefficients(d, 0, c)[0])
    assert square == pytest.approx(chordal_coefficients(d, 0, 2 * c)[0], rel=1e-10)  # E[e^{2c(X-1)}]
    assert lam0**3 < cube < square  # the k = 0 term, and lambda_l <= 1


def test_triangle_sum_against_monte_carlo():
    """sum_l lambda_l^3 Z_l(1) = E[k(u1.u2) k(u2.u3) k(u3.u1)] for independent uniform u's."""
    rng = np.random.default_rng(0)
    d, c = 3, 4.0
    u = rng.standard_normal((3, 400_000, d))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    k = lambda a, b: np.exp(c * ((a * b).sum(-1) - 1.0))  # noqa: E731
    samples = k(u[0], u[1]) * k(u[1], u[2]) * k(u[2], u[0])
    assert kernel_power_sums(d, c)[2] == pytest.approx(samples.mean(), abs=4 * samples.std() / 632)


def test_legendre_table_is_orthogonal_under_the_sphere_law():
    from latentshape.wristband.harmonics import _sphere_quadrature

    for d in (2, 3, 40, 300):
        x, w = _sphere_quadrature(d, 300)
        table = legendre_table(10, d, x)
        gram = (table * w) @ table.T
        expected = np.diag([1.0 / zonal_dimension(d, l) for l in range(11)])
        assert np.allclose(gram, expected, atol=1e-10 * expected.max())


def test_degree_for_share_is_monotone_in_the_scale():
    for d in (2, 3, 16, 128):
        degrees = [degree_for_share(d, c, 0.99) for c in (4.0 / 3.0, 2.0, 4.0, 8.0)]
        assert degrees == sorted(degrees)
    with pytest.raises(ValueError):
        degree_for_share(3, 1.0, 0.0)


def test_funk_hecke_on_s0_and_polynomials():
    assert funk_hecke_coefficients(1, 2, lambda x: np.exp(x)) == pytest.approx((math.cosh(1), math.sinh(1), 0.0))
    lam = funk_hecke_coefficients(5, 4, lambda x: x**4)  # a degree-4 polynomial: no mass above degree 4
    assert sum(v * zonal_dimension(5, l) for l, v in enumerate(lam)) == pytest.approx(1.0)
