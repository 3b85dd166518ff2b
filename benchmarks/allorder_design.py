"""Design measurements for an all-order default wristband: detection power, Gaussianization, cost.

    python benchmarks/allorder_design.py detection [--quick]     # z at N = 1024, d = 2, 3, 16, 64
    python benchmarks/allorder_design.py gaussianize [--quick]   # Adam on the points, N = 512
    python benchmarks/allorder_design.py cost                    # fwd + bwd time ratios, 1 thread

Detection: each candidate's calibrated total (see ``allorder_candidates``; null by Monte-Carlo,
R null batches at the same (N, d), a fixed seed) and each peer's calibrated ``zscore``, mean
over 2 batches per source; "detected" is z > 5. Sources: ``allorder_sources`` (tuning suite A,
held-out suite B) and ``latentshape.bench``'s non-Gaussian sources. Results are printed as
markdown and saved as JSON next to this script (``results/``).

The detection tables of ``docs/allorder_design.md`` come from the cheaper pipeline
``allorder_components.py`` (raw components saved once) + ``allorder_combine.py`` (any z-level
combination offline) + ``allorder_peers.py``; the ``detection`` part here evaluates the full
candidate list directly (hours on a busy two-core machine).
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

sys.path.insert(0, str(Path(__file__).parent))

from allorder_candidates import Batch, Spec, calibrated_total, null_stats, raw_components  # noqa: E402
from allorder_sources import SUITE_A, SUITE_B  # noqa: E402

from latentshape import GaussianMMD, MomentMatchingLoss, SIGReg, SlicedWassersteinGaussian, WristbandLoss  # noqa: E402
from latentshape.bench.distributions import DISTRIBUTIONS  # noqa: E402
from latentshape.bench.regularizers import zscore  # noqa: E402

RESULTS = Path(__file__).parent / "results"
BENCH_SOURCES = ("copula", "mixture", "anisotropic", "ball", "subspace")
THIRD = 4.0 / 3.0
DTYPE = torch.float32  # the N x N work; log-energies and totals are formed in float64


def candidates(d: int, which: str = "main") -> list[Spec]:
    from latentshape.wristband.harmonics import degree_for_share

    if which == "zsum":  # scales combined at the z level: one rep component per kernel
        return [
            Spec("z: pair c4/3 + pair c4", (THIRD,), second=(4.0,)),
            Spec("z: pair c4/3 + pair c8", (THIRD,), second=(8.0,)),
            Spec("z: spec2 c4/3 + pair c4", (THIRD,), degree=2, second=(4.0,)),
            Spec("z: spec2 c4/3 + pair c8", (THIRD,), degree=2, second=(8.0,)),
            Spec("z: spec2 c4/3 + block64 c8", (THIRD,), degree=2, second=(8.0,), second_block=64),
            Spec("z: spec2 c4/3 + block256 c8", (THIRD,), degree=2, second=(8.0,), second_block=256),
            Spec("z: spec2 c4/3 + pair c8 +coord", (THIRD,), degree=2, second=(8.0,), coord=1.0),
            Spec("z: spec2 c4/3 + pair c4 +coord", (THIRD,), degree=2, second=(4.0,), coord=1.0),
            Spec("z: spec2 c4/3 + pair c6", (THIRD,), degree=2, second=(6.0,)),
            Spec("z: spec2 c4/3 + pair c12", (THIRD,), degree=2, second=(12.0,)),
        ]
    if which == "radial":  # rep without its pure-radial channel, rad weighted up
        out = []
        for name, scales in (("spec2 c4/3", (THIRD,)), ("pair c4", (4.0,)), ("multi 4/3+8", (THIRD, 8.0)),
                             ("multi 4/3+4", (THIRD, 4.0))):
            degree = 2 if name.startswith("spec2") else None
            for lam in (0.1, 1.0):
                out.append(Spec(f"{name} -radial, rad {lam:g}", scales, degree=degree, drop_radial=True, lambda_rad=lam))
        out.append(Spec("multi 4/3+8 -radial, rad 1 +coord", (THIRD, 8.0), drop_radial=True, lambda_rad=1.0, coord=1.0))
        out.append(Spec("multi 4/3+8 rad 1", (THIRD, 8.0), lambda_rad=1.0))
        return out
    return [
        Spec("pair c4/3", (THIRD,)),
        Spec("pair c2", (2.0,)),
        Spec("pair c4", (4.0,)),
        Spec("pair c8", (8.0,)),
        Spec("pair c4 b4", (4.0,), beta=4.0),
        Spec("pair c4 b16", (4.0,), beta=16.0),
        Spec("multi 4/3+4", (THIRD, 4.0)),
        Spec("multi 4/3+8", (THIRD, 8.0)),
        Spec("multi 2+8", (2.0, 8.0)),
        Spec("multi 4/3+4+12", (THIRD, 4.0, 12.0)),
        Spec("spec2 c4", (4.0,), degree=2),
        Spec("specL95 c4", (4.0,), degree=degree_for_share(d, 4.0, 0.95)),
        Spec("block64 c4", (4.0,), block=64),
        Spec("block256 c4", (4.0,), block=256),
        Spec("rf256 c4", (4.0,), features=256),
        Spec("rf1024 c4", (4.0,), features=1024),
        Spec("spec2 c4/3 +coord", (THIRD,), degree=2, coord=1.0),
        Spec("pair c4 +coord", (4.0,), coord=1.0),
        Spec("multi 4/3+8 +coord", (THIRD, 8.0), coord=1.0),
        Spec("block64 c4 +coord", (4.0,), block=64, coord=1.0),
    ]


def peers(d: int) -> dict:
    return {
        "default": WristbandLoss(calibrate=True),
        "SIGReg": SIGReg(calibrate=True),
        "MMD": GaussianMMD(calibrate=True),
        "SlicedW2": SlicedWassersteinGaussian(calibrate=True),
        "Moments": MomentMatchingLoss(calibrate=True),
    }


def sources() -> dict:
    table = {f"A:{k}": v for k, v in SUITE_A.items()}
    table.update({f"bench:{k}": DISTRIBUTIONS[k] for k in BENCH_SOURCES})
    table.update({f"B:{k}": v for k, v in SUITE_B.items()})
    return table


def detection(n: int, dims, samples: int, repeats: int, which: str = "main") -> dict:
    records = []
    for d in dims:
        began = time.perf_counter()
        specs = candidates(d, which)
        nulls = null_stats(specs, n, d, samples, dtype=DTYPE)
        modules = peers(d) if which == "main" else {}
        print(f"<!-- d={d}: candidate nulls {time.perf_counter() - began:.0f} s -->", flush=True)
        for name, sampler in sources().items():
            if name.endswith("lobes_triangle") and d < 2 or name == "bench:copula" and d < 2:
                continue
            scores: dict[str, list[float]] = {}
            for r in range(repeats):
                x = sampler(n, d, torch.Generator().manual_seed(100 + r)).to(DTYPE)
                with torch.no_grad():
                    batch = Batch(x)
                    for s in specs:
                        scores.setdefault(s.name, []).append(float(calibrated_total(raw_components(s, batch), nulls[s.name], s)))
                for label, module in modules.items():
                    scores.setdefault(label, []).append(zscore(module, x.float()))
            for label, values in scores.items():
                records.append({"d": d, "source": name, "candidate": label, "z": float(np.mean(values))})
        print(f"<!-- d={d}: done {time.perf_counter() - began:.0f} s -->", flush=True)
    return {"n": n, "samples": samples, "repeats": repeats, "records": records}


def _fmt(z: float) -> str:
    if not math.isfinite(z):
        return "nan"
    return f"{z:.0f}" if abs(z) >= 10 else f"{z:.1f}"


def print_detection(result: dict) -> None:
    records = result["records"]
    dims = sorted({r["d"] for r in records})
    labels = list(dict.fromkeys(r["candidate"] for r in records))
    names = list(dict.fromkeys(r["source"] for r in records))
    z = {(r["d"], r["source"], r["candidate"]): r["z"] for r in records}
    print(f"\nDetection at N = {result['n']}: calibrated z (mean of {result['repeats']} batches); "
          f"candidate nulls: {result['samples']} Monte-Carlo batches.\n")
    print("Sources detected (z > 5): suite A + bench / suite B (held out), per d\n")
    print("| candidate | " + " | ".join(f"d={d}" for d in dims) + " | total |")
    print("|---|" + "---|" * (len(dims) + 1))
    for label in labels:
        cells, total = [], 0
        for d in dims:
            tuning = [s for s in names if not s.startswith("B:") and (d, s, label) in z]
            held = [s for s in names if s.startswith("B:") and (d, s, label) in z]
            a = sum(z[(d, s, label)] > 5 for s in tuning)
            b = sum(z[(d, s, label)] > 5 for s in held)
            total += a + b
            cells.append(f"{a}/{len(tuning)} + {b}/{len(held)}")
        print(f"| {label} | " + " | ".join(cells) + f" | {total} |")
    for d in dims:
        print(f"\nd = {d}: z per source\n")
        print("| source | " + " | ".join(labels) + " |")
        print("|---|" + "---:|" * len(labels))
        for s in names:
            if (d, s, labels[0]) in z:
                print(f"| {s} | " + " | ".join(_fmt(z.get((d, s, label), float("nan"))) for label in labels) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["detection", "gaussianize", "cost"])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dims", type=int, nargs="*", help="gaussianize: dimensions")
    parser.add_argument("--sources", nargs="*", help="gaussianize: source names")
    parser.add_argument("--labels", nargs="*", help="gaussianize: candidate labels")
    parser.add_argument("--tag", default="", help="gaussianize: suffix of the JSON file")
    parser.add_argument("--set", default="main", choices=["main", "radial", "zsum"], help="candidate list (detection)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)
    if args.part == "detection":
        result = detection(256 if args.quick else 1024, (3, 16) if args.quick else (2, 3, 16, 64),
                           40 if args.quick else 300, 1 if args.quick else 2, args.set)
        suffix = ("_quick" if args.quick else "") + ("" if args.set == "main" else f"_{args.set}")
        (RESULTS / f"allorder_detection{suffix}.json").write_text(json.dumps(result))
        print_detection(result)
    elif args.part == "gaussianize":
        from allorder_gaussianize import run as gaussianize_run

        gaussianize_run(args.quick, dims=tuple(args.dims or (2, 3, 10)), names=args.sources, labels=args.labels,
                        tag=args.tag)
    else:
        from allorder_cost import run as cost_run

        cost_run()


if __name__ == "__main__":
    main()
