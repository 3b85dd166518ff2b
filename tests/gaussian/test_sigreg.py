"""SIGReg: the quadrature against scipy's quad, the slicing, the generator, numerics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.integrate import quad

from latentshape.gaussian.sigreg import SIGReg, epps_pulley, epps_pulley_quadrature, sigreg_statistic


def _quad_epps_pulley(sample: np.ndarray, t_max: float) -> float:
    """N * integral of w(t) |phi_N(t) - exp(-t^2/2)|^2 over [-t_max, t_max], by adaptive quadrature."""

    def integrand(t: float) -> float:
        gap_real = np.cos(t * sample).mean() - math.exp(-0.5 * t * t)
        gap_imag = np.sin(t * sample).mean()
        return math.exp(-0.5 * t * t) * (gap_real**2 + gap_imag**2)

    value, _ = quad(integrand, -t_max, t_max, limit=200, epsabs=1e-13, epsrel=1e-12)
    return len(sample) * value


@pytest.mark.parametrize("scale, shift, t_max", [(1.0, 0.0, 3.0), (2.0, 0.5, 3.0), (0.5, -1.0, 2.0)])
def test_quadrature_matches_scipy_quad_of_the_same_integrand(scale: float, shift: float, t_max: float) -> None:
    sample = np.random.default_rng(0).standard_normal(64) * scale + shift
    expected = _quad_epps_pulley(sample, t_max)
    projections = torch.tensor(sample).unsqueeze(-1)
    # A fine trapezoid converges to the integral; the default 17 nodes are within a percent.
    assert float(epps_pulley(projections, t_max, points=2001)) == pytest.approx(expected, rel=1e-6)
    assert float(epps_pulley(projections, t_max, points=17)) == pytest.approx(expected, rel=1e-2)


@pytest.mark.parametrize("points", [17, 16, 2, 5])
def test_folded_rule_equals_the_full_trapezoid(points: int) -> None:
    sample = np.random.default_rng(1).standard_normal(10) * 1.3
    grid = np.linspace(-3.0, 3.0, points)
    values = [
        math.exp(-0.5 * t * t) * ((np.cos(t * sample).mean() - math.exp(-0.5 * t * t)) ** 2 + np.sin(t * sample).mean() ** 2)
        for t in grid
    ]
    expected = 10 * np.trapezoid(values, grid)
    assert float(epps_pulley(torch.tensor(sample).unsqueeze(-1), 3.0, points)) == pytest.approx(expected, rel=1e-12)
    nodes, _ = epps_pulley_quadrature(3.0, points, dtype=torch.float64)
    assert bool((nodes >= 0).all()) and len(nodes) == (points + 1) // 2


def test_statistic_averages_epps_pulley_over_the_given_slices() -> None:
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(3, 50, 4, generator=generator, dtype=torch.float64)
    directions = torch.nn.functional.normalize(torch.randn(4, 6, generator=generator, dtype=torch.float64), dim=0)
    value = sigreg_statistic(x, directions)
    assert value.shape == (3,)
    for b in range(3):
        per_slice = [float(epps_pulley((x[b] @ directions[:, m]).unsqueeze(-1))) for m in range(6)]
        assert float(value[b]) == pytest.approx(sum(per_slice) / 6, rel=1e-12)


def test_fresh_slices_every_call_reproducible_from_the_seed_and_resumable() -> None:
    x = torch.randn(64, 5, generator=torch.Generator().manual_seed(3))
    first, second = SIGReg(slices=8, seed=11), SIGReg(slices=8, seed=11)
    a1, a2 = first(x), first(x)
    assert not torch.equal(a1, a2)  # new slices each call
    assert torch.equal(second(x), a1) and torch.equal(second(x), a2)  # same sequence from the same seed
    checkpoint = first.state_dict()
    expected_next = first(x)
    resumed = SIGReg(slices=8, seed=0)
    resumed.load_state_dict(checkpoint)
    assert resumed.seed == 11 and torch.equal(resumed(x), expected_next)
    assert torch.equal(resumed.manual_seed(11)(x), a1)


def test_leading_batches_get_independent_slices_and_their_own_values() -> None:
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(4)).expand(2, 32, 3)
    values = SIGReg(slices=4, seed=0).statistic(x)
    assert values.shape == (2,)
    assert float(values[0]) != float(values[1])  # same points, different slices


def test_a_gaussian_batch_scores_near_the_null_mean_and_an_impostor_far_above() -> None:
    generator = torch.Generator().manual_seed(5)
    gaussian = torch.randn(512, 8, generator=generator)
    loss_fn = SIGReg(seed=0)
    null_mean = quad(lambda t: math.exp(-t * t / 2) * (1 - math.exp(-t * t)), -3, 3)[0]  # E under N(0, I), ~1.05
    assert float(loss_fn(gaussian)) == pytest.approx(null_mean, abs=0.5)
    assert float(loss_fn(torch.rand(512, 8, generator=generator) * 2 - 1)) > 10 * null_mean


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [0.0, 1e-3, 1.0, 1e3])
def test_finite_values_and_gradients_at_any_scale_and_dtype(dtype: torch.dtype, scale: float) -> None:
    x = (scale * torch.randn(16, 4, generator=torch.Generator().manual_seed(6))).to(dtype).requires_grad_(True)
    value = SIGReg(slices=8)(x)
    value.backward()
    assert value.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert torch.isfinite(value) and torch.isfinite(x.grad.float()).all()


def test_gradient_matches_finite_differences() -> None:
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64).requires_grad_(True)
    directions = torch.nn.functional.normalize(torch.randn(2, 3, dtype=torch.float64), dim=0)
    assert torch.autograd.gradcheck(lambda t: sigreg_statistic(t, directions), (x,))


@pytest.mark.parametrize(
    "kwargs, message",
    [({"slices": 0}, "slices"), ({"t_max": -1.0}, "t_max"), ({"points": 1}, "points"), ({"seed": 1.5}, "seed")],
)
def test_bad_configuration_is_a_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SIGReg(**kwargs)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_permutation_invariance_on_fixed_slices(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(20, 3, generator=generator, dtype=torch.float64) * 1.5
    directions = torch.nn.functional.normalize(torch.randn(3, 5, generator=generator, dtype=torch.float64), dim=0)
    order = torch.randperm(20, generator=generator)
    assert torch.allclose(sigreg_statistic(x[order], directions), sigreg_statistic(x, directions), rtol=1e-12)
