"""Command line: ``latentshape check | bench | demo``.

User errors (missing or unreadable file, wrong shape, bad values) print one line on stderr and
exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .errors import UserError, writable_folder

__all__ = ["main", "UserError", "load_embeddings", "writable_folder"]


_SUFFIXES = (".npy", ".npz", ".pt", ".csv")


def load_embeddings(path: str | Path, key: str | None = None) -> tuple[np.ndarray, list[str]]:
    """Load an ``(N, d)`` real array from ``.npy``, ``.npz``, ``.pt`` or ``.csv``.

    ``key`` picks an array of an ``.npz`` or an entry of a ``.pt`` dict (default: the only one).
    Arrays of rank > 2 are flattened to ``(-1, d)``. Returns the float array and notes for the
    user. Every problem with the file is a :class:`UserError` with one clear line.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"no such file: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a directory, not an embeddings file")
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise UserError(f"unsupported file type {path.suffix or '(none)'!r} for {path}: use .npy, .npz, .pt or .csv")
    if key is not None and suffix not in (".npz", ".pt"):
        raise UserError(f"--key applies to .npz and .pt files, not {suffix}")
    loader = {".npy": _load_npy, ".npz": _load_npz, ".pt": _load_pt, ".csv": _load_csv}[suffix]
    array, notes = loader(path, key)
    return _as_matrix(array, path, notes)


def _load_npy(path: Path, key: str | None) -> tuple[np.ndarray, list[str]]:
    try:
        return np.load(path, allow_pickle=False), []
    except Exception as error:  # numpy raises several types for corrupt files
        raise UserError(f"cannot read {path} as .npy (corrupt, or not a NumPy array file): {_first_line(error)}") from None


def _load_npz(path: Path, key: str | None) -> tuple[np.ndarray, list[str]]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            chosen = _choose_key(keys, key, path)
            return np.asarray(archive[chosen]), ([f"using array {chosen!r}"] if key is None and len(keys) > 1 else [])
    except UserError:
        raise
    except Exception as error:
        raise UserError(f"cannot read {path} as .npz: {_first_line(error)}") from None


def _load_pt(path: Path, key: str | None) -> tuple[np.ndarray, list[str]]:
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt file, or pickled objects that weights_only refuses
        raise UserError(f"cannot read {path} as .pt (tensors only, weights_only=True): {_first_line(error)}") from None
    if isinstance(content, dict):
        tensors = {str(name): value for name, value in content.items() if isinstance(value, torch.Tensor)}
        entry = {str(name): value for name, value in content.items()}.get(key) if key is not None else None
        if key is not None and key not in tensors and entry is not None:
            raise UserError(f"entry {key!r} of {path} holds a {type(entry).__name__}, not a tensor; "
                            f"tensors: {', '.join(tensors) or '(none)'}")
        if not tensors:
            raise UserError(f"{path} holds a dict without tensors; expected a tensor or a dict of tensors")
        content = tensors[_choose_key(list(tensors), key, path)]
    elif key is not None:
        raise UserError(f"--key {key!r} given, but {path} holds a single tensor, not a dict")
    if not isinstance(content, torch.Tensor):
        raise UserError(f"{path} holds a {type(content).__name__}; expected a tensor or a dict of tensors")
    if content.is_complex() or content.dtype == torch.bool:
        raise UserError(f"{path} holds {str(content.dtype).removeprefix('torch.')} values; expected real numbers")
    return content.detach().to(torch.float64 if content.dtype == torch.float64 else torch.float32).numpy(), []


def _load_csv(path: Path, key: str | None) -> tuple[np.ndarray, list[str]]:
    try:
        with path.open("r", encoding="utf-8-sig") as handle:  # -sig: a spreadsheet's byte-order mark is no header
            first = handle.readline()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path} as text .csv: {_first_line(error)}") from None
    if not first.strip():
        raise UserError(f"{path} is empty")
    try:
        [float(field) for field in first.split(",")]
        header = 0
    except ValueError:
        header = 1  # a first row that is not all numbers is a header
    try:
        with warnings.catch_warnings():  # a header without rows: the row count below says so in one line
            warnings.filterwarnings("ignore", message="loadtxt: input contained no data", category=UserWarning)
            array = np.loadtxt(path, delimiter=",", skiprows=header, ndmin=2, dtype=np.float64, encoding="utf-8-sig")
    except Exception as error:
        raise UserError(f"cannot read {path} as .csv of numbers: {_first_line(error)}") from None
    return array, (["skipped a header row"] if header else [])


def _choose_key(keys: list[str], key: str | None, path: Path) -> str:
    if key is not None:
        if key not in keys:
            raise UserError(f"no key {key!r} in {path}; keys: {', '.join(keys)}")
        return key
    if len(keys) == 1:
        return keys[0]
    if not keys:
        raise UserError(f"{path} holds no arrays")
    raise UserError(f"{path} holds several arrays ({', '.join(keys)}); pick one with --key NAME")


def _as_matrix(array: np.ndarray, path: Path, notes: list[str]) -> tuple[np.ndarray, list[str]]:
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise UserError(f"{path} holds {array.dtype} values; expected real numbers")
    if array.ndim < 2:
        raise UserError(f"{path} holds an array of shape {array.shape}; expected (N, d)")
    if array.ndim > 2:
        flat = (int(np.prod(array.shape[:-1])), array.shape[-1])
        notes.append(f"flattened array of shape {array.shape} to {flat}")
        array = array.reshape(flat)
    n, d = array.shape
    if d == 0:
        raise UserError(f"{path} has d = 0 columns; expected (N, d) with d >= 1")
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise UserError(f"{path} has {rows.size} row(s) with NaN or Inf (first: row {rows[0]}); drop or fix them")
    from .diagnostics.check import MIN_POINTS
    from .diagnostics.statistics import require_testable_scale

    if n < MIN_POINTS:
        raise UserError(f"{path} has {n} row(s); the check needs at least {MIN_POINTS}")
    try:
        require_testable_scale(array.astype(np.float64))
    except ValueError as error:
        raise UserError(f"{path}: {error}") from None
    return array.astype(np.float64 if array.dtype == np.float64 else np.float32), notes


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _example_batches() -> dict[str, np.ndarray]:
    generator = np.random.default_rng(0)
    gaussian = generator.standard_normal((1024, 16))
    # Matched first two moments, wrong shape: uniform on a cube with unit variance per axis.
    cube = generator.uniform(-np.sqrt(3.0), np.sqrt(3.0), size=(1024, 16))
    return {"gaussian N(0, I)": gaussian.astype(np.float32), "uniform cube (unit variance)": cube.astype(np.float32)}


def _check_options(args: argparse.Namespace) -> dict[str, object]:
    if args.null_samples < 20:
        raise UserError(f"--null-samples must be >= 20, got {args.null_samples}")
    if args.max_pairwise < 8:
        raise UserError(f"--max-pairwise must be >= 8, got {args.max_pairwise}")
    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha must be in (0, 1), got {args.alpha}")
    if not -(2**63) <= args.seed < 2**63 - 1:
        raise UserError(f"--seed must be in [-2**63, 2**63 - 1), got {args.seed}")
    return {"null_samples": args.null_samples, "seed": args.seed, "max_pairwise": args.max_pairwise, "alpha": args.alpha}


def _run_check(args: argparse.Namespace) -> int:
    import json

    from .diagnostics import check

    options = _check_options(args)
    if args.plot is not None:  # before the work: a long check must not end in an unwritable figure
        plot_path = Path(args.plot)
        if plot_path.is_dir():
            raise UserError(f"--plot {plot_path} is a folder; give a file name such as {plot_path / 'check.png'}")
        try:
            writable_folder(plot_path.parent)
        except OSError as error:
            raise UserError(f"--plot: {error}") from None
    if args.example:
        if args.file is not None:
            raise UserError("give either a FILE or --example, not both")
        batches, notes = _example_batches(), {}
    else:
        if args.file is None:
            raise UserError("give a FILE to check, or --example")
        array, file_notes = load_embeddings(args.file, args.key)
        batches, notes = {Path(args.file).name: array}, {Path(args.file).name: file_notes}
    # The loader has validated the data; an exception from check() past this point is a bug, not a
    # user error, so it keeps its traceback.
    reports = {}
    for name, array in batches.items():
        report = check(array, **options)  # type: ignore[arg-type]
        report.source = name
        report.notes[:0] = notes.get(name, [])
        reports[name] = report
    if args.json:
        payload = {name: r.to_dict() for name, r in reports.items()} if args.example else next(iter(reports.values())).to_dict()
        _emit(json.dumps(payload, indent=2, allow_nan=False))
    else:
        _emit("\n\n".join(str(report) for report in reports.values()))
    if args.plot is not None:
        outputs = [Path(args.plot)] if len(reports) == 1 else [
            Path(args.plot).with_name(f"{Path(args.plot).stem}_{index}{Path(args.plot).suffix or '.png'}")
            for index in range(len(reports))
        ]
        for output, report in zip(outputs, reports.values()):
            try:
                written = report.plot(output)
            except ImportError as error:
                raise UserError(str(error)) from None
            except OSError as error:
                raise UserError(f"cannot write {output}: {_first_line(error)}") from None
            print(f"wrote {written}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _emit(text: str) -> None:
    """Print the report; a standard output that cannot take it (a full disk, a closed pipe) is one line."""
    try:
        print(text, flush=True)
    except OSError as error:
        sys.stdout = open(os.devnull, "w")  # nothing more goes to the broken stream, not even at exit
        raise UserError(f"cannot write the report to standard output: {error.strerror or error}") from None


def _add_check(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check", help="how Gaussian is an embedding? (calibrated report and figure)",
        description="Test whether the rows of an (N, d) array look like i.i.d. N(0, I) draws: wristband, "
                    "per-dimension moments, KS of the radius, Mardia, Henze-Zirkler and kNN KL, each with a "
                    "calibrated p-value, and a verdict with Holm's multiple-testing correction.",
    )
    parser.add_argument("file", nargs="?", help="embeddings file: .npy, .npz, .pt (tensor or dict of tensors) or .csv")
    parser.add_argument("--key", metavar="NAME", help="array of an .npz / entry of a .pt dict (default: the only one)")
    parser.add_argument("--plot", metavar="OUT.png", help="write the diagnostic figure to this PNG")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--example", action="store_true", help="check built-in Gaussian and non-Gaussian samples")
    parser.add_argument("--null-samples", type=int, default=400, metavar="R", help="Monte-Carlo null draws (default 400)")
    parser.add_argument("--max-pairwise", type=int, default=2000, metavar="M",
                        help="rows used by the O(N^2) statistics (default 2000)")
    parser.add_argument("--alpha", type=float, default=0.05, help="family-wise level of the verdict (default 0.05)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the null draws and subsamples (default 0)")
    parser.set_defaults(handler=_run_check)


def _add_demo(subparsers: argparse._SubParsersAction) -> None:
    from .demo import add_demo_parser  # the demo's heavy imports (sklearn, matplotlib, zuko) stay lazy

    # Pass this module's UserError: under `python -m latentshape.cli` this module is __main__, and
    # `latentshape.cli.UserError` imported from elsewhere would be a different class.
    add_demo_parser(subparsers, UserError)


def _add_bench(subparsers: argparse._SubParsersAction) -> None:
    from .bench.command import add_bench_parser

    add_bench_parser(subparsers)


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_check, _add_demo, _add_bench]


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
    # `python -m latentshape.cli` runs this file as a second module, __main__: dispatch through the
    # package's copy so that the UserError raised by subcommand modules is the class main() catches.
    from latentshape.cli import main as package_main

    sys.exit(package_main())
