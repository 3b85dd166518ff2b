"""``latentshape bench {detection,gaussianize,speed,train} [--quick] [--out DIR]``: run a protocol, write its report.

Three sizes of run: the full one (the numbers in ``docs/benchmarks.md``), ``--quick`` (under 3
minutes on 2 cores; ``train``: under 5) and ``--tiny`` (seconds; for tests and smoke checks).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

__all__ = ["PRESETS", "add_bench_parser"]

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "detection": {"n": 256, "dims": (2, 10, 128), "repeats": 2},
        "gaussianize": {"n": 256, "dims": (2, 10, 128), "steps": 150, "learning_rates": (0.03, 0.1), "fresh": 32},
        "speed": {"sizes": ((256, 64), (1024, 64), (4096, 64), (16384, 64), (2048, 8), (2048, 32), (2048, 128),
                            (2048, 512)), "repeats": 5},
        "train": {"dims": {"supervised": (4, 8, 16), "self_supervised": (16,), "stochastic": (4, 8, 16)},
                  "weights": {"supervised": (1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 1.0),
                              "self_supervised": (0.01, 0.1, 1.0, 10.0, 100.0),
                              "stochastic": (1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)},
                  "epochs": {"supervised": 40, "self_supervised": 60, "stochastic": 40}, "seeds": 3,
                  "scaling_batches": (64, 256), "scaling_d": 8, "scaling_seeds": 2,
                  "scaling_weights": (1e-3, 3e-3, 1e-2, 3e-2, 0.1),
                  "growth_sizes": (64, 128, 256, 512), "growth_repeats": 10},
    },
    "quick": {
        "detection": {"n": 128, "dims": (2, 10), "repeats": 1},
        "gaussianize": {"n": 128, "dims": (2, 10), "steps": 60, "learning_rates": (0.1,), "fresh": 16},
        "speed": {"sizes": ((256, 16), (1024, 16), (1024, 64)), "repeats": 3},
        "train": {"dims": {"supervised": (8,), "self_supervised": (16,), "stochastic": (8,)},
                  "weights": {"supervised": (1e-3, 1e-2, 0.1), "self_supervised": (0.1, 10.0),
                              "stochastic": (1e-2, 0.1, 1.0)},
                  "epochs": {"supervised": 20, "self_supervised": 20, "stochastic": 20}, "seeds": 2,
                  "scaling_batches": (64, 256), "scaling_d": 8, "scaling_seeds": 1,
                  "growth_sizes": (64, 128, 256), "growth_repeats": 5},
    },
    "tiny": {
        "detection": {"n": 64, "dims": (2,), "repeats": 1},
        "gaussianize": {"n": 32, "dims": (2,), "steps": 10, "learning_rates": (0.1,), "fresh": 8},
        "speed": {"sizes": ((64, 4),), "repeats": 1},
        "train": {"dims": {"supervised": (4,), "self_supervised": (4,), "stochastic": (4,)},
                  "weights": {"supervised": (0.01,), "self_supervised": (1.0,), "stochastic": (0.1,)},
                  "epochs": {"supervised": 1, "self_supervised": 1, "stochastic": 1}, "seeds": 1,
                  "scaling_batches": (64,), "scaling_d": 4, "scaling_seeds": 1,
                  "growth_sizes": (32, 64), "growth_repeats": 2, "check_rows": 300},
    },
}
"""Protocol settings for the full, ``--quick`` and ``--tiny`` runs."""


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    from ..errors import UserError

    preset = "tiny" if args.tiny else "quick" if args.quick else "full"
    settings = dict(PRESETS[preset][args.protocol])
    if args.protocol == "speed":
        settings["threads"] = args.threads
    elif args.protocol == "train":
        if args.distributions:
            raise UserError("--distributions does not apply to bench train (it trains on scikit-learn's digits)")
        if args.jobs < 1:
            raise UserError(f"--jobs must be >= 1, got {args.jobs}")
        settings["jobs"] = args.jobs
    else:
        settings["distributions"] = list(dict.fromkeys(args.distributions)) if args.distributions else args.distributions
    if args.jobs != 1 and args.protocol != "train":
        raise UserError("--jobs applies to bench train only")
    # a name given twice would run its cells twice for one column of the report
    settings["regularizers"] = list(dict.fromkeys(args.regularizers)) if args.regularizers else args.regularizers
    return settings


def _run(args: argparse.Namespace) -> int:
    import torch

    from ..errors import UserError, writable_folder
    from . import protocols, report, train_protocol

    if args.quick and args.tiny:
        raise UserError("choose one of --quick and --tiny")
    if args.threads < 1:
        raise UserError(f"--threads must be >= 1, got {args.threads}")
    settings = _settings(args)
    try:  # before the run: minutes of benchmark must not end in an unwritable report
        writable_folder(args.out)
    except OSError as error:
        raise UserError(f"--out: {error}") from None
    # Oversubscribed cores make multi-threaded kernels spin: one thread gives steadier numbers.
    torch.set_num_threads(args.threads)
    run = {"detection": protocols.detection, "gaussianize": protocols.gaussianize, "speed": protocols.speed,
           "train": train_protocol.train}
    try:
        table = run[args.protocol](**settings)
    except ValueError as error:  # unknown names from the command line
        raise UserError(str(error)) from None
    except ImportError as error:  # an optional dependency (scikit-learn for train)
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
    parser = subparsers.add_parser("bench", help="benchmark the regularizers: detection, gaussianize, speed, train")
    parser.add_argument("protocol", choices=("detection", "gaussianize", "speed", "train"))
    parser.add_argument("--quick", action="store_true", help="small run, under 3 minutes on 2 cores (train: 5)")
    parser.add_argument("--tiny", action="store_true", help="smoke-test run, seconds")
    parser.add_argument("--out", default="bench_results", help="directory for bench_<protocol>.md/.png (must be writable)")
    parser.add_argument("--distributions", nargs="+", metavar="NAME", help="sources to run (default: all registered)")
    parser.add_argument("--regularizers", nargs="+", metavar="NAME", help="regularizers to run (default: all registered)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--jobs", type=int, default=1, help="train: worker processes for the cells (default 1)")
    parser.set_defaults(handler=_run)
