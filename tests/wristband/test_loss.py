"""WristbandLoss: null calibration, invariances, the degree-1 blind spot, robustness and API."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentshape import WristbandLoss
from latentshape.functional import wristband_components, wristband_energy
from latentshape.gaussian.moment_penalties import MOMENT_PENALTIES
from latentshape.wristband import WristbandConfig


def null_batches(count, n, d, seed=12345, dtype=torch.float32):
    return torch.randn(count, n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize(
    "options,n,d",
    [
        (dict(), 128, 4),
        (dict(average="per_point"), 128, 4),
        (dict(degree=1, lambda_ang=0.5), 96, 16),
        (dict(method="pairwise", null_samples=512), 48, 3),
    ],
)
def test_total_is_standardized_under_the_null(options, n, d):
    loss_fn = WristbandLoss(**options)
    totals = loss_fn.components(null_batches(320, n, d)).total
    assert abs(float(totals.mean())) < 0.15
    assert 0.85 < float(totals.std()) < 1.15


def test_non_gaussian_batches_are_far_from_null():
    loss_fn = WristbandLoss()
    x = null_batches(4, 256, 8)
    assert float(loss_fn.components(x).total.min()) > -4
    cube = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) * 3.4 - 1.7  # variance 0.96
    for impostor in (1.3 * x, x + 0.4, cube, x * torch.linspace(0.5, 1.5, 8)):
        assert float(loss_fn.components(impostor).total.min()) > 5


def opposite_lobes(n, d, seed=0):
    """Directions in two opposite caps around +-e_1, radii from chi_d: t is still uniform."""
    g = torch.Generator().manual_seed(seed)
    axis = torch.zeros(d, dtype=torch.float64)
    axis[0] = 1.0
    signs = torch.where(torch.rand(n, 1, generator=g) < 0.5, -1.0, 1.0).to(torch.float64)
    directions = torch.nn.functional.normalize(2.0 * signs * axis + torch.randn(n, d, generator=g, dtype=torch.float64), dim=-1)
    radii = torch.randn(n, d, generator=g, dtype=torch.float64).norm(dim=-1, keepdim=True)
    return directions * radii


def test_degree_two_sees_opposite_lobes_and_degree_one_does_not():
    """Documented limitation: degree <= 1 only sees the mean direction, which is 0 for two lobes."""
    x = opposite_lobes(1024, 8)
    rep_degree_1 = float(WristbandLoss(degree=1).components(x).rep)
    rep_degree_2 = float(WristbandLoss(degree=2).components(x).rep)
    assert abs(rep_degree_1) < 4
    assert rep_degree_2 > 20


@pytest.mark.parametrize("name", ["shifted", "anisotropic", "lobes"])
def test_spectral_gradient_follows_pairwise_gradient(name):
    g = torch.Generator().manual_seed(1)
    x = {
        "shifted": 1.5 * torch.randn(384, 8, generator=g, dtype=torch.float64) + 0.5,
        "anisotropic": torch.randn(384, 2, generator=g, dtype=torch.float64) * torch.tensor([0.3, 2.0], dtype=torch.float64),
        "lobes": opposite_lobes(384, 32, seed=2),
    }[name]
    grads = []
    for method in ("spectral", "pairwise"):
        y = x.clone().requires_grad_()
        wristband_energy(y, method=method).log().backward()
        grads.append(y.grad.flatten())
    assert float(torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0)) > 0.99


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 5), st.integers(8, 40), st.integers(0, 10_000), st.sampled_from(["spectral", "pairwise"]),
       st.sampled_from(["global", "per_point"]))
def test_components_invariant_to_permutation_and_rotation(d, n, seed, method, average):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * 1.2 + 0.3
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    permutation = torch.randperm(n, generator=g)
    config = WristbandConfig(method=method, average=average)
    reference = wristband_components(x, config)
    # every term sees rows as a set (N <= 512: the sharp term's block is all pairs)
    torch.testing.assert_close(torch.stack(wristband_components(x[permutation], config)), torch.stack(reference),
                               rtol=1e-9, atol=1e-12)
    # every term but the per-coordinate one is rotation invariant; coord reads the coordinates, by design
    rotated = wristband_components(x @ rotation, config)
    for name in ("rep", "rad", "ang", "mom", "sharp"):
        torch.testing.assert_close(getattr(rotated, name), getattr(reference, name), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "bad,error,message",
    [
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0], [float("inf"), 0.0]]), ValueError, "2 row"),
        (torch.randn(1, 4), ValueError, "at least 2 points"),
        (torch.randn(5), ValueError, "rank >= 2"),
        (torch.ones(4, 3, dtype=torch.int64), TypeError, "floating dtype"),
        (torch.ones(4, 3, dtype=torch.bool), TypeError, "floating dtype"),
        ([[1.0, 2.0], [3.0, 4.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_gets_a_clear_error(bad, error, message):
    with pytest.raises(error, match=message):
        WristbandLoss()(bad)


@pytest.mark.parametrize("options", [dict(), dict(method="pairwise"), dict(average="per_point"), dict(lambda_ang=1.0)])
def test_zero_rows_give_finite_values_and_gradients(options):
    x = torch.randn(64, 6)
    x[:5] = 0.0
    x.requires_grad_()
    loss = WristbandLoss(calibrate=False, **options)(x)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("d", [4, 64])
@pytest.mark.parametrize("mean_square", [1e-6, 1e6])
@pytest.mark.parametrize("method", ["spectral", "pairwise"])
def test_extreme_scales_give_finite_nonzero_gradients(d, mean_square, method):
    x = (torch.randn(64, d, generator=torch.Generator().manual_seed(0)) * mean_square**0.5).requires_grad_()
    loss = WristbandLoss(method=method, calibrate=False)(x)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all() and float(x.grad.norm()) > 0


def test_large_dimension_float32_is_finite_and_calibrated():
    x = torch.randn(48, 4096, generator=torch.Generator().manual_seed(0)).requires_grad_()
    loss_fn = WristbandLoss(null_samples=64)
    parts = loss_fn.components(x)
    parts.total.backward()
    assert all(torch.isfinite(p) for p in parts)
    assert abs(float(parts.total.detach())) < 5  # a Gaussian batch stays near the null
    assert torch.isfinite(x.grad).all() and float(x.grad.norm()) > 0
    assert float(loss_fn(3.0 * x.detach())) > 10


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_input_is_computed_in_float32(dtype):
    x = torch.randn(128, 8, generator=torch.Generator().manual_seed(0)).to(dtype)
    loss_fn = WristbandLoss()
    value = loss_fn(x.requires_grad_())
    assert value.dtype == torch.float32
    assert float(value.detach()) == pytest.approx(float(loss_fn(x.detach().float())), rel=1e-6, abs=1e-6)
    value.backward()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad.float()).all()


def test_float64_is_honoured():
    x = torch.randn(64, 3, dtype=torch.float64)
    assert WristbandLoss()(x).dtype == torch.float64


def test_leading_dimensions_are_independent_batches():
    x = torch.randn(2, 3, 64, 4, generator=torch.Generator().manual_seed(0))
    loss_fn = WristbandLoss()
    parts = loss_fn.components(x)
    assert all(p.shape == (2, 3) for p in parts)
    torch.testing.assert_close(parts.total[1, 2], loss_fn.components(x[1, 2]).total)
    assert loss_fn(x).shape == ()
    torch.testing.assert_close(loss_fn(x), parts.total.mean())


def test_uncalibrated_components_are_the_raw_functional_values():
    x = torch.randn(100, 5, dtype=torch.float64)
    module = WristbandLoss(calibrate=False, lambda_rad=0.3, lambda_ang=0.2, lambda_mom=0.5).components(x)
    raw = wristband_components(x, lambda_rad=0.3, lambda_ang=0.2, lambda_mom=0.5)
    torch.testing.assert_close(torch.stack(module), torch.stack(raw))


@pytest.mark.parametrize("moment", MOMENT_PENALTIES)
def test_every_moment_penalty_runs_calibrated(moment):
    loss_fn = WristbandLoss(moment=moment, null_samples=64)
    assert abs(float(loss_fn(torch.randn(64, 4)))) < 6
    assert float(loss_fn(torch.randn(64, 4) * 2 + 1)) > 10


def test_short_last_batch_calibrates_its_own_shape():
    loss_fn = WristbandLoss()
    assert torch.isfinite(loss_fn(torch.randn(128, 4)))
    assert torch.isfinite(loss_fn(torch.randn(37, 4)))
    assert loss_fn.null_stats(37, 4) is not loss_fn.null_stats(128, 4)


@pytest.mark.parametrize(
    "options",
    [dict(method="exact"), dict(degree=3), dict(k_modes=-1), dict(beta=0.0), dict(angular="euclid"),
     dict(average="median"), dict(moment="kl"), dict(lambda_rad=-1.0), dict(alpha=-0.1)],
)
def test_bad_configuration_is_rejected_at_construction(options):
    with pytest.raises(ValueError):
        WristbandLoss(**options)


def test_component_weights_take_numpy_scalars_and_0d_tensors() -> None:
    import numpy as np

    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(5))
    expected = wristband_components(x, lambda_rad=0.5).total
    for weight in (np.float32(0.5), torch.tensor(0.5)):
        assert torch.allclose(wristband_components(x, lambda_rad=weight).total, expected)
    with pytest.raises(ValueError, match="lambda_rad"):
        wristband_components(x, lambda_rad=True)
