"""Closed-form null of the two-scale all-degree wristband (blocks_null.two_scale_null_stats) against Monte-Carlo.

Components (rep, rep_sharp, rad, ang, mom): rep the spectral degree-<= 2 energy of e^{4/3 (x-1)},
rep_sharp the all-degree energy of e^{8 (x-1)} with its residual on blocks of B, ang the degree-<= 2
angular mean. Prints per cell (closed - empirical mean) / empirical sd, closed / empirical sd, the
largest correlation error and the calibrated total's mean and sd (weights 1, 1, 0.1, 0, 1); also
the per-coordinate statistic's exact mean and sd against the same draws.

    python benchmarks/allorder_null_accuracy.py
"""

from __future__ import annotations

import time

import torch

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
WEIGHTS = torch.tensor([1.0, 1.0, 0.1, 0.0, 1.0], dtype=torch.float64)
CELLS = ((64, 3, 64, 4000), (128, 3, 32, 3000), (256, 16, 64, 2000), (1024, 16, 256, 1000), (1024, 64, 256, 600),
         (512, 128, 64, 600))


def draws(n: int, d: int, block: int, samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    rows, coords = [], []
    batch = max(1, 4096 // n)
    for _ in range(-(-samples // batch)):
        x = torch.randn(batch, n, d, generator=g, dtype=torch.float64)
        u, t, z = wristband_map(x)
        broad, angular = spectral_kernel_sums(u, t, RADIAL, low_degree_coefficients(d, (4.0 / 3.0,), (1.0,)))
        sharp, _ = allorder_energy(u, t, RADIAL, (8.0,), (1.0,), block)
        rows.append(torch.stack([broad.log() / 8, sharp.log() / 8, radial_distance(t, z), angular.log() / 8,
                                 moment_penalty(x, "w2")], -1))
        coords.append(coordinate_smooth_statistic(x))
    return torch.cat(rows)[:samples], torch.cat(coords)[:samples]


def main() -> None:
    torch.set_num_threads(1)
    print("| N | d | B | R | mean err / sd (rep, sharp, rad, ang, mom) | sd ratio (same) | max corr err | total mean | "
          "total sd | coord mean err / sd | coord sd ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for n, d, block, samples in CELLS:
        began = time.perf_counter()
        raw, coord = draws(n, d, block, samples, seed=2026 + n + d)
        empirical, closed = NullStats.from_samples(raw), two_scale_null_stats(n, d, block=block)
        mean_error = ((closed.mean - empirical.mean) / empirical.std).tolist()
        ratio = (closed.std / empirical.std).tolist()
        total = (closed.standardize(raw) * WEIGHTS).sum(-1) / closed.combined_std(WEIGHTS)
        c_mean, c_var = coordinate_null_moments(n, d)
        print(f"| {n} | {d} | {block} | {samples} | {', '.join(f'{v:+.3f}' for v in mean_error)} | "
              f"{', '.join(f'{v:.3f}' for v in ratio)} | {float((closed.corr - empirical.corr).abs().max()):.3f} | "
              f"{float(total.mean()):+.3f} | {float(total.std()):.3f} | {(c_mean - float(coord.mean())) / float(coord.std()):+.3f} | "
              f"{c_var ** 0.5 / float(coord.std()):.3f} |", flush=True)
        print(f"<!-- {time.perf_counter() - began:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
