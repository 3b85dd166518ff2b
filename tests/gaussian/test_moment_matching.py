"""Moment matching: the textbook formula against a float64 loop, shared penalties, targets, calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentshape.gaussian.moment_matching import MomentMatchingLoss, moment_matching_loss
from latentshape.gaussian.moment_penalties import MOMENT_PENALTIES, moment_penalty


def _loop_loss(x: np.ndarray, alpha: float, gamma: float, mean: np.ndarray, cov: np.ndarray) -> float:
    n, d = x.shape
    sample_mean = sum(x[i] for i in range(n)) / n
    sample_cov = np.zeros((d, d))
    for i in range(n):
        for a in range(d):
            for b in range(d):
                sample_cov[a, b] += (x[i, a] - sample_mean[a]) * (x[i, b] - sample_mean[b])
    sample_cov /= n - 1
    mean_term = sum((mean[a] - sample_mean[a]) ** 2 for a in range(d))
    cov_term = sum((cov[a, b] - sample_cov[a, b]) ** 2 for a in range(d) for b in range(d))
    return alpha * mean_term + gamma * cov_term


def _batch(n: int, d: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 1.5 * torch.randn(n, d, generator=generator, dtype=torch.float64) + 0.3


@pytest.mark.parametrize("shape", [(20, 3), (5, 9), (7, 7)])
@pytest.mark.parametrize("alpha, gamma", [(1.0, 1.0), (0.3, 2.5)])
def test_matches_a_float64_loop_with_default_targets(shape: tuple[int, int], alpha: float, gamma: float) -> None:
    n, d = shape  # (5, 9) takes the Gram-matrix path
    x = _batch(n, d, seed=n + d)
    expected = _loop_loss(x.numpy(), alpha, gamma, np.zeros(d), np.eye(d))
    assert float(moment_matching_loss(x, alpha, gamma)) == pytest.approx(expected, rel=1e-10)
    assert float(MomentMatchingLoss(alpha=alpha, gamma=gamma, calibrate=False)(x)) == pytest.approx(expected, rel=1e-10)


def test_matches_a_float64_loop_with_custom_targets() -> None:
    d = 3
    x = _batch(15, d, seed=0)
    mean = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    root = torch.tensor([[1.0, 0.0, 0.0], [0.5, 2.0, 0.0], [0.0, -0.3, 0.7]], dtype=torch.float64)
    cov = root @ root.T
    expected = _loop_loss(x.numpy(), 2.0, 0.5, mean.numpy(), cov.numpy())
    assert float(MomentMatchingLoss(alpha=2.0, gamma=0.5, mean=mean, cov=cov, calibrate=False)(x)) == pytest.approx(expected, rel=1e-10)


def test_leading_dims_are_averaged_in_forward_and_kept_by_statistic() -> None:
    x = torch.stack([_batch(12, 2, seed=s) for s in range(4)])
    loss_fn = MomentMatchingLoss(calibrate=False)
    per_batch = loss_fn.statistic(x)
    assert per_batch.shape == (4,)
    for b in range(4):
        assert float(per_batch[b]) == pytest.approx(_loop_loss(x[b].numpy(), 1.0, 1.0, np.zeros(2), np.eye(2)))
    assert float(loss_fn(x)) == pytest.approx(float(per_batch.mean()))


@pytest.mark.parametrize("kind", MOMENT_PENALTIES)
def test_shared_penalties_are_the_moment_penalty_implementation(kind: str) -> None:
    x = _batch(10, 4, seed=1)
    assert torch.equal(MomentMatchingLoss(penalty=kind, calibrate=False)(x), moment_penalty(x, kind))


def test_gradient_matches_finite_differences() -> None:
    x = _batch(6, 3, seed=2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: moment_matching_loss(t, 0.7, 1.3), (x,))
    wide = _batch(4, 6, seed=3).requires_grad_(True)  # Gram path
    assert torch.autograd.gradcheck(lambda t: moment_matching_loss(t), (wide,))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"alpha": -1.0}, "alpha"),
        ({"gamma": float("nan")}, "gamma"),
        ({"penalty": "l1"}, "unknown penalty"),
        ({"penalty": "w2", "alpha": 2.0}, "takes no alpha"),
        ({"cov": torch.tensor([[1.0, 2.0], [0.0, 1.0]])}, "symmetric"),
        ({"cov": torch.tensor([[1.0, 0.0], [0.0, -1.0]])}, "positive semi-definite"),
        ({"mean": torch.zeros(3), "cov": torch.eye(2)}, "dimension"),
        ({"null_samples": 1}, "null_samples"),
    ],
)
def test_bad_configuration_is_a_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MomentMatchingLoss(**kwargs)


def test_target_dimension_mismatch_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="dimension 3"):
        MomentMatchingLoss(mean=torch.zeros(3))(torch.randn(8, 2))


def test_targets_are_buffers_that_travel_in_state_dict() -> None:
    loss_fn = MomentMatchingLoss(mean=torch.ones(2), cov=2.0 * torch.eye(2))
    state = loss_fn.state_dict()
    assert set(state) == {"mean", "cov"}
    clone = MomentMatchingLoss(mean=torch.zeros(2), cov=torch.eye(2))
    clone.load_state_dict(state)
    x = torch.randn(10, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(clone(x), loss_fn(x))


def test_calibration_against_a_custom_target_uses_that_target_as_the_null() -> None:
    mean = torch.tensor([3.0, -1.0], dtype=torch.float64)
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    loss_fn = MomentMatchingLoss(mean=mean, cov=cov, calibrate=True, null_samples=1000)
    root = torch.linalg.cholesky(cov)
    # The statistic is chi-square-like (right-skewed), so its sample sd needs many draws to settle.
    draws = torch.randn(1000, 128, 2, generator=torch.Generator().manual_seed(99), dtype=torch.float64) @ root.T + mean
    z = loss_fn.zscore(draws)
    assert abs(float(z.mean())) < 0.2
    assert 0.75 < float(z.std()) < 1.3
    assert float(loss_fn.zscore(draws[0] + 1.0)) > 10  # a shift by (1, 1) is far outside the null


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_permutation_and_rotation_invariance_with_the_default_target(seed: int) -> None:
    x = _batch(9, 3, seed)
    generator = torch.Generator().manual_seed(seed)
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    order = torch.randperm(9, generator=generator)
    value = moment_matching_loss(x)
    assert torch.allclose(moment_matching_loss(x[order]), value, rtol=1e-10)
    assert torch.allclose(moment_matching_loss(x @ rotation), value, rtol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [0.0, 1e-3, 1.0, 1e3])
@pytest.mark.parametrize("shape", [(16, 4), (4, 16)])
def test_finite_values_and_gradients_at_any_scale_and_dtype(dtype: torch.dtype, scale: float, shape: tuple[int, int]) -> None:
    if dtype == torch.float16 and scale == 1e3:
        # The loss is quartic in x: its gradient here (~1e8) cannot be represented in float16
        # (max 65504) once autograd casts it back to the input's dtype. bfloat16 has the range.
        pytest.skip("gradient outside float16's range")
    x = (scale * torch.randn(*shape, generator=torch.Generator().manual_seed(8))).to(dtype).requires_grad_(True)
    value = MomentMatchingLoss()(x)
    value.backward()
    assert value.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert torch.isfinite(value) and torch.isfinite(x.grad.float()).all()


@pytest.mark.parametrize("weight", [1, np.float32(1.0), torch.tensor(1.0)])
def test_functional_weights_take_any_real_scalar(weight) -> None:
    # 0-d tensors and NumPy scalars were accepted before the weights were checked; they still are
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(4))
    expected = float(moment_matching_loss(x, alpha=1.0, gamma=1.0))
    assert float(moment_matching_loss(x, alpha=weight, gamma=weight)) == pytest.approx(expected)
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        moment_matching_loss(x, alpha=True)


def test_functional_takes_integer_targets_as_before_and_refuses_bool_ones() -> None:
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(8))
    expected = float(moment_matching_loss(x, mean=torch.ones(3), cov=2.0 * torch.eye(3)))
    value = moment_matching_loss(x, mean=torch.ones(3, dtype=torch.long), cov=2 * torch.eye(3, dtype=torch.long))
    assert float(value) == pytest.approx(expected)
    with pytest.raises(TypeError, match="mean must be None or a real tensor"):
        moment_matching_loss(x, mean=torch.ones(3, dtype=torch.bool))
