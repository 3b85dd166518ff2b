"""Shared timing/memory harness for the benchmark scripts (not a test: numbers are printed, never asserted).

Each configuration runs in a fresh spawned process so that its peak memory can be read from
``ru_maxrss`` (CPU) or ``torch.cuda.max_memory_allocated`` (GPU), relative to the state just
before the measured call.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import time
from typing import Callable


def _child(build: Callable, args: tuple, repeats: int, queue) -> None:
    import torch

    try:
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
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        queue.put((statistics.median(times), max(peak, 0)))
    except Exception as error:  # report, don't crash the whole table
        queue.put((float("nan"), f"{type(error).__name__}: {error}"[:60]))


def measure(build: Callable, args: tuple, repeats: int = 3, timeout: float = 900.0):
    """Median seconds of ``step()`` and its peak extra memory in bytes, where ``build(*args) -> (step, device)``.

    Memory is the rise of the process's peak over the first (warm-up) call; time is the median
    of ``repeats`` later calls.
    """
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(build, args, repeats, queue))
    process.start()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        return float("nan"), "timeout"
    return queue.get() if not queue.empty() else (float("nan"), "crashed")


def fmt_seconds(value: float) -> str:
    if value != value:
        return "n/a"
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"


def fmt_bytes(value) -> str:
    if isinstance(value, str):
        return value
    return f"{value / 2**20:.0f} MiB" if value >= 2**20 else f"{value / 2**10:.0f} KiB"
