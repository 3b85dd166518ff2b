"""calibrate=True: each batch statistic's z-score has mean ~0 and sd ~1 under N(0, I)."""

from __future__ import annotations

import pytest
import torch

from latentshape.gaussian import GaussianMMD, MomentMatchingLoss, SIGReg, SlicedWassersteinGaussian

STATISTICS = {
    "moment_matching": lambda: MomentMatchingLoss(calibrate=True),
    "moment_w2": lambda: MomentMatchingLoss(penalty="w2", calibrate=True),
    "sigreg": lambda: SIGReg(calibrate=True),
    "mmd": lambda: GaussianMMD(calibrate=True),
    "sliced_wasserstein": lambda: SlicedWassersteinGaussian(calibrate=True),
}


@pytest.mark.parametrize("name", sorted(STATISTICS))
def test_null_z_scores_have_mean_zero_and_unit_sd(name: str) -> None:
    loss_fn = STATISTICS[name]()
    # 300 independent null batches as leading dims (the sliced statistics draw their own slices
    # for each of them, as the calibration does).
    draws = torch.randn(300, 128, 4, generator=torch.Generator().manual_seed(2024))
    z = loss_fn.zscore(draws)
    assert z.shape == (300,)
    # sd of the mean of 300 z's is 0.058; the calibration's own Monte-Carlo error adds a little.
    assert abs(float(z.mean())) < 0.25
    assert 0.8 < float(z.std()) < 1.25
    shifted = loss_fn.zscore(draws[:4] + 1.0)
    assert float(shifted.min()) > 5.0  # a unit shift is many null sds away at N = 128


@pytest.mark.parametrize("name", sorted(STATISTICS))
def test_calibrated_forward_is_the_mean_z_and_is_cached_per_shape(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    loss_fn = STATISTICS[name]()
    loss_fn.null_samples = 64  # keep this check cheap: only caching and plumbing are tested here
    x = torch.randn(2, 16, 3, generator=torch.Generator().manual_seed(1), requires_grad=True)
    value = loss_fn(x)
    value.backward()
    assert value.dim() == 0 and torch.isfinite(x.grad).all()

    import latentshape.statistic as statistic_module

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the null was recomputed for a cached shape")

    monkeypatch.setattr(statistic_module, "monte_carlo_null", refuse)
    stats = loss_fn.null_stats(16, 3)
    raw = loss_fn.statistic(x.detach()) if name in ("moment_matching", "moment_w2", "mmd") else None
    if raw is not None:  # deterministic statistics: forward == mean of (raw - m) / s
        expected = ((raw - stats.mean.float()) / stats.std.float()).mean()
        assert float(loss_fn(x.detach())) == pytest.approx(float(expected), rel=1e-5)
    loss_fn.zscore(torch.randn(16, 3))  # same shape: served from the cache
    if name in ("mmd", "sigreg", "moment_matching", "moment_w2", "sliced_wasserstein"):  # closed forms: no Monte-Carlo
        assert stats.samples == 0
        loss_fn.zscore(torch.randn(17, 3))
        return
    with pytest.raises(AssertionError, match="recomputed"):
        loss_fn.zscore(torch.randn(17, 3))  # a new shape needs a new null
