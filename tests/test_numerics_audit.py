"""Numerics of the losses that tests/test_extreme_scales.py does not sweep, and of population mode and ``check``.

Each defect test fails on the code before its fix: VICReg's covariance term cancelled in float32
(0 or a negative sum of squares for one coordinate of std 1e3) and gave NaN past float32's range;
the diagonal Gaussian KL lost every digit of e^v - 1 - v for small log-variances (and went
negative) and returned inf past float32's range; population mode returned inf where its wrapped
loss raises a clear error (and stored that batch first); the euclidean soft nearest neighbor loss
returned NaN when squared distances overflowed; the adversarial prior's float32 critic turned a
float64 batch past 3e38 into NaN; ``check`` divided by zero at d >= 1024, where the Henze-Zirkler
null variance underflows. References are float64 evaluations or closed forms.
"""

from __future__ import annotations

import math

import pytest
import torch

from latentshape import (
    AdversarialPrior,
    GaussianKL,
    KDECrossEntropy,
    MomentMatchingLoss,
    PopulationMode,
    PrototypeClassificationLoss,
    SIGReg,
    SoftNearestNeighborLoss,
    UniformityLoss,
    VICRegLoss,
    WristbandLoss,
    check,
    fit_prototypes,
)
from latentshape.diagnostics.exact_nulls import henze_zirkler_null_moments
from latentshape.diagnostics.statistics import henze_zirkler_smoothing
from latentshape.gaussian.kl import gaussian_kl_diag
from latentshape.gaussian.vicreg import vicreg_variance_covariance


def _gaussian(n: int, d: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


# -- VICReg ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, d", [(256, 8), (16, 64)])  # the covariance route and the Gram route (d > N)
@pytest.mark.parametrize("spread", [1e2, 1e3, 1e4])
def test_vicreg_covariance_term_keeps_float32_precision_when_one_variance_dominates(n: int, d: int, spread: float) -> None:
    x = _gaussian(n, d)
    x[:, 0] *= spread
    reference = float(vicreg_variance_covariance(x, variance_weight=0.0))
    value = float(vicreg_variance_covariance(x.float(), variance_weight=0.0))
    assert value == pytest.approx(reference, rel=1e-5)


@pytest.mark.parametrize("scale, dtype", [(1e20, torch.float32), (1e30, torch.float32), (1e200, torch.float64)])
def test_vicreg_beyond_the_dtype_range_is_a_one_line_error(scale: float, dtype: torch.dtype) -> None:
    with pytest.raises(ValueError, match="VICReg loss .*rescale") as error:
        VICRegLoss()(_gaussian(64, 8, dtype=dtype) * scale)
    assert "\n" not in str(error.value)
    if dtype == torch.float64:
        assert "use float64" not in str(error.value)


def test_vicreg_recovers_in_float64_where_only_a_float32_product_overflows() -> None:
    x = _gaussian(64, 8) * 1e9  # variances 1e18 fit float32, their squares (1e36 x 64) do not sum
    value = VICRegLoss(variance_weight=0.0)(x.float())
    assert torch.isfinite(value)
    assert float(value) == pytest.approx(float(VICRegLoss(variance_weight=0.0)(x)), rel=1e-5)


# -- Gaussian KL -------------------------------------------------------------------------------


@pytest.mark.parametrize("logvar", [1e-6, 1e-4, -1e-3, 3e-2, -0.09])
def test_kl_diag_is_accurate_for_log_variances_near_zero(logvar: float) -> None:
    v = torch.full((4, 8), logvar)
    exact = 8 * 0.5 * sum(logvar**k / math.factorial(k) for k in range(2, 12))  # per sample
    values = gaussian_kl_diag(torch.zeros(4, 8), v)
    assert bool((values > 0).all())
    torch.testing.assert_close(values.double(), torch.full((4,), exact, dtype=torch.float64), rtol=1e-5, atol=0)


def test_kl_diag_gradient_in_logvar_survives_tiny_log_variances() -> None:
    logvar = torch.full((2, 3), 1e-200, dtype=torch.float64, requires_grad=True)
    gaussian_kl_diag(torch.zeros(2, 3, dtype=torch.float64), logvar).sum().backward()
    torch.testing.assert_close(logvar.grad, torch.full((2, 3), 0.5e-200, dtype=torch.float64), rtol=1e-12, atol=0)


@pytest.mark.parametrize("mu_scale, logvar_value, dtype", [(1.0, 1e4, torch.float32), (1e20, 0.0, torch.float32),
                                                          (1.0, 1e4, torch.float64)])
def test_kl_beyond_the_dtype_range_is_a_one_line_error(mu_scale: float, logvar_value: float, dtype: torch.dtype) -> None:
    mu = _gaussian(16, 4, dtype=dtype) * mu_scale
    with pytest.raises(ValueError, match="KL divergence .*rescale") as error:
        GaussianKL()(mu, torch.full_like(mu, logvar_value))
    assert "\n" not in str(error.value)


def test_kl_recovers_in_float64_where_float32_exp_overflows() -> None:
    mu, logvar = torch.zeros(4, 1), torch.full((4, 1), 89.0)  # e^89 = 4.5e38 > float32 max; half of it fits
    value = GaussianKL()(mu, logvar)
    assert torch.isfinite(value)
    assert float(value) == pytest.approx(0.5 * (math.exp(89.0) - 1 - 89.0), rel=1e-6)


def test_kl_full_with_a_singular_posterior_is_a_clear_error() -> None:
    scale_tril = torch.eye(3).expand(4, 3, 3).clone()
    scale_tril[1, 2, 2] = 0.0
    with pytest.raises(ValueError, match="singular"):
        GaussianKL(covariance="full")(torch.zeros(4, 3), scale_tril)


# -- population mode ---------------------------------------------------------------------------

POPULATION = {
    "moments": lambda: MomentMatchingLoss(),
    "wristband": lambda: WristbandLoss(calibrate=False),  # calibrated: the same check, after a slow null
    "wristband-degree1": lambda: WristbandLoss(degree=1, lambda_sharp=0, lambda_coord=0, calibrate=False),
}


@pytest.mark.parametrize("name", sorted(POPULATION))
@pytest.mark.parametrize("momentum", [None, 0.1])
def test_population_mode_beyond_float32_is_a_clear_error_and_leaves_the_estimate_alone(name: str, momentum) -> None:
    batch = _gaussian(64, 4, seed=1, dtype=torch.float32)
    fresh = PopulationMode(POPULATION[name](), momentum=momentum)
    population = PopulationMode(POPULATION[name](), momentum=momentum)
    fresh(batch), population(batch)
    with pytest.raises(ValueError, match="rescale") as error:
        population(_gaussian(64, 4, seed=2, dtype=torch.float32) * 1e20)
    assert "\n" not in str(error.value)
    assert int(population.steps) == 1  # the refused batch was not stored
    following = _gaussian(64, 4, seed=3, dtype=torch.float32).requires_grad_(True)
    value = population(following)
    value.backward()
    assert float(value.detach()) == pytest.approx(float(fresh(following.detach())), rel=1e-6)
    assert bool(torch.isfinite(following.grad).all())


def test_population_mode_of_a_float64_batch_beyond_float64_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="overflows even float64") as error:
        PopulationMode(MomentMatchingLoss())(_gaussian(64, 4) * 1e200)
    assert "use float64" not in str(error.value)


# -- soft nearest neighbors, adversarial prior -------------------------------------------------


@pytest.mark.parametrize("learnable", [False, True])
def test_euclidean_soft_nearest_neighbor_is_finite_where_squared_distances_overflow_float32(learnable: bool) -> None:
    loss_fn = SoftNearestNeighborLoss(distance="euclidean", learnable_temperature=learnable)
    x = (_gaussian(32, 8, dtype=torch.float32) * 1e20).requires_grad_(True)
    value = loss_fn(x, torch.arange(32) % 2)
    value.backward()
    # Every affinity underflows: each row's same-class mass is eps, and the exact gradient is 0.
    assert value.dtype == torch.float32
    assert float(value.detach()) == pytest.approx(-math.log(loss_fn.eps), rel=1e-6)
    assert bool(torch.isfinite(x.grad).all())


def test_euclidean_soft_nearest_neighbor_beyond_float64_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="overflow float64"):
        SoftNearestNeighborLoss(distance="euclidean")(_gaussian(8, 3) * 1e200, torch.arange(8) % 2)


def test_adversarial_prior_refuses_a_float64_batch_its_float32_critic_cannot_hold() -> None:
    with pytest.raises(ValueError, match="critic's torch.float32"):
        AdversarialPrior(4, hidden=32, seed=0)(_gaussian(16, 4) * 1e200)


@pytest.mark.parametrize("scale, dtype", [(1e20, torch.float32), (1e200, torch.float64)])
def test_gaussian_kde_cross_entropy_beyond_the_dtype_range_is_a_one_line_error(scale: float, dtype: torch.dtype) -> None:
    # log K(x - x_j) = -(x - x_j)^2 / 2: past float32 at |x_j| ~ 2.6e19 (the laplace kernel's -|x - x_j| stays finite)
    logits = _gaussian(16, 5, dtype=dtype)
    with pytest.raises(ValueError, match="KDE cross-entropy .*rescale") as error:
        KDECrossEntropy()(logits, _gaussian(16, 5, seed=1, dtype=dtype) * scale, -1.0, 1.0)
    assert "\n" not in str(error.value)


# -- check ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, d", [(16, 1024), (64, 2048), (400, 4096)])
def test_henze_zirkler_exact_moments_are_finite_at_large_d(n: int, d: int) -> None:
    moments = henze_zirkler_null_moments(n, d, henze_zirkler_smoothing(n, d))
    assert all(math.isfinite(v) for v in moments)
    assert moments.std >= 0 and moments.mean == pytest.approx(1.0)


def test_check_reports_finite_p_values_at_d_above_a_thousand() -> None:
    report = check(_gaussian(16, 1024, dtype=torch.float32), null_samples=20)
    assert all(math.isfinite(test.p_value) and math.isfinite(test.p_holm) for test in report.tests)
    assert not any(test.rejected for test in report.tests if test.name == "Henze-Zirkler")


# -- a grid over the losses without a scale sweep elsewhere ------------------------------------


def _prototypes(d: int) -> torch.Tensor:
    return fit_prototypes(2, d, steps=20)


GRID = {
    "vicreg": (lambda d: VICRegLoss(), lambda m, x: m(x)),
    "kl-diag": (lambda d: GaussianKL(), lambda m, x: m(x, x.flip(-1) / (1 + x.flip(-1).abs()))),
    "uniformity": (lambda d: UniformityLoss(), lambda m, x: m(x)),
    "prototypes": (lambda d: PrototypeClassificationLoss(_prototypes(d)), lambda m, x: m(x, torch.arange(x.shape[0]) % 2)),
    "snn-euclidean": (lambda d: SoftNearestNeighborLoss(distance="euclidean"), lambda m, x: m(x, torch.arange(x.shape[0]) % 2)),
    "adversarial": (lambda d: AdversarialPrior(d, hidden=32, seed=0), lambda m, x: m(x)),
    "population-sigreg": (lambda d: PopulationMode(SIGReg(slices=16)), lambda m, x: m(x)),
}
CASES = {
    "scale 1e-8": lambda: _gaussian(32, 6, dtype=torch.float32) * 1e-8,
    "scale 1e8": lambda: _gaussian(32, 6, dtype=torch.float32) * 1e8,
    "N = 3": lambda: _gaussian(3, 6, dtype=torch.float32),
    "d > N": lambda: _gaussian(8, 40, dtype=torch.float32),
    "duplicated rows": lambda: _gaussian(16, 6, dtype=torch.float32).repeat(2, 1),
    "float16": lambda: _gaussian(32, 6, dtype=torch.float16),
    "bfloat16": lambda: _gaussian(32, 6, dtype=torch.bfloat16),
    "float64": lambda: _gaussian(32, 6),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", list(GRID))
def test_finite_values_and_gradients(name: str, case: str) -> None:
    make, call = GRID[name]
    x = CASES[case]().requires_grad_(True)
    value = call(make(x.shape[-1]), x)
    value.backward()
    assert torch.isfinite(value) and bool(torch.isfinite(x.grad).all()), f"{name}, {case}"
    assert x.grad.dtype == x.dtype


# -- autocast: the shapers compute in float32 inside a bfloat16 region ----------------------------

AUTOCAST = {
    "prototypes": GRID["prototypes"],
    "snn-euclidean": GRID["snn-euclidean"],
    "snn-cosine": (lambda d: SoftNearestNeighborLoss(), lambda m, x: m(x, torch.arange(x.shape[0]) % 2)),
    "adversarial": GRID["adversarial"],
    "adversarial-critic": (lambda d: AdversarialPrior(d, hidden=32, seed=0),
                           lambda m, x: m.critic_loss(x.flip(0), x)),
}


@pytest.mark.parametrize("name", list(AUTOCAST))
def test_shapers_under_bfloat16_autocast_give_the_eager_float32_value(name: str) -> None:
    make, call = AUTOCAST[name]
    x = _gaussian(64, 8, dtype=torch.float32)
    loss_fn = make(8)
    eager = call(loss_fn, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = call(loss_fn, x)
    assert value.dtype == torch.float32
    assert float(value.detach()) == pytest.approx(float(eager.detach()), rel=1e-6)
