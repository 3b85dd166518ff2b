"""``latentshape bench {detection,gaussianize,speed} [--quick] [--out DIR]``: run a protocol, write its report.

Three sizes of run: the full one (the numbers in ``docs/benchmarks.md``), ``--quick`` (under 3
minutes on 2 cores) and ``--tiny`` (seconds; for tests and smoke checks).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Any

__all__ = ["PRESETS", "add_bench_parser"]

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "detection": {"n": 256, "dims": (2, 10, 128), "repeats": 2},
        "gaussianize": {"n": 256, "dims": (2, 10, 128), "steps": 150, "learning_rates": (0.03, 0.1), "fresh": 32},
        "speed": {"sizes": ((256, 64), (1024, 64), (4096, 64), (16384, 64), (2048, 8), (2048, 32), (2048, 128),
                            (2048, 512)), "repeats": 5},
    },
    "quick": {
        "detection": {"n": 128, "dims": (2, 10), "repeats": 1},
        "gaussianize": {"n": 128, "dims": (2, 10), "steps": 60, "learning_rates": (0.1,), "fresh": 16},
        "speed": {"sizes": ((256, 16), (1024, 16), (1024, 64)), "repeats": 3},
    },
    "tiny": {
        "detection": {"n": 64, "dims": (2,), "repeats": 1},
        "gaussianize": {"n": 32, "dims": (2,), "steps": 10, "learning_rates": (0.1,), "fresh": 8},
        "speed": {"sizes": ((64, 4),), "repeats": 1},
    },
}
"""Protocol settings for the full, ``--quick`` and ``--tiny`` runs."""


def _run(args: argparse.Namespace) -> int:
    import torch

    from ..errors import UserError, writable_folder
    from . import protocols, report

    if args.quick and args.tiny:
        raise UserError("choose one of --quick and --tiny")
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    try:  # before the run: minutes of benchmark must not end in an unwritable report
        writable_folder(args.out)
    except OSError as error:
        raise UserError(f"--out: {error}") from None
    # Oversubscribed cores make multi-threaded kernels spin: one thread gives steadier numbers.
    torch.set_num_threads(args.threads)
    preset = "tiny" if args.tiny else "quick" if args.quick else "full"
    settings = dict(PRESETS[preset][args.protocol])
    if args.protocol == "speed":
        settings["threads"] = args.threads
    else:
        settings["distributions"] = args.distributions
    settings["regularizers"] = args.regularizers
    run = {"detection": protocols.detection, "gaussianize": protocols.gaussianize, "speed": protocols.speed}
    try:
        table = run[args.protocol](**settings)
    except ValueError as error:  # unknown names from the command line
        raise UserError(str(error)) from None
    command = "latentshape bench " + " ".join(shlex.quote(a) for a in sys.argv[1:][sys.argv[1:].index("bench") + 1:]) \
        if "bench" in sys.argv[1:] else f"latentshape bench {args.protocol}"
    try:
        paths = report.write_report(table, args.out, command=command)
    except OSError as error:  # e.g. the disk filled up during the run
        raise UserError(f"cannot write the report into {args.out}: {error.strerror or error}") from None
    print(report.markdown(table))
    print(f"\n{args.protocol}: {table.seconds:.0f} s; wrote " + ", ".join(str(p) for p in paths))
    return 0


def add_bench_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``bench`` on the shared ``latentshape`` parser."""
    parser = subparsers.add_parser("bench", help="benchmark the regularizers: detection, gaussianize, speed")
    parser.add_argument("protocol", choices=("detection", "gaussianize", "speed"))
    parser.add_argument("--quick", action="store_true", help="small run, under 3 minutes on 2 cores")
    parser.add_argument("--tiny", action="store_true", help="smoke-test run, seconds")
    parser.add_argument("--out", default="bench_results", help="directory for bench_<protocol>.md/.png")
    parser.add_argument("--distributions", nargs="+", metavar="NAME", help="sources to run (default: all registered)")
    parser.add_argument("--regularizers", nargs="+", metavar="NAME", help="regularizers to run (default: all registered)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.set_defaults(handler=_run)
