"""Population mode under torch.distributed (gloo, 2 ranks, unequal rows): every rank holds the
single-process estimate of the global batches, the same values, and its rows' single-process gradient."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

_WORKER_PATH = Path(__file__).with_name("population_worker.py")
_spec = importlib.util.spec_from_file_location("latentshape_population_worker", _WORKER_PATH)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)
_spec = importlib.util.spec_from_file_location("latentshape_gloo_world", Path(__file__).with_name("gloo_world.py"))
gloo_world = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gloo_world)

WORLD_SIZE = 2


def _run_world(out_dir: Path) -> list[dict]:
    return gloo_world.run_world(_WORKER_PATH, WORLD_SIZE, out_dir)


def test_every_rank_holds_the_global_estimate(tmp_path):
    ranks = _run_world(tmp_path)
    reference = worker.run(worker.modules(False), worker.global_batches(WORLD_SIZE))
    for name, expected in reference.items():
        start = 0
        for rank, results in enumerate(ranks):
            got = results[name]
            torch.testing.assert_close(got["values"], expected["values"], rtol=1e-10, atol=1e-12)
            for key, value in expected["state"].items():
                torch.testing.assert_close(got["state"][key], value, rtol=1e-10, atol=1e-12)
            rows = worker.ROWS_PER_RANK[rank]
            torch.testing.assert_close(got["grad"], expected["grad"][start:start + rows], rtol=1e-9, atol=1e-12)
            start += rows
