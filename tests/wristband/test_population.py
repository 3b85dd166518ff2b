"""Population mode of WristbandLoss: full-data references, null calibration at N_eff, buffers, errors."""

from __future__ import annotations

import io

import pytest
import torch

from latentshape import WristbandLoss
from latentshape.population import PopulationMode
from latentshape.wristband.components import raw_components
from latentshape.wristband.blocks import low_degree_coefficients
from latentshape.wristband.coordinates import coordinate_smooth_statistic
from latentshape.wristband.mercer import radial_coefficients


def _data(rows: int, d: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    # A skewed, correlated cloud: every component is far from its null value and has a gradient.
    x = torch.randn(rows, d, generator=generator, dtype=torch.float64)
    return 0.7 * x + 0.3 * x**2 @ torch.randn(d, d, generator=generator, dtype=torch.float64) / d


def _filled(population: PopulationMode, data: torch.Tensor, batch: int) -> torch.Tensor:
    """Feed every batch of ``data`` but the last; return the last (a leaf requiring grad)."""
    for start in range(0, data.shape[0] - batch, batch):
        population(data[start:start + batch])
    return data[-batch:].clone().requires_grad_(True)


@pytest.mark.parametrize("calibrate", [False, True])
def test_window_gradient_is_the_full_data_gradient_restricted_to_the_batch(calibrate):
    # lambda_rad = 0: every remaining component is pooled, so a full window is the full-data statistic;
    # lambda_coord = 0 here (coord's gradient is rescaled, next test).
    data, batch, window = _data(4 * 96, 5), 96, 4
    options = dict(lambda_sharp=0, lambda_rad=0, lambda_ang=0.5, lambda_coord=0, calibrate=calibrate)
    population = PopulationMode(WristbandLoss(**options), window=window)
    last = _filled(population, data, batch)
    value = population(last)
    value.backward()
    full = torch.cat([data[:-batch], last.detach()]).requires_grad_(True)
    reference = WristbandLoss(**options)(full)
    reference.backward()
    assert float(value.detach()) == pytest.approx(float(reference.detach()), rel=1e-9, abs=1e-9)
    torch.testing.assert_close(last.grad, full.grad[-batch:], rtol=1e-7, atol=1e-10)
    assert float(last.grad.abs().max()) > 1e-6


def test_coordinate_gradient_is_the_full_data_one_times_the_batch_share():
    # coord ~ n^2 (Q_j ~ n, squared): its gradient at the pooled estimate is scaled by n / N_eff,
    # the value is the full-data one; the other components keep the full-data gradient.
    data, batch, window = _data(4 * 96, 5, seed=3), 96, 4
    options = dict(lambda_sharp=0, lambda_rad=0, lambda_ang=0.5, calibrate=False)
    population = PopulationMode(WristbandLoss(lambda_coord=2.0, **options), window=window)
    last = _filled(population, data, batch)
    value = population(last)
    value.backward()
    full = torch.cat([data[:-batch], last.detach()]).requires_grad_(True)
    rest = WristbandLoss(lambda_coord=0, **options)(full)
    coord = coordinate_smooth_statistic(full)
    assert float(value.detach()) == pytest.approx(float(rest + 2.0 * coord), rel=1e-9)
    (rest + 2.0 * coord * (batch / full.shape[0])).backward()  # the value is unchanged; only the gradient is scaled
    torch.testing.assert_close(last.grad, full.grad[-batch:], rtol=1e-7, atol=1e-10)


def test_raw_components_are_the_full_data_ones_and_rad_is_the_batch_one():
    data, batch = _data(3 * 80, 4, seed=1), 80
    population = PopulationMode(WristbandLoss(lambda_sharp=0, lambda_ang=0.3, calibrate=False), window=3)
    last = _filled(population, data, batch)
    features = population.features
    means, n_eff = population._pooled(features.sums(last, None), batch)
    pooled = (features.with_batch(features.raw(means, n_eff, None), last)).detach()
    full = raw_components(data, population.loss.config)
    alone = raw_components(last.detach(), population.loss.config)
    assert n_eff == data.shape[0]
    for index, name in enumerate(("rep", "rad", "ang", "mom", "sharp", "coord")):
        expected = alone[index] if name == "rad" else full[index]
        assert float(pooled[index]) == pytest.approx(float(expected), rel=1e-9, abs=1e-12), name
    # the coordinate term by an independent route (its own backward and Chebyshev sums)
    assert float(pooled[5]) == pytest.approx(float(coordinate_smooth_statistic(data)), rel=1e-9)


def _sharp_head(x: torch.Tensor, beta: float, k_modes: int, scale: float) -> torch.Tensor:
    """Degrees <= 2 of the sharp wristband energy by an explicit double sum over pairs (zonal harmonics)."""
    m, d = x.shape
    norm2 = (x * x).sum(dim=-1)
    u = x / norm2.sqrt().unsqueeze(-1)
    t = torch.special.gammainc(torch.full_like(norm2, d / 2), norm2 / 2)  # chi2_d CDF of |x|^2
    a = torch.tensor(radial_coefficients(beta, k_modes), dtype=x.dtype)
    lam = low_degree_coefficients(d, (scale,), (1.0,))
    w = torch.cos(t.unsqueeze(-1) * torch.pi * torch.arange(k_modes + 1, dtype=x.dtype))
    radial = (w * a) @ w.T
    cosine = u @ u.T
    angular = lam[0] + lam[1] * d * cosine + lam[2] * (d + 2) / 2 * (d * cosine**2 - 1)
    return (radial * angular).sum() / m**2


def test_sharp_term_pools_its_low_degrees_and_keeps_the_batch_residual():
    # Reference: sharp = log(E_<=2(all data) + E_>2(batch)) / beta, with E_<=2 by brute force and the
    # batch's residual as its full sharp energy minus its brute-force head; the rest: the full-data loss.
    data, batch = _data(4 * 64, 4, seed=2), 64
    loss = WristbandLoss(lambda_rad=0, lambda_ang=0.5, calibrate=False)
    population = PopulationMode(loss, window=4)
    last = _filled(population, data, batch)
    value = population(last)
    value.backward()
    full = torch.cat([data[:-batch], last.detach()]).requires_grad_(True)
    config, beta = loss.config, loss.config.beta
    raw = raw_components(full, config)
    alone = full[-batch:]
    residual = torch.exp(beta * raw_components(alone, config)[4]) - _sharp_head(alone, beta, config.k_modes, 8.0)
    sharp = torch.log(_sharp_head(full, beta, config.k_modes, 8.0) + residual) / beta
    reference = raw[0] + 0.5 * raw[2] + raw[3] + sharp + raw[5]
    share = batch / full.shape[0]  # coord's gradient is scaled by n / N_eff, its value is not
    (reference - (1 - share) * raw[5]).backward()
    assert float(value.detach()) == pytest.approx(float(reference.detach()), rel=1e-9)
    torch.testing.assert_close(last.grad, full.grad[-batch:], rtol=1e-6, atol=1e-10)
    sharp_only = PopulationMode(WristbandLoss(lambda_rad=0, lambda_mom=0, lambda_coord=0, calibrate=False), window=4)
    assert torch.isfinite(sharp_only(_data(32, 4))).item()


@pytest.mark.parametrize("sharp", [0.0, 1.0])
@pytest.mark.parametrize("calibrate", [False, True])
def test_window_one_is_the_batch_loss(calibrate, sharp):
    loss = WristbandLoss(lambda_sharp=sharp, calibrate=calibrate)
    population = PopulationMode(loss, window=1)
    for seed in range(3):
        x = _data(64, 6, seed=seed)
        assert float(population(x)) == pytest.approx(float(loss(x)), rel=1e-8, abs=1e-8)


def _null_values(population, *, n, d, steps, warm_up, seed):
    """Population-mode values on fresh N(0, I) batches, after ``warm_up`` steps that fill the estimate."""
    generator = torch.Generator().manual_seed(seed)
    values = [float(population(torch.randn(n, d, generator=generator))) for _ in range(steps + warm_up)]
    return torch.tensor(values[warm_up:])


def test_null_calibration_at_the_effective_size():
    # Fresh N(0, I) batches, a window of 8: pooled components at N_eff = 1024, rad at N = 128.
    # Successive values share 7/8 of their estimate: 4000 steps give standard errors of ~0.05.
    torch.manual_seed(0)
    population = PopulationMode(WristbandLoss(lambda_sharp=0, calibrate=True), window=8)
    values = _null_values(population, n=128, d=8, steps=4000, warm_up=20, seed=3)
    assert population.effective_size(128) == 1024
    assert abs(float(values.mean())) < 0.1
    assert 0.9 < float(values.std()) < 1.1


@pytest.mark.slow
def test_null_calibration_with_the_sharp_term():
    # The sharp term's null is Monte-Carlo (1024 draws at each of N_eff = 128, 192, 256 during warm-up;
    # its sd to ~2%); 3000 steps sharing 3/4 of their estimate give standard errors of ~0.04.
    population = PopulationMode(WristbandLoss(null_samples=1024), window=4)
    values = _null_values(population, n=64, d=4, steps=3000, warm_up=10, seed=5)
    assert abs(float(values.mean())) < 0.1
    assert 0.9 < float(values.std()) < 1.1


def test_rad_correlations_are_scaled_by_the_batch_share():
    population = PopulationMode(WristbandLoss(lambda_sharp=0), window=4)
    mixed = population.features.null_stats(512.0, 128, 6)
    batch = population.loss.null_stats(128, 6)
    pooled = population.loss.null_stats(512, 6)
    assert float(mixed.std[1]) == float(batch.std[1]) and float(mixed.std[0]) == float(pooled.std[0])
    torch.testing.assert_close(mixed.corr[1, [0, 2, 3, 5]], batch.corr[1, [0, 2, 3, 5]] / 4)
    torch.testing.assert_close(mixed.corr[0, 2:], pooled.corr[0, 2:])
    assert torch.equal(mixed.corr, mixed.corr.T)


def test_state_dict_round_trip_and_eval_mode():
    generator = torch.Generator().manual_seed(4)
    trained = PopulationMode(WristbandLoss(lambda_sharp=0), momentum=0.25)
    for _ in range(5):
        trained(torch.randn(32, 3, generator=generator))
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    restored = PopulationMode(WristbandLoss(lambda_sharp=0), momentum=0.25)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    x = 1.3 * torch.randn(32, 3, generator=generator)
    restored.eval()
    assert float(restored(x)) == float(restored.loss(x))  # eval: the batch alone, buffers untouched
    restored.train()
    assert float(restored(x)) == float(trained(x))
    assert float(trained(x)) != float(trained.loss(x))


def test_unsupported_configurations_are_refused():
    with pytest.raises(ValueError, match="method='spectral'"):
        PopulationMode(WristbandLoss(lambda_sharp=0, method="pairwise"))
    with pytest.raises(ValueError, match="average='global'"):
        PopulationMode(WristbandLoss(lambda_sharp=0, average="per_point"))
    with pytest.raises(ValueError, match="distributed"):
        PopulationMode(WristbandLoss(lambda_sharp=0, distributed=True))
