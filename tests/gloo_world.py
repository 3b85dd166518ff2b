"""Shared launcher for the gloo tests: spawn one process per rank of a worker script and collect
what each rank saved (parent side), and the worker's init / run / save frame (rank side).

A worker script is run as ``python worker.py rank world_size port out_dir`` and calls
:func:`serve` with a function of (rank, world_size) returning what the rank saves.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import torch

__all__ = ["run_world", "serve"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_world(worker: Path, world_size: int, out_dir: Path, timeout: float = 240.0) -> list[Any]:
    """Run ``worker`` on ``world_size`` ranks (one thread each) and return every rank's saved results."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    port = _free_port()
    processes = [subprocess.Popen([sys.executable, str(worker), str(rank), str(world_size), str(port), str(out_dir)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for rank in range(world_size)]
    outputs = []
    for process in processes:
        try:
            outputs.append(process.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            for other in processes:
                other.kill()
            raise
    failed = [(rank, p.returncode, out) for rank, (p, out) in enumerate(zip(processes, outputs)) if p.returncode]
    assert not failed, "\n".join(f"rank {rank} exited with {code}:\n{out[-4000:]}" for rank, code, out in failed)
    return [torch.load(out_dir / f"rank{rank}.pt") for rank in range(world_size)]


def serve(compute: Callable[[int, int], Any]) -> None:
    """Rank side: join the gloo group named by ``sys.argv``, save ``compute(rank, world_size)``."""
    import torch.distributed as dist

    rank, world_size, port, out_dir = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        results = compute(rank, world_size)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    torch.save(results, out_dir / f"rank{rank}.pt")
