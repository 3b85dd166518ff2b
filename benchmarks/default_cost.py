"""Forward + backward cost of the default ``WristbandLoss()`` at a given git commit against the working tree.

Two worker processes (one per source tree, 1 thread each, never at the same time) time a float32
forward + backward of ``WristbandLoss(**options)`` on the same batch; the parent alternates them
round by round (interleaved, so machine noise hits both alike) and prints the median time of each
and their ratio per shape. The commit's ``src/`` is exported with ``git archive``.

    python benchmarks/default_cost.py --against a1db042 [--shapes 4096x128,65536x16] [--rounds 15]
    python benchmarks/default_cost.py --against HEAD --options '{"lambda_sharp": 0, "lambda_coord": 0}'
    python benchmarks/default_cost.py [--device cuda] [--shapes ...] [--rounds 15]

Without ``--against`` only the working tree is timed (no git revision needed): its median and range
per shape. ``--device cuda`` puts x and the loss on the GPU and reads the clock after
``torch.cuda.synchronize()``; the CPU workers run on one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from device_suite import add_device_option, device_header, use_device  # noqa: E402

WORKER = r"""
import json, sys, time, torch
device = sys.argv[2]
if device == "cpu":
    torch.set_num_threads(1)
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
from latentshape import WristbandLoss
options = json.loads(sys.argv[1])
cache = {}
for line in sys.stdin:
    n, d, reps = (int(v) for v in line.split())
    if (n, d) not in cache:
        x = torch.randn(n, d, generator=torch.Generator().manual_seed(0)).to(device).requires_grad_()
        loss = WristbandLoss(**options).to(device)
        loss(x).backward()  # warm-up: calibration and caches
        cache[n, d] = (x, loss)
    x, loss = cache[n, d]
    times = []
    for _ in range(reps):
        x.grad = None
        sync()
        start = time.perf_counter()
        loss(x).backward()
        sync()
        times.append(time.perf_counter() - start)
    print(json.dumps(times), flush=True)
"""


def export(commit: str, target: Path) -> Path:
    """The ``src/`` tree of ``commit`` under ``target``."""
    archive = target / "src.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), commit, "src"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target / "src"


def start_worker(source: Path, options: str, device: str = "cpu") -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(source))
    if device == "cpu":
        env["OMP_NUM_THREADS"] = "1"
    return subprocess.Popen([sys.executable, "-c", WORKER, options, device], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env=env, cwd=tempfile.gettempdir())


def ask(worker: subprocess.Popen, n: int, d: int, reps: int) -> list[float]:
    worker.stdin.write(f"{n} {d} {reps}\n")
    worker.stdin.flush()
    line = worker.stdout.readline()
    if not line:
        raise SystemExit("a worker died (see its error above)")
    return json.loads(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="git commit to compare with the working tree (default: the working tree alone)")
    parser.add_argument("--shapes", default="4096x128,65536x16")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reps", type=int, default=1, help="timed calls per worker per round")
    parser.add_argument("--options", default="{}", help="WristbandLoss keyword options as JSON (both sides)")
    parser.add_argument("--base-options", default=None, help="options for the commit's side (default: --options)")
    add_device_option(parser)
    args = parser.parse_args()
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    device = use_device(args.device, threads=None)  # the workers set their own threads
    print(device_header(device, threads=1 if device.type == "cpu" else None))
    if args.against is None:
        time_working_tree(args, shapes)
        return
    with tempfile.TemporaryDirectory() as folder:
        base = start_worker(export(args.against, Path(folder)), args.base_options or args.options, args.device)
        head = start_worker(ROOT / "src", args.options, args.device)
        try:
            print(f"commit {args.against} (options {args.base_options or args.options}) vs working tree "
                  f"(options {args.options}); {args.rounds} interleaved rounds, float32 fwd+bwd, {_where(args.device)}\n")
            print("| N | d | commit median (ms) | working tree median (ms) | ratio |")
            print("|---|---|---:|---:|---:|")
            for n, d in shapes:
                times = {"base": [], "head": []}
                for round_index in range(args.rounds):
                    order = (("base", base), ("head", head)) if round_index % 2 == 0 else (("head", head), ("base", base))
                    for name, worker in order:
                        times[name] += ask(worker, n, d, args.reps)
                b, h = statistics.median(times["base"]), statistics.median(times["head"])
                print(f"| {n} | {d} | {1e3 * b:.1f} | {1e3 * h:.1f} | {h / b:.2f} |", flush=True)
        finally:
            stop_workers(base, head)


def stop_workers(*workers) -> None:
    for worker in workers:
        worker.stdin.close()
        worker.wait()


def _where(device: str) -> str:
    return "1 thread" if device == "cpu" else device


def time_working_tree(args, shapes: list[tuple[int, ...]]) -> None:
    """The working tree alone: median and range of its times per shape."""
    worker = start_worker(ROOT / "src", args.options, args.device)
    try:
        print(f"working tree (options {args.options}); {args.rounds} rounds of {args.reps} call(s), "
              f"float32 fwd+bwd, {_where(args.device)}\n")
        print("| N | d | median (ms) | range (ms) |")
        print("|---|---|---:|---:|")
        for n, d in shapes:
            times = [t for _ in range(args.rounds) for t in ask(worker, n, d, args.reps)]
            print(f"| {n} | {d} | {1e3 * statistics.median(times):.2f} | {1e3 * min(times):.2f}-{1e3 * max(times):.2f} |",
                  flush=True)
    finally:
        stop_workers(worker)


if __name__ == "__main__":
    main()
