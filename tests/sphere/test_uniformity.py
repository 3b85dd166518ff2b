import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentshape.sphere import AlignmentLoss, UniformityLoss, alignment_loss, uniformity_loss


def brute_uniformity(x: torch.Tensor, t: float) -> float:
    x = x.double()
    units = [row / row.norm() for row in x]
    total, count = 0.0, 0
    for i, u in enumerate(units):
        for j, v in enumerate(units):
            if i != j:
                total += math.exp(-t * float(((u - v) ** 2).sum()))
                count += 1
    return math.log(total / count)


def brute_alignment(x: torch.Tensor, y: torch.Tensor, alpha: float) -> float:
    values = [float((a.double() / a.double().norm() - b.double() / b.double().norm()).norm()) ** alpha for a, b in zip(x, y)]
    return sum(values) / len(values)


def random_rotation(d: int, seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


@pytest.mark.parametrize("t", [0.5, 2.0, 7.0])
def test_uniformity_matches_float64_brute_force(t):
    x = torch.randn(9, 4, generator=torch.Generator().manual_seed(1)) * 3.0
    assert uniformity_loss(x, t=t).item() == pytest.approx(brute_uniformity(x, t), abs=1e-5)
    x64 = x.double()
    assert uniformity_loss(x64, t=t).item() == pytest.approx(brute_uniformity(x, t), abs=1e-12)


@pytest.mark.parametrize("alpha", [1.0, 1.5, 2.0, 3.0])
def test_alignment_matches_float64_brute_force(alpha):
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(11, 5, generator=g, dtype=torch.float64), torch.randn(11, 5, generator=g, dtype=torch.float64)
    assert alignment_loss(x, y, alpha=alpha).item() == pytest.approx(brute_alignment(x, y, alpha), abs=1e-12)
    assert AlignmentLoss(alpha=alpha)(x, y).item() == pytest.approx(brute_alignment(x, y, alpha), abs=1e-12)


def test_uniformity_of_known_configurations():
    # Antipodal pair: ||u - v||^2 = 4; regular simplex in 3-D: ||u - v||^2 = 8/3.
    pair = torch.tensor([[0.0, 2.0], [0.0, -5.0]])
    assert uniformity_loss(pair, t=2.0).item() == pytest.approx(-8.0, abs=1e-6)
    tetrahedron = torch.tensor([[1.0, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    assert uniformity_loss(tetrahedron, t=1.5).item() == pytest.approx(-1.5 * 8 / 3, abs=1e-6)


def test_minimizing_uniformity_reaches_the_simplex():
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([x], lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        uniformity_loss(x).backward()
        optimizer.step()
    units = x.detach() / x.detach().norm(dim=1, keepdim=True)
    cosines = (units @ units.T)[~torch.eye(4, dtype=torch.bool)]
    assert torch.allclose(cosines, torch.full_like(cosines, -1 / 3), atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 9), d=st.integers(1, 5), seed=st.integers(0, 2**16), t=st.floats(0.1, 10.0))
def test_uniformity_invariances(n, d, seed, t):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    value = uniformity_loss(x, t=t)
    permutation = torch.randperm(n, generator=g)
    scales = torch.rand(n, 1, generator=g, dtype=torch.float64) * 10 + 0.1
    rotation = random_rotation(d, seed)
    assert torch.allclose(uniformity_loss(x[permutation], t=t), value, atol=1e-10)
    assert torch.allclose(uniformity_loss(x * scales, t=t), value, atol=1e-10)
    assert torch.allclose(uniformity_loss(x @ rotation, t=t), value, atol=1e-10)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 8), d=st.integers(1, 5), seed=st.integers(0, 2**16), alpha=st.floats(0.5, 4.0))
def test_alignment_invariances(n, d, seed, alpha):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
    value = alignment_loss(x, y, alpha=alpha)
    permutation = torch.randperm(n, generator=g)
    rotation = random_rotation(d, seed)
    assert torch.allclose(alignment_loss(x[permutation], y[permutation], alpha=alpha), value, atol=1e-10)
    assert torch.allclose(alignment_loss(x @ rotation, y @ rotation, alpha=alpha), value, atol=1e-10)
    assert torch.allclose(alignment_loss(y, x, alpha=alpha), value, atol=1e-10)


def test_leading_dims_are_independent_batches():
    x = torch.randn(2, 3, 6, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y = x + 0.3
    per_batch = torch.stack([uniformity_loss(x[a, b]) for a in range(2) for b in range(3)])
    assert uniformity_loss(x).item() == pytest.approx(per_batch.mean().item(), abs=1e-12)
    assert alignment_loss(x, y).item() == pytest.approx(alignment_loss(x.reshape(-1, 4), y.reshape(-1, 4)).item(), abs=1e-12)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: uniformity_loss(a, t=2.0), (x,))
    assert torch.autograd.gradcheck(lambda a, b: alignment_loss(a, b, alpha=1.5), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: alignment_loss(a, b, alpha=2.0), (x, y))


def test_zero_vectors_and_coinciding_pairs_have_finite_gradients():
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 2.0, 0.0]], requires_grad=True)
    uniformity_loss(x).backward()
    assert torch.isfinite(x.grad).all()
    x.grad = None
    alignment_loss(x, x.detach().clone(), alpha=1.0).backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs_compute_in_float32(dtype):
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(5)).to(dtype).requires_grad_(True)
    value = uniformity_loss(x)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(uniformity_loss(x.detach().float()).item(), abs=1e-5)
    value.backward()
    assert x.grad.dtype == dtype and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("scale", [1e-30, 1e-6, 1e6, 1e30])
def test_extreme_scales(scale):
    x = (torch.randn(16, 4, generator=torch.Generator().manual_seed(6)) * scale).requires_grad_(True)
    value = uniformity_loss(x)
    value.backward()
    assert value.item() == pytest.approx(uniformity_loss(x.detach() / scale).item(), abs=1e-5)
    assert torch.isfinite(x.grad).all()


def test_float64_is_honoured():
    x = torch.randn(6, 3, dtype=torch.float64)
    assert uniformity_loss(x).dtype == torch.float64
    assert alignment_loss(x, x).dtype == torch.float64


def test_normalize_false_requires_unit_rows():
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(7))
    units = x / x.norm(dim=1, keepdim=True)
    assert UniformityLoss(normalize=False)(units).item() == pytest.approx(UniformityLoss()(x).item(), abs=1e-6)
    with pytest.raises(ValueError, match="L2-normalized"):
        UniformityLoss(normalize=False)(x)
    with pytest.raises(ValueError, match="L2-normalized"):
        AlignmentLoss(normalize=False)(units, x)
    assert AlignmentLoss(normalize=False)(units, units).item() == pytest.approx(0.0, abs=1e-10)


def test_bad_arguments():
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError):
            UniformityLoss(t=bad)
        with pytest.raises(ValueError):
            AlignmentLoss(alpha=bad)
    with pytest.raises(TypeError):
        uniformity_loss(torch.ones(4, 2, dtype=torch.int64))
    with pytest.raises(ValueError):
        uniformity_loss(torch.ones(1, 3))
    with pytest.raises(ValueError):
        uniformity_loss(torch.tensor([[1.0, math.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="same shape"):
        alignment_loss(torch.ones(3, 2), torch.ones(4, 2))


def test_modules_return_0d_tensors():
    x = torch.randn(2, 5, 3)
    assert UniformityLoss()(x).shape == torch.Size([])
    assert AlignmentLoss()(x, x + 1).shape == torch.Size([])
    assert "t=2.0" in repr(UniformityLoss())
