"""The VAE KL term against torch.distributions, and the reparameterization helpers."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributions import Independent, MultivariateNormal, Normal, kl_divergence

from latentshape.gaussian.kl import (
    GaussianKL,
    gaussian_kl_diag,
    gaussian_kl_full,
    reparameterize,
    reparameterize_full,
)


def _posteriors(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, d, generator=generator, dtype=torch.float64)
    logvar = torch.randn(n, d, generator=generator, dtype=torch.float64)
    scale_tril = torch.tril(torch.randn(n, d, d, generator=generator, dtype=torch.float64), diagonal=-1)
    scale_tril = scale_tril + torch.diag_embed(torch.exp(0.5 * logvar))
    return mu, logvar, scale_tril


def test_diagonal_kl_matches_torch_distributions() -> None:
    mu, logvar, _ = _posteriors(7, 4, seed=0)
    posterior = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    prior = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    expected = kl_divergence(posterior, prior)
    assert torch.allclose(gaussian_kl_diag(mu, logvar), expected, rtol=1e-12)


def test_full_kl_matches_torch_distributions() -> None:
    mu, _, scale_tril = _posteriors(7, 4, seed=1)
    posterior = MultivariateNormal(mu, scale_tril=scale_tril)
    prior = MultivariateNormal(torch.zeros(4, dtype=torch.float64), torch.eye(4, dtype=torch.float64))
    assert torch.allclose(gaussian_kl_full(mu, scale_tril), kl_divergence(posterior, prior), rtol=1e-10)


def test_full_kl_reduces_to_the_diagonal_kl() -> None:
    mu, logvar, _ = _posteriors(5, 3, seed=2)
    diagonal_root = torch.diag_embed(torch.exp(0.5 * logvar))
    assert torch.allclose(gaussian_kl_full(mu, diagonal_root), gaussian_kl_diag(mu, logvar), rtol=1e-12)


def test_module_reductions_and_leading_dims() -> None:
    mu, logvar, scale_tril = _posteriors(6, 3, seed=3)
    per_sample = gaussian_kl_diag(mu, logvar)
    assert float(GaussianKL()(mu, logvar)) == pytest.approx(float(per_sample.mean()))
    assert float(GaussianKL(reduction="sum")(mu, logvar)) == pytest.approx(float(per_sample.sum()))
    assert GaussianKL().per_sample(mu.view(2, 3, 3), logvar.view(2, 3, 3)).shape == (2, 3)
    full = GaussianKL(covariance="full")
    assert float(full(mu, scale_tril)) == pytest.approx(float(gaussian_kl_full(mu, scale_tril).mean()))


def test_gradients_match_finite_differences() -> None:
    mu, logvar, scale_tril = _posteriors(3, 2, seed=4)
    assert torch.autograd.gradcheck(gaussian_kl_diag, (mu.requires_grad_(), logvar.requires_grad_()))
    assert torch.autograd.gradcheck(gaussian_kl_full, (mu, scale_tril.requires_grad_()))


def test_low_precision_inputs_compute_in_float32_with_finite_gradients() -> None:
    mu = torch.zeros(4, 3, dtype=torch.float16, requires_grad=True)
    logvar = torch.zeros(4, 3, dtype=torch.bfloat16, requires_grad=True)
    value = GaussianKL()(mu, logvar)
    value.backward()
    assert value.dtype == torch.float32 and float(value.detach()) == 0.0
    assert torch.isfinite(mu.grad.float()).all() and torch.isfinite(logvar.grad.float()).all()


def test_reparameterize_has_the_posterior_moments_and_pathwise_gradients() -> None:
    mu = torch.tensor([1.0, -2.0], dtype=torch.float64).expand(20000, 2).clone().requires_grad_(True)
    logvar = torch.log(torch.tensor([0.25, 9.0], dtype=torch.float64)).expand(20000, 2).clone().requires_grad_(True)
    z = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(z.mean(dim=0), torch.tensor([1.0, -2.0], dtype=torch.float64), atol=0.05)
    assert torch.allclose(z.std(dim=0), torch.tensor([0.5, 3.0], dtype=torch.float64), rtol=0.03)
    z.sum().backward()
    noise = (z - mu) / torch.exp(0.5 * logvar)
    assert torch.equal(mu.grad, torch.ones_like(mu))
    assert torch.allclose(logvar.grad, 0.5 * torch.exp(0.5 * logvar) * noise)
    again = reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, z)  # the generator makes the draw reproducible


def test_reparameterize_full_has_the_posterior_covariance() -> None:
    root = torch.tensor([[1.0, 0.0], [-0.5, 0.8]], dtype=torch.float64)
    z = reparameterize_full(torch.zeros(40000, 2, dtype=torch.float64), root.expand(40000, 2, 2), torch.Generator().manual_seed(1))
    assert torch.allclose(torch.cov(z.T), root @ root.T, atol=0.03)


def test_shape_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="same shape"):
        reparameterize(torch.zeros(3, 2), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="scale_tril must have shape"):
        reparameterize_full(torch.zeros(3, 2), torch.zeros(3, 3, 3))
    with pytest.raises(ValueError, match="logvar must have shape"):
        GaussianKL()(torch.zeros(3, 2), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="scale_tril must have shape"):
        GaussianKL(covariance="full")(torch.zeros(3, 2), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="covariance"):
        GaussianKL(covariance="spherical")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reduction"):
        GaussianKL(reduction="none")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NaN"):
        GaussianKL()(torch.zeros(3, 2), torch.full((3, 2), float("nan")))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_full_kl_is_rotation_invariant_and_the_mean_is_permutation_invariant(seed: int) -> None:
    mu, _, scale_tril = _posteriors(5, 3, seed)
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    rotated_cov = rotation @ scale_tril @ scale_tril.transpose(-1, -2) @ rotation.T
    rotated = gaussian_kl_full(mu @ rotation.T, torch.linalg.cholesky(rotated_cov))
    assert torch.allclose(rotated, gaussian_kl_full(mu, scale_tril), rtol=1e-9)
    order = torch.randperm(5, generator=torch.Generator().manual_seed(seed))
    kl = GaussianKL(covariance="full")
    assert torch.allclose(kl(mu[order], scale_tril[order]), kl(mu, scale_tril), rtol=1e-12)


def test_functional_kl_validates_like_the_module() -> None:
    nan = torch.zeros(3, 2)
    nan[1, 0] = float("nan")
    for call in (lambda: gaussian_kl_diag(nan, torch.zeros(3, 2)), lambda: gaussian_kl_full(nan, torch.eye(2).expand(3, 2, 2))):
        with pytest.raises(ValueError, match="NaN or Inf"):
            call()
    with pytest.raises(ValueError, match="logvar must have shape"):
        gaussian_kl_diag(torch.zeros(3, 2), torch.zeros(2))
    with pytest.raises(ValueError, match="rank >= 2"):
        gaussian_kl_diag(torch.zeros(3), torch.zeros(3))


@pytest.mark.skipif(not torch.backends.mps.is_available(), reason="needs an Apple MPS device (it has no float64)")
def test_module_reduction_runs_on_mps() -> None:
    mu, logvar = torch.randn(8, 3), torch.randn(8, 3)
    expected = float(GaussianKL()(mu, logvar))
    assert float(GaussianKL()(mu.to("mps"), logvar.to("mps"))) == pytest.approx(expected, rel=1e-5)
