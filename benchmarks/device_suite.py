"""The cost and memory benchmarks on one device, in one command, each script a subprocess with a timeout.

    python benchmarks/device_suite.py --device cuda --out DIR [--budget-s 420]
    python benchmarks/device_suite.py --device cpu --quick --out DIR

Runs, in order: ``cost_ratios.py`` (the default and degree 1 at (65536, 16); pairwise against the
Gram + exp reference at (1024, 32) and (4096, 128)), ``first_call_cost.py`` (first calibrated call
against later ones), ``large_n_memory.py`` (the default at (1e6, 128), in copies of x),
``memory.py`` (peak memory and time of every Gaussian regularizer at (2e5, 64)), ``default_cost.py``
(the working tree alone: no git revision needed) and ``compile_recompiles.py`` (a compiled training
step over 3 epochs with a short last batch). Nothing here draws a Monte-Carlo null.

Each script's stdout goes to ``DIR/<name>.md``; ``DIR/summary.md`` lists every run (exit status,
seconds, the tail of stderr for a failure). A failing or timed-out script does not stop the suite.
Each timeout is the script's share of what is left of ``--budget-s``, so the whole suite stays
within it. ``--quick`` shrinks every size and round count (a smoke test, minutes on a CPU).

The scripts share the helpers below (``--device``, the one-line exit when CUDA is missing, the
device header of every table, clock reads after a CUDA synchronize).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

__all__ = ["add_device_option", "use_device", "device_header", "synchronize", "clock", "warm_up", "SUITE", "main"]


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="where tensors and modules live (default cpu; cpu runs on 1 thread)")


def use_device(name: str, threads: int | None = 1):
    """The ``torch.device`` for ``--device``; without CUDA, one line on stderr and exit 2.

    ``threads`` (torch's intra-op thread count) applies to the CPU only.
    """
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        build = ", a CPU-only build" if torch.version.cuda is None else f", built for CUDA {torch.version.cuda}"
        print(f"CUDA is not available on this machine (torch {torch.__version__}{build}); run with --device cpu",
              file=sys.stderr)
        raise SystemExit(2)
    if name == "cpu" and threads is not None:
        torch.set_num_threads(threads)
    return torch.device(name)


def device_header(device, threads: int | None = None) -> str:
    """One line naming the device a table ran on (``threads``: the CPU threads of the measured processes,
    when not this one's)."""
    import torch

    if torch.device(device).type == "cuda":
        return (f"device: {torch.cuda.get_device_name()} (cuda, torch {torch.__version__}, "
                f"CUDA {torch.version.cuda}; times read after torch.cuda.synchronize())")
    count = threads if threads is not None else torch.get_num_threads()
    return f"device: cpu ({count} thread{'s' if count != 1 else ''}, torch {torch.__version__})"


def warm_up(device) -> None:
    """On CUDA, one small matrix product: cuBLAS allocates its workspace then, before a peak is measured."""
    import torch

    if torch.device(device).type == "cuda":
        ones = torch.ones(64, 64, device=device)
        (ones @ ones).sum().item()


def synchronize(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def clock(device) -> float:
    """``time.perf_counter()`` once the device's queued work is done."""
    synchronize(device)
    return time.perf_counter()


# name, script, arguments (full), arguments (--quick), share of the budget; the compile run, the
# longest and least predictable, goes last and takes what the others leave.
SUITE = (
    ("cost_ratios", "cost_ratios.py", ["--rounds", "7", "--repeats", "30"], ["--rounds", "1", "--repeats", "1", "--quick"], 2),
    ("first_call_cost", "first_call_cost.py", ["--rounds", "5", "--later", "9"], ["--rounds", "1", "--later", "2"], 1),
    ("large_n_memory", "large_n_memory.py", ["--n", "1000000", "--d", "128", "--name", "wristband", "--saved"],
     ["--n", "4000", "--d", "16", "--name", "wristband", "--saved"], 1.5),
    ("memory", "memory.py", ["--n", "200000", "--d", "64", "--quadratic-n", "20000", "--repeats", "3"],
     ["--n", "2000", "--d", "8", "--quadratic-n", "400"], 3),
    ("default_cost", "default_cost.py", ["--shapes", "4096x128,65536x16", "--rounds", "15", "--reps", "3"],
     ["--shapes", "512x16", "--rounds", "2"], 1),
    ("compile_recompiles", "compile_recompiles.py", ["--epochs", "3"],
     ["--epochs", "2", "--rows", "300", "--backend", "eager"], 4),
)


def run_script(script: str, arguments: list[str], timeout: float) -> tuple[str, str, int | str, float]:
    """(stdout, stderr, exit status or 'timeout', seconds); the script and its children killed on timeout."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent / "src"), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(HERE / script), *arguments], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        out, err = process.communicate(timeout=max(timeout, 1.0))
        status: int | str = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: the script and what it spawned
        out, err = process.communicate()
        status = "timeout"
    return out, err, status, time.perf_counter() - start


def tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_option(parser)
    parser.add_argument("--out", type=Path, required=True, help="folder for <name>.md and summary.md")
    parser.add_argument("--budget-s", type=float, default=420.0, help="wall-clock budget of the whole suite")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and rounds (a smoke test)")
    parser.add_argument("--only", nargs="+", choices=[entry[0] for entry in SUITE], help="a subset, in suite order")
    args = parser.parse_args(argv)
    device = use_device(args.device)
    header = device_header(device)
    args.out.mkdir(parents=True, exist_ok=True)
    chosen = [entry for entry in SUITE if not args.only or entry[0] in args.only]
    began, rows, failures = time.perf_counter(), [], []
    for index, (name, script, full, quick, _) in enumerate(chosen):
        left = args.budget_s - (time.perf_counter() - began)
        share = chosen[index][4] / sum(entry[4] for entry in chosen[index:])
        arguments = ["--device", args.device, *(quick if args.quick else full)]
        command = f"python benchmarks/{script} {' '.join(arguments)}"
        if left < 5:
            rows.append(f"| {name} | skipped: budget spent | 0 | |")
            continue
        print(f"[{time.perf_counter() - began:5.0f} s] {command} (timeout {left * share:.0f} s)", flush=True)
        out, err, status, seconds = run_script(script, arguments, left * share)
        (args.out / f"{name}.md").write_text(f"`{command}`\n\n{out}")
        rows.append(f"| {name} | {status} | {seconds:.0f} | {name}.md |")
        if status != 0:
            failures.append(f"### {name} ({status})\n\n```\n{tail(err) or '(no stderr)'}\n```\n")
    summary = [f"# Device suite{' (quick)' if args.quick else ''}\n", header,
               f"\nbudget {args.budget_s:.0f} s, wall {time.perf_counter() - began:.0f} s\n",
               "| benchmark | exit status | seconds | output |", "|---|---|---:|---|", *rows, "", *failures]
    (args.out / "summary.md").write_text("\n".join(summary) + "\n")
    print("\n".join(summary), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
