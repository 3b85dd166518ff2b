"""Forward + backward cost of all-order candidates relative to today's default, interleaved, 1 thread.

At (N, d) = (4096, 128) and (65536, 16) (and a few more shapes), each step is one forward and
backward of a term on a float32 batch; the steps are interleaved round by round and the table
gives the median time of each divided by the median of today's default ``WristbandLoss()``
(raw, spectral degree 2). A candidate's cost is default + its extra terms: the ratio column
"default + term" adds the term's ratio to 1. The block and feature terms are timed from
precomputed directions and radii where marked (a real integration shares the map with the
default's terms; the map's own cost is listed).

    python benchmarks/allorder_cost.py
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from pathlib import Path

import torch

from latentshape import WristbandLoss
from latentshape.wristband.blocks import block_residual_energy
from latentshape.wristband.kernel import pairwise_row_sums
from latentshape.wristband.map import wristband_map
from latentshape.wristband.mercer import radial_coefficients

RADIAL = radial_coefficients(8.0, 6)


def default_step(x):
    loss = WristbandLoss(calibrate=False)
    return lambda: loss(x)


def _mapped(x):
    """Directions and radii as leaves: a real integration shares the map with the default's terms."""
    with torch.no_grad():
        u, t, _ = wristband_map(x)
    return u.unsqueeze(0).requires_grad_(), t.to(x.dtype).unsqueeze(0).requires_grad_()


def block_step(x, block, scales=(8.0,)):
    """What a sharp kernel's all-degree energy adds to the default: its residual (degrees >= 3) on
    blocks of B. (Its degrees <= 2 are free: they reuse the default's feature sums with other
    coefficients, ``energy_from_sums``.)"""
    weights = tuple(1.0 / len(scales) for _ in scales)
    u, t = _mapped(x)

    def step():
        u.grad, t.grad = None, None
        return block_residual_energy(u, t, RADIAL, scales, weights, block).sum()
    return step


def coordinate_step(x):
    from latentshape.wristband.coordinates import coordinate_smooth_statistic

    return lambda: coordinate_smooth_statistic(x).sum()


def recommended_extra_step(x):
    """Everything the recommended default adds to today's: the sharp residual at the block rule's B
    plus the coordinate statistic (the sharp kernel's degrees <= 2 reuse the default's feature sums)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from allorder_recommended import default_block

    residual = block_step(x, default_block(*x.shape))
    coordinates = coordinate_step(x)
    return lambda: residual() + coordinates()


def pairwise_step(x):
    def step():
        u, t, _ = wristband_map(x)
        rows, _ = pairwise_row_sums(u.unsqueeze(0), t.to(x.dtype).unsqueeze(0), 8.0, (4.0 / 16) ** 0.5, "chordal")
        return rows.mean()
    return step


def coordinate_sorted_step(x):
    """The radial term's transport per coordinate (sorting each column)."""
    n = x.shape[0]
    q = (torch.arange(n, dtype=x.dtype) + 0.5) / n
    scores = torch.special.ndtri(q)

    def step():
        s, _ = torch.sort(x.T.contiguous(), dim=-1)
        return (0.5 * (12.0 * (torch.special.ndtr(s) - q) ** 2 + (s - scores) ** 2)).mean()
    return step


def coordinate_spectral_step(x, modes=6):
    """A 1-D kernel energy per coordinate: t = Phi(x), sum_k a_k (mean_i cos(k pi t_i))^2, k = 1..K."""
    a = torch.tensor(radial_coefficients(8.0, modes)[1:], dtype=x.dtype)
    frequencies = math.pi * torch.arange(1, modes + 1, dtype=x.dtype)

    def step():
        t = torch.special.ndtr(x)  # (N, d)
        means = torch.stack([torch.cos(f * t).mean(dim=0) for f in frequencies])  # (K, d)
        return (a[:, None] * means * means).sum() / x.shape[1]
    return step


def feature_step(x, features, c=4.0):
    d = x.shape[1]
    omega = math.sqrt(c) * torch.randn(d, features, generator=torch.Generator().manual_seed(0))
    a = torch.tensor(RADIAL, dtype=x.dtype)
    frequencies = math.pi * torch.arange(len(RADIAL), dtype=x.dtype)

    u, t = _mapped(x)
    u, t = u[0].detach().requires_grad_(), t[0].detach().requires_grad_()

    def step():
        u.grad, t.grad = None, None
        phase = u @ omega
        w = torch.cos(t[:, None] * frequencies)
        sums = torch.cat([torch.cos(phase), torch.sin(phase)], dim=1).T @ w / x.shape[0]
        return (sums * sums * a).sum() / features
    return step


def timed(step, x) -> float:
    x.grad = None
    began = time.perf_counter()
    step().backward()
    return time.perf_counter() - began


def map_step(x):
    def step():
        u, t, _ = wristband_map(x)
        return u.sum() + t.sum()
    return step


def run(shapes=((4096, 128), (65536, 16), (16384, 64), (1024, 64)), rounds: int = 7) -> None:
    """Print the ratio table; ``rounds`` interleaved rounds after one warm-up each."""
    torch.set_num_threads(1)
    print("| N | d | term | term / default | default + term |")
    print("|---|---|---|---:|---:|")
    for n, d in shapes:
        x = torch.randn(n, d, generator=torch.Generator().manual_seed(0), requires_grad=True)
        steps = {"default (spectral degree 2)": default_step(x), "the map alone (shared)": map_step(x)}
        for block in (8, 16, 64, 256):
            steps[f"residual of c=8 on blocks, B={block}"] = block_step(x, block)
        steps["per-coordinate transport (sort)"] = coordinate_sorted_step(x)
        steps["per-coordinate smooth statistic (library, K=4)"] = coordinate_step(x)
        steps["recommended extra (residual at rule B + coord)"] = recommended_extra_step(x)
        for features in (64, 256):
            steps[f"random features M={features}"] = feature_step(x, features)
        if n * n * d <= (1 << 31):
            steps["exact pairwise (library)"] = pairwise_step(x)
        times = {name: [] for name in steps}
        for name, step in steps.items():
            timed(step, x)  # warm-up
        for _ in range(rounds):
            for name, step in steps.items():
                times[name].append(timed(step, x))
        base = statistics.median(times["default (spectral degree 2)"])
        for name in steps:
            ratio = statistics.median(times[name]) / base
            total = ratio if name.startswith(("default", "exact", "the map")) else 1.0 + ratio
            print(f"| {n} | {d} | {name} | {ratio:.2f} | {total:.2f} |", flush=True)


if __name__ == "__main__":
    run(shapes=((4096, 128), (65536, 16)) if "--targets" in sys.argv else ((4096, 128), (65536, 16), (16384, 64), (1024, 64)))
