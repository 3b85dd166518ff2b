"""Population mode under torch.distributed (gloo, 2 ranks, unequal rows): every rank holds the
single-process estimate of the global batches, the same values, and its rows' single-process gradient."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

_WORKER_PATH = Path(__file__).with_name("population_worker.py")
_spec = importlib.util.spec_from_file_location("latentshape_population_worker", _WORKER_PATH)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)

WORLD_SIZE = 2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_world(out_dir: Path) -> list[dict]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    port = _free_port()
    processes = [subprocess.Popen([sys.executable, str(_WORKER_PATH), str(rank), str(WORLD_SIZE), str(port), str(out_dir)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for rank in range(WORLD_SIZE)]
    outputs = []
    for process in processes:
        try:
            outputs.append(process.communicate(timeout=240)[0])
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
    failed = [(rank, p.returncode, out) for rank, (p, out) in enumerate(zip(processes, outputs)) if p.returncode]
    assert not failed, "\n".join(f"rank {rank} exited with {code}:\n{out[-4000:]}" for rank, code, out in failed)
    return [torch.load(out_dir / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


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
