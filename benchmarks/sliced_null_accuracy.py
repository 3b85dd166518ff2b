"""The sliced Wasserstein closed-form null against a large Monte-Carlo of the full statistic.

    python benchmarks/sliced_null_accuracy.py reference [--shapes N:d:M,...] [--samples 8000]   # slow: stores the draws
    python benchmarks/sliced_null_accuracy.py compare                                          # fast: prints the table

``reference`` runs the library's Monte-Carlo null (:func:`latentshape.calibration.monte_carlo_null`
on the loss's own null draw function: fresh N(0, I) batches, fresh random slices per batch) and keeps
every batch's raw value in ``benchmarks/results/sliced_null_reference.pt``. ``compare`` sets the
closed form (:func:`latentshape.gaussian.sliced_null.sliced_null_moments`) against them: the mean
error in null sd, the sd ratio, and the calibrated value z = (S - mean) / sd over those batches
(its mean and sd), with bootstrap standard errors of the reference (1000 resamples). The table is
written to ``benchmarks/results/sliced_null_accuracy.md``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from latentshape import SlicedWassersteinGaussian  # noqa: E402
from latentshape.calibration import monte_carlo_null  # noqa: E402
from latentshape.gaussian.sliced_null import sliced_null_moments  # noqa: E402

DRAWS = ROOT / "benchmarks" / "results" / "sliced_null_reference.pt"
REPORT = ROOT / "benchmarks" / "results" / "sliced_null_accuracy.md"
SHAPES = "64:4:64,256:8:256,1024:32:256,128:128:256,4096:16:256,2:1:1,8:2:16,32:1:4,512:3:32,16384:8:16"


def reference(shapes: list[tuple[int, int, int]], samples: int, seed: int) -> None:
    torch.set_num_threads(1)
    stored = torch.load(DRAWS) if DRAWS.exists() else {}
    for n, d, m in shapes:
        start = time.perf_counter()
        loss = SlicedWassersteinGaussian(slices=m)
        stats = monte_carlo_null(loss.null_draw_function(), n, d, samples=samples, seed=seed, keep_draws=True,
                                 dtype=torch.float32, max_elements=1 << 22)
        stored[f"{n}:{d}:{m}"] = stats.draws[:, 0].clone()
        torch.save(stored, DRAWS)
        print(f"N={n} d={d} M={m}: {samples} batches in {time.perf_counter() - start:.0f} s", flush=True)


def bootstrap_se(values: torch.Tensor, resamples: int = 1000) -> tuple[float, float]:
    generator = torch.Generator().manual_seed(0)
    index = torch.randint(len(values), (resamples, len(values)), generator=generator)
    boot = values[index]
    return float(boot.mean(dim=1).std()), float(boot.std(dim=1).std())


def compare() -> None:
    stored = torch.load(DRAWS)
    lines = ["| N | d | M | batches | closed-form ms | mean error / sd | sd ratio (ref / closed) | ref sd se "
             "| z mean | z sd |", "|---|---|---|---|---|---|---|---|---|---|"]
    for key, values in stored.items():
        n, d, m = map(int, key.split(":"))
        start = time.perf_counter()
        mean, variance = sliced_null_moments(n, d, m)
        milliseconds = 1000 * (time.perf_counter() - start)
        sd = math.sqrt(variance)
        ref_mean, ref_sd = float(values.mean()), float(values.std())
        mean_se, sd_se = bootstrap_se(values)
        z = (values - mean) / sd
        lines.append(f"| {n} | {d} | {m} | {len(values)} | {milliseconds:.1f} | {(mean - ref_mean) / ref_sd:+.3f} "
                     f"+- {mean_se / ref_sd:.3f} | {ref_sd / sd:.3f} | {sd_se / sd:.3f} | {float(z.mean()):+.3f} "
                     f"| {float(z.std()):.3f} |")
    text = "\n".join(lines)
    print(text)
    REPORT.write_text("# Sliced Wasserstein null: closed form against the Monte-Carlo of the full statistic\n\n"
                      "    python benchmarks/sliced_null_accuracy.py reference && python benchmarks/sliced_null_accuracy.py compare\n\n"
                      "Mean error in reference null sd (+- its bootstrap se); sd ratio = reference sd / closed-form sd"
                      " (ref sd se: its bootstrap se); z = (S - closed-form mean) / closed-form sd over the reference"
                      " batches. Closed-form ms: a first evaluation in the process (cold caches).\n\n" + text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("reference", "compare"))
    parser.add_argument("--shapes", default=SHAPES)
    parser.add_argument("--samples", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()
    if args.mode == "reference":
        reference([tuple(map(int, s.split(":"))) for s in args.shapes.split(",")], args.samples, args.seed)
    else:
        compare()


if __name__ == "__main__":
    main()
