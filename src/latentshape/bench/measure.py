"""Time and peak memory of one call, each configuration in a fresh spawned process.

Peak memory is read from ``ru_maxrss`` (CPU) or ``torch.cuda.max_memory_allocated`` (GPU),
relative to the state just before the first (warm-up) call; a fresh process per configuration
keeps one configuration's peak from hiding the next one's. Used by the speed protocol of
:mod:`latentshape.bench.protocols` and by the scripts in ``benchmarks/``.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import time
from typing import Callable

__all__ = ["measure", "median_seconds", "fmt_seconds", "fmt_bytes"]


def median_seconds(step: Callable[[], object], repeats: int, device: str = "cpu") -> float:
    """Median wall time of ``repeats`` calls of ``step`` (synchronizing CUDA after each)."""
    import torch

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _child(build: Callable, args: tuple, repeats: int, threads: int | None, queue) -> None:
    import torch

    try:
        if threads is not None:
            torch.set_num_threads(threads)
        step, device = build(*args)
        # Peak memory over the first call: freed pages stay resident in the CPU allocator, so a
        # later call's ru_maxrss would hide its own working set behind the warm-up's.
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        step()
        if device == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() - base
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
        queue.put((median_seconds(step, repeats, device), max(peak, 0)))
    except Exception as error:  # report, don't crash the whole table
        queue.put((float("nan"), f"{type(error).__name__}: {error}"[:60]))


def measure(
    build: Callable, args: tuple, repeats: int = 3, timeout: float = 900.0, threads: int | None = None
) -> tuple[float, int | str]:
    """Median seconds of ``step()`` and its peak extra memory in bytes, where ``build(*args) -> (step, device)``.

    ``build`` and ``args`` must pickle (a module-level function). Memory is the rise of the
    process's peak over the first (warm-up) call; time is the median of ``repeats`` later calls.
    ``threads``: torch's thread count in the child (default: torch's own). On failure the memory slot holds a short message.
    """
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(build, args, repeats, threads, queue))
    process.start()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        return float("nan"), "timeout"
    return queue.get() if not queue.empty() else (float("nan"), "crashed")


def fmt_seconds(value: float) -> str:
    """``0.0123 -> '12.3 ms'``; NaN -> ``'n/a'``.

    >>> fmt_seconds(0.0123), fmt_seconds(2.5)
    ('12.3 ms', '2.50 s')
    """
    if value != value:
        return "n/a"
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"


def fmt_bytes(value: int | float | str) -> str:
    """Bytes as KiB / MiB; a string (an error) passes through.

    >>> fmt_bytes(3 * 2**20), fmt_bytes(2048)
    ('3 MiB', '2 KiB')
    """
    if isinstance(value, str):
        return value
    return f"{value / 2**20:.0f} MiB" if value >= 2**20 else f"{value / 2**10:.0f} KiB"
