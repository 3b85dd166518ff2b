"""Spectral path against independent references: Bessel/Gegenbauer closed forms and float64 brute force."""

import math

import numpy as np
import pytest
import torch
from scipy import special

from latentshape.wristband import wristband_energy, wristband_map
from latentshape.wristband.mercer import angular_coefficients, radial_coefficients

BETA = 8.0
ALPHA = 12**-0.5
C = 2 * BETA * ALPHA**2


def zonal(level: int, d: int, x: np.ndarray) -> np.ndarray:
    """Z_l on S^{d-1} from scipy's Gegenbauer/Chebyshev polynomials (independent of the library)."""
    if d == 1:
        return np.ones_like(x) if level == 0 else (x if level == 1 else np.zeros_like(x))
    if d == 2:
        return np.ones_like(x) if level == 0 else 2.0 * special.eval_chebyt(level, x)
    nu = (d - 2) / 2.0
    return (1.0 + level / nu) * special.eval_gegenbauer(level, nu, x)


def neumann_radial(t: np.ndarray, images: int = 6) -> np.ndarray:
    """Full reflected Gaussian kernel on [0, 1] (all images up to |n| <= images), pairwise matrix."""
    diff, plus = t[:, None] - t[None, :], t[:, None] + t[None, :]
    return sum(np.exp(-BETA * (diff - 2 * n) ** 2) + np.exp(-BETA * (plus - 2 * n) ** 2) for n in range(-images, images + 1))


def sample(n: int, d: int, seed: int, skew: bool = True) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    if skew:  # non-Gaussian: shifted, anisotropic, one lobe heavier
        x = x * torch.linspace(0.5, 1.5, d, dtype=torch.float64) + 0.3
    return x


@pytest.mark.parametrize("d", [2, 3, 8, 64, 300])
def test_chordal_coefficients_match_bessel_formula(d):
    nu = (d - 2) / 2
    for level, lam in enumerate(angular_coefficients(d, 4, BETA, ALPHA)):
        ive = special.ive(nu + level, C)
        expected = math.exp(math.lgamma(nu + 1) + nu * math.log(2 / C)) * ive
        assert lam == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("d", [1, 2, 3, 8, 64])
def test_funk_hecke_quadrature_reproduces_chordal_coefficients(d):
    from latentshape.wristband.mercer import _funk_hecke_coefficients

    quadrature = _funk_hecke_coefficients(d, 4, lambda x: np.exp(C * (x - 1)))
    closed = angular_coefficients(d, 4, BETA, ALPHA)
    np.testing.assert_allclose(quadrature, closed, rtol=1e-10, atol=1e-15)


def test_coefficients_at_large_dimension_do_not_underflow():
    lam = angular_coefficients(4096, 2, BETA, ALPHA)
    assert all(v > 0 and math.isfinite(v) for v in lam)
    # Mercer: sum_l lambda_l Z_l(1) = k(1) = 1 over all degrees; degrees <= 2 keep ~85% at d >= 64.
    kept = lam[0] + lam[1] * 4096 + lam[2] * (4096 + 2) * 4095 / 2
    assert 0.8 < kept < 0.9


@pytest.mark.parametrize(
    "d,kept,tolerance",
    # The share-of-trace table of docs/theory.md; its "d >= 64" row is the large-d limit (d = 64 itself keeps 85.7%).
    [(2, (0.39, 0.83, 0.97), 0.006), (3, (0.35, 0.77, 0.94), 0.006), (8, (0.29, 0.68, 0.90), 0.006),
     (64, (0.27, 0.62, 0.85), 0.01)],
)
def test_share_of_angular_kernel_matches_design_table(d, kept, tolerance):
    lam = angular_coefficients(d, 2, BETA, ALPHA)
    dims = [1, d, (d + 2) * (d - 1) / 2]
    shares = np.cumsum([lam[level] * dims[level] for level in range(3)])
    np.testing.assert_allclose(shares, kept, atol=tolerance)


def test_share_of_angular_kernel_tends_to_poisson_weights_at_large_d():
    # As d -> infinity, u.u' ~ N(0, 1/d) and Z_l ~ degree-l Hermite terms: the share kept at
    # degree <= L tends to e^-c sum_{l <= L} c^l / l!.
    lam = angular_coefficients(100_000, 2, BETA, ALPHA)
    d = 100_000
    shares = np.cumsum([lam[0], lam[1] * d, lam[2] * (d + 2) * (d - 1) / 2])
    limit = np.cumsum([math.exp(-C) * C**level / math.factorial(level) for level in range(3)])
    np.testing.assert_allclose(shares, limit, rtol=1e-4)


def brute_truncated_energy(x: torch.Tensor, degree: int, per_point: bool = False):
    point = wristband_map(x)
    u, t = point.direction.numpy(), point.cdf.numpy()
    d = u.shape[1]
    cos = np.clip(u @ u.T, -1, 1)
    lam = angular_coefficients(d, degree, BETA, ALPHA)
    k_ang = sum(lam[level] * zonal(level, d, cos) for level in range(degree + 1))
    kernel = k_ang * neumann_radial(t)
    return kernel.mean(axis=1) if per_point else kernel.mean()


@pytest.mark.parametrize("d", [1, 2, 3, 8, 64])
@pytest.mark.parametrize("degree", [0, 1, 2])
def test_spectral_equals_truncated_pairwise_kernel(d, degree):
    x = sample(40, d, seed=d + 10 * degree)
    spectral = wristband_energy(x, degree=degree, k_modes=40)
    assert float(spectral) == pytest.approx(brute_truncated_energy(x, degree), rel=1e-8)
    rows = wristband_energy(x, degree=degree, k_modes=40, average="per_point")
    np.testing.assert_allclose(rows.numpy(), brute_truncated_energy(x, degree, per_point=True), rtol=1e-8)


@pytest.mark.parametrize("d", [2, 3, 8])
def test_spectral_gram_and_moment_forms_agree(d):
    # N < (K+1) d uses the N x N Gram form; N >= (K+1) d the d x d moments. Same numbers.
    small = sample(3 * d, d, seed=1)
    big = torch.cat([small] * 20)  # duplicates keep the energy (a V-statistic) unchanged
    e_small = wristband_energy(small, k_modes=6)
    e_big = wristband_energy(big, k_modes=6)
    assert float(e_small) == pytest.approx(float(e_big), rel=1e-12)
    r_small = wristband_energy(small, k_modes=6, average="per_point")
    r_big = wristband_energy(big, k_modes=6, average="per_point")
    np.testing.assert_allclose(r_big[: 3 * d].numpy(), r_small.numpy(), rtol=1e-12)


@pytest.mark.parametrize("d", [2, 3, 8])
def test_truncated_kernel_converges_to_full_neumann_energy(d):
    """Growing degree (Mercer sum) and all images: the energy converges to the exact kernel's."""
    x = sample(60, d, seed=3)
    point = wristband_map(x)
    u, t = point.direction.numpy(), point.cdf.numpy()
    cos = np.clip(u @ u.T, -1, 1)
    radial = neumann_radial(t)
    exact = (np.exp(C * (cos - 1)) * radial).mean()
    lam = angular_coefficients(d, 24, BETA, ALPHA)
    partial_sums, k_ang = [], np.zeros_like(cos)
    for level in range(25):
        k_ang = k_ang + lam[level] * zonal(level, d, cos)
        partial_sums.append((k_ang * radial).mean())
    errors = [abs(p - exact) for p in partial_sums]
    assert errors[-1] < 1e-12 * exact
    assert errors[2] < errors[1] < errors[0]
    # and the library's spectral path at degree 2 lands exactly on the degree-2 partial sum
    assert float(wristband_energy(x, degree=2, k_modes=40)) == pytest.approx(partial_sums[2], rel=1e-8)


def test_radial_cosine_series_equals_all_images():
    t = np.linspace(0, 1, 9)
    a = radial_coefficients(BETA, 40)
    series = sum(a[k] * np.cos(k * np.pi * t)[:, None] * np.cos(k * np.pi * t)[None, :] for k in range(41))
    np.testing.assert_allclose(series, neumann_radial(t), rtol=1e-12)


@pytest.mark.parametrize("angular", ["chordal", "geodesic"])
def test_spectral_geodesic_and_chordal_are_consistent_with_quadrature_coefficients(angular):
    x = sample(30, 3, seed=5)
    spectral = wristband_energy(x, degree=2, k_modes=40, angular=angular)
    point = wristband_map(x)
    u, t = point.direction.numpy(), point.cdf.numpy()
    cos = np.clip(u @ u.T, -1, 1)
    from latentshape.wristband.kernel import default_alpha

    lam = angular_coefficients(3, 2, BETA, default_alpha(angular), angular)
    k_ang = sum(lam[level] * zonal(level, 3, cos) for level in range(3))
    assert float(spectral) == pytest.approx((k_ang * neumann_radial(t)).mean(), rel=1e-8)


@pytest.mark.parametrize("average", ["global", "per_point"])
@pytest.mark.parametrize("degree", [0, 1, 2])
def test_spectral_gradcheck(degree, average):
    x = sample(7, 3, seed=2).requires_grad_()
    assert torch.autograd.gradcheck(lambda y: wristband_energy(y, degree=degree, k_modes=5, average=average), (x,))


@pytest.mark.parametrize("degree", [0, 1, 2])
def test_blocked_feature_sums_gradcheck_and_match_autograd(monkeypatch, degree):
    import latentshape.wristband.spectral as spectral

    monkeypatch.setattr(spectral, "_BLOCK_ELEMENTS", 40)  # several blocks
    g = torch.Generator().manual_seed(degree)
    u = torch.nn.functional.normalize(torch.randn(2, 11, 3, generator=g, dtype=torch.float64), dim=-1).requires_grad_()
    t = torch.rand(2, 11, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda u_, t_: tuple(spectral.spectral_sums(u_, t_, 4, degree)), (u, t))
    # and the global energy through the blocked sums equals the mean of the autograd rows
    radial, angular = radial_coefficients(BETA, 3), angular_coefficients(3, degree, BETA, ALPHA)
    energy, _ = spectral.spectral_kernel_sums(u, t, radial, angular)
    rows, _ = spectral.spectral_kernel_sums(u, t, radial, angular, per_point=True)
    torch.testing.assert_close(energy, rows.mean(dim=-1))


@pytest.mark.parametrize("degree", [0, 1, 2])
def test_fused_map_and_sums_gradcheck_and_match_the_unfused_path(monkeypatch, degree):
    import latentshape.wristband.spectral as spectral
    from latentshape.wristband.spectral_fused import fused_spectral_sums

    monkeypatch.setattr(spectral, "_BLOCK_ELEMENTS", 40)  # several blocks
    g = torch.Generator().manual_seed(10 + degree)
    x = torch.randn(2, 9, 3, generator=g, dtype=torch.float64) * 1.4 + 0.2
    x[0, 3] = 0.0  # a zero row: no direction, finite gradient
    x.requires_grad_()

    def fused(y):
        sums, t, z = fused_spectral_sums(y, 4, degree)
        return (*sums, t, z)

    def unfused(y):
        point = wristband_map(y)
        return (*spectral.spectral_sums(point.direction, point.cdf, 4, degree), point.cdf, point.score)

    for a, b in zip(fused(x), unfused(x)):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    weights = [torch.randn(out.shape, generator=g, dtype=torch.float64) for out in fused(x)]
    grads = [torch.autograd.grad(sum((w * o).sum() for w, o in zip(weights, f(x))), x)[0] for f in (fused, unfused)]
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)
    x_nonzero = x.detach().clone()
    x_nonzero[0, 3] = 0.5  # gradcheck needs a differentiable point
    assert torch.autograd.gradcheck(fused, (x_nonzero.requires_grad_(),))


@pytest.mark.parametrize("d", [256, 257, 1024, 4096])
def test_funk_hecke_quadrature_reproduces_the_chordal_closed_form_at_large_d(d):
    """The generic (geodesic) quadrature route, fed the chordal kernel, equals the 0F1 closed form.

    Regression: scipy's Gauss-Jacobi nodes break down near d = 4096 and gave NaN geodesic coefficients.
    """
    from latentshape.wristband.kernel import default_alpha
    from latentshape.wristband.mercer import _chordal_coefficients, _funk_hecke_coefficients

    c = 4.0 / 3.0
    generic = _funk_hecke_coefficients(d, 2, lambda x: np.exp(c * (x - 1.0)))
    assert generic == pytest.approx(_chordal_coefficients(d, 2, c), rel=1e-10)
    geodesic = angular_coefficients(d, 2, 8.0, default_alpha("geodesic"), "geodesic")
    assert all(math.isfinite(v) for v in geodesic) and geodesic[0] > 0
