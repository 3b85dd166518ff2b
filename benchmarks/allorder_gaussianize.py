"""Gaussianization by each candidate alone: the points are the parameters (Adam, 300 steps, N = 512).

For each source and d in (2, 3, 10), start from one sample (seed 0) and run Adam on the points
with the loss alone, for each learning rate in (0.01, 0.03). Two judges score the final cloud,
each taking its best learning rate:

- W2 z: the exact W2 to a reference N(0, I) batch, standardized among fresh Gaussian batches
  (``latentshape.bench``'s ``w2_reference``; 0 = as Gaussian as a sample);
- ED z: the energy distance to N(0, I) with the Gaussian side in closed form (no reference
  sample: E|x - Y| for Y ~ N(0, I) is the mean of a noncentral chi), standardized among 64 fresh
  Gaussian batches: a deterministic judge with power at d = 10, where W2 between two samples of
  512 points is mostly sampling noise.

Wristband candidates are calibrated totals (``allorder_candidates``, null by Monte-Carlo at
(512, d)); peers are the library's modules as a user builds them.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import special

sys.path.insert(0, str(Path(__file__).parent))

from allorder_candidates import Batch, Spec, calibrated_total, null_stats, raw_components  # noqa: E402
from allorder_sources import SUITE_A  # noqa: E402

from latentshape import GaussianMMD, MomentMatchingLoss, SIGReg, SlicedWassersteinGaussian, WristbandLoss  # noqa: E402
from latentshape.bench.distributions import DISTRIBUTIONS  # noqa: E402
from latentshape.bench.protocols import w2_reference  # noqa: E402

RESULTS = Path(__file__).parent / "results"
N, STEPS, RATES = 512, 300, (0.01, 0.03)
THIRD = 4.0 / 3.0
SPECS: list = []  # prototypes of allorder_candidates (none by default: the recommended loss is built from library parts)


def peers() -> dict:
    return {"default": lambda: WristbandLoss(),
            "previous default": lambda: WristbandLoss(lambda_sharp=0, lambda_coord=0),
            "pairwise c4/3": lambda: WristbandLoss(method="pairwise", lambda_sharp=0, lambda_coord=0),
            "SIGReg": lambda: SIGReg(calibrate=False),
            "MMD": lambda: GaussianMMD(calibrate=False), "SlicedW2": lambda: SlicedWassersteinGaussian(calibrate=False),
            "Moments": lambda: MomentMatchingLoss(calibrate=False)}


def sources() -> dict:
    table = {k: DISTRIBUTIONS[k] for k in ("x", "mixture", "student_t", "ball")}
    table.update({k: v for k, v in SUITE_A.items() if k in ("poles_simplex", "bimodal_coord", "cube")})
    return table


def _mean_distance_to_gaussian(x: np.ndarray) -> np.ndarray:
    """E|x - Y|, Y ~ N(0, I_d): sqrt(2) Gamma((d+1)/2) / Gamma(d/2) 1F1(-1/2; d/2; -|x|^2 / 2)."""
    d = x.shape[1]
    scale = math.sqrt(2.0) * math.exp(special.gammaln((d + 1) / 2) - special.gammaln(d / 2))
    return scale * special.hyp1f1(-0.5, d / 2.0, -0.5 * (x * x).sum(1))


def energy_distance(x: np.ndarray) -> float:
    d, n = x.shape[1], x.shape[0]
    pair = np.sqrt(np.maximum((x * x).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2 * x @ x.T, 0))
    within = pair.sum() / (n * (n - 1))
    gaussian = 2.0 * math.exp(special.gammaln((d + 1) / 2) - special.gammaln(d / 2))
    return 2.0 * _mean_distance_to_gaussian(x).mean() - within - gaussian


_ED_NULL: dict = {}


def ed_score(x: np.ndarray) -> float:
    d = x.shape[1]
    if d not in _ED_NULL:
        g = torch.Generator().manual_seed(5150 + d)
        draws = [energy_distance(torch.randn(N, d, generator=g, dtype=torch.float64).numpy()) for _ in range(64)]
        _ED_NULL[d] = (float(np.mean(draws)), float(np.std(draws, ddof=1)))
    mean, sd = _ED_NULL[d]
    return (energy_distance(x) - mean) / sd


def _loss_fn(label: str, d: int):
    spec = next((s for s in SPECS if s.name == label), None)
    if spec is None:
        module = peers()[label]()
        return module
    stats = null_stats([spec], N, d, 200, dtype=torch.float32)[spec.name]
    return lambda x: calibrated_total(raw_components(spec, Batch(x)), stats, spec)


def descend(label: str, start: torch.Tensor, lr: float) -> np.ndarray | None:
    torch.manual_seed(0)
    loss_fn = _loss_fn(label, start.shape[1])
    points = torch.nn.Parameter(start.clone())
    optimizer = torch.optim.Adam([points], lr=lr)
    for _ in range(STEPS):
        loss = loss_fn(points)
        if not torch.isfinite(loss):
            return None
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    final = points.detach().double().numpy()
    return final if np.isfinite(final).all() else None


def run(quick: bool = False, dims=(2, 3, 10), names=None, labels=None, tag: str = "") -> None:
    """One row per (d, source, candidate) printed as it completes; the JSON is rewritten after each cell."""
    dims = (2, 3) if quick else dims
    labels = labels or (list(peers()) + [s.name for s in SPECS])
    table = sources()
    chosen = {k: table[k] for k in (names or (["x"] if quick else list(table)))}
    records = []
    path = RESULTS / f"allorder_gaussianize{'_quick' if quick else ''}{tag}.json"
    RESULTS.mkdir(exist_ok=True)
    print("| d | source | candidate | W2 z | ED z | seconds |\n|---|---|---|---:|---:|---:|", flush=True)
    for d in dims:
        reference = w2_reference(N, d, 32, 0)
        for source, sampler in chosen.items():
            if source == "copula" and d < 2:
                continue
            start = sampler(N, d, torch.Generator().manual_seed(0)).float()
            records.append({"d": d, "source": source, "candidate": "start", "w2": reference.score(start),
                            "ed": ed_score(start.double().numpy())})
            print(f"| {d} | {source} | start | {records[-1]['w2']:.1f} | {records[-1]['ed']:.1f} | |", flush=True)
            for label in labels:
                began, best = time.perf_counter(), {"w2": math.inf, "ed": math.inf}
                for lr in RATES:
                    final = descend(label, start, lr)
                    if final is not None:
                        best["w2"] = min(best["w2"], reference.score(final))
                        best["ed"] = min(best["ed"], ed_score(final))
                records.append({"d": d, "source": source, "candidate": label, **best, "seconds": time.perf_counter() - began})
                print(f"| {d} | {source} | {label} | {best['w2']:.1f} | {best['ed']:.1f} | {records[-1]['seconds']:.0f} |",
                      flush=True)
            path.write_text(json.dumps(records))
    print_tables(records)


def print_tables(records) -> None:
    labels = list(dict.fromkeys(r["candidate"] for r in records))
    keyed = {(r["d"], r["source"], r["candidate"]) for r in records}
    sources_at = {d: [s for s in dict.fromkeys(r["source"] for r in records if r["d"] == d)
                      if all((d, s, c) in keyed for c in labels)] for d in {r["d"] for r in records}}
    dims = sorted({r["d"] for r in records})
    z = {(r["d"], r["source"], r["candidate"]): r for r in records}
    for judge in ("w2", "ed"):
        print(f"\n{judge.upper()} z after {STEPS} Adam steps (best of lr {RATES}), N = {N}\n")
        print("| d | source | " + " | ".join(labels) + " |")
        print("|---|---|" + "---:|" * len(labels))
        for d in dims:
            names = sources_at[d]
            for s in names:
                print(f"| {d} | {s} | " + " | ".join(f"{z[(d, s, c)][judge]:.1f}" for c in labels) + " |")
            means = [np.mean([z[(d, s, c)][judge] for s in names]) for c in labels]
            print(f"| {d} | **mean** | " + " | ".join(f"**{m:.1f}**" for m in means) + " |")


def summarize(tags=("_x", "_avg")) -> None:
    """Merge the JSON files of several runs (e.g. the X at d = 2, 3 and the other sources) into the
    per-source tables and the mean over the sources present at each d, for both judges.

        python -c "import sys; sys.path.insert(0, 'benchmarks'); import allorder_gaussianize as g; g.summarize()"
    """
    records = []
    for tag in tags:
        path = RESULTS / f"allorder_gaussianize{tag}.json"
        if path.exists():
            records += json.loads(path.read_text())
    cells = {(r["d"], r["source"]) for r in records}
    keyed = {(r["d"], r["source"], r["candidate"]) for r in records}
    labels = [c for c in dict.fromkeys(r["candidate"] for r in records) if all((d, s, c) in keyed for d, s in cells)]
    records = [r for r in records if r["candidate"] in labels]
    print_tables(records)
