"""Raw components of single-kernel candidates on null batches and on every source, saved for offline combination.

For N = 1024 and d in (3, 16, 64): R null batches and 2 batches per source; for each base kernel
(one rep each) the raw (rep, rad, mom, coord) are stored in ``results/allorder_raw_d{d}.pt``, so
that any z-level combination of several reps (scales combined after standardization) with rad,
mom and coord can be scored offline (``allorder_combine.py``) without recomputing kernels.

    python benchmarks/allorder_components.py [--samples 200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from allorder_candidates import Batch, Spec, raw_components  # noqa: E402
from allorder_design import DTYPE, RESULTS, THIRD, sources  # noqa: E402

BASES = [
    Spec("spec2 c4/3", (THIRD,), degree=2, coord=1.0),
    Spec("pair c4/3", (THIRD,)),
    Spec("pair c2", (2.0,)),
    Spec("pair c4", (4.0,)),
    Spec("pair c6", (6.0,)),
    Spec("pair c8", (8.0,)),
    Spec("pair c12", (12.0,)),
    Spec("pair c16", (16.0,)),
    Spec("block64 c8", (8.0,), block=64),
    Spec("block256 c8", (8.0,), block=256),
]
EXTRA = [  # the other design options, as single reps: radial sharpness, kernel sums, degree-L, features
    Spec("pair c4 b4", (4.0,), beta=4.0),
    Spec("pair c4 b16", (4.0,), beta=16.0),
    Spec("sum 4/3+4", (THIRD, 4.0)),
    Spec("sum 4/3+8", (THIRD, 8.0)),
    Spec("sum 2+8", (2.0, 8.0)),
    Spec("spec2 c4", (4.0,), degree=2),
    Spec("spec4 c8", (8.0,), degree=4),
    Spec("spec6 c8", (8.0,), degree=6),
    Spec("rf256 c8", (8.0,), features=256),
    Spec("rf1024 c8", (8.0,), features=1024),
]


def collect(n: int, d: int, samples: int, repeats: int = 2, bases=BASES) -> dict:
    generator = torch.Generator().manual_seed(777 + 31 * n + d)
    null = {s.name: [] for s in bases}
    with torch.no_grad():
        for _ in range(samples):
            batch = Batch(torch.randn(n, d, generator=generator, dtype=DTYPE))
            for s in bases:
                null[s.name].append(raw_components(s, batch))
        found = {}
        for name, sampler in sources().items():
            rows = {s.name: [] for s in bases}
            for r in range(repeats):
                batch = Batch(sampler(n, d, torch.Generator().manual_seed(100 + r)).to(DTYPE))
                for s in bases:
                    rows[s.name].append(raw_components(s, batch))
            found[name] = {k: torch.stack(v) for k, v in rows.items()}
    return {"null": {k: torch.stack(v) for k, v in null.items()}, "sources": found, "n": n, "d": d}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--dims", type=int, nargs="*", default=[3, 16, 64])
    parser.add_argument("--extra", action="store_true", help="the EXTRA bases, into allorder_raw_extra_d*.pt")
    args = parser.parse_args()
    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)
    for d in args.dims:
        began = time.perf_counter()
        bases, stem = (EXTRA, "allorder_raw_extra") if args.extra else (BASES, "allorder_raw")
        torch.save(collect(1024, d, args.samples, bases=bases), RESULTS / f"{stem}_d{d}.pt")
        print(f"d={d}: {time.perf_counter() - began:.0f} s", flush=True)


if __name__ == "__main__":
    main()
