"""The shared moment penalties against independent float64 numpy / scipy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentshape.gaussian.moment_penalties import MOMENT_PENALTIES, covariance_eigenvalues, moment_penalty


def _loop_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance by explicit loops over the rows."""
    n, d = x.shape
    mean = np.zeros(d)
    for row in x:
        mean += row
    mean /= n
    cov = np.zeros((d, d))
    for row in x:
        cov += np.outer(row - mean, row - mean)
    return mean, cov / (n - 1)


def _reference(x: np.ndarray, kind: str) -> float:
    mean, cov = _loop_moments(x)
    d = x.shape[1]
    var = np.diag(cov)
    if kind == "w2":
        root = scipy.linalg.sqrtm(cov).real
        value = mean @ mean + np.trace(cov + np.eye(d) - 2.0 * root)
    elif kind == "kl_diag":
        value = 0.5 * np.sum(var + mean**2 - 1.0 - np.log(var))
    elif kind == "kl_full":
        value = 0.5 * (np.trace(cov) + mean @ mean - d - np.linalg.slogdet(cov)[1])
    elif kind == "jeff_diag":
        value = 0.25 * np.sum(var + 1.0 / var + mean**2 * (1.0 + 1.0 / var) - 2.0)
    elif kind == "jeff_full":
        inverse = np.linalg.inv(cov)
        value = 0.25 * (np.trace(cov) + np.trace(inverse) + mean @ (np.eye(d) + inverse) @ mean - 2.0 * d)
    else:
        value = mean @ mean
    return float(value) / d


# jeff_full solves mu^T S^-1 mu with a ridge S + 1e-6 I (moment_penalties.py), a relative bias of ~1e-6 / lambda_min.
_RELATIVE_TOLERANCE = {"jeff_full": 1e-5}


def _skewed_batch(n: int, d: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(d, d, generator=generator, dtype=torch.float64) / math.sqrt(d) + torch.eye(d, dtype=torch.float64)
    shift = torch.randn(d, generator=generator, dtype=torch.float64)
    return torch.randn(n, d, generator=generator, dtype=torch.float64) @ mixing + shift


@pytest.mark.parametrize("kind", MOMENT_PENALTIES)
def test_each_penalty_matches_a_float64_reference(kind: str) -> None:
    x = _skewed_batch(40, 5, seed=1)
    expected = _reference(x.numpy(), kind)
    rel = _RELATIVE_TOLERANCE.get(kind, 1e-9)
    assert float(moment_penalty(x, kind)) == pytest.approx(expected, rel=rel, abs=1e-12)


@pytest.mark.parametrize("kind", MOMENT_PENALTIES)
def test_leading_dims_are_independent_batches(kind: str) -> None:
    x = torch.stack([_skewed_batch(30, 4, seed=s) for s in range(3)])
    values = moment_penalty(x, kind)
    assert values.shape == (3,)
    for b in range(3):
        rel = _RELATIVE_TOLERANCE.get(kind, 1e-9)
        assert float(values[b]) == pytest.approx(_reference(x[b].numpy(), kind), rel=rel)


def test_w2_with_more_dimensions_than_points_counts_missing_eigenvalues_as_zero() -> None:
    x = _skewed_batch(6, 10, seed=2)  # covariance of rank 5 in R^10
    expected = _reference(x.numpy(), "w2")  # sqrtm of the singular covariance: zero eigenvalues give 0
    # The implementation floors sqrt(eigenvalue) at 1e-6: each of the 5 null directions is off by ~2e-6 / d.
    assert float(moment_penalty(x, "w2")) == pytest.approx(expected, abs=5 * 2e-6 / 10 + 1e-9)
    eig = covariance_eigenvalues(x - x.mean(dim=0))
    assert eig.shape == (10,)
    assert torch.allclose(eig[:5], torch.zeros(5, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(eig[5:], torch.linalg.eigvalsh(torch.cov(x.T))[5:], rtol=1e-9)


@pytest.mark.parametrize("kind", MOMENT_PENALTIES)
@pytest.mark.parametrize("shape", [(6, 10), (8, 8), (16, 3)])
def test_rank_deficient_batches_give_finite_values_and_gradients(kind: str, shape: tuple[int, int]) -> None:
    n, d = shape
    base = _skewed_batch(n, d, seed=3)
    base[: n // 2] = base[0]  # repeated rows: rank deficient even when d < N
    for x in (base, torch.zeros(n, d, dtype=torch.float64)):
        x = x.clone().requires_grad_(True)
        value = moment_penalty(x, kind)
        value.backward()
        assert torch.isfinite(value)
        assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("kind", MOMENT_PENALTIES)
def test_gradients_match_finite_differences(kind: str) -> None:
    x = _skewed_batch(9, 3, seed=4).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: moment_penalty(t, kind), (x,))


def test_dtypes_float64_is_honoured_and_low_precision_computes_in_float32() -> None:
    x = _skewed_batch(20, 3, seed=5)
    assert moment_penalty(x, "w2").dtype == torch.float64
    assert moment_penalty(x.float(), "w2").dtype == torch.float32
    assert moment_penalty(x.to(torch.bfloat16), "kl_full").dtype == torch.float32


def test_unknown_kind_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown moment penalty"):
        moment_penalty(torch.zeros(4, 2), "frobenius")  # type: ignore[arg-type]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), kind=st.sampled_from(MOMENT_PENALTIES))
def test_permutation_invariance(seed: int, kind: str) -> None:
    x = _skewed_batch(12, 3, seed)
    order = torch.randperm(12, generator=torch.Generator().manual_seed(seed))
    assert torch.allclose(moment_penalty(x, kind), moment_penalty(x[order], kind), rtol=1e-10, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), kind=st.sampled_from(["w2", "kl_full", "jeff_full", "mu_only"]))
def test_rotation_invariance_of_the_full_covariance_penalties(seed: int, kind: str) -> None:
    x = _skewed_batch(12, 3, seed)
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64))
    assert torch.allclose(moment_penalty(x, kind), moment_penalty(x @ rotation, kind), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("kind", ["w2", "kl_full", "jeff_full"])
@pytest.mark.parametrize("shift", [0.0, 100.0])
def test_float32_blocked_scatter_matches_float64(kind, shift, monkeypatch):
    """float32 batches take the blocked float32 scatter (float64 accumulation): value and gradient
    agree with the float64 path, also far from the origin (centring at a detached shift)."""
    from latentshape.gaussian import blocked_moments, moment_penalties as moments

    monkeypatch.setattr(blocked_moments, "_BLOCK_ROWS", 300)  # several blocks
    x = (torch.randn(2, 1000, 6, generator=torch.Generator().manual_seed(3)) + shift).requires_grad_()
    x64 = x.detach().double().requires_grad_()
    value, value64 = moments.moment_penalty(x, kind), moments.moment_penalty(x64, kind)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value.double(), value64, rtol=2e-5, atol=1e-9)
    grad, = torch.autograd.grad(value.sum(), x)
    grad64, = torch.autograd.grad(value64.sum(), x64)
    torch.testing.assert_close(grad.double(), grad64, rtol=1e-3, atol=1e-4 * grad64.abs().max().item())


def test_blocked_scatter_gradcheck(monkeypatch):
    from latentshape.gaussian import blocked_moments, moment_penalties as moments

    monkeypatch.setattr(blocked_moments, "_BLOCK_ROWS", 7)
    x = torch.randn(2, 20, 3, dtype=torch.float64, requires_grad=True)
    shift = torch.randn(2, 1, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: blocked_moments._ShiftedSums.apply(a, shift), (x,))
    assert torch.autograd.gradcheck(lambda a: blocked_moments._ShiftedSums.apply(a, shift[0]), (x[0].detach().requires_grad_(),))


def test_raw_and_shifted_blocked_sums_agree_and_the_shift_is_used_far_from_the_origin(monkeypatch):
    """The raw sums (x read in place) give the shifted sums' mean and covariance (float64, 1e-12), their
    backward passes gradcheck, and a batch whose mean is large against its spread takes the shifted sums."""
    from latentshape.gaussian import blocked_moments

    monkeypatch.setattr(blocked_moments, "_BLOCK_ROWS", 7)
    x = torch.randn(2, 40, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    n = x.shape[-2]
    total, raw = blocked_moments._ShiftedSums.apply(x, None)
    shift = x.mean(dim=-2, keepdim=True)
    offset, scatter = blocked_moments._ShiftedSums.apply(x, shift)
    torch.testing.assert_close(total / n, shift.squeeze(-2) + offset / n, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(raw - n * (total / n).unsqueeze(-1) * (total / n).unsqueeze(-2),
                               scatter - offset.unsqueeze(-1) * offset.unsqueeze(-2) / n, rtol=1e-12, atol=1e-12)
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda a: blocked_moments._ShiftedSums.apply(a, None), (x,))
    assert torch.autograd.gradcheck(lambda a: blocked_moments._ShiftedSums.apply(a, None), (x[0].detach().requires_grad_(),))
    calls = []
    original = blocked_moments._ShiftedSums.apply
    monkeypatch.setattr(blocked_moments._ShiftedSums, "apply", lambda a, s: calls.append(s is None) or original(a, s))
    blocked_moments.blocked_moments(torch.randn(500, 3))
    assert calls == [True]
    calls.clear()
    blocked_moments.blocked_moments(torch.randn(500, 3) + 1.0)  # mean^2 = 1 > variance / 16: shifted
    assert calls == [True, False]
