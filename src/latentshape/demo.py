r"""``latentshape demo``: a deterministic Gaussian autoencoder on scikit-learn's digits, end to end.

The demo trains :class:`~latentshape.models.GaussianAutoencoder` on the 1797 8x8 digit images
that ship with scikit-learn (``sklearn.datasets.load_digits``, pixels scaled to [0, 1]), on the
CPU, with binary cross-entropy + 0.05 x the calibrated :class:`~latentshape.wristband.WristbandLoss`
on the latent (the decoder sees z + 0.2 eps in training: see
:func:`~latentshape.models.train_autoencoder`). The latent is split into a
*context* block, computed from the bottom half of the image only, and a *residual* block. It
prints how Gaussian the latent is before and after training (calibrated z-scores: ~N(0, 1) for
a batch drawn from N(0, I)), and writes four figures:

* ``samples.png``: images decoded from z ~ N(0, I);
* ``reconstructions.png``: held-out digits and their reconstructions;
* ``latent.png``: training curves, per-coordinate histograms against N(0, 1), radial QQ of
  ||z||^2 against chi^2_K, and two coordinates against Gaussian contours;
* ``completions.png``: the bottom half of held-out digits is given, the top half is sampled
  several times: z_c is computed from the bottom half, z_r ~ N(0, I) is drawn afresh for each
  completion, and the image is decoded. Because the regularizer makes the joint latent N(0, I),
  z_r is independent of z_c, so this samples p(top | bottom) without any inference-time search.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .demo_plots import BOTTOM_HALF, IMAGE_SIDE, plot_completions, plot_latent, plot_reconstructions, plot_samples

__all__ = ["DemoResult", "load_digit_images", "run_demo", "gaussianity_table", "add_demo_parser"]

DEFAULT_EPOCHS = 300
DEFAULT_LATENT_DIM = 8
HELD_OUT = 200
_COLUMNS = ("total", "rep", "rad", "mom", "sharp", "coord")


class DemoDependencyError(ImportError):
    """An optional dependency of the demo is missing."""


def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise DemoDependencyError(f'the demo needs {module.split(".")[0]}: pip install "latentshape[demo]"') from error


def load_digit_images() -> tuple[Tensor, Tensor]:
    """scikit-learn's 1797 digits as ``(1797, 64)`` float32 pixels in [0, 1] and ``(1797,)`` labels."""
    datasets = _require("sklearn.datasets")
    digits = datasets.load_digits()
    pixels = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    return pixels, torch.tensor(digits.target, dtype=torch.long)


@dataclass
class DemoResult:
    """What the demo measured and wrote."""

    table: str
    """The printed before/after Gaussianity table."""
    before: dict[str, dict[str, float]]
    """``{"train": {...}, "held-out": {...}}`` components and MSE of the untrained model."""
    after: dict[str, dict[str, float]]
    """The same after training."""
    figures: dict[str, Path]
    seconds: float


def _measure(model, loss_fn, data: Tensor) -> dict[str, float]:
    from .models import reconstruction_error

    with torch.no_grad():
        parts = loss_fn.components(model.encode(data))
    values = {name: float(getattr(parts, name)) for name in _COLUMNS}
    values["mse"] = reconstruction_error(model, data)
    values["n"] = float(data.shape[0])
    return values


def gaussianity_table(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], latent_dim: int) -> str:
    """Format the before/after measurements as a small fixed-width table."""
    header = f"{'':<7}{'digits':<10}{'N':>6}" + "".join(f"{c:>11}" for c in _COLUMNS) + f"{'recon MSE':>11}"
    lines = [f"Latent Gaussianity (K = {latent_dim}): calibrated wristband z-scores, ~N(0, 1) for a batch from N(0, I)",
             header, "-" * len(header)]
    for stage, measured in (("before", before), ("after", after)):
        for split, values in measured.items():
            row = f"{stage:<7}{split:<10}{int(values['n']):>6}"
            row += "".join(f"{values[c]:>11.1f}" for c in _COLUMNS) + f"{values['mse']:>11.4f}"
            lines.append(row)
    return "\n".join(lines)


def run_demo(
    epochs: int = DEFAULT_EPOCHS,
    latent_dim: int = DEFAULT_LATENT_DIM,
    out: str | Path = "latentshape-demo",
    context_dim: int | None = None,
    seed: int = 0,
    progress: bool = True,
    echo: bool = True,
) -> DemoResult:
    """Train on the digits, print the before/after table and write the four PNGs into ``out``.

    ``context_dim`` defaults to ``latent_dim // 2``. Deterministic given ``seed`` (up to
    floating-point reduction order across thread counts).
    """
    from .models import GaussianAutoencoder
    from .wristband import WristbandLoss

    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if latent_dim < 2:
        raise ValueError(f"latent dimension must be >= 2 (a context and a residual block), got {latent_dim}")
    context_dim = latent_dim // 2 if context_dim is None else int(context_dim)
    _require("matplotlib")
    started = time.perf_counter()
    say = print if echo else (lambda *args, **kwargs: None)

    pixels, labels = load_digit_images()
    train_index, held_index = _split_indices(pixels.shape[0], seed)
    data = {"train": pixels[train_index], "held-out": pixels[held_index]}
    torch.manual_seed(seed)
    model = GaussianAutoencoder(pixels.shape[1], latent_dim, context_dim=context_dim, context_features=BOTTOM_HALF)
    model.eval()
    loss_fn = WristbandLoss()
    say(f"digits: {data['train'].shape[0]} train / {data['held-out'].shape[0]} held-out 8x8 images; "
        f"latent K = {latent_dim} (context {context_dim} from the bottom half, residual {latent_dim - context_dim})")
    before = {name: _measure(model, loss_fn, x) for name, x in data.items()}
    history = _train(model, loss_fn, data["train"], epochs, seed, progress)
    after = {name: _measure(model, loss_fn, x) for name, x in data.items()}
    table = gaussianity_table(before, after, latent_dim)
    say("")
    say(table)

    figures = _write_figures(model, data, {"train": labels[train_index], "held-out": labels[held_index]}, history,
                             (before["train"]["total"], after["train"]["total"]), _output_folder(out), seed)
    seconds = time.perf_counter() - started
    say("")
    for path in figures.values():
        say(f"wrote {path}")
    say(f"done in {seconds:.0f} s ({history.steps} steps, training {history.seconds:.0f} s)")
    return DemoResult(table=table, before=before, after=after, figures=figures, seconds=seconds)


def _split_indices(count: int, seed: int) -> tuple[Tensor, Tensor]:
    """A seeded permutation: (train indices, the first ``HELD_OUT`` as held-out indices)."""
    split = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return split[HELD_OUT:], split[:HELD_OUT]


def _train(model, loss_fn, train: Tensor, epochs: int, seed: int, progress: bool):
    """The demo's training recipe; returns the :class:`~latentshape.models.TrainingHistory`."""
    from .models import train_autoencoder

    # The model's tensors are tiny (256 x 256 matmuls): one intra-op thread is faster than several,
    # whose synchronization dominates, more so on shared CPUs (measured 22 vs 59 ms per step on 2 cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_autoencoder(model, train, epochs=epochs, batch_size=256, learning_rate=2e-3,
                                 gaussian_weight=0.05, latent_noise=0.2, regularizer=loss_fn, seed=seed,
                                 progress=progress, description="training")
    finally:
        torch.set_num_threads(threads)


def _output_folder(out: str | Path) -> Path:
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"cannot create output folder {out}: {error.strerror or error}") from None
    return out


def _write_figures(model, data: dict[str, Tensor], labels: dict[str, Tensor], history,
                   totals: tuple[float, float], out: Path, seed: int) -> dict[str, Path]:
    """The four PNGs; ``totals`` are the training split's wristband totals before and after training."""
    with torch.no_grad():
        z_train = model.encode(data["train"])
        return {
            "samples": plot_samples(model, out / "samples.png", seed),
            "reconstructions": plot_reconstructions(model, data["held-out"], labels["held-out"],
                                                    out / "reconstructions.png"),
            "latent": plot_latent(z_train, labels["train"], history, *totals, out / "latent.png"),
            "completions": plot_completions(model, data["held-out"], labels["held-out"], out / "completions.png", seed),
        }


# -- command line --------------------------------------------------------------------------------
def _positive_or_zero(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def add_demo_parser(subparsers: argparse._SubParsersAction, user_error: type[Exception] = ValueError) -> None:
    """Register ``latentshape demo`` on a CLI's subparsers; user mistakes raise ``user_error``."""
    parser = subparsers.add_parser(
        "demo", help="train a deterministic Gaussian autoencoder on scikit-learn's digits (CPU, ~1 minute)",
        description="Train a Gaussian autoencoder (encoder -> RealNVP flow -> N(0, I) latent, WristbandLoss) on "
                    "scikit-learn's 8x8 digits; print the latent's Gaussianity before and after; write PNGs.")
    parser.add_argument("--epochs", type=_positive_or_zero, default=DEFAULT_EPOCHS,
                        help=f"training epochs (default {DEFAULT_EPOCHS})")
    parser.add_argument("--latent-dim", type=int, default=DEFAULT_LATENT_DIM, metavar="K",
                        help=f"latent dimension K >= 2, half context, half residual (default {DEFAULT_LATENT_DIM})")
    parser.add_argument("--out", default="latentshape-demo", metavar="DIR",
                        help="folder for the PNGs (default ./latentshape-demo)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    parser.set_defaults(handler=lambda args: _run_demo_command(args, user_error))


def _run_demo_command(args: argparse.Namespace, user_error: type[Exception]) -> int:
    if args.latent_dim < 2:
        raise user_error(f"--latent-dim must be >= 2 (a context and a residual block), got {args.latent_dim}")
    if not abs(args.seed) < 2**62:  # torch generators take 64-bit seeds; the demo derives a few from it
        raise user_error(f"--seed must be an integer with |seed| < 2**62, got {args.seed}")
    from .errors import writable_folder

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise user_error(f"--out {out} exists and is not a folder")
    try:  # before training: the figures must have somewhere to go
        writable_folder(out)
    except OSError as error:
        raise user_error(f"--out: {error}") from None
    try:
        run_demo(epochs=args.epochs, latent_dim=args.latent_dim, out=out, seed=args.seed, progress=not args.no_progress)
    except (DemoDependencyError, OSError) as error:
        raise user_error(str(error)) from None
    return 0

