"""Population mode: gradients against the full-data statistic, null calibration at N_eff, buffers."""

from __future__ import annotations

import io
import math

import pytest
import torch

from latentshape import GaussianMMD, MomentMatchingLoss, SIGReg
from latentshape.gaussian.sigreg import epps_pulley_quadrature
from latentshape.population import DEFAULT_WINDOW, PopulationMode


def _data(rows: int, d: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    # Not Gaussian (a skewed, correlated cloud), so that every gradient term is non-zero.
    x = torch.randn(rows, d, generator=generator, dtype=torch.float64)
    return 0.6 * x + 0.3 * x**2 @ torch.randn(d, d, generator=generator, dtype=torch.float64) / d


def _moment_reference(full: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """alpha ||mean||^2 + gamma ||S - I||_F^2 with the unbiased covariance, by an explicit loop over rows."""
    m, d = full.shape
    mean = sum(full[i] for i in range(m)) / m
    scatter = sum(torch.outer(full[i] - mean, full[i] - mean) for i in range(m))
    gap = scatter / (m - 1) - torch.eye(d, dtype=full.dtype)
    return alpha * (mean * mean).sum() + gamma * (gap * gap).sum()


def _sigreg_reference(full: torch.Tensor, directions: torch.Tensor, loss: SIGReg) -> torch.Tensor:
    """Mean over the fixed slices of M sum_k W_k ((mean cos - e^{-t^2/2})^2 + mean sin^2), slice by slice."""
    nodes, weights = epps_pulley_quadrature(loss.t_max, loss.points, dtype=torch.float64)
    values = []
    for column in directions.T:
        phases = (full @ column).unsqueeze(-1) * nodes
        gap = (torch.cos(phases).mean(0) - torch.exp(-0.5 * nodes**2)) ** 2 + torch.sin(phases).mean(0) ** 2
        values.append(full.shape[0] * (weights * gap).sum())
    return torch.stack(values).mean()


def _losses():
    return {
        "moments": MomentMatchingLoss(alpha=0.7, gamma=1.3, calibrate=False),
        "sigreg": SIGReg(slices=6, points=9, seed=3, calibrate=False),
    }


def _reference(name: str, full: torch.Tensor, population: PopulationMode) -> torch.Tensor:
    if name == "moments":
        return _moment_reference(full, 0.7, 1.3)
    return _sigreg_reference(full, population.feature_extra, population.loss)


@pytest.mark.parametrize("name", ["moments", "sigreg"])
def test_window_gradient_is_the_full_data_gradient_restricted_to_the_batch(name):
    window, n, d = 4, 24, 3
    full = _data(window * n, d).requires_grad_(True)
    population = PopulationMode(_losses()[name], window=window)
    for k in range(window - 1):  # the stored part of the window: the data set's other rows
        population(full.detach()[k * n:(k + 1) * n])
    batch = full.detach()[-n:].clone().requires_grad_(True)
    value = population(batch)
    (grad,) = torch.autograd.grad(value, batch)
    reference = _reference(name, full, population)
    (full_grad,) = torch.autograd.grad(reference, full)
    assert float(value.detach()) == pytest.approx(float(reference.detach()), rel=1e-10)
    assert float(full_grad[-n:].abs().max()) > 1e-3
    torch.testing.assert_close(grad, full_grad[-n:], rtol=1e-9, atol=1e-12)  # factor 1


@pytest.mark.parametrize("name", ["moments", "sigreg"])
def test_ema_gradient_is_the_full_data_gradient_restricted_to_the_batch(name):
    # The batch weighs a in the mean; its gradient is scaled by n / (N_eff a), its share of the N_eff = m points.
    a, n, m, d = 0.2, 20, 120, 3
    full = _data(m, d, seed=1).requires_grad_(True)
    population = PopulationMode(_losses()[name], momentum=a)
    population(full.detach()[:n])  # sets the buffers up (and SIGReg's directions)
    features = population.features
    extra = population.feature_extra if population.feature_extra.numel() else None
    batch = full.detach()[-n:].clone().requires_grad_(True)
    with torch.no_grad():  # a stored state whose combination with this batch is exactly the data set
        full_means = features.sums(full.detach(), extra) / m
        batch_means = features.sums(batch.detach(), extra) / n
        population.feature_sums = (full_means - a * batch_means) / (1 - a)
        population.feature_counts = torch.tensor((1.0 / m - a * a / n) / (1 - a) ** 2, dtype=torch.float64)
        population.steps.fill_(100)
    assert population.effective_size(n) == pytest.approx(m, rel=1e-12)
    value = population(batch)
    (grad,) = torch.autograd.grad(value, batch)
    reference = _reference(name, full, population)
    (full_grad,) = torch.autograd.grad(reference, full)
    assert float(value.detach()) == pytest.approx(float(reference.detach()), rel=1e-10)
    torch.testing.assert_close(grad, full_grad[-n:], rtol=1e-9, atol=1e-12)
    assert float(grad.abs().max()) > 1e-6


@pytest.mark.parametrize("penalty", ["frobenius", "w2", "kl_diag", "kl_full", "jeff_diag", "jeff_full", "mu_only"])
@pytest.mark.parametrize("calibrate", [False, True])
def test_first_call_is_the_batch_statistic(penalty, calibrate):
    loss = MomentMatchingLoss(penalty=penalty, calibrate=calibrate, null_samples=64)
    x = _data(40, 3, seed=2).to(torch.float32)
    assert float(PopulationMode(loss, window=5)(x)) == pytest.approx(float(loss(x)), rel=1e-5, abs=1e-6)


def test_ema_effective_size_matches_its_closed_form():
    a, n = 0.125, 32
    population = PopulationMode(MomentMatchingLoss(calibrate=False), momentum=a)
    sizes = []
    for step in range(200):
        sizes.append(population.effective_size(n))
        population(torch.randn(n, 2))
    assert sizes[:8] == pytest.approx([n * (t + 1) for t in range(8)])  # equal weights while 1/t > a
    assert sizes[-1] == pytest.approx(n * (2 - a) / a, rel=1e-9)


def _null_values(population: PopulationMode, n: int, d: int, steps: int, burn_in: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    values, sizes = [], []
    with torch.no_grad():
        for step in range(steps):
            size = population.effective_size(n)
            value = float(population(torch.randn(n, d, generator=generator)))
            if step >= burn_in:
                values.append(value)
                sizes.append(size)
    return torch.tensor(values, dtype=torch.float64), torch.tensor(sizes, dtype=torch.float64)


def test_ema_mean_has_the_variance_of_n_eff_points():
    # ||m||^2 of the EMA mean of N(0, I) rows has expectation d / N_eff exactly, warm-up included.
    d = 8
    population = PopulationMode(MomentMatchingLoss(alpha=1.0, gamma=0.0, calibrate=False), momentum=0.125)
    values, sizes = _null_values(population, 32, d, steps=3000, burn_in=0, seed=4)
    assert float((values * sizes / d).mean()) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("option, steps", [({"momentum": 0.125}, 8000), ({"window": 4}, 4000), ({}, 3000)])
def test_null_calibration_of_sigreg(option, steps):
    # Successive values share most of their estimate (integrated autocorrelation ~ 1/a or ~ K):
    # the step counts give standard errors of ~0.03 on the mean and the sd. {}: the default window (2).
    population = PopulationMode(SIGReg(slices=32, points=9, seed=0), **option)
    values, sizes = _null_values(population, 64, 4, steps=steps, burn_in=100, seed=5)
    expected = 64 * (2 - 0.125) / 0.125 if "momentum" in option else 64 * option.get("window", DEFAULT_WINDOW)
    assert float(sizes[-1]) == pytest.approx(expected)
    assert abs(float(values.mean())) < 0.1
    assert 0.9 < float(values.std()) < 1.1


def test_null_calibration_of_moment_matching():
    population = PopulationMode(MomentMatchingLoss(null_samples=2048), window=4)
    values, sizes = _null_values(population, 64, 3, steps=3000, burn_in=10, seed=6)
    assert float(sizes.min()) == float(sizes.max()) == 256
    assert abs(float(values.mean())) < 0.1
    assert 0.9 < float(values.std()) < 1.1


@pytest.mark.parametrize("option", [{"momentum": 0.25}, {"window": 3}])
def test_state_dict_round_trip_and_reset(option):
    generator = torch.Generator().manual_seed(7)
    trained = PopulationMode(SIGReg(slices=8, points=9, seed=1, calibrate=False), **option)
    for _ in range(5):
        trained(torch.randn(16, 3, generator=generator))
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    restored = PopulationMode(SIGReg(slices=8, points=9, seed=99, calibrate=False), **option)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    for name in ("feature_sums", "feature_counts", "feature_extra", "steps"):
        assert torch.equal(getattr(restored, name), getattr(trained, name)), name
    x = torch.randn(16, 3, generator=generator)
    assert float(restored(x)) == float(trained(x))
    assert restored.effective_size() > 16
    restored.reset_population()
    assert restored.effective_size() == 0.0 and int(restored.steps) == 0
    alone = float(restored(x))  # after a reset: the batch alone, on the same fixed directions
    assert alone == pytest.approx(float(_sigreg_reference(x.double(), restored.feature_extra, restored.loss)), rel=1e-5)


def test_eval_mode_uses_the_batch_alone_and_keeps_the_buffers():
    population = PopulationMode(MomentMatchingLoss(calibrate=False), window=4)
    generator = torch.Generator().manual_seed(8)
    for _ in range(3):
        population(torch.randn(16, 2, generator=generator))
    saved = {k: v.clone() for k, v in population.state_dict().items()}
    x = torch.randn(16, 2, generator=generator) * 1.5
    population.eval()
    assert float(population(x)) == float(population.loss(x))
    assert all(torch.equal(saved[k], v) for k, v in population.state_dict().items())
    population.train()
    assert float(population(x)) != float(population.loss(x))


def test_errors_are_specific():
    with pytest.raises(ValueError, match="either window= or momentum="):
        PopulationMode(SIGReg(), window=2, momentum=0.5)
    for momentum in (0.0, 1.5, math.nan):
        with pytest.raises(ValueError, match="momentum"):
            PopulationMode(SIGReg(), momentum=momentum)
    with pytest.raises(ValueError, match="window"):
        PopulationMode(SIGReg(), window=0)
    with pytest.raises(ValueError, match="has no population mode"):
        PopulationMode(GaussianMMD())
    population = PopulationMode(MomentMatchingLoss(calibrate=False))
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        population(torch.randn(2, 8, 3))
    population(torch.randn(8, 3))
    with pytest.raises(ValueError, match="reset_population"):
        population(torch.randn(8, 4))
    with pytest.raises(ValueError, match="NaN"):
        population(torch.full((8, 3), math.nan))


@pytest.mark.slow
def test_compiled_module_matches_eager():
    eager = PopulationMode(SIGReg(slices=8, points=9, seed=2), window=3)
    compiled = torch.compile(PopulationMode(SIGReg(slices=8, points=9, seed=2), window=3))
    generator = torch.Generator().manual_seed(9)
    for _ in range(4):
        x = torch.randn(32, 3, generator=generator)
        a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
        expected = eager(a)
        expected.backward()
        value = compiled(b)
        value.backward()
        assert float(value.detach()) == pytest.approx(float(expected.detach()), rel=1e-4, abs=1e-5)
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6)
