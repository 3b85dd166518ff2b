"""Train a tiny encoder with DistributedDataParallel and a global-batch Wristband loss.

    python examples/ddp_wristband.py --world-size 2

spawns ``--world-size`` CPU processes (gloo backend on 127.0.0.1). Every rank encodes its own
slice of the data (the slices have different sizes on purpose); ``WristbandLoss(distributed=True)``
computes the loss of the *global* batch, the same number on every rank, and rank 0 prints it.

Gradient convention (see ``latentshape.distributed``): each rank's gradient is its share of the
global loss's gradient and DDP averages over ranks, so the loss is multiplied by the world size to
give the parameters the gradient one process would get on the concatenated batch.
"""

from __future__ import annotations

import argparse
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from latentshape import WristbandLoss
from latentshape.distributed import world_size


def skewed_source(rows: int, features: int, generator: torch.Generator) -> torch.Tensor:
    """Far-from-Gaussian inputs: a shifted, skewed, correlated cloud."""
    base = torch.randn(rows, features, generator=generator)
    return torch.cat([base[:, :1] ** 2, base[:, 1:] + 0.5 * base[:, :1]], dim=1) + 1.0


def train(rank: int, size: int, port: int, steps: int, rows: int, features: int, dim: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    torch.manual_seed(0)  # DDP broadcasts rank 0's parameters anyway
    encoder = DistributedDataParallel(nn.Sequential(nn.Linear(features, 32), nn.GELU(), nn.Linear(32, dim)))
    optimizer = torch.optim.Adam(encoder.parameters(), lr=3e-3)
    regularizer = WristbandLoss(distributed=True)
    generator = torch.Generator().manual_seed(1000 + rank)  # every rank sees different data
    local_rows = rows + 8 * rank  # unequal per-rank batches are fine
    for step in range(steps):
        z = encoder(skewed_source(local_rows, features, generator))
        loss = regularizer(z)  # global-batch z-score, identical on every rank
        optimizer.zero_grad()
        (world_size() * loss).backward()
        optimizer.step()
        if rank == 0:
            print(f"step {step:3d}  global N = {sum(rows + 8 * r for r in range(size))}  loss = {loss.item():8.3f}",
                  flush=True)
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rows", type=int, default=128, help="rows per rank (rank r gets rows + 8 r)")
    parser.add_argument("--features", type=int, default=6)
    parser.add_argument("--dim", type=int, default=4)
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(train, args=(args.world_size, port, args.steps, args.rows, args.features, args.dim),
             nprocs=args.world_size, join=True)


if __name__ == "__main__":
    main()
