"""The recommended all-order configuration as a prototype loss, from library pieces (for the benchmarks).

total = (z_rep + z_rep_sharp + 0.1 z_rad + z_mom + z_coord) / s_total with

- rep: today's default energy (spectral, degrees <= 2, c = 4/3, K = 6), log / beta;
- rep_sharp: the all-degree energy of e^{8 (x - 1)} (``wristband.blocks.allorder_energy``: exact for
  N <= block, residual on blocks beyond), log / beta;
- rad, mom: as today; coord: ``wristband.coordinates.coordinate_smooth_statistic``.

Null: closed form for (rep, rep_sharp, rad, ang, mom) (``blocks_null.two_scale_null_stats``) and
for coord's mean and sd (``coordinates.coordinate_null_moments``); coord's correlations with the
others are not in closed form yet and come from ``correlation_samples`` null batches here.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

from latentshape.calibration import NullStats
from latentshape.gaussian.moment_penalties import moment_penalty
from latentshape.wristband.blocks import allorder_energy, low_degree_coefficients
from latentshape.wristband.blocks_null import two_scale_null_stats
from latentshape.wristband.coordinates import coordinate_null_moments, coordinate_smooth_statistic
from latentshape.wristband.map import wristband_map
from latentshape.wristband.radial import radial_distance
from latentshape.wristband.mercer import radial_coefficients
from latentshape.wristband.spectral import spectral_kernel_sums

RADIAL = radial_coefficients(8.0, 6)


def default_block(n: int, d: int) -> int:
    """Residual block size: exact up to N = 512 (2^18 pairs), then B = max(ceil(d / 2), 2^18 / N)."""
    return min(n, max(-(-d // 2), (1 << 18) // n))


def raw(x: Tensor, block: int | None = None, coord: bool = True) -> Tensor:
    """(rep, rep_sharp, rad, ang, mom[, coord]) of a batch (N, d), float64 (differentiable)."""
    n, d = x.shape
    u, t, z = wristband_map(x)
    u, tt = u.unsqueeze(0), t.to(x.dtype).unsqueeze(0)
    broad, angular = spectral_kernel_sums(u, tt, RADIAL, low_degree_coefficients(d, (4.0 / 3.0,), (1.0,)))
    sharp, _ = allorder_energy(u, tt, RADIAL, (8.0,), (1.0,), block or default_block(n, d))
    parts = [broad.log() / 8.0, sharp.log() / 8.0, radial_distance(t.unsqueeze(0), z.unsqueeze(0)),
             angular.log() / 8.0, moment_penalty(x.unsqueeze(0), "w2")]
    if coord:
        parts.append(coordinate_smooth_statistic(x.unsqueeze(0)))
    return torch.cat([p.to(torch.float64).reshape(1) for p in parts])


@functools.lru_cache(maxsize=64)
def null_stats(n: int, d: int, coord: bool = True, correlation_samples: int = 200) -> NullStats:  # noqa: D103
    closed = two_scale_null_stats(n, d, block=default_block(n, d))
    if not coord:
        return closed
    mean, variance = coordinate_null_moments(n, d)
    g = torch.Generator().manual_seed(4321 + n + d)
    with torch.no_grad():
        draws = torch.stack([raw(torch.randn(n, d, generator=g)) for _ in range(correlation_samples)])
    empirical = NullStats.from_samples(draws)
    corr = empirical.corr.clone()
    corr[:5, :5] = closed.corr
    return NullStats(mean=torch.cat([closed.mean, torch.tensor([mean], dtype=torch.float64)]),
                     std=torch.cat([closed.std, torch.tensor([variance**0.5], dtype=torch.float64)]),
                     corr=corr, samples=correlation_samples)


class RecommendedLoss(nn.Module):
    def __init__(self, coord: bool = True) -> None:
        super().__init__()
        self.coord = coord
        self.weights = torch.tensor([1.0, 1.0, 0.1, 0.0, 1.0] + ([1.0] if coord else []), dtype=torch.float64)

    def forward(self, x: Tensor) -> Tensor:
        stats = null_stats(x.shape[0], x.shape[1], self.coord)
        return (stats.standardize(raw(x, coord=self.coord)) * self.weights).sum() / stats.combined_std(self.weights)

    def zscore(self, x: Tensor) -> float:
        with torch.no_grad():
            return float(self.forward(x))
