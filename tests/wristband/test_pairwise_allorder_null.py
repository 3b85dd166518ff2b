"""Closed-form null of the pairwise wristband with its sharp and coordinate terms."""

from __future__ import annotations

import pytest
import torch

import latentshape.calibration as calibration
import latentshape.statistic as statistic
from latentshape import WristbandLoss
from latentshape.wristband.components import WristbandConfig
from latentshape.wristband.pairwise_allorder_null import pairwise_allorder_null_stats
from latentshape.wristband.pairwise_null import pairwise_null_stats


def test_without_the_extra_terms_it_is_the_pairwise_null() -> None:
    config = WristbandConfig(method="pairwise", sharp=False, coordinates=False)
    full, base = pairwise_allorder_null_stats(config, 512, 8), pairwise_null_stats(config, 512, 8)
    torch.testing.assert_close(full.mean[:4], base.mean, rtol=1e-12, atol=0)
    torch.testing.assert_close(full.std[:4], base.std, rtol=1e-12, atol=0)
    torch.testing.assert_close(full.corr[:4, :4], base.corr, rtol=1e-12, atol=1e-12)
    assert torch.equal(full.std[4:], torch.ones(2, dtype=full.std.dtype))


@pytest.mark.parametrize("n, d", [(64, 3), (1024, 16), (3000, 8)])
def test_a_valid_law_at_every_block_layout(n: int, d: int) -> None:
    stats = pairwise_allorder_null_stats(WristbandConfig(method="pairwise"), n, d)
    assert torch.isfinite(stats.mean).all() and (stats.std > 0).all()
    eigenvalues = torch.linalg.eigvalsh(stats.corr.double())
    assert eigenvalues.min() > 0 and torch.allclose(stats.corr.diagonal(), torch.ones(6, dtype=stats.corr.dtype))


def test_the_default_pairwise_loss_calibrates_without_monte_carlo(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("Monte-Carlo null called")

    monkeypatch.setattr(statistic, "monte_carlo_null", refuse)
    calibration.clear_null_cache()
    x = torch.randn(200, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    loss = WristbandLoss(method="pairwise")
    value = loss(x)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(x.grad).all()


def test_the_geodesic_kernel_with_extra_terms_keeps_monte_carlo() -> None:
    assert WristbandLoss(method="pairwise", angular="geodesic")._closed_form_null(64, 3) is None
    with pytest.raises(ValueError, match="chordal"):
        pairwise_allorder_null_stats(WristbandConfig(method="pairwise", angular="geodesic"), 64, 3)


@pytest.mark.slow
@pytest.mark.parametrize("n, d, block", [(256, 8, None), (300, 4, 128)])  # all pairs; the residual on 3 blocks
def test_calibrated_total_under_the_null(n: int, d: int, block: int | None) -> None:
    loss = WristbandLoss(method="pairwise", block=block)
    generator = torch.Generator().manual_seed(2027)
    with torch.no_grad():
        totals = torch.cat([loss.components(torch.randn(20, n, d, generator=generator, dtype=torch.float64)).total
                            for _ in range(20)])
    # 400 batches: the mean's MC sd is 0.05, the sd's about 0.04
    assert abs(float(totals.mean())) < 0.2 and 0.88 < float(totals.std()) < 1.12
