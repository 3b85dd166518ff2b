"""VICReg's variance + covariance terms against an explicit float64 loop; gradients, paths and errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import latentshape
from latentshape.gaussian import VICRegLoss, vicreg_variance_covariance


def _loop(x: np.ndarray, mu: float, nu: float, gamma: float, eps: float) -> float:
    n, d = x.shape
    mean = [sum(x[i, j] for i in range(n)) / n for j in range(d)]
    cov = [[sum((x[i, a] - mean[a]) * (x[i, b] - mean[b]) for i in range(n)) / (n - 1) for b in range(d)]
           for a in range(d)]
    variance = sum(max(0.0, gamma - math.sqrt(cov[j][j] + eps)) for j in range(d)) / d
    covariance = sum(cov[a][b] ** 2 for a in range(d) for b in range(d) if a != b) / d
    return mu * variance + nu * covariance


def _batch(n: int, d: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    scales = torch.linspace(0.3, 1.6, d, dtype=torch.float64)      # some coordinates below the hinge
    mixing = torch.eye(d, dtype=torch.float64) + 0.4 * torch.randn(d, d, generator=generator, dtype=torch.float64)
    return (torch.randn(n, d, generator=generator, dtype=torch.float64) * scales) @ mixing + 0.7


@pytest.mark.parametrize("shape", [(30, 4), (6, 11), (9, 9)])   # (6, 11) takes the Gram path
@pytest.mark.parametrize("weights", [(25.0, 1.0, 1.0, 1e-4), (1.0, 0.04, 2.0, 1e-2)])
def test_matches_an_explicit_float64_loop(shape: tuple[int, int], weights: tuple[float, ...]) -> None:
    mu, nu, gamma, eps = weights
    x = _batch(*shape, seed=sum(shape))
    expected = _loop(x.numpy(), mu, nu, gamma, eps)
    got = vicreg_variance_covariance(x, variance_weight=mu, covariance_weight=nu, target_std=gamma, eps=eps)
    assert float(got) == pytest.approx(expected, rel=1e-10)
    module = VICRegLoss(variance_weight=mu, covariance_weight=nu, target_std=gamma, eps=eps)
    assert float(module(x)) == pytest.approx(expected, rel=1e-10)


def test_leading_batch_dimensions_are_independent_batches() -> None:
    x = torch.stack([_batch(12, 3, seed=k) for k in range(3)])
    values = VICRegLoss()(x)
    assert values.shape == (3,)
    for k in range(3):
        assert float(values[k]) == pytest.approx(_loop(x[k].numpy(), 25.0, 1.0, 1.0, 1e-4), rel=1e-10)


def test_gradient_matches_gradcheck_and_is_finite_at_collapse() -> None:
    x = _batch(8, 3, seed=4).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda y: vicreg_variance_covariance(y), (x,))
    collapsed = torch.zeros(16, 4, requires_grad=True)
    VICRegLoss()(collapsed).backward()
    assert bool(torch.isfinite(collapsed.grad).all())


def test_unit_uncorrelated_spread_scores_zero_and_collapse_scores_the_hinge() -> None:
    wide = 3.0 * torch.randn(4000, 5, generator=torch.Generator().manual_seed(1))
    assert float(VICRegLoss(covariance_weight=0.0)(wide)) == 0.0    # every sd above 1: hinge off
    assert float(VICRegLoss()(torch.ones(10, 5))) == pytest.approx(25.0 * (1 - 1e-2))


@pytest.mark.parametrize("kwargs, message", [({"variance_weight": -1.0}, "variance_weight"),
                                             ({"target_std": 0.0}, "target_std"),
                                             ({"eps": float("inf")}, "eps")])
def test_bad_configuration_and_input_are_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VICRegLoss(**kwargs)
    with pytest.raises(TypeError):
        VICRegLoss(25.0)     # keyword-only configuration
    with pytest.raises(ValueError, match="at least 2 points"):
        VICRegLoss()(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="NaN or Inf"):
        VICRegLoss()(torch.tensor([[0.0, float("nan")], [1.0, 2.0]]))


def test_exported_from_the_package_and_functional() -> None:
    assert "VICRegLoss" in latentshape.__all__ and latentshape.VICRegLoss is VICRegLoss
    assert latentshape.functional.vicreg_variance_covariance is vicreg_variance_covariance


@pytest.mark.parametrize("weight", [2, np.float32(2.0), np.int64(2), torch.tensor(2.0)])
def test_weights_take_any_real_scalar_and_refuse_bools(weight) -> None:
    # Python ints, NumPy scalars and 0-d tensors were accepted before the argument checks; they still are
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(3))
    expected = float(vicreg_variance_covariance(x, variance_weight=2.0, covariance_weight=2.0))
    assert float(vicreg_variance_covariance(x, variance_weight=weight, covariance_weight=weight)) == pytest.approx(expected)
    assert float(VICRegLoss(variance_weight=weight, covariance_weight=weight)(x)) == pytest.approx(expected)
    with pytest.raises(TypeError, match="variance_weight must be a number"):
        VICRegLoss(variance_weight=True)
    with pytest.raises(TypeError, match="covariance_weight must be a number"):
        vicreg_variance_covariance(x, covariance_weight=torch.ones(2))


@pytest.mark.skipif(not torch.backends.mps.is_available(), reason="needs an Apple MPS device (it has no float64)")
def test_gram_route_runs_on_mps() -> None:
    x = torch.randn(6, 40, generator=torch.Generator().manual_seed(7))  # d > N: the Gram route
    expected = float(vicreg_variance_covariance(x))
    assert float(vicreg_variance_covariance(x.to("mps"))) == pytest.approx(expected, rel=1e-4)
