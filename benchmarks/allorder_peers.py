"""Detection by the library's regularizers as a user builds them (calibrated), on the design sources at N = 1024.

Calibrated z (``latentshape.bench.regularizers.zscore``) of the previous default
``WristbandLoss(lambda_sharp=0, lambda_coord=0)`` and its pairwise path (closed-form nulls), ``SIGReg``, ``GaussianMMD``,
``SlicedWassersteinGaussian`` and ``MomentMatchingLoss`` (Monte-Carlo nulls of 200 batches), mean
of the same 2 batches per source as ``allorder_components.py``; saved to ``results/allorder_peers.json``.

    python benchmarks/allorder_peers.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from allorder_design import DTYPE, RESULTS, sources  # noqa: E402

from latentshape import GaussianMMD, MomentMatchingLoss, SIGReg, SlicedWassersteinGaussian, WristbandLoss  # noqa: E402
from latentshape.bench.regularizers import zscore  # noqa: E402

PEERS = {
    "previous default": lambda: WristbandLoss(lambda_sharp=0, lambda_coord=0),
    "WristbandLoss(pairwise)": lambda: WristbandLoss(method="pairwise", lambda_sharp=0, lambda_coord=0),
    "SIGReg": lambda: SIGReg(calibrate=True, null_samples=200),
    "GaussianMMD": lambda: GaussianMMD(calibrate=True, null_samples=200),
    "SlicedW2": lambda: SlicedWassersteinGaussian(calibrate=True, null_samples=200),
    "MomentMatching": lambda: MomentMatchingLoss(calibrate=True, null_samples=200),
}


def main(n: int = 1024, dims=(2, 3, 16, 64)) -> None:
    torch.set_num_threads(1)
    records = []
    for d in dims:
        began = time.perf_counter()
        for label, build in PEERS.items():
            module = build()
            for name, sampler in sources().items():
                xs = [sampler(n, d, torch.Generator().manual_seed(100 + r)).to(DTYPE) for r in range(2)]
                z = sum(zscore(module, x) for x in xs) / 2
                records.append({"d": d, "source": name, "candidate": label, "z": z})
        print(f"d={d}: {time.perf_counter() - began:.0f} s", flush=True)
        (RESULTS / "allorder_peers.json").write_text(json.dumps(records))


if __name__ == "__main__":
    main()
