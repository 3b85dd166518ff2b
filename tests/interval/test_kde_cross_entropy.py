import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate

from latentshape.interval import KDECrossEntropy, kde_cross_entropy, kde_log_density, quadrature_rule


def box_kernel(u: torch.Tensor) -> torch.Tensor:
    """0/1 kernel: 1 within half a unit of the location."""
    return (u.abs() < 0.5).to(u.dtype)


def gaussian_kernel(u: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)


def laplace_kernel(u: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.exp(-u.abs())


def test_zero_one_kernel_reduces_to_softmax_cross_entropy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    locations = torch.arange(5, dtype=torch.float64)
    # Interval [y - 0.25, y + 0.25]: only location y is within 0.5 of every node, so q(x) = S_y.
    loss = kde_cross_entropy(logits, locations, labels - 0.25, labels + 0.25, kernel=box_kernel, points=7)
    reference = F.cross_entropy(logits, labels)
    assert loss.item() == pytest.approx(reference.item(), abs=1e-12)
    (grad,) = torch.autograd.grad(loss, logits)
    (reference_grad,) = torch.autograd.grad(F.cross_entropy(logits, labels), logits)
    assert torch.allclose(grad, reference_grad, atol=1e-12)
    # The closed-form gradient: S_i - 1 at the label, S_i elsewhere (per row).
    softmax = torch.softmax(logits.detach(), dim=1)
    expected = (softmax - F.one_hot(labels, 5)) / 6
    assert torch.allclose(grad, expected, atol=1e-12)


@pytest.mark.parametrize("base", [gaussian_kernel, laplace_kernel])
@pytest.mark.parametrize("scale", [1e-3, 7.0, 1e4])
def test_gradient_is_invariant_to_scaling_the_kernel(base, scale):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    locations = torch.randn(6, generator=g, dtype=torch.float64)
    low, high = torch.tensor([-1.0, 0.0, 0.5, -2.0], dtype=torch.float64), 1.0

    def scaled(u: torch.Tensor) -> torch.Tensor:
        return scale * base(u)

    loss = kde_cross_entropy(logits, locations, low, high, kernel=base, bandwidth=0.7, points=9)
    scaled_loss = kde_cross_entropy(logits, locations, low, high, kernel=scaled, bandwidth=0.7, points=9)
    (grad,) = torch.autograd.grad(loss, logits)
    (scaled_grad,) = torch.autograd.grad(scaled_loss, logits)
    assert torch.allclose(grad, scaled_grad, atol=1e-12)
    assert scaled_loss.item() == pytest.approx(loss.item() - math.log(scale), abs=1e-10)


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 8),
    seed=st.integers(0, 2**16),
    kernel=st.sampled_from(["gaussian", "laplace"]),
    bandwidth=st.floats(0.05, 5.0),
    x=st.floats(-3.0, 3.0),
)
def test_single_point_gradient_formula(m, seed, kernel, bandwidth, x):
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(m, generator=g, dtype=torch.float64)).requires_grad_(True)
    locations = 2 * torch.randn(m, generator=g, dtype=torch.float64)
    # One quadrature node sits at the interval's midpoint x (both rules).
    loss = KDECrossEntropy(kernel=kernel, bandwidth=bandwidth, points=1)(logits, locations, x - 0.1, x + 0.1)
    (grad,) = torch.autograd.grad(loss, logits)
    softmax = torch.softmax(logits.detach(), dim=0)
    u = (x - locations) / bandwidth
    # S_i K_i / sum_j S_j K_j, in log space: far locations can underflow K to 0 for all j.
    log_kernel = -0.5 * u * u if kernel == "gaussian" else -u.abs()
    expected = softmax - torch.softmax(logits.detach() + log_kernel, dim=0)
    assert torch.allclose(grad, expected, atol=1e-9)


@pytest.mark.parametrize("rule", ["gauss-legendre", "midpoint"])
def test_gradient_is_the_weighted_sum_of_per_point_gradients(rule):
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)
    locations = torch.randn(5, generator=g, dtype=torch.float64)
    loss = kde_cross_entropy(logits, locations, -0.5, 1.5, bandwidth=0.4, points=6, rule=rule)
    (grad,) = torch.autograd.grad(loss, logits)
    nodes, weights = quadrature_rule(6, rule)
    softmax = torch.softmax(logits.detach(), dim=0)
    expected = torch.zeros(5, dtype=torch.float64)
    for node, weight in zip(-0.5 + 2.0 * nodes, weights):
        kernel_values = gaussian_kernel((node - locations) / 0.4)
        expected += weight * (softmax - softmax * kernel_values / (softmax * kernel_values).sum())
    assert torch.allclose(grad, expected, atol=1e-12)


@pytest.mark.parametrize(
    "kernel, rule, points, tolerance",
    [("gaussian", "gauss-legendre", 32, 1e-7), ("gaussian", "gauss-legendre", 96, 1e-11), ("laplace", "midpoint", 400, 1e-4), ("laplace", "gauss-legendre", 64, 1e-3)],
)
def test_quadrature_matches_adaptive_integration(kernel, rule, points, tolerance):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(7, generator=g, dtype=torch.float64)
    locations = torch.randn(7, generator=g, dtype=torch.float64)
    low, high, bandwidth = -1.2, 0.9, 0.3
    softmax = torch.softmax(logits, dim=0).numpy()
    centres = locations.numpy()

    def log_q(x: float) -> float:
        u = (x - centres) / bandwidth
        values = (gaussian_kernel(torch.from_numpy(u)) if kernel == "gaussian" else laplace_kernel(torch.from_numpy(u))).numpy()
        return math.log(float((softmax * values / bandwidth).sum()))

    integral, _ = integrate.quad(log_q, low, high, points=list(centres[(centres > low) & (centres < high)]), limit=200, epsabs=1e-13, epsrel=1e-13)
    expected = -integral / (high - low)
    value = kde_cross_entropy(logits, locations, low, high, kernel, bandwidth, points, rule)
    assert value.item() == pytest.approx(expected, abs=tolerance)


def test_quadrature_rules():
    for rule in ("gauss-legendre", "midpoint"):
        for points in (1, 2, 5, 16):
            nodes, weights = quadrature_rule(points, rule)
            assert nodes.shape == weights.shape == (points,)
            assert weights.sum().item() == pytest.approx(1.0, abs=1e-14)
            assert ((nodes > 0) & (nodes < 1)).all()
    # Gauss-Legendre with 3 nodes integrates x^5 on [0, 1] exactly: 1/6.
    nodes, weights = quadrature_rule(3)
    assert (weights * nodes**5).sum().item() == pytest.approx(1 / 6, abs=1e-14)


def test_gradcheck_float64_logits_and_locations():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    locations = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    for kernel in ("gaussian", "laplace"):
        assert torch.autograd.gradcheck(
            lambda z, x: kde_cross_entropy(z, x, -0.5, 0.5, kernel, 0.8, points=5), (logits, locations)
        )


def test_shapes_broadcasting_and_reductions():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(4, 6, generator=g, dtype=torch.float64)
    locations = torch.linspace(-2, 2, 6, dtype=torch.float64)
    low = torch.tensor([-1.0, -0.5, 0.0, 0.5], dtype=torch.float64)
    per_row = kde_cross_entropy(logits, locations, low, low + 1.0, reduction="none")
    assert per_row.shape == (4,)
    for row in range(4):
        single = kde_cross_entropy(logits[row], locations, float(low[row]), float(low[row]) + 1.0)
        assert single.item() == pytest.approx(per_row[row].item(), abs=1e-12)
    expanded = kde_cross_entropy(logits, locations.expand(4, 6), low, low + 1.0, reduction="none")
    assert torch.allclose(expanded, per_row, atol=1e-12)
    assert kde_cross_entropy(logits, locations, low, low + 1.0, reduction="sum").item() == pytest.approx(per_row.sum().item())
    loss_fn = KDECrossEntropy()
    assert loss_fn(logits, locations, low, low + 1.0).item() == pytest.approx(per_row.mean().item())
    assert kde_cross_entropy(torch.randn(2, 3, 6), locations, 0.0, 1.0, reduction="none").shape == (2, 3)


def test_minus_infinity_logits_mask_locations():
    logits = torch.tensor([0.3, -math.inf, 1.2, -0.4], dtype=torch.float64, requires_grad=True)
    locations = torch.tensor([0.0, 0.5, 1.0, 1.5], dtype=torch.float64)
    keep = torch.tensor([0, 2, 3])
    masked = kde_cross_entropy(logits, locations, 0.2, 0.8, bandwidth=0.3)
    dropped = kde_cross_entropy(logits.detach()[keep], locations[keep], 0.2, 0.8, bandwidth=0.3)
    assert masked.item() == pytest.approx(dropped.item(), abs=1e-12)
    masked.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[1].item() == 0.0


def test_far_away_mass_is_finite_and_exact():
    # q(x) = K_h(x - x_0) for one location: the loss is known in closed form even when
    # the density underflows: log K = -(x - x0)^2 / (2 h^2) - log(h sqrt(2 pi)).
    logits = torch.tensor([[0.0]], requires_grad=True)
    locations = torch.tensor([1000.0])
    loss = kde_cross_entropy(logits, locations, 0.0, 1.0, bandwidth=0.1)
    mean_square = (1000.0**2 - 1000.0 + 1.0 / 3.0)  # mean of (x - 1000)^2 over [0, 1]
    expected = mean_square / (2 * 0.01) + math.log(0.1 * math.sqrt(2 * math.pi))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    many = torch.tensor([[50.0, -50.0, 0.0]], requires_grad=True)
    value = kde_cross_entropy(many, torch.tensor([500.0, 0.5, -800.0]), 0.0, 1.0, "laplace", 0.01)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(many.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_logits(dtype):
    logits = torch.randn(3, 5).to(dtype).requires_grad_(True)
    value = kde_cross_entropy(logits, torch.linspace(0, 1, 5), 0.2, 0.6, bandwidth=0.2)
    assert value.dtype == torch.float32
    value.backward()
    assert logits.grad.dtype == dtype and torch.isfinite(logits.grad).all()
    assert kde_cross_entropy(logits.detach().double(), torch.linspace(0, 1, 5), 0.2, 0.6).dtype == torch.float64


def test_training_moves_the_mass_into_the_interval():
    locations = torch.linspace(-3, 3, 25)
    logits = torch.zeros(1, 25, requires_grad=True)
    loss_fn = KDECrossEntropy(bandwidth=0.25, points=16)
    optimizer = torch.optim.SGD([logits], lr=1.0)
    start = loss_fn(logits, locations, 1.0, 2.0).item()
    for _ in range(100):
        optimizer.zero_grad()
        loss_fn(logits, locations, 1.0, 2.0).backward()
        optimizer.step()
    inside = (locations >= 1.0) & (locations <= 2.0)
    assert loss_fn(logits, locations, 1.0, 2.0).item() < start - 1.0
    assert torch.softmax(logits.detach(), dim=1)[0, inside].sum().item() > 0.9


def test_log_density_helper():
    logits = torch.tensor([0.0, math.log(3.0)])
    locations = torch.tensor([0.0, 2.0])
    at = torch.tensor([0.0, 1.0, 2.0])
    expected = torch.log(0.25 * gaussian_kernel(at - 0.0) + 0.75 * gaussian_kernel(at - 2.0))
    assert torch.allclose(kde_log_density(logits, locations, at), expected, atol=1e-6)


def test_bad_arguments():
    for kwargs in ({"kernel": "cosine"}, {"bandwidth": 0.0}, {"bandwidth": -1.0}, {"bandwidth": math.nan},
                   {"points": 0}, {"rule": "simpson"}, {"reduction": "none"}):
        with pytest.raises(ValueError):
            KDECrossEntropy(**kwargs)
    loss_fn = KDECrossEntropy()
    logits, locations = torch.zeros(2, 3), torch.arange(3.0)
    with pytest.raises(ValueError, match="low < high"):
        loss_fn(logits, locations, 1.0, 1.0)
    with pytest.raises(ValueError, match="low < high"):
        loss_fn(logits, locations, torch.tensor([0.0, 2.0]), 1.0)
    with pytest.raises(ValueError, match="NaN"):
        loss_fn(torch.tensor([[0.0, math.nan, 0.0]]), locations, 0.0, 1.0)
    with pytest.raises(ValueError, match="entirely -inf"):
        loss_fn(torch.full((1, 3), -math.inf), locations, 0.0, 1.0)
    with pytest.raises(ValueError, match="locations"):
        loss_fn(logits, torch.arange(4.0), 0.0, 1.0)
    with pytest.raises(ValueError, match="locations"):
        loss_fn(logits, torch.tensor([0.0, math.inf, 1.0]), 0.0, 1.0)
    with pytest.raises(TypeError):
        loss_fn(torch.zeros(2, 3, dtype=torch.long), locations, 0.0, 1.0)
    with pytest.raises(ValueError, match="same shape"):
        KDECrossEntropy(kernel=lambda u: u.sum())(logits, locations, 0.0, 1.0)
