"""Benchmark source distributions."""

from __future__ import annotations

import pytest
import torch

from latentshape.bench.distributions import x_shape


def test_x_shape_lies_on_the_diagonals_and_is_standardized() -> None:
    x = x_shape(20000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert x.shape == (20000, 2) and x.dtype == torch.float64
    assert torch.allclose(x[:, 0].abs(), x[:, 1].abs())
    assert float(x[:, 0].abs().max()) <= 3**0.5
    assert torch.allclose(x.mean(dim=0), torch.zeros(2, dtype=torch.float64), atol=0.03)
    assert torch.allclose(torch.cov(x.T), torch.eye(2, dtype=torch.float64), atol=0.03)
    both_diagonals = (x[:, 0] * x[:, 1] > 0).double().mean()
    assert 0.45 < float(both_diagonals) < 0.55


def test_higher_dimensions_use_independent_pairs_and_an_odd_uniform_coordinate() -> None:
    x = x_shape(20000, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(x[:, 0].abs(), x[:, 1].abs()) and torch.allclose(x[:, 2].abs(), x[:, 3].abs())
    assert torch.allclose(torch.cov(x.T), torch.eye(5, dtype=torch.float64), atol=0.04)
    assert float(x[:, 4].abs().max()) <= 3**0.5


def test_x_shape_is_reproducible_and_validates_its_arguments() -> None:
    assert torch.equal(x_shape(10, generator=torch.Generator().manual_seed(3)), x_shape(10, generator=torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="n must"):
        x_shape(0)
    with pytest.raises(ValueError, match="d must"):
        x_shape(5, d=0)
