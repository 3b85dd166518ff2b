"""Cost of the first calibrated call at a new batch shape, as a ratio to a later call, in one run.

    python benchmarks/first_call_cost.py [--rounds 7] [--later 9] [--losses A,B] [--profile LOSS] [--cpu-time]
                                         [--device cpu|cuda]

For each default-configured loss (``calibrate=True``) and shape (N, d), a round clears the caches
and times one forward + backward (the *first* call: it computes the null law at (N, d)), then
``--later`` more calls; the printed ratio is the median over rounds of
(first call / median later call), float32, one thread. Two cache states:

- *new N*: only the null-law cache is cleared (:func:`latentshape.calibration.clear_null_cache`):
  a short last batch in training, where everything that depends on d alone is warm;
- *new d*: also every per-width cache of the wristband (its Mercer coefficients and tables; the
  width-free ones stay: the quadrature rules built at import and the radial expectations' cosines).

``--cpu-time`` times with the thread's CPU clock instead of the wall clock: on a shared machine
the wall clock also counts the time the process waits for a core.

Target: <= 2x. ``--losses "SlicedWassersteinGaussian[monte_carlo]"`` (named explicitly, never by
default: one round costs ~15 s) adds the sliced loss with its former Monte-Carlo null
(``null="monte_carlo"``) for a before/after comparison in one run. ``--profile LOSS`` prints a
cProfile of one first call (new N) of that loss at the first shape.

``--device cuda`` puts x and the losses on the GPU and reads the clock after
``torch.cuda.synchronize()`` (the CPU runs on one thread; ``--cpu-time`` is for the CPU only).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import importlib
import os
import pkgutil
import pstats
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from device_suite import add_device_option, device_header, synchronize, use_device  # noqa: E402

SHAPES = ((1024, 32), (256, 8))


def clear_width_caches() -> None:
    """Forget every per-width table of the wristband (lru caches and the coefficient dict)."""
    import latentshape.wristband as wristband

    for info in pkgutil.iter_modules(wristband.__path__):
        module = importlib.import_module(f"latentshape.wristband.{info.name}")
        for value in vars(module).values():
            if isinstance(value, functools._lru_cache_wrapper):
                value.cache_clear()
            elif isinstance(value, dict) and value and isinstance(next(iter(value)), tuple) and info.name == "components":
                value.clear()


def losses() -> dict[str, torch.nn.Module]:
    from latentshape import GaussianMMD, MomentMatchingLoss, SIGReg, SlicedWassersteinGaussian, WristbandLoss

    return {"WristbandLoss": WristbandLoss(calibrate=True), "MomentMatchingLoss": MomentMatchingLoss(calibrate=True),
            "SIGReg": SIGReg(calibrate=True), "GaussianMMD": GaussianMMD(calibrate=True),
            "SlicedWassersteinGaussian": SlicedWassersteinGaussian(calibrate=True),
            MONTE_CARLO_SLICED: SlicedWassersteinGaussian(calibrate=True, null="monte_carlo")}


MONTE_CARLO_SLICED = "SlicedWassersteinGaussian[monte_carlo]"  # the former null: only when named in --losses


CLOCK = time.perf_counter


def step(loss: torch.nn.Module, x: torch.Tensor) -> float:
    x.grad = None
    synchronize(x.device)
    start = CLOCK()
    loss(x).backward()
    synchronize(x.device)
    return CLOCK() - start


def first_over_later(loss: torch.nn.Module, n: int, d: int, rounds: int, later: int, new_width: bool,
                     device: str = "cpu") -> tuple[float, float]:
    """(median first / later ratio, median first-call seconds) over ``rounds``."""
    from latentshape.calibration import clear_null_cache

    x = torch.randn(n, d, generator=torch.Generator().manual_seed(0)).to(device).requires_grad_()
    step(loss, x)  # imports, allocator
    ratios, firsts = [], []
    for _ in range(rounds):
        clear_null_cache()
        if new_width:
            clear_width_caches()
        first = step(loss, x)
        ratios.append(first / statistics.median(step(loss, x) for _ in range(later)))
        firsts.append(first)
    return statistics.median(ratios), statistics.median(firsts)


def profile_first_call(name: str, n: int, d: int, device: str = "cpu") -> None:
    from latentshape.calibration import clear_null_cache

    loss = losses()[name].to(device)
    x = torch.randn(n, d).to(device).requires_grad_()
    step(loss, x)
    clear_null_cache()
    profiler = cProfile.Profile()
    profiler.enable()
    step(loss, x)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--later", type=int, default=9)
    parser.add_argument("--profile", help="cProfile one first call of this loss (class name) instead")
    parser.add_argument("--losses", help="comma-separated class names (default: all)")
    parser.add_argument("--cpu-time", action="store_true", help="the thread's CPU clock instead of the wall clock")
    add_device_option(parser)
    args = parser.parse_args()
    if args.cpu_time and args.device == "cuda":
        parser.error("--cpu-time reads the CPU clock: it does not count GPU work, use it with --device cpu")
    device = use_device(args.device)
    if args.cpu_time:
        global CLOCK
        CLOCK = time.thread_time
    if args.profile:
        profile_first_call(args.profile, *SHAPES[0], device=args.device)
        return
    print(device_header(device) + "\n")
    print("| loss | N | d | first / later, new N | first / later, new d | first call, new N |\n|---|---|---|---|---|---|")
    chosen = args.losses.split(",") if args.losses else None
    for name, loss in losses().items():
        if (chosen and name not in chosen) or (name == MONTE_CARLO_SLICED and not chosen):
            continue
        loss = loss.to(args.device)
        for n, d in SHAPES:
            rounds = 1 if name == MONTE_CARLO_SLICED else args.rounds
            new_n, seconds = first_over_later(loss, n, d, rounds, args.later, new_width=False, device=args.device)
            new_d = first_over_later(loss, n, d, rounds, args.later, new_width=True, device=args.device)[0]
            print(f"| {name} | {n} | {d} | {new_n:.1f}x | {new_d:.1f}x | {1000 * seconds:.0f} ms |", flush=True)


if __name__ == "__main__":
    main()
