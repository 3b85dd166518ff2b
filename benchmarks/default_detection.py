"""Detection by the default ``WristbandLoss()`` against every peer, on the design sources at N = 1024.

The calibrated total (closed-form null) of the default on the same 2 batches per source as
``allorder_peers.py`` (mean of the two), next to the peers' z from ``results/allorder_peers.json``
(run ``python benchmarks/allorder_peers.py`` first; its ``WristbandLoss()`` column is the previous
default, degree-2 only). Prints the z per source and the number of sources detected (z > 5) on
the tuning suite (A + the bench's sources, 12) and the held-out suite (B, 8) at each d.

    python benchmarks/default_detection.py [--dims 3,16,64]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from allorder_design import DTYPE, RESULTS, sources  # noqa: E402

from latentshape import WristbandLoss  # noqa: E402
from latentshape.bench.regularizers import zscore  # noqa: E402

RENAME = {"WristbandLoss()": "previous default"}
THRESHOLD = 5.0


def default_records(n: int, dims) -> list[dict]:
    module = WristbandLoss()
    records = []
    for d in dims:
        for name, sampler in sources().items():
            xs = [sampler(n, d, torch.Generator().manual_seed(100 + r)).to(DTYPE) for r in range(2)]
            records.append({"d": d, "source": name, "candidate": "default", "z": sum(zscore(module, x) for x in xs) / 2})
        print(f"<!-- d={d} done -->", flush=True)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="3,16,64")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dims = [int(v) for v in args.dims.split(",")]
    records = default_records(1024, dims)
    (RESULTS / "default_detection.json").write_text(json.dumps(records))
    peers = json.loads((RESULTS / "allorder_peers.json").read_text())
    records += [dict(r, candidate=RENAME.get(r["candidate"], r["candidate"])) for r in peers if r["d"] in dims]
    labels = list(dict.fromkeys(r["candidate"] for r in records))
    z = {(r["d"], r["source"], r["candidate"]): r["z"] for r in records}
    names = list(sources())
    print("\nSources detected (z > 5), tuning suite (12) + held-out suite (8), N = 1024\n")
    print("| candidate | " + " | ".join(f"d = {d}" for d in dims) + " | total |")
    print("|---|" + "---|" * len(dims) + "---:|")
    for label in labels:
        cells, total = [], 0
        for d in dims:
            tuning = sum(z[(d, s, label)] > THRESHOLD for s in names if not s.startswith("B:"))
            held = sum(z[(d, s, label)] > THRESHOLD for s in names if s.startswith("B:"))
            cells.append(f"{tuning}/12 + {held}/8")
            total += tuning + held
        print(f"| {label} | " + " | ".join(cells) + f" | {total} |")
    for d in dims:
        print(f"\nd = {d}: z per source\n")
        print("| source | " + " | ".join(labels) + " |")
        print("|---|" + "---:|" * len(labels))
        for s in names:
            print(f"| {s} | " + " | ".join(_fmt(z[(d, s, c)]) for c in labels) + " |")


def _fmt(value: float) -> str:
    return f"{value:.1f}" if abs(value) < 10 else f"{value:.0f}"


if __name__ == "__main__":
    main()
