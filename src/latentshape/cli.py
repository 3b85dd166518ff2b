"""Command line: ``latentshape check | bench | demo``.

User errors (missing or unreadable file, wrong shape, bad values) print one line on stderr and
exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

__all__ = ["main", "UserError", "load_embeddings"]


class UserError(Exception):
    """A mistake in the user's input: reported as one line, exit status 2."""


def load_embeddings(path: str | Path, key: str | None = None) -> tuple[np.ndarray, list[str]]:
    """Load an ``(N, d)`` float array from ``.npy``; returns the array and notes for the user."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no such file: {path}")
    if path.suffix.lower() != ".npy":
        raise UserError(f"unsupported file type {path.suffix or '(none)'!r}: use .npy")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as error:  # numpy raises several types for corrupt files
        raise UserError(f"cannot read {path}: {error}") from None
    notes: list[str] = []
    if array.ndim == 1:
        raise UserError(f"{path} holds a 1-D array of shape {array.shape}; expected (N, d)")
    if array.ndim > 2:
        notes.append(f"flattened array of shape {array.shape} to ({int(np.prod(array.shape[:-1]))}, {array.shape[-1]})")
        array = array.reshape(-1, array.shape[-1])
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise UserError(f"{path} holds {array.dtype} values; expected real numbers")
    return array.astype(np.float64 if array.dtype == np.float64 else np.float32), notes


def _example_batches() -> dict[str, np.ndarray]:
    generator = np.random.default_rng(0)
    gaussian = generator.standard_normal((1024, 16))
    # Matched first two moments, wrong shape: uniform on a cube with unit variance per axis.
    cube = generator.uniform(-np.sqrt(3.0), np.sqrt(3.0), size=(1024, 16))
    return {"gaussian N(0, I)": gaussian.astype(np.float32), "uniform cube (unit variance)": cube.astype(np.float32)}


def _wristband_table(batches: dict[str, np.ndarray]) -> str:
    from .wristband import WristbandLoss

    loss_fn = WristbandLoss()
    header = f"{'batch':<32} {'N':>6} {'d':>5} {'total':>9} {'rep':>9} {'rad':>9} {'ang':>9} {'mom':>9}"
    lines = [header, "-" * len(header)]
    for name, array in batches.items():
        try:
            parts = loss_fn.components(torch.from_numpy(array))
        except (ValueError, TypeError) as error:
            raise UserError(str(error)) from None
        values = " ".join(f"{float(p):>9.2f}" for p in parts)
        lines.append(f"{name:<32} {array.shape[0]:>6} {array.shape[1]:>5} {values}")
    lines.append("")
    lines.append("Calibrated z-scores: ~N(0, 1) for a Gaussian batch; larger = further from N(0, I).")
    return "\n".join(lines)


def _run_check(args: argparse.Namespace) -> int:
    if args.example:
        print(_wristband_table(_example_batches()))
        return 0
    if args.file is None:
        raise UserError("give a FILE to check, or --example")
    array, notes = load_embeddings(args.file)
    for note in notes:
        print(f"note: {note}")
    print(_wristband_table({Path(args.file).name: array}))
    return 0


def _add_check(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("check", help="how Gaussian is an embedding? (calibrated wristband report)")
    parser.add_argument("file", nargs="?", help="embeddings file (.npy) of shape (N, d)")
    parser.add_argument("--example", action="store_true", help="check built-in Gaussian and non-Gaussian samples")
    parser.set_defaults(handler=_run_check)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_check]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="latentshape", description="Shape embedding distributions and measure the result.")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserError as error:
        print(f"latentshape {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
