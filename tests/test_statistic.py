"""The one batch-statistic contract: configuration, calibration defaults, null law, agreement with check()."""

from __future__ import annotations

import importlib
import warnings

import pytest
import torch

import latentshape
from latentshape import GaussianMMD, MomentMatchingLoss, SIGReg, SlicedWassersteinGaussian, WristbandLoss
from latentshape.calibration import NullStats, clear_null_cache
from latentshape.statistic import BatchStatistic

STATISTICS = {
    "wristband": lambda **kw: WristbandLoss(**kw),
    "moment_matching": lambda **kw: MomentMatchingLoss(**kw),
    "sigreg": lambda **kw: SIGReg(slices=16, **kw),
    "mmd": lambda **kw: GaussianMMD(**kw),
    "sliced_w2": lambda **kw: SlicedWassersteinGaussian(slices=16, **kw),
}


@pytest.mark.parametrize("name", STATISTICS)
def test_every_statistic_shares_the_contract_and_its_defaults(name):
    loss_fn = STATISTICS[name]()
    assert isinstance(loss_fn, BatchStatistic)
    assert loss_fn.calibrate is True and loss_fn.null_samples >= 16 and loss_fn.null_seed == 0
    for bad in ("no", 1, None):
        with pytest.raises(ValueError, match="calibrate must be True or False"):
            STATISTICS[name](calibrate=bad)
    with pytest.raises(ValueError, match="null_samples must be an integer >= 16"):
        STATISTICS[name](null_samples=8)
    with pytest.raises(ValueError, match="distributed must be True or False"):
        STATISTICS[name](distributed="yes")


@pytest.mark.parametrize("cls", [WristbandLoss, MomentMatchingLoss, SIGReg, GaussianMMD, SlicedWassersteinGaussian])
def test_configuration_is_keyword_only(cls):
    with pytest.raises(TypeError):
        cls("pairwise" if cls is WristbandLoss else 1)


@pytest.mark.parametrize("name", STATISTICS)
def test_forward_is_the_calibrated_total_of_raw_components(name):
    """forward == mean of NullStats.total(raw) with the statistic's own null, computed by hand."""
    x = 1.3 * torch.randn(2, 64, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64) + 0.2
    loss_fn = STATISTICS[name](null_samples=64)
    raw = loss_fn.raw(x)
    assert raw.shape == (2, len(loss_fn.component_names))
    stats = loss_fn.null_stats(64, 3)
    z = (raw - stats.mean) / stats.std
    w = torch.tensor(loss_fn.weights, dtype=torch.float64)
    expected = ((z * w).sum(-1) / torch.sqrt(w @ stats.corr @ w)).mean()
    if name in ("sigreg", "sliced_w2"):  # fresh random slices at every call: compare with the same slices
        loss_fn.manual_seed(0)
        raw = loss_fn.raw(x)
        loss_fn.manual_seed(0)
        expected = stats.total(raw, w)[0].mean()
    assert float(loss_fn(x)) == pytest.approx(float(expected), rel=1e-6)
    raw_fn = STATISTICS[name](calibrate=False)
    if name in ("sigreg", "sliced_w2"):
        raw_fn.manual_seed(0)
    assert float(raw_fn(x)) == pytest.approx(float((raw * w).sum(-1).mean()), rel=1e-6)


def test_null_stats_are_cached_once_per_shape(monkeypatch):
    import latentshape.statistic as statistic_module

    clear_null_cache()
    calls = []
    real = statistic_module.monte_carlo_null

    def counting(*args, **kwargs):
        calls.append(args[1:3])
        return real(*args, **kwargs)

    monkeypatch.setattr(statistic_module, "monte_carlo_null", counting)
    loss_fn = SlicedWassersteinGaussian(null="monte_carlo", null_samples=32, slices=8)
    first = loss_fn.null_stats(20, 3)
    assert loss_fn.null_stats(20, 3) is first and SlicedWassersteinGaussian(null="monte_carlo", null_samples=32, slices=8).null_stats(20, 3) is first
    loss_fn.null_stats(21, 3)
    assert calls == [(20, 3), (21, 3)]


@pytest.mark.parametrize("options", [dict(), dict(method="pairwise", null_samples=32), dict(degree=1, lambda_ang=0.5)])
def test_check_reports_the_losses_own_z_scores(options):
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x[:, 0] = x[:, 0].abs() * 1.5  # non-Gaussian, so the parts are not all ~0
    wristband = WristbandLoss(**options)
    parts = wristband.components(x)
    report = latentshape.check(x, wristband=wristband, null_samples=40)
    for name in ("total",) + wristband.component_names:
        assert report.wristband[name] == pytest.approx(float(getattr(parts, name)), rel=1e-6, abs=1e-9)
    assert report.tests[0].statistic == pytest.approx(float(parts.total), rel=1e-6)


def test_null_stats_total_is_standardized():
    draws = torch.randn(5000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) @ torch.tensor(
        [[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 2.0]], dtype=torch.float64)
    stats = NullStats.from_samples(draws)
    total, z = stats.total(draws, torch.tensor([1.0, 0.1, 2.0]))
    assert z.shape == draws.shape and total.shape == (5000,)
    assert abs(float(total.mean())) < 1e-10 and float(total.std()) == pytest.approx(1.0, rel=1e-3)


@pytest.mark.parametrize(
    "old,new,name",
    [
        ("latentshape.gaussian.moments", "latentshape.gaussian.moment_penalties", "moment_penalty"),
        ("latentshape.gaussian.null_moments", "latentshape.gaussian.moment_penalty_null", "moment_null_moments"),
        ("latentshape.wristband.null_moments", "latentshape.wristband.closed_form_null", "spectral_null_stats"),
        ("latentshape.gaussian._statistic", "latentshape.statistic", "BatchStatisticLoss"),
        ("latentshape.gaussian._statistic", "latentshape.gaussian.slicing", "random_directions"),
        ("latentshape.wristband.fused", "latentshape.wristband.spectral_fused", "fused_spectral_sums"),
        ("latentshape._validation", "latentshape.validation", "as_embeddings"),
    ],
)
def test_old_import_paths_still_work_with_a_deprecation_warning(old, new, name):
    module = importlib.import_module(old)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = getattr(module, name)
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in caught)
    expected = BatchStatistic if name == "BatchStatisticLoss" else getattr(importlib.import_module(new), name)
    assert value is expected
    with pytest.raises(AttributeError):
        getattr(module, "no_such_name")
