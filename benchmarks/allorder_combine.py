"""Score z-level combinations of single-kernel reps (with rad, mom, coord) from ``allorder_components.py``'s raw draws.

A combination is a list of rep components (one per base kernel) plus rad (weight 0.1), mom (1)
and optionally coord (1). Its null mean, sd and correlation come from the saved null batches
(the same batches for every base, so correlations between reps are kept), and each source's z
is the calibrated total, mean of 2 batches. Where ``allorder_raw_extra_d*.pt`` exist (the same
batches, fewer null draws) they are merged in and every null is cut to the common draws. Prints the count of sources with z > 5 and the z
table, per d.

    python benchmarks/allorder_combine.py
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from latentshape.calibration import NullStats  # noqa: E402

RESULTS = Path(__file__).parent / "results"
COORD_MODES = 8
A_MODES = torch.tensor([2 * math.sqrt(math.pi / 8) * math.exp(-math.pi**2 * k * k / 32) for k in range(1, COORD_MODES + 1)],
                       dtype=torch.float64)
COORDINATE_STATISTICS = {  # from c_jk = mean_i cos(k pi Phi(x_ij)), (..., d, K)
    "energy": lambda c: (A_MODES * c * c).sum(-1).mean(-1),
    "neyman4": lambda c: (c[..., :4] ** 2).sum(-1).mean(-1),
    "neyman4 sq": lambda c: ((c[..., :4] ** 2).sum(-1) ** 2).mean(-1),
    "energy sq": lambda c: ((A_MODES * c * c).sum(-1) ** 2).mean(-1),
}
COMBINATIONS = {
    "default (spec2 c4/3)": (["spec2 c4/3"], False),
    "pair c4": (["pair c4"], False),
    "pair c8": (["pair c8"], False),
    "z: spec2 + pair c4": (["spec2 c4/3", "pair c4"], False),
    "z: spec2 + pair c6": (["spec2 c4/3", "pair c6"], False),
    "z: spec2 + pair c8": (["spec2 c4/3", "pair c8"], False),
    "z: spec2 + pair c12": (["spec2 c4/3", "pair c12"], False),
    "z: spec2 + pair c16": (["spec2 c4/3", "pair c16"], False),
    "z: pair c4/3 + pair c8": (["pair c4/3", "pair c8"], False),
    "z: spec2 + pair c4 + pair c12": (["spec2 c4/3", "pair c4", "pair c12"], False),
    "z: spec2 + block256 c8": (["spec2 c4/3", "block256 c8"], False),
    "z: spec2 + block64 c8": (["spec2 c4/3", "block64 c8"], False),
    "default +coord": (["spec2 c4/3"], True),
    "z: spec2 + pair c4 +coord": (["spec2 c4/3", "pair c4"], True),
    "z: spec2 + pair c8 +coord": (["spec2 c4/3", "pair c8"], True),
    "z: spec2 + pair c12 +coord": (["spec2 c4/3", "pair c12"], True),
    "z: spec2 + pair c4 + pair c12 +coord": (["spec2 c4/3", "pair c4", "pair c12"], True),
    "z: spec2 + block256 c8 +coord": (["spec2 c4/3", "block256 c8"], True),
    "z: spec2 + block64 c8 +coord": (["spec2 c4/3", "block64 c8"], True),
    "z: spec2 + pair c8 +c:energy": (["spec2 c4/3", "pair c8"], "energy"),
    "z: spec2 + pair c8 +c:neyman4": (["spec2 c4/3", "pair c8"], "neyman4"),
    "z: spec2 + pair c8 +c:neyman4 sq": (["spec2 c4/3", "pair c8"], "neyman4 sq"),
    "z: spec2 + pair c8 +c:energy sq": (["spec2 c4/3", "pair c8"], "energy sq"),
    "z: spec2 + pair c8 +c:energy +c:neyman4 sq": (["spec2 c4/3", "pair c8"], ("energy", "neyman4 sq")),
    "z: spec2 + block256 c8 +c:neyman4 sq": (["spec2 c4/3", "block256 c8"], "neyman4 sq"),
    "z: spec2 + block256 c8 +c:energy +c:neyman4 sq": (["spec2 c4/3", "block256 c8"], ("energy", "neyman4 sq")),
    "default +c:neyman4 sq": (["spec2 c4/3"], "neyman4 sq"),
    "default +c:energy +c:neyman4 sq": (["spec2 c4/3"], ("energy", "neyman4 sq")),
    # the other design options (allorder_components.py --extra), alone and with the coordinate statistic
    "pair c4 b4": (["pair c4 b4"], False),
    "pair c4 b16": (["pair c4 b16"], False),
    "kernel sum 4/3+4": (["sum 4/3+4"], False),
    "kernel sum 4/3+8": (["sum 4/3+8"], False),
    "kernel sum 2+8": (["sum 2+8"], False),
    "spec2 c4": (["spec2 c4"], False),
    "spec4 c8": (["spec4 c8"], False),
    "spec6 c8": (["spec6 c8"], False),
    "rf256 c8": (["rf256 c8"], False),
    "rf1024 c8": (["rf1024 c8"], False),
    "z: spec2 + spec4 c8 +c:neyman4 sq": (["spec2 c4/3", "spec4 c8"], "neyman4 sq"),
    "z: spec2 + rf1024 c8 +c:neyman4 sq": (["spec2 c4/3", "rf1024 c8"], "neyman4 sq"),
    "kernel sum 4/3+8 +c:neyman4 sq": (["sum 4/3+8"], "neyman4 sq"),
}


def coordinate_moments(x: torch.Tensor) -> torch.Tensor:
    """c_jk = mean_i cos(k pi Phi(x_ij)), k = 1..K: (d, K), float64."""
    t = torch.special.ndtr(x.to(torch.float64))
    k = torch.arange(1, COORD_MODES + 1, dtype=torch.float64)
    return torch.cos(math.pi * t[..., None] * k).mean(dim=-3)


def attach_coordinates(data: dict) -> None:
    """Recompute c_jk on the very batches of allorder_components.collect (same seeds and order)."""
    from allorder_design import DTYPE, sources

    n, d = data["n"], data["d"]
    samples = next(iter(data["null"].values())).shape[0]
    generator = torch.Generator().manual_seed(777 + 31 * n + d)
    data["coord_null"] = torch.stack([coordinate_moments(torch.randn(n, d, generator=generator, dtype=DTYPE))
                                      for _ in range(samples)])
    data["coord_sources"] = {name: torch.stack([coordinate_moments(sampler(n, d, torch.Generator().manual_seed(100 + r)).to(DTYPE))
                                                for r in range(2)]) for name, sampler in sources().items()}


def _coordinate_names(coord) -> tuple[str, ...]:
    if coord is True:
        return ("transport",)
    if not coord:
        return ()
    return (coord,) if isinstance(coord, str) else tuple(coord)


def columns(table: dict, reps: list[str], coord, moments: torch.Tensor | None = None) -> torch.Tensor:
    """(..., C): the reps, then rad and mom (from the first base), then the coordinate statistics
    ("transport": the sorted 1-D transport stored with spec2; others from the c_jk ``moments``)."""
    first = table[reps[0]]
    parts = [table[r][..., :1] for r in reps] + [first[..., 1:3]]
    for name in _coordinate_names(coord):
        if name == "transport":
            parts.append(table["spec2 c4/3"][..., 3:4])
        else:
            parts.append(COORDINATE_STATISTICS[name](moments).unsqueeze(-1))
    return torch.cat(parts, dim=-1)


def weights(reps: list[str], coord) -> torch.Tensor:
    return torch.tensor([1.0] * len(reps) + [0.1, 1.0] + [1.0] * len(_coordinate_names(coord)), dtype=torch.float64)


def score(data: dict) -> dict:
    attach_coordinates(data)
    out = {}
    for label, (reps, coord) in COMBINATIONS.items():
        if any(r not in data["null"] for r in reps):
            continue
        stats = NullStats.from_samples(columns(data["null"], reps, coord, data["coord_null"]))
        w = weights(reps, coord)
        scale = stats.combined_std(w)
        for source, table in data["sources"].items():
            z = (stats.standardize(columns(table, reps, coord, data["coord_sources"][source])) * w).sum(-1) / scale
            out[(source, label)] = float(z.mean())
    return out


def main() -> None:
    found = sorted(RESULTS.glob("allorder_raw_d*.pt"), key=lambda p: int(p.stem.split("_d")[-1]))
    results = {}
    for path in found:
        data = torch.load(path)
        extra = path.with_name(path.name.replace("allorder_raw_", "allorder_raw_extra_"))
        if extra.exists():  # the same batches (same seeds): merge the bases
            more = torch.load(extra)
            data["null"].update(more["null"])
            # the extra run drew fewer null batches: the first ones are the same batches, keep those
            shortest = min(v.shape[0] for v in data["null"].values())
            data["null"] = {k: v[:shortest] for k, v in data["null"].items()}
            for name in data["sources"]:
                data["sources"][name].update(more["sources"][name])
        results[int(path.stem.split("_d")[-1])] = score(data)
    peers = RESULTS / "allorder_peers.json"
    if peers.exists():  # the library's regularizers on the same batches (allorder_peers.py)
        for r in json.loads(peers.read_text()):
            if r["d"] in results:
                results[r["d"]][(r["source"], "peer: " + r["candidate"])] = r["z"]
    dims = sorted(results)
    found_labels = list(dict.fromkeys(key[1] for d in dims for key in results[d]))
    labels = [c for c in found_labels if all(any(key[1] == c for key in results[d]) for d in dims)]
    print("Sources detected (z > 5) at N = 1024: suite A + bench / suite B (held out)\n")
    print("| combination | " + " | ".join(f"d={d}" for d in dims) + " | total |")
    print("|---|" + "---|" * (len(dims) + 1))
    for label in labels:
        cells, total = [], 0
        for d in dims:
            names = sorted({s for s, _ in results[d]})
            a = sum(results[d][(s, label)] > 5 for s in names if not s.startswith("B:"))
            b = sum(results[d][(s, label)] > 5 for s in names if s.startswith("B:"))
            na = sum(not s.startswith("B:") for s in names)
            total += a + b
            cells.append(f"{a}/{na} + {b}/{len(names) - na}")
        print(f"| {label} | " + " | ".join(cells) + f" | {total} |")
    for d in dims:
        names = list(dict.fromkeys(s for s, _ in results[d]))
        print(f"\nd = {d}: z per source\n")
        print("| source | " + " | ".join(labels) + " |")
        print("|---|" + "---:|" * len(labels))
        for s in names:
            cells = [results[d][(s, label)] for label in labels]
            print(f"| {s} | " + " | ".join(f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}" for v in cells) + " |")


if __name__ == "__main__":
    main()
