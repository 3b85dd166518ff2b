"""Closed-form null of the exact pairwise wristband against Monte-Carlo, on an (N, d, c) grid.

For every (N, d) draws R null batches x ~ N(0, I) (float64, a seed no calibration uses) and
evaluates, for every angular scale c = 2 beta alpha^2 at once (one Gram matrix per batch), the raw
(rep, rad, ang, mom) of the global pairwise path, then prints per component
(closed-form mean - empirical mean) / empirical sd and closed-form sd / empirical sd (targets
0.05 and 0.03), the correlations rep-rad, rep-ang, rep-mom (closed form / Monte-Carlo), and the
mean and sd of the calibrated total (rep + 0.1 rad + mom, closed-form standardization).
Monte-Carlo noise: mean 1/sqrt(R) sd; sd ratio ~ sqrt((kurtosis - 1) / (4R)), printed per cell.
The kernel evaluation here is checked against ``raw_components`` on the first batch of each cell.

    python benchmarks/pairwise_null_accuracy.py                # the grid (~30 min on one core)
    python benchmarks/pairwise_null_accuracy.py --quick
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from latentshape.calibration import NullStats
from latentshape.gaussian.moment_penalties import moment_penalty
from latentshape.wristband.components import WristbandConfig, raw_components
from latentshape.wristband.map import wristband_map
from latentshape.wristband.pairwise_null import pairwise_null_stats
from latentshape.wristband.radial import radial_distance

BETA = 8.0
WEIGHTS = torch.tensor([1.0, 0.1, 0.0, 1.0], dtype=torch.float64)


def config_for(c: float) -> WristbandConfig:
    return WristbandConfig(method="pairwise", beta=BETA, alpha=math.sqrt(c / (2.0 * BETA)), sharp=False, coordinates=False)


def raw_for_scales(x: torch.Tensor, scales, dtype=torch.float64) -> torch.Tensor:
    """(B, len(scales), 4) raw (rep, rad, ang, mom) of the pairwise path for each scale c.

    The N x N work runs in ``dtype`` (float32 halves the time; its rounding is ~1e-7 relative,
    far below the null sd of E, ~1e-3 relative at N = 1024); sums accumulate in float64."""
    direction, t, score = wristband_map(x)
    n = x.shape[-2]
    direction = direction.to(dtype)
    gram = direction @ direction.transpose(-1, -2)
    small_t = t.to(dtype)
    tt = small_t.unsqueeze(-1), small_t.unsqueeze(-2)
    radial = sum(torch.exp(-BETA * g * g) for g in (tt[0] - tt[1], tt[0] + tt[1], tt[0] + tt[1] - 2.0))
    rad = radial_distance(t, score)
    mom = moment_penalty(x, "w2")
    out = []
    for c in scales:
        k = torch.exp(c * (gram - 1.0))
        energy = (k * radial).sum(dim=-1, dtype=torch.float64).sum(-1) / n**2
        off = (k.sum(dim=-1, dtype=torch.float64).sum(-1) - k.diagonal(dim1=-2, dim2=-1).sum(-1, dtype=torch.float64)) / (n * (n - 1))
        out.append(torch.stack([torch.log(energy) / BETA, rad, torch.log(off) / BETA, mom], dim=-1))
    return torch.stack(out, dim=1)


def draws_for(n: int, d: int) -> int:
    return 8000 if n * n * d <= 1 << 22 else 4000 if n <= 256 else 1000


def run(sizes, dims, scales, seed: int = 4242, header: bool = True, draws: int | None = None) -> None:
    if header:
        print("| N | d | c | R | mean err / sd (rep, rad, ang, mom) | sd ratio (rep, rad, ang, mom) | MC 1-sigma (rep, ang) "
          "| corr rep-rad, rep-ang, rep-mom: closed / MC | total mean | total sd |")
        print("|---|---|---|---|---|---|---|---|---|---|")
    worst = {"mean": 0.0, "sd": 0.0, "total_mean": 0.0, "total_sd": 0.0, "corr": 0.0}
    for n in sizes:
        for d in dims:
            samples = draws or draws_for(n, d)
            batch = max(1, min(64, (1 << 22) // (n * n)))
            generator = torch.Generator().manual_seed(seed + 1000 * n + d)
            chunks, began = [], time.perf_counter()
            for start in range(0, samples, batch):
                x = torch.randn(min(batch, samples - start), n, d, generator=generator, dtype=torch.float64)
                values = raw_for_scales(x, scales, torch.float32)
                if start == 0:  # the same statistic as the library's pairwise path
                    reference = raw_components(x[:2], config_for(scales[-1]))
                    exact = raw_for_scales(x[:2], scales)[:, -1]
                    assert torch.allclose(exact, reference, rtol=1e-9, atol=1e-12), (exact, reference)
                chunks.append(values)
            raw = torch.cat(chunks)
            for index, c in enumerate(scales):
                cell = raw[:, index]
                empirical = NullStats.from_samples(cell)
                closed = pairwise_null_stats(config_for(c), n, d)
                mean_error = ((closed.mean - empirical.mean) / empirical.std).tolist()
                ratio = (closed.std / empirical.std).tolist()
                kurtosis = (((cell - empirical.mean) / empirical.std) ** 4).mean(dim=0)
                noise = ((kurtosis - 1).clamp_min(0) / (4 * samples)).sqrt().tolist()
                z = closed.standardize(cell)
                total = (z * WEIGHTS).sum(-1) / closed.combined_std(WEIGHTS)
                pairs = [(0, 1), (0, 2), (0, 3)]
                corr = "; ".join(f"{closed.corr[i, j]:.2f}/{empirical.corr[i, j]:.2f}" for i, j in pairs)
                active = [0, 2, 3]  # rad's closed form (a function of N) is not this module's
                worst["mean"] = max(worst["mean"], max(abs(mean_error[i]) for i in active))
                worst["sd"] = max(worst["sd"], max(abs(ratio[i] - 1) for i in active))
                worst["corr"] = max(worst["corr"], max(abs(float(closed.corr[i, j] - empirical.corr[i, j])) for i, j in pairs))
                worst["total_mean"] = max(worst["total_mean"], abs(float(total.mean())))
                worst["total_sd"] = max(worst["total_sd"], abs(float(total.std()) - 1))
                print(f"| {n} | {d} | {c:.3g} | {samples} | {', '.join(f'{v:+.3f}' for v in mean_error)} | "
                      f"{', '.join(f'{v:.3f}' for v in ratio)} | {noise[0]:.3f}, {noise[2]:.3f} | {corr} | "
                      f"{float(total.mean()):+.3f} | {float(total.std()):.3f} |", flush=True)
            print(f"<!-- N={n} d={d}: {time.perf_counter() - began:.0f} s -->", flush=True)
    print(f"\nworst over (rep, ang, mom): |mean error| / sd {worst['mean']:.3f}, |sd ratio - 1| {worst['sd']:.3f}; "
          f"worst |corr error| {worst['corr']:.3f}; calibrated total: worst |mean| {worst['total_mean']:.3f}, "
          f"worst |sd - 1| {worst['total_sd']:.3f}")


def first_call_cost() -> None:
    from latentshape.wristband import harmonics, pairwise_null

    cells = [(n, d, c) for n in (64, 1000, 8192) for d in (2, 17, 130, 1000) for c in (4.0 / 3.0, 5.0)]
    began = time.perf_counter()
    for n, d, c in cells:
        pairwise_null_stats(config_for(c), n, d)
    each = (time.perf_counter() - began) / len(cells)
    print(f"\nfirst call at a new (N, d, c) (cold caches of d and c, {len(cells)} cells): {1000 * each:.1f} ms on average")
    harmonics.kernel_power_sums.cache_clear()
    pairwise_null.radial_image_moments.cache_clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", type=int, nargs="*", default=[64, 256, 1024])
    parser.add_argument("--dims", type=int, nargs="*", default=[2, 3, 16, 128])
    parser.add_argument("--no-header", action="store_true", help="continue a table (no cost line, no header)")
    parser.add_argument("--draws", type=int, help="null batches per cell (default: by cost)")
    parser.add_argument("--seed", type=int, default=4242)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.no_header:
        first_call_cost()
    if args.quick:
        run((64, 256), (3, 16), (4.0 / 3.0, 4.0))
    else:
        run(tuple(args.sizes), tuple(args.dims), (4.0 / 3.0, 4.0, 8.0), seed=args.seed, header=not args.no_header,
            draws=args.draws)


if __name__ == "__main__":
    main()
