"""Validation of the wristband's closed-form null law against Monte-Carlo null batches.

A correctness checker: used by the tests and by ``benchmarks/calibration_accuracy.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from latentshape.calibration import monte_carlo_null
from latentshape.wristband.allorder_null import allorder_null_stats
from latentshape.wristband.closed_form_null import spectral_null_stats
from latentshape.wristband.components import raw_components

__all__ = ["NullCheck", "check_null_stats"]


class NullCheck(NamedTuple):
    """Closed-form null moments against ``samples`` null batches (see :func:`check_null_stats`)."""

    mean_error: Tensor  # (closed-form mean - empirical mean) / empirical sd, per component (rep, rad, ang, mom[, sharp, coord])
    sd_ratio: Tensor  # closed-form sd / empirical sd, per component
    sd_ratio_noise: Tensor  # 1-sigma Monte-Carlo uncertainty of sd_ratio, sqrt((kurtosis - 1) / (4 R))
    total_mean: float  # mean of the calibrated total over the null batches
    total_sd: float  # its sd
    samples: int


def check_null_stats(
    config, n: int, d: int, weights: tuple[float, ...] = (1.0, 0.1, 0.0, 1.0, 1.0, 1.0),
    samples: int = 2000, seed: int = 12345, dtype: torch.dtype = torch.float32,
) -> NullCheck:
    """Validate the closed-form null at (N, d) against ``samples`` batches drawn from N(0, I):
    :func:`allorder_null_stats` (rep, rad, ang, mom, sharp, coord) when ``config`` has the sharp or
    coordinate term, else :func:`spectral_null_stats` (rep, rad, ang, mom).

    Uses a seed independent of any calibration. ``weights`` = (1, lambda_rad, lambda_ang, lambda_mom,
    lambda_sharp, lambda_coord) of the calibrated total (the first four without the new terms).

    """
    stats = allorder_null_stats(config, n, d) if config.sharp or config.coordinates else spectral_null_stats(config, n, d)
    size = stats.mean.shape[0]
    weights = weights[:size]
    draws: list[Tensor] = []

    def keep(x: Tensor) -> Tensor:
        raw = raw_components(x, config)[..., :size]
        draws.append(raw.to(torch.float64))
        return raw

    empirical = monte_carlo_null(keep, n, d, samples=samples, seed=seed, description="null check", dtype=dtype)
    raw = torch.cat(draws)
    w = torch.tensor(weights, dtype=torch.float64)
    total = stats.total(raw, w)[0]
    kurtosis = (((raw - empirical.mean) / empirical.std) ** 4).mean(dim=0)
    return NullCheck(
        mean_error=(stats.mean - empirical.mean) / empirical.std,
        sd_ratio=stats.std / empirical.std,
        sd_ratio_noise=((kurtosis - 1).clamp_min(0) / (4 * samples)).sqrt(),
        total_mean=float(total.mean()),
        total_sd=float(total.std()),
        samples=samples,
    )
