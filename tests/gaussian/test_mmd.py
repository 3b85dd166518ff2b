"""Gaussian MMD: the closed-form Gaussian side against Monte-Carlo, the estimator against a loop."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentshape.gaussian.mmd import GaussianMMD, default_bandwidths, gaussian_kernel_means, gaussian_mmd


def _kernel(a: torch.Tensor, b: torch.Tensor, width: float) -> torch.Tensor:
    return torch.exp(-((a - b) ** 2).sum(dim=-1) / (2 * width**2))


@pytest.mark.parametrize("d, width", [(1, 0.7), (3, 1.0), (8, 2.5)])
def test_closed_form_gaussian_expectations_match_monte_carlo(d: int, width: float) -> None:
    generator = torch.Generator().manual_seed(d)
    draws = 200_000
    y = torch.randn(draws, d, generator=generator, dtype=torch.float64)
    y_other = torch.randn(draws, d, generator=generator, dtype=torch.float64)
    points = torch.stack([torch.zeros(d, dtype=torch.float64), torch.full((d,), 0.8, dtype=torch.float64)])
    cross, self_term = gaussian_kernel_means(points, width)
    for point, closed_form in zip(points, cross):
        samples = _kernel(point, y, width)
        tolerance = 5 * float(samples.std()) / math.sqrt(draws)
        assert float(closed_form) == pytest.approx(float(samples.mean()), abs=tolerance)
    samples = _kernel(y, y_other, width)
    assert self_term == pytest.approx(float(samples.mean()), abs=5 * float(samples.std()) / math.sqrt(draws))


def _loop_mmd(x: torch.Tensor, widths: list[float], unbiased: bool) -> float:
    n, d = x.shape
    total = 0.0
    for s in widths:
        within = 0.0
        for i in range(n):
            for j in range(n):
                if i != j or not unbiased:
                    within += math.exp(-float(((x[i] - x[j]) ** 2).sum()) / (2 * s * s))
        within /= n * (n - 1) if unbiased else n * n
        cross = sum(
            (s * s / (s * s + 1)) ** (d / 2) * math.exp(-float((x[i] ** 2).sum()) / (2 * (s * s + 1))) for i in range(n)
        ) / n
        total += within - 2 * cross + (s * s / (s * s + 2)) ** (d / 2)
    return total


@pytest.mark.parametrize("unbiased", [True, False])
def test_estimator_matches_a_float64_loop(unbiased: bool) -> None:
    x = 1.3 * torch.randn(12, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 0.2
    widths = [0.5, 1.0, 3.0]
    assert float(gaussian_mmd(x, widths, unbiased)) == pytest.approx(_loop_mmd(x, widths, unbiased), rel=1e-12)


def test_estimator_agrees_with_a_two_sample_estimate_against_many_gaussian_draws() -> None:
    generator = torch.Generator().manual_seed(2)
    x = torch.rand(40, 2, generator=generator, dtype=torch.float64) * 3 - 1
    y = torch.randn(6000, 2, generator=generator, dtype=torch.float64)
    width = 1.2
    within = gaussian_mmd(x, [width]) + 2 * gaussian_kernel_means(x, width)[0].mean() - gaussian_kernel_means(x, width)[1]
    two_sample = within - 2 * _kernel(x.unsqueeze(1), y.unsqueeze(0), width).mean() + _kernel(y[:3000], y[3000:], width).mean()
    assert float(gaussian_mmd(x, [width])) == pytest.approx(float(two_sample), abs=0.01)


def test_unbiased_estimate_has_null_mean_zero_and_positive_power() -> None:
    generator = torch.Generator().manual_seed(3)
    null = gaussian_mmd(torch.randn(400, 32, 3, generator=generator, dtype=torch.float64), default_bandwidths(3))
    assert abs(float(null.mean())) < 4 * float(null.std()) / math.sqrt(400)
    shifted = gaussian_mmd(torch.randn(32, 3, generator=generator, dtype=torch.float64) + 1.0, default_bandwidths(3))
    assert float(shifted) > float(null.mean()) + 5 * float(null.std())


def test_v_statistic_is_the_u_statistic_plus_the_diagonal() -> None:
    x = torch.randn(10, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    n, width = 10, 1.5
    cross, self_term = gaussian_kernel_means(x, width)
    within_u = float(gaussian_mmd(x, [width], True)) + 2 * float(cross.mean()) - self_term
    within_v = float(gaussian_mmd(x, [width], False)) + 2 * float(cross.mean()) - self_term
    assert within_v == pytest.approx(((n - 1) * within_u + 1) / n, rel=1e-12)


def test_default_widths_scale_with_the_square_root_of_the_dimension() -> None:
    assert default_bandwidths(16) == (2.0, 4.0, 8.0)
    assert GaussianMMD().resolved_bandwidths(9) == (1.5, 3.0, 6.0)
    assert GaussianMMD(bandwidths=[1.0]).resolved_bandwidths(9) == (1.0,)


def test_gradient_matches_finite_differences() -> None:
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64).requires_grad_(True)
    for unbiased in (True, False):
        assert torch.autograd.gradcheck(lambda t: gaussian_mmd(t, [0.8, 2.0], unbiased), (x,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [0.0, 1e-3, 1.0, 1e3])
def test_finite_values_and_gradients_at_any_scale_and_dtype(dtype: torch.dtype, scale: float) -> None:
    x = (scale * torch.randn(16, 4, generator=torch.Generator().manual_seed(6))).to(dtype).requires_grad_(True)
    value = GaussianMMD()(x)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad.float()).all()


@pytest.mark.parametrize("kwargs", [{"bandwidths": []}, {"bandwidths": [1.0, 0.0]}, {"bandwidths": [float("inf")]}])
def test_bad_bandwidths_are_a_clear_error(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="bandwidths"):
        GaussianMMD(**kwargs)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), unbiased=st.booleans())
def test_permutation_and_rotation_invariance(seed: int, unbiased: bool) -> None:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(15, 3, generator=generator, dtype=torch.float64) * 1.7 + 0.4
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    order = torch.randperm(15, generator=generator)
    value = gaussian_mmd(x, [0.5, 2.0], unbiased)
    assert torch.allclose(gaussian_mmd(x[order], [0.5, 2.0], unbiased), value, rtol=1e-10, atol=1e-14)
    assert torch.allclose(gaussian_mmd(x @ rotation, [0.5, 2.0], unbiased), value, rtol=1e-9, atol=1e-13)
