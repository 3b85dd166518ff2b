"""Closed-form calibration of the global spectral wristband: accuracy and cost.

For every (N, d, degree) of the grid, draws null batches x ~ N(0, I) with a seed no calibration
uses and prints, per component, (closed-form mean - empirical mean) / empirical sd and closed-form
sd / empirical sd, then the mean and sd of the calibrated total (defaults: lambda_rad = 0.1,
lambda_ang = 0, lambda_mom = 1, moment = w2) over those batches; targets |mean error| <= 0.05,
sd ratio in [0.97, 1.03], total mean in [-0.1, 0.1], total sd in [0.9, 1.1]. A second table times
the closed form against the Monte-Carlo calibration it replaces (512 null batches).

The empirical mean of R draws is uncertain by 1/sqrt(R) sd (0.022 at R = 2000), and the
empirical sd by ~ sqrt((kurtosis - 1) / (4R)) (printed per cell): ~1.6% at R = 2000 for a Gaussian statistic, 3.6% for the heavy-tailed rad (kurtosis ~11.5, every N); cheap
cells use more draws, and rad alone is checked once more against a 1-D Monte-Carlo of 200000 draws.

    python benchmarks/calibration_accuracy.py                 # the issue's grid (~20 min on 2 cores)
    python benchmarks/calibration_accuracy.py --quick         # a few cells
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from latentshape.calibration import monte_carlo_null
from latentshape.wristband.components import WristbandConfig, raw_components
from latentshape.wristband.closed_form_null import spectral_null_stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from checkers.wristband_null import check_null_stats  # noqa: E402  (the tests' correctness checker)
from latentshape.wristband.radial import radial_distance, radial_null_moments

COMPONENTS = ("rep", "rad", "ang", "mom")


def draws_for(n: int, d: int, degree: int) -> int:
    cost = n * d * (d if degree == 2 else 1)
    return 8000 if cost <= 1 << 16 else 4000 if cost <= 1 << 20 else 2000


def accuracy(sizes, dims, degrees) -> None:
    print("| N | d | degree | R | mean error / sd (rep, rad, ang, mom) | sd ratio (rep, rad, ang, mom) | its MC 1-sigma | total mean | total sd |")
    print("|---|---|---|---|---|---|---|---|---|")
    worst = {"mean": 0.0, "sd": 0.0, "total_mean": 0.0, "total_sd": 0.0}
    for degree in degrees:
        for n in sizes:
            for d in dims:
                config = WristbandConfig(degree=degree, sharp=False, coordinates=False)
                samples = draws_for(n, d, degree)
                check = check_null_stats(config, n, d, samples=samples)
                active = [0, 1, 3] + ([2] if degree > 0 else [])
                mean_error = check.mean_error[active].abs().max().item()
                sd_error = (check.sd_ratio[[i for i in active if i != 1]] - 1).abs().max().item()  # rad: below
                worst["mean"] = max(worst["mean"], mean_error)
                worst["sd"] = max(worst["sd"], sd_error)
                worst["total_mean"] = max(worst["total_mean"], abs(check.total_mean))
                worst["total_sd"] = max(worst["total_sd"], abs(check.total_sd - 1))
                errors = ", ".join(f"{v:+.3f}" for v in check.mean_error.tolist())
                ratios = ", ".join(f"{v:.3f}" for v in check.sd_ratio.tolist())
                noise = ", ".join(f"{v:.3f}" for v in check.sd_ratio_noise.tolist())
                print(f"| {n} | {d} | {degree} | {samples} | {errors} | {ratios} | {noise} | {check.total_mean:+.3f} | "
                      f"{check.total_sd:.3f} |", flush=True)
    print(f"\nworst |mean error| / sd {worst['mean']:.3f}; worst |sd ratio - 1| (rep, ang, mom) {worst['sd']:.3f}; "
          f"worst |total mean| {worst['total_mean']:.3f}; worst |total sd - 1| {worst['total_sd']:.3f}")


def radial_accuracy(sizes) -> None:
    """rad's law depends on N only (t ~ U[0, 1] exactly): check it with many cheap 1-D draws."""
    print("\n| N | R (1-D) | rad mean error / sd | rad sd ratio | sd ratio's own 1-sigma |")
    print("|---|---|---|---|---|")
    generator = torch.Generator().manual_seed(4242)
    for n in sizes:
        samples = 200_000 if n <= 1024 else 50_000
        values = []
        for start in range(0, samples, 2000):
            t = torch.rand(2000, n, generator=generator, dtype=torch.float64).clamp_min(1e-300)
            values.append(radial_distance(t, torch.special.ndtri(t)))
        values = torch.cat(values)
        mean, variance = radial_null_moments(n)
        sd = values.std().item()
        kurtosis = (((values - values.mean()) / sd) ** 4).mean().item()
        print(f"| {n} | {samples} | {(mean - values.mean().item()) / sd:+.3f} | {variance ** 0.5 / sd:.4f} | "
              f"{((kurtosis - 1) / (4 * samples)) ** 0.5:.4f} |", flush=True)


def cost(shapes) -> None:
    print("\n| N | d | closed form (first call) | Monte-Carlo, 512 batches |")
    print("|---|---|---|---|")
    config = WristbandConfig(sharp=False, coordinates=False)
    for n, d in shapes:
        start = time.perf_counter()
        spectral_null_stats(config, n, d)
        closed = time.perf_counter() - start
        if n * d <= 1 << 20:
            start = time.perf_counter()
            monte_carlo_null(lambda x: raw_components(x, config), n, d, samples=512, dtype=torch.float32)
            mc = f"{time.perf_counter() - start:.2f} s"
        else:
            mc = "(not run: hours)"
        print(f"| {n} | {d} | {closed * 1e3:.1f} ms | {mc} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few cells instead of the full grid")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.quick:
        accuracy([64, 1024], [1, 8, 256], [2])
        radial_accuracy([64, 1024])
        cost([(1024, 64), (1_000_000, 4096)])
    else:
        accuracy([64, 256, 1024, 8192], [1, 2, 3, 8, 64, 256], [1, 2])
        radial_accuracy([64, 256, 1024, 8192])
        cost([(1024, 64), (4096, 128), (1_000_000, 128), (1_000_000, 4096)])


if __name__ == "__main__":
    main()
