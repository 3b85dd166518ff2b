"""Every Gaussian regularizer at every scale: finite values and gradients, or a one-line ValueError.

Scales 1e-30..1e30 in float32 and 1e-300..1e300 in float64, over random batches (hypothesis).
A value that cannot fit the dtype (a squared distance at scale 1e20 in float32) must be a clear
``ValueError``; everything else must be finite, with a finite gradient that is non-zero wherever
the exact gradient is representable (the MMD's kernels underflow beyond a few widths: there its
exact gradient is ~exp(-scale^2) and 0 is the right float).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentshape import GaussianMMD, MomentMatchingLoss, SIGReg, SlicedWassersteinGaussian, WristbandLoss
from latentshape.functional import moment_penalty, wristband_map
from latentshape.wristband.spectral_fused import fused_spectral_sums
from latentshape.wristband.map import chi2_forward
from latentshape.wristband.spectral import spectral_sums

REGULARIZERS = {
    "wristband": lambda: WristbandLoss(calibrate=True),
    "wristband-raw": lambda: WristbandLoss(calibrate=False),
    "wristband-degree1": lambda: WristbandLoss(degree=1, calibrate=True),
    "wristband-pairwise": lambda: WristbandLoss(method="pairwise", calibrate=False),
    "wristband-per-point": lambda: WristbandLoss(average="per_point", calibrate=False),
    "moments": lambda: MomentMatchingLoss(calibrate=False),
    "moments-w2": lambda: MomentMatchingLoss(penalty="w2", calibrate=False),
    "moments-kl-full": lambda: MomentMatchingLoss(penalty="kl_full", calibrate=False),
    "moments-jeff-full": lambda: MomentMatchingLoss(penalty="jeff_full", calibrate=False),
    "moments-kl-diag": lambda: MomentMatchingLoss(penalty="kl_diag", calibrate=False),
    "mmd": lambda: GaussianMMD(calibrate=False),
    "sliced": lambda: SlicedWassersteinGaussian(slices=16, calibrate=False),
    "sigreg": lambda: SIGReg(slices=16, calibrate=False),
}
_MODULES = {name: make() for name, make in REGULARIZERS.items()}


def _evaluate(name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(value, gradient), or None after checking that a ValueError is one clear line."""
    x = x.clone().requires_grad_(True)
    try:
        value = _MODULES[name](x)
    except ValueError as error:
        message = str(error)
        assert "\n" not in message and ("scale" in message or "overflow" in message), message
        return None
    value.backward()
    return value.detach(), x.grad


def _check(name: str, x: torch.Tensor, scale: float) -> None:
    result = _evaluate(name, x)
    if result is None:
        return
    value, grad = result
    assert torch.isfinite(value), f"{name} at scale {scale:g}: value {value}"
    assert bool(torch.isfinite(grad).all()), f"{name} at scale {scale:g}: gradient not finite"
    vanishing_kernels = name == "mmd" and scale > 10.0  # exp(-|x|^2 / (2 (w^2 + 1))) underflows
    if not vanishing_kernels:
        assert bool((grad != 0).any()), f"{name} at scale {scale:g}: zero gradient"


def _batch(seed: int, n: int, d: int, scale: float, dtype: torch.dtype) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (x * scale).to(dtype)


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
@settings(max_examples=12, deadline=None)
@given(exponent=st.floats(-30, 30), seed=st.integers(0, 1000), n=st.sampled_from([16, 48]), d=st.sampled_from([1, 3, 8]))
def test_float32_from_1e_minus_30_to_1e30(name: str, exponent: float, seed: int, n: int, d: int) -> None:
    scale = 10.0**exponent
    _check(name, _batch(seed, n, d, scale, torch.float32), scale)


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
@settings(max_examples=12, deadline=None)
@given(exponent=st.floats(-300, 300), seed=st.integers(0, 1000), n=st.sampled_from([16, 48]), d=st.sampled_from([1, 3, 8]))
def test_float64_from_1e_minus_300_to_1e300(name: str, exponent: float, seed: int, n: int, d: int) -> None:
    scale = 10.0**exponent
    _check(name, _batch(seed, n, d, scale, torch.float64), scale)


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
@pytest.mark.parametrize("dtype, exponents", [(torch.float32, range(-30, 31, 5)), (torch.float64, range(-300, 301, 50))])
def test_every_decade_on_a_wide_batch(name: str, dtype: torch.dtype, exponents) -> None:
    for exponent in exponents:  # d > N: the Gram-matrix routes of the moment penalties
        _check(name, _batch(exponent % 7, 12, 20, 10.0**exponent, dtype), 10.0**exponent)


# -- the issue's calls -------------------------------------------------------------------------


def _issue_batch(scale: float, n: int = 256, d: int = 8, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return (scale * torch.randn(n, d, generator=torch.Generator().manual_seed(0))).to(dtype)


@pytest.mark.parametrize("scale, dtype", [(3e8, torch.float32), (1e9, torch.float64), (1e10, torch.float64),
                                          (1e20, torch.float64), (1e-20, torch.float32), (3e-20, torch.float32)])
def test_the_issue_calls_of_the_wristband_are_finite(scale: float, dtype: torch.dtype) -> None:
    for method in ("spectral", "pairwise"):
        x = _issue_batch(scale, 64 if scale < 1 else 256, dtype=dtype).requires_grad_(True)
        loss = WristbandLoss(method=method, calibrate=method == "spectral")(x)
        loss.backward()
        assert torch.isfinite(loss) and bool(torch.isfinite(x.grad).all()) and bool((x.grad != 0).all(dim=-1).all())


def test_huge_float32_input_is_a_one_line_error_for_losses_that_grow_with_scale() -> None:
    x = _issue_batch(1e20, 64)
    for module in (WristbandLoss(), MomentMatchingLoss(), SlicedWassersteinGaussian()):
        with pytest.raises(ValueError, match="rescale") as error:
            module(x)
        assert "\n" not in str(error.value)
    assert torch.isfinite(GaussianMMD()(x)) and torch.isfinite(SIGReg()(x))  # bounded statistics


def _mp_score(r: float, d: int) -> float:
    """z = Phi^-1(P(chi2_d <= r^2)) in 60-digit arithmetic, on the smaller tail."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 60
    s = mpmath.mpf(r) ** 2
    lower = mpmath.gammainc(mpmath.mpf(d) / 2, 0, s / 2, regularized=True)
    upper = mpmath.gammainc(mpmath.mpf(d) / 2, s / 2, mpmath.inf, regularized=True)
    tail, sign = (lower, -1) if lower < upper else (upper, 1)
    log_tail = mpmath.log(tail)
    guess = -mpmath.sqrt(-2 * log_tail)
    root = mpmath.findroot(lambda z: mpmath.log(mpmath.ncdf(z)) - log_tail, guess)
    return float(sign * -root) if sign < 0 else float(-root)


@pytest.mark.parametrize("d", [1, 8, 64])
@pytest.mark.parametrize("r", [1e-150, 1e-30, 1e-3, 30.0, 1e4, 31247872237.278263, 1e40, 1e150])
def test_score_matches_high_precision_at_every_radius(r: float, d: int) -> None:
    _, z, _ = chi2_forward(torch.tensor([r], dtype=torch.float64), float(d))
    assert math.isfinite(float(z))
    assert float(z) == pytest.approx(_mp_score(r, d), rel=1e-9)


@pytest.mark.parametrize("d", [1, 2, 8, 64, 1000])
def test_score_slope_matches_finite_differences_at_every_radius(d: int) -> None:
    r = torch.logspace(-150, 150, 61, dtype=torch.float64) * math.sqrt(d)
    _, _, (log_density, log_score_slope) = chi2_forward(r, float(d))
    step = 1e-6
    _, above, _ = chi2_forward(r * (1 + step), float(d))
    _, below, _ = chi2_forward(r * (1 - step), float(d))
    numeric = (above - below) / (2 * step * r)
    np.testing.assert_allclose(torch.exp(log_score_slope).numpy(), numeric.numpy(), rtol=1e-4)
    assert bool(torch.isfinite(log_density).all())


@pytest.mark.parametrize("factor", [2.0**-700, 2.0**-200, 2.0**200, 2.0**480])
def test_map_gradient_scales_exactly_on_the_rescaled_path(factor: float) -> None:
    # A loss of the direction alone: its gradient at c x is the gradient at x divided by c.
    x = torch.randn(20, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    weights = torch.randn(20, 5, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    grads = []
    for c in (1.0, factor):
        point = x.mul(c).requires_grad_(True)
        (wristband_map(point).direction * weights).sum().backward()
        grads.append(point.grad)
    torch.testing.assert_close(grads[1] * factor, grads[0], rtol=1e-12, atol=0)


@pytest.mark.parametrize("dtype, scale", [(torch.float32, 1e-25), (torch.float32, 1e12), (torch.float64, 1e-200),
                                          (torch.float64, 1e140)])
def test_fused_path_agrees_with_map_then_sums_at_extreme_scales(dtype: torch.dtype, scale: float) -> None:
    x64 = torch.randn(1, 300, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * scale
    probe = [torch.randn(shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
             for shape in ((1, 5), (1, 5, 4), (1, 5, 4, 4), (1, 300))]

    def objective(sums, score) -> torch.Tensor:
        return sum((s.to(torch.float64) * p).sum() for s, p in zip(sums, probe[:3])) + (score * probe[3]).sum()

    x = x64.detach().clone().to(dtype).requires_grad_(True)
    sums, _, score = fused_spectral_sums(x, 5, 2)
    objective(sums, score).backward()
    reference = x64.clone().requires_grad_(True)
    point = wristband_map(reference)
    objective(spectral_sums(point.direction, point.cdf, 5, 2), point.score).backward()
    tolerance = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(x.grad.to(torch.float64), reference.grad, rtol=tolerance, atol=tolerance * float(reference.grad.abs().max()))


def test_w2_pulls_a_collapsing_batch_outward_at_any_scale() -> None:
    base = torch.randn(64, 8, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    pulls = []
    for scale in (1e-3, 1e-8, 1e-30, 1e-200):
        x = (base * scale).requires_grad_(True)
        moment_penalty(x, "w2").backward()
        spread = (x - x.mean(dim=0)).detach() / scale
        pulls.append(float(-(x.grad * spread).sum() / spread.norm()))  # > 0: descent spreads the batch
    # d/dx sum (sqrt(lambda) - 1)^2 / d along the spread: ~ 2 sum sqrt(lambda) / (d ||X - mu||), scale-free
    assert pulls[0] > 0.05
    np.testing.assert_allclose(pulls, pulls[0], rtol=1e-2)


@pytest.mark.parametrize("kind", ["w2", "kl_full", "jeff_full", "kl_diag", "jeff_diag", "mu_only"])
def test_penalty_of_a_rescaled_batch_follows_from_its_moments(kind: str) -> None:
    # At c = 1e120 (float64) the penalty is a function of c mu and c^2 S: compare with numpy in float64
    # on the unit batch, every term multiplied out by hand.
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(8), dtype=torch.float64) + 0.3
    c = 1e120
    mean, cov = x.mean(dim=0).numpy(), torch.cov(x.T).numpy()
    eig, var = np.linalg.eigvalsh(cov), np.diag(cov)
    mean_sq = c * c * mean @ mean
    expected = {
        "w2": mean_sq + np.sum((c * np.sqrt(eig) - 1) ** 2),
        "kl_full": 0.5 * (c * c * eig.sum() + mean_sq - 6 - np.sum(np.log(c * c * eig))),
        "jeff_full": 0.25 * (c * c * eig.sum() + np.sum(1 / (c * c * eig)) + mean_sq + mean @ np.linalg.solve(cov, mean) - 12),
        "kl_diag": 0.5 * np.sum(c * c * var + c * c * mean**2 - 1 - np.log(c * c * var)),
        "jeff_diag": 0.25 * np.sum(c * c * var + 1 / (c * c * var) + c * c * mean**2 * (1 + 1 / (c * c * var)) - 2),
        "mu_only": mean_sq,
    }[kind] / 6
    assert float(moment_penalty(x * c, kind)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("name", sorted(REGULARIZERS))
@pytest.mark.parametrize("shape", [(0, 64, 8), (3, 0, 64, 8)])
def test_an_empty_leading_batch_is_a_one_line_error(name: str, shape: tuple[int, ...]) -> None:
    module = REGULARIZERS[name]()
    with pytest.raises(ValueError, match="empty leading batch") as error:
        module(torch.randn(shape))
    assert "\n" not in str(error.value)
    if hasattr(module, "statistic"):
        with pytest.raises(ValueError, match="empty leading batch"):
            module.statistic(torch.randn(shape))
