"""Closed-form null correlations of the per-coordinate term with the other wristband components against Monte-Carlo.

Components of the two-scale default (rep, rep_sharp, rad, ang, mom) and coord, computed from library
pieces on R null batches x ~ N(0, I_d) per cell (N, d); the sharp residual on blocks of
B = min(N, max(ceil(d/2), 2^18 / N)). Closed form: ``wristband.coordinates_null.coordinate_null_covariances``
(covariances of the raw statistics), carried to the logs with the slope 1 / (beta E_mean) and divided
by the closed-form sds (``blocks_null.two_scale_null_stats``, ``coordinates.coordinate_null_moments``).
coord is heavy-tailed (a mean of squared chi-square-like terms), so its sample sd is noisy: that noise
is shared by the five MC correlations of a row (the last column shows it) and is in the bootstrap
standard errors.
Prints a markdown table: closed / MC / bootstrap standard error of MC per pair; the draws are kept in
``benchmarks/results/coordinate_null_draws.pt`` so the closed forms can be re-evaluated with ``--reuse``.

    python benchmarks/coordinate_null_accuracy.py                   # the default grid
    python benchmarks/coordinate_null_accuracy.py --cells 256:3:400  # N:d:R cells
"""

from __future__ import annotations

import argparse
import pathlib
import time

import torch

from latentshape.gaussian.moment_penalties import moment_penalty
from latentshape.wristband.blocks import allorder_energy, low_degree_coefficients
from latentshape.wristband.blocks_null import allorder_energy_null_moments, two_scale_null_stats
from latentshape.wristband.closed_form_null import angular_mean_null_moments, spectral_energy_null_moments
from latentshape.wristband.coordinates import coordinate_null_moments, coordinate_smooth_statistic
from latentshape.wristband.coordinates_null import coordinate_null_covariances
from latentshape.wristband.map import wristband_map
from latentshape.wristband.mercer import radial_coefficients
from latentshape.wristband.spectral import spectral_kernel_sums
from latentshape.wristband.radial import radial_distance

RADIAL = radial_coefficients(8.0, 6)
NAMES = ("rep", "sharp", "rad", "ang", "mom")
KEYS = ("E", "S", "rad", "A", "mom")
DEFAULT_CELLS = "256:2:2000,256:3:2000,256:16:2000,256:64:2000,256:128:2000,1024:2:1000,1024:3:1000,1024:16:1000,1024:64:1000,1024:128:1000"
RESULTS = pathlib.Path(__file__).parent / "results" / "coordinate_null_draws.pt"


def default_block(n: int, d: int) -> int:
    return min(n, max(-(-d // 2), (1 << 18) // n))


def draws(n: int, d: int, samples: int, seed: int) -> torch.Tensor:
    """(R, 6) raw (rep, sharp, rad, ang, mom, coord) of null batches."""
    g = torch.Generator().manual_seed(seed)
    block, batch, rows = default_block(n, d), max(1, 2048 // n), []
    for _ in range(-(-samples // batch)):
        x = torch.randn(batch, n, d, generator=g, dtype=torch.float64)
        u, t, z = wristband_map(x)
        broad, angular = spectral_kernel_sums(u, t, RADIAL, low_degree_coefficients(d, (4.0 / 3.0,), (1.0,)))
        sharp, _ = allorder_energy(u, t, RADIAL, (8.0,), (1.0,), block)
        rows.append(torch.stack([broad.log() / 8, sharp.log() / 8, radial_distance(t, z), angular.log() / 8,
                                 moment_penalty(x, "w2"), coordinate_smooth_statistic(x)], -1))
    return torch.cat(rows)[:samples]


def closed_correlations(n: int, d: int) -> list[float]:
    """Closed-form correlations of coord with (rep, sharp, rad, ang, mom)."""
    block = default_block(n, d)
    stats = two_scale_null_stats(n, d, block=block)
    covariance = coordinate_null_covariances(n, d, block=block)
    means = {"E": spectral_energy_null_moments(n, d, RADIAL, low_degree_coefficients(d, (4.0 / 3.0,), (1.0,))).mean,
             "S": allorder_energy_null_moments(n, d, RADIAL, (8.0,), (1.0,), block).mean,
             "A": angular_mean_null_moments(n, d, low_degree_coefficients(d, (4.0 / 3.0,), (1.0,))).mean}
    coord_sd = coordinate_null_moments(n, d)[1] ** 0.5
    out = []
    for i, key in enumerate(KEYS):
        slope = 1.0 / (8.0 * means[key]) if key in means else 1.0
        out.append(covariance[key] * slope / (coord_sd * float(stats.std[i])))
    return out


def bootstrap_se(raw: torch.Tensor, resamples: int = 400, seed: int = 0) -> list[float]:
    """Bootstrap standard errors of coord's correlations (coord is heavy-tailed: normal theory understates them)."""
    g = torch.Generator().manual_seed(seed)
    values = [torch.corrcoef(raw[torch.randint(raw.shape[0], (raw.shape[0],), generator=g)].T)[-1, :-1]
              for _ in range(resamples)]
    return torch.stack(values).std(0).tolist()


def table_row(n: int, d: int, raw: torch.Tensor) -> str:
    corr = torch.corrcoef(raw.T)[-1, :-1].tolist()
    closed, se = closed_correlations(n, d), bootstrap_se(raw)
    cells = [f"{c:.3f} / {m:.3f} / {e:.3f}" for c, m, e in zip(closed, corr, se)]
    worst = max(abs(c - m) / e for c, m, e in zip(closed, corr, se))
    sd_ratio = coordinate_null_moments(n, d)[1] ** 0.5 / float(raw[:, -1].std())
    return f"| {n} | {d} | {raw.shape[0]} | " + " | ".join(cells) + f" | {worst:.1f} | {sd_ratio:.3f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default=DEFAULT_CELLS, help="comma-separated N:d:R")
    parser.add_argument("--reuse", action="store_true", help="re-evaluate the closed forms on the saved draws")
    args = parser.parse_args()
    torch.set_num_threads(1)
    saved = torch.load(RESULTS) if (args.reuse or RESULTS.exists()) and RESULTS.exists() else {}
    print("| N | d | R | " + " | ".join(f"coord-{name}: closed / MC / se" for name in NAMES) + " | max err / se | coord sd exact / MC |")
    print("|---|---|---|" + "---|" * (len(NAMES) + 2))
    for cell in args.cells.split(","):
        n, d, r = (int(v) for v in cell.split(":"))
        began = time.perf_counter()
        if args.reuse and (n, d) in saved:
            raw = saved[(n, d)]
        else:
            with torch.no_grad():
                raw = draws(n, d, r, seed=9000 + 7 * n + d)
            saved[(n, d)] = raw
            RESULTS.parent.mkdir(exist_ok=True)
            torch.save(saved, RESULTS)
        print(table_row(n, d, raw), flush=True)
        print(f"<!-- {time.perf_counter() - began:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
