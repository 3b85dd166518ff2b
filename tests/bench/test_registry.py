"""Registries of sources and regularizers: built-ins standardized, user entries accepted, mistakes refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from latentshape.bench import DISTRIBUTIONS, REGULARIZERS, register_distribution, register_regularizer, sample, zscore
from latentshape.bench.distributions import copula_impostor

BUILT_IN_SOURCES = ["gaussian", "x", "copula", "mixture", "student_t", "anisotropic", "ball", "subspace"]


@pytest.mark.parametrize("name", BUILT_IN_SOURCES)
@pytest.mark.parametrize("d", [2, 7])
def test_every_built_in_source_is_float32_centred_with_trace_d(name: str, d: int) -> None:
    x = sample(name, 20000, d, seed=0)
    assert x.shape == (20000, d) and x.dtype == torch.float32 and bool(torch.isfinite(x).all())
    x = x.double()
    assert float(x.mean(0).abs().max()) < 0.06
    assert abs(float(torch.cov(x.T).trace()) - d) < 0.08 * d


@pytest.mark.parametrize("name", ["gaussian", "x", "mixture", "student_t", "ball"])
def test_shape_impostors_have_identity_covariance(name: str) -> None:
    x = sample(name, 40000, 4, seed=1).double()
    assert torch.allclose(torch.cov(x.T), torch.eye(4, dtype=torch.float64), atol=0.06)


def test_copula_impostor_has_exact_wristband_marginals_but_dependent_ones() -> None:
    from scipy import stats

    from latentshape.wristband import wristband_map

    x = copula_impostor(20000, 5, torch.Generator().manual_seed(2)).double()
    point = wristband_map(x)
    t, first = point.cdf.numpy(), point.direction[:, 0].numpy()
    assert stats.kstest(t, "uniform").pvalue > 1e-3                         # radius: right law
    assert stats.kstest((first + 1) / 2, stats.beta(2, 2).cdf).pvalue > 1e-3  # direction: right law (d = 5)
    assert stats.spearmanr(abs(first), t).statistic > 0.99                   # ... but t is a function of |u_1|
    with pytest.raises(ValueError, match="d >= 2"):
        copula_impostor(10, 1)


def test_user_sources_and_regularizers_register_and_refuse_duplicates() -> None:
    register_distribution("shifted", lambda n, d, g: torch.randn(n, d, generator=g) + 1.0)
    try:
        assert float(sample("shifted", 500, 2, seed=0).mean()) > 0.8
        with pytest.raises(ValueError, match="already registered"):
            register_distribution("shifted", lambda n, d, g: torch.zeros(n, d))
        with pytest.raises(ValueError, match="unknown distribution"):
            sample("nope", 2, 2)
    finally:
        del DISTRIBUTIONS["shifted"]
    register_distribution("bad", lambda n, d, g: torch.zeros(n + 1, d))
    try:
        with pytest.raises(ValueError, match="returned"):
            sample("bad", 3, 2)
    finally:
        del DISTRIBUTIONS["bad"]

    spec = register_regularizer("identity", lambda d, calibrate: nn.Identity(), detects=False)
    try:
        assert REGULARIZERS["identity"] is spec and not spec.detects
        with pytest.raises(ValueError, match="already registered"):
            register_regularizer("identity", lambda d, calibrate: nn.Identity())
    finally:
        del REGULARIZERS["identity"]
    with pytest.raises(TypeError, match="cannot be calibrated"):
        zscore(nn.Identity(), torch.zeros(3, 2))


def test_every_built_in_regularizer_builds_a_differentiable_loss() -> None:
    x = torch.randn(64, 3, requires_grad=True)
    for spec in REGULARIZERS.values():
        loss = spec.build(3, False)(x)
        assert loss.dim() == 0
        (gradient,) = torch.autograd.grad(loss, x)
        assert bool(torch.isfinite(gradient).all()), spec.name
