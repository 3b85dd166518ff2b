"""Offline Monte-Carlo behind the sliced Wasserstein null's table (one slice's variance and chaos split).

    python benchmarks/sliced_null_table.py run [--points 2,3,4,...] [--elements 6e7]   # appends to the .jsonl
    python benchmarks/sliced_null_table.py build                                       # fits, writes the table

For each N, R draws y ~ N(0, I_N) and, for every t on a grid, a partner y_t = sqrt(t) y + sqrt(1 - t) z
(correlation sqrt(t) per point, as two slices with rho^2 = t). One slice's statistic s is centred by
its exact mean and its exact order-2 chaos part (alpha A + beta B, see latentshape.gaussian.sliced_null)
is subtracted: the residual r has Var r = v = c(1) - b_1 and Cov(r(y), r(y_t)) = sum_{k>=2} b_k t^k.
Subtracting the known part removes ~70% of the variance of the estimates. Standard errors are
from 20 batch means. ``build`` fits, per N, b_2..b_4 >= 0 and a tail tau * sum_{k>4} t^k / k^2
to the residual covariances (weighted by their errors, the value at t = 1 held to v) and writes
src/latentshape/gaussian/_sliced_null_table.py.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from latentshape.gaussian.sliced_null import TAIL_ORDERS, TABLE_ORDERS, _exact_terms, tail_shape  # noqa: E402

RAW = ROOT / "benchmarks" / "results" / "sliced_null_table.jsonl"
TABLE = ROOT / "src" / "latentshape" / "gaussian" / "_sliced_null_table.py"
T_GRID = (0.05, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9)
DEFAULT_POINTS = (2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724, 1024, 1448, 2048,
                  2896, 4096, 5793, 8192, 16384)
BATCHES = 20


def slice_statistic(y: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    ordered, _ = torch.sort(y.float(), dim=-1)  # float32 sort: rounding ~1e-7 of s's spread
    gaps = ordered.double() - quantiles
    return (gaps * gaps).mean(dim=-1)


def residual(y: torch.Tensor, quantiles: torch.Tensor, mean: float, alpha: float, beta: float) -> torch.Tensor:
    """s - E s - alpha A - beta B: one slice's statistic less its exact order-0 and order-2 chaos parts."""
    square_sum = (y * y).sum(dim=-1)
    a = square_sum - y.shape[-1]
    b = (y.sum(dim=-1) ** 2 - square_sum) / 2
    return slice_statistic(y, quantiles) - mean - alpha * a - beta * b


def measure(n: int, draws: int, seed: int) -> dict:
    m, mean, b1 = _exact_terms(n)
    alpha, beta = (1.0 - m) / n, 2.0 * m / (n * (n - 1))  # Cov(s, A)/Var A, Cov(s, B)/Var B
    quantiles = torch.special.ndtri((torch.arange(n, dtype=torch.float64) + 0.5) / n)
    generator = torch.Generator().manual_seed(seed)
    per_batch = -(-draws // BATCHES)
    chunk = max(1, min(per_batch, (1 << 19) // n))
    variance, products = np.zeros(BATCHES), np.zeros((BATCHES, len(T_GRID)))
    plain = np.zeros(BATCHES)
    for batch in range(BATCHES):
        done = 0
        while done < per_batch:
            r = min(chunk, per_batch - done)
            y = torch.randn(r, n, generator=generator, dtype=torch.float64)
            z = torch.randn(r, n, generator=generator, dtype=torch.float64)
            base = residual(y, quantiles, mean, alpha, beta)
            plain[batch] += float(((slice_statistic(y, quantiles) - mean) ** 2).sum())
            squares = base * base
            for j, t in enumerate(T_GRID):
                partner = residual(math.sqrt(t) * y + math.sqrt(1.0 - t) * z, quantiles, mean, alpha, beta)
                products[batch, j] += float((base * partner).sum())
                squares = squares + partner * partner
            variance[batch] += float(squares.sum()) / (1 + len(T_GRID))
            done += r
    variance, products, plain = variance / per_batch, products / per_batch, plain / per_batch
    scale = n * n
    return {"n": n, "draws": per_batch * BATCHES, "seed": seed, "n2_b1": scale * b1,
            "n2_v": scale * variance.mean(), "n2_v_se": scale * variance.std(ddof=1) / math.sqrt(BATCHES),
            "n2_c1_plain": scale * plain.mean(), "n2_c1_plain_se": scale * plain.std(ddof=1) / math.sqrt(BATCHES),
            "t": list(T_GRID), "n2_r": list(scale * products.mean(axis=0)),
            "n2_r_se": list(scale * products.std(axis=0, ddof=1) / math.sqrt(BATCHES))}


def run(points: list[int], elements: float, cap: int, seed_offset: int) -> None:
    torch.set_num_threads(1)
    RAW.parent.mkdir(parents=True, exist_ok=True)
    for n in points:
        draws = int(min(cap, elements // n))
        start = time.perf_counter()
        row = measure(n, draws, seed=seed_offset + n)
        row["seconds"] = round(time.perf_counter() - start, 1)
        with RAW.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(f"N={n} R={row['draws']} {row['seconds']}s N^2 b1={row['n2_b1']:.4f} N^2 v={row['n2_v']:.4f}"
              f"+-{row['n2_v_se']:.4f} N^2 c1 plain={row['n2_c1_plain']:.4f}+-{row['n2_c1_plain_se']:.4f}", flush=True)


def fit_row(row: dict) -> list[float]:
    """N^2 (b_2..b_K, tau) >= 0 fitting the residual covariances, the value at t = 1 held to v."""
    from scipy.optimize import nnls

    t = np.array(row["t"] + [1.0])
    values = np.array(row["n2_r"] + [row["n2_v"]])
    errors = np.array(row["n2_r_se"] + [row["n2_v_se"] / 100.0])  # t = 1: the constraint
    design = np.stack([t**k for k in TABLE_ORDERS] + [tail_shape(t)], axis=1)
    coefficients, _ = nnls(design / errors[:, None], values / errors)
    return [float(c) for c in coefficients]


def pooled(group: list[dict]) -> dict:
    """Independent runs at one N pooled, weighted by their draws; of runs sharing a seed (overlapping
    draws, not independent) only the largest is kept."""
    largest: dict[int, dict] = {}
    for row in group:
        if row["seed"] not in largest or row["draws"] > largest[row["seed"]]["draws"]:
            largest[row["seed"]] = row
    group = list(largest.values())
    weights = np.array([row["draws"] for row in group], dtype=np.float64)
    weights /= weights.sum()
    result = {"n": group[0]["n"], "t": group[0]["t"], "draws": sum(row["draws"] for row in group)}
    for key in ("n2_v", "n2_r"):
        result[key] = list(np.einsum("r,r...->...", weights, np.array([row[key] for row in group])).reshape(-1))
        errors = np.array([row[key + "_se"] for row in group])
        result[key + "_se"] = list(np.sqrt(np.einsum("r,r...->...", weights**2, errors**2)).reshape(-1))
    result["n2_v"], result["n2_v_se"] = result["n2_v"][0], result["n2_v_se"][0]
    return result


def build() -> None:
    runs: dict[int, list[dict]] = {}
    for line in RAW.read_text().splitlines():
        row = json.loads(line)
        runs.setdefault(row["n"], []).append(row)
    rows = {n: pooled(group) for n, group in runs.items()}
    entries = []
    for n in sorted(rows):
        fitted = fit_row(rows[n])
        entries.append((n, rows[n]["n2_v"], *fitted))
        print(n, " ".join(f"{x:.4f}" for x in entries[-1][1:]))
    header = ("# Generated by benchmarks/sliced_null_table.py build from its Monte-Carlo run; do not edit.\n"
              '"""One slice\'s variance beyond its order-2 chaos, N^2 v, and its split N^2 b_k (k = '
              + ", ".join(map(str, TABLE_ORDERS)) + ') and N^2 tau, per N."""\n\n'
              '__all__ = ["ROWS", "TABLE_ORDERS"]\n\n'
              f"TABLE_ORDERS = {tuple(TABLE_ORDERS)}\n"
              "# (N, N^2 v, N^2 b_2, ..., N^2 b_K, N^2 tau)\nROWS = (\n")
    body = "".join("    (" + ", ".join([str(e[0])] + [f"{x:.6g}" for x in e[1:]]) + "),\n" for e in entries)
    TABLE.write_text(header + body + ")\n")
    print(f"wrote {TABLE.relative_to(ROOT)} ({len(entries)} rows)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("run", "build"))
    parser.add_argument("--points", default=",".join(map(str, DEFAULT_POINTS)))
    parser.add_argument("--elements", type=float, default=6e7, help="draws x N per point (caps the draws at large N)")
    parser.add_argument("--cap", type=int, default=100_000, help="most draws per point")
    parser.add_argument("--seed-offset", type=int, default=0, help="seed = offset + N: a second run at N needs a new offset")
    args = parser.parse_args()
    if args.mode == "run":
        run([int(p) for p in args.points.split(",")], args.elements, args.cap, args.seed_offset)
    else:
        build()


if __name__ == "__main__":
    main()
