"""Sliced Wasserstein to N(0, I): against a loop with scipy's normal quantiles, slicing, numerics."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from latentshape.gaussian.sliced import SlicedWassersteinGaussian, gaussian_quantiles, sliced_wasserstein_gaussian


def _loop_sliced(x: torch.Tensor, directions: torch.Tensor) -> float:
    n = x.shape[0]
    quantiles = norm.ppf([(i + 0.5) / n for i in range(n)])
    total = 0.0
    for m in range(directions.shape[1]):
        projected = sorted(float(x[i] @ directions[:, m]) for i in range(n))
        total += sum((projected[i] - quantiles[i]) ** 2 for i in range(n)) / n
    return total / directions.shape[1]


def test_matches_a_float64_loop_with_scipy_quantiles() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(25, 3, generator=generator, dtype=torch.float64) * 4 - 1
    directions = torch.nn.functional.normalize(torch.randn(3, 7, generator=generator, dtype=torch.float64), dim=0)
    assert float(sliced_wasserstein_gaussian(x, directions)) == pytest.approx(_loop_sliced(x, directions), rel=1e-12)


def test_quantiles_are_the_mid_point_normal_quantiles() -> None:
    expected = torch.tensor(norm.ppf([(i + 0.5) / 9 for i in range(9)]), dtype=torch.float64)
    assert torch.allclose(gaussian_quantiles(9, dtype=torch.float64), expected, rtol=1e-12, atol=1e-15)


def test_points_at_the_quantiles_score_zero_and_a_shift_costs_its_square() -> None:
    quantiles = gaussian_quantiles(30, dtype=torch.float64).unsqueeze(-1)
    direction = torch.ones(1, 1, dtype=torch.float64)
    assert float(sliced_wasserstein_gaussian(quantiles, direction)) == pytest.approx(0.0, abs=1e-24)
    assert float(sliced_wasserstein_gaussian(quantiles + 0.7, direction)) == pytest.approx(0.49, rel=1e-12)


def test_leading_dims_and_broadcast_directions() -> None:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4, 20, 3, generator=generator, dtype=torch.float64)
    per_batch_directions = torch.nn.functional.normalize(torch.randn(4, 3, 5, generator=generator, dtype=torch.float64), dim=-2)
    values = sliced_wasserstein_gaussian(x, per_batch_directions)
    assert values.shape == (4,)
    for b in range(4):
        assert float(values[b]) == pytest.approx(_loop_sliced(x[b], per_batch_directions[b]), rel=1e-12)


def test_fresh_slices_every_call_reproducible_from_the_seed_and_resumable() -> None:
    x = torch.randn(64, 5, generator=torch.Generator().manual_seed(2)) * 1.5
    first, second = SlicedWassersteinGaussian(slices=8, seed=3), SlicedWassersteinGaussian(slices=8, seed=3)
    a1, a2 = first(x), first(x)
    assert not torch.equal(a1, a2)
    assert torch.equal(second(x), a1) and torch.equal(second(x), a2)
    resumed = SlicedWassersteinGaussian(slices=8, seed=99)
    resumed.load_state_dict(first.state_dict())
    assert torch.equal(resumed(x), first(x))


def test_gradient_matches_finite_differences() -> None:
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64).requires_grad_(True)
    directions = torch.nn.functional.normalize(torch.randn(2, 3, dtype=torch.float64), dim=0)
    assert torch.autograd.gradcheck(lambda t: sliced_wasserstein_gaussian(t, directions), (x,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [0.0, 1e-3, 1.0, 1e3])
def test_finite_values_and_gradients_at_any_scale_and_dtype(dtype: torch.dtype, scale: float) -> None:
    x = (scale * torch.randn(16, 4, generator=torch.Generator().manual_seed(5))).to(dtype).requires_grad_(True)
    value = SlicedWassersteinGaussian(slices=8)(x)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad.float()).all()


@pytest.mark.parametrize("kwargs, message", [({"slices": 0}, "slices"), ({"seed": "a"}, "seed"), ({"calibrate": 1}, "calibrate")])
def test_bad_configuration_is_a_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SlicedWassersteinGaussian(**kwargs)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_permutation_invariance_on_fixed_slices(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(20, 3, generator=generator, dtype=torch.float64)
    directions = torch.nn.functional.normalize(torch.randn(3, 5, generator=generator, dtype=torch.float64), dim=0)
    order = torch.randperm(20, generator=generator)
    assert torch.allclose(sliced_wasserstein_gaussian(x[order], directions), sliced_wasserstein_gaussian(x, directions), rtol=1e-12)
