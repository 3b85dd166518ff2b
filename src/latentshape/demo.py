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
import math
import time
from dataclasses import dataclass
from pathlib import Path
import numpy as np
import torch
from torch import Tensor

__all__ = ["DemoResult", "load_digit_images", "run_demo", "gaussianity_table", "add_demo_parser"]

IMAGE_SIDE = 8
BOTTOM_HALF = list(range(IMAGE_SIDE * IMAGE_SIDE // 2, IMAGE_SIDE * IMAGE_SIDE))
DEFAULT_EPOCHS = 300
DEFAULT_LATENT_DIM = 8
HELD_OUT = 200
_COLUMNS = ("total", "rep", "rad", "mom")


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
    header = f"{'':<7}{'digits':<10}{'N':>6}" + "".join(f"{c:>10}" for c in _COLUMNS) + f"{'recon MSE':>11}"
    lines = [f"Latent Gaussianity (K = {latent_dim}): calibrated wristband z-scores, ~N(0, 1) for a batch from N(0, I)",
             header, "-" * len(header)]
    for stage, measured in (("before", before), ("after", after)):
        for split, values in measured.items():
            row = f"{stage:<7}{split:<10}{int(values['n']):>6}"
            row += "".join(f"{values[c]:>10.1f}" for c in _COLUMNS) + f"{values['mse']:>11.4f}"
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
    from .models import GaussianAutoencoder, train_autoencoder
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
    split = torch.randperm(pixels.shape[0], generator=torch.Generator().manual_seed(seed))
    train_index, held_index = split[HELD_OUT:], split[:HELD_OUT]
    data = {"train": pixels[train_index], "held-out": pixels[held_index]}

    torch.manual_seed(seed)
    model = GaussianAutoencoder(pixels.shape[1], latent_dim, context_dim=context_dim, context_features=BOTTOM_HALF)
    model.eval()
    loss_fn = WristbandLoss()
    say(f"digits: {data['train'].shape[0]} train / {data['held-out'].shape[0]} held-out 8x8 images; "
        f"latent K = {latent_dim} (context {context_dim} from the bottom half, residual {latent_dim - context_dim})")
    before = {name: _measure(model, loss_fn, x) for name, x in data.items()}

    # The model's tensors are tiny (256 x 256 matmuls): one intra-op thread is faster than several,
    # whose synchronization dominates, more so on shared CPUs (measured 22 vs 59 ms per step on 2 cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        history = train_autoencoder(model, data["train"], epochs=epochs, batch_size=256, learning_rate=2e-3,
                                    gaussian_weight=0.05, latent_noise=0.2, regularizer=loss_fn, seed=seed,
                                    progress=progress, description="training")
    finally:
        torch.set_num_threads(threads)
    after = {name: _measure(model, loss_fn, x) for name, x in data.items()}
    table = gaussianity_table(before, after, latent_dim)
    say("")
    say(table)

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"cannot create output folder {out}: {error.strerror or error}") from None
    with torch.no_grad():
        z_train = model.encode(data["train"])
        figures = {
            "samples": _plot_samples(model, out / "samples.png", seed),
            "reconstructions": _plot_reconstructions(model, data["held-out"], labels[held_index], out / "reconstructions.png"),
            "latent": _plot_latent(z_train, labels[train_index], history, before["train"]["total"],
                                   after["train"]["total"], out / "latent.png"),
            "completions": _plot_completions(model, data["held-out"], labels[held_index], out / "completions.png", seed),
        }
    seconds = time.perf_counter() - started
    say("")
    for path in figures.values():
        say(f"wrote {path}")
    say(f"done in {seconds:.0f} s ({history.steps} steps, training {history.seconds:.0f} s)")
    return DemoResult(table=table, before=before, after=after, figures=figures, seconds=seconds)


# -- figures -------------------------------------------------------------------------------------
def _pyplot():
    matplotlib = _require("matplotlib")
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _show(axis, image: np.ndarray) -> None:
    axis.imshow(image.reshape(IMAGE_SIDE, IMAGE_SIDE), cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_visible(False)


def _one_per_class(labels: Tensor, per_class: int = 1) -> list[int]:
    chosen: list[int] = []
    for digit in range(10):
        chosen += torch.nonzero(labels == digit).flatten()[:per_class].tolist()
    return chosen


def _plot_samples(model, path: Path, seed: int, rows: int = 8, columns: int = 12) -> Path:
    plt = _pyplot()
    images = model.sample(rows * columns, generator=torch.Generator().manual_seed(seed + 1)).numpy()
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.62, rows * 0.62 + 0.5))
    for axis, image in zip(axes.flat, images):
        _show(axis, image)
    fig.suptitle(f"Decoded samples, z ~ N(0, I$_{{{model.latent_dim}}}$)", fontsize=12)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.92, wspace=0.08, hspace=0.08)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_reconstructions(model, data: Tensor, labels: Tensor, path: Path) -> Path:
    plt = _pyplot()
    index = _one_per_class(labels, per_class=2)
    originals = data[index].numpy()
    rebuilt = model(data[index])[1].numpy()
    columns = 10
    groups = math.ceil(len(index) / columns)
    fig, axes = plt.subplots(2 * groups, columns, figsize=(columns * 0.7 + 1.2, 2 * groups * 0.7 + 0.5), squeeze=False)
    for g in range(groups):
        for c in range(columns):
            k = g * columns + c
            for r, images in enumerate((originals, rebuilt)):
                axis = axes[2 * g + r, c]
                if k < len(index):
                    _show(axis, images[k])
                else:
                    axis.axis("off")
        axes[2 * g, 0].set_ylabel("original", fontsize=9)
        axes[2 * g + 1, 0].set_ylabel("decoded", fontsize=9)
    fig.suptitle("Held-out digits and their reconstructions x → z → x̂", fontsize=12)
    fig.subplots_adjust(left=0.1, right=0.99, bottom=0.02, top=0.9, wspace=0.08, hspace=0.12)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_latent(z: Tensor, labels: Tensor, history, total_before: float, total_after: float, path: Path) -> Path:
    plt = _pyplot()
    from scipy import stats

    z = z.numpy().astype(np.float64)
    n, k = z.shape
    fig, axes = plt.subplots(2, 2, figsize=(10.5, 8.6))

    # (a) training curves: reconstruction and Gaussianity on one time axis.
    axis = axes[0, 0]
    epochs = np.arange(1, len(history.reconstruction) + 1)
    if len(epochs):
        axis.plot(epochs, history.reconstruction, color="C0", label="reconstruction MSE")
        axis.set_yscale("log")
        twin = axis.twinx()
        gauss = np.asarray(history.gaussianity)
        twin.plot(epochs, np.sign(gauss) * np.log10(1 + np.abs(gauss)), color="C3", label="wristband total")
        ticks = [t for t in (-1, 0, 1, 10, 100, 1000, 10000) if abs(t) <= max(1.0, np.abs(gauss).max()) * 10]
        twin.set_yticks([np.sign(t) * np.log10(1 + abs(t)) for t in ticks], [str(t) for t in ticks])
        twin.set_ylabel("wristband total (z-score, symlog)", color="C3")
        axis.set_ylabel("reconstruction MSE per pixel", color="C0")
        lines = axis.get_lines() + twin.get_lines()
        axis.legend(lines, [line.get_label() for line in lines], loc="upper right", frameon=False)
    axis.set_xlabel("epoch")
    axis.set_title("(a) training (per-batch means)")

    # (b) marginals of every coordinate against N(0, 1).
    axis = axes[0, 1]
    grid = np.linspace(-4, 4, 301)
    bins = np.linspace(-4, 4, 41)
    for j in range(k):
        axis.hist(z[:, j], bins=bins, density=True, histtype="step", alpha=0.55, linewidth=1.0)
    axis.plot(grid, stats.norm.pdf(grid), color="black", linewidth=2.0, label="N(0, 1)")
    axis.set_xlabel("coordinate value")
    axis.set_ylabel("density")
    axis.set_title(f"(b) the {k} latent coordinates (one line each)")
    axis.legend(frameon=False)

    # (c) radial QQ: ||z||^2 against chi^2_K.
    axis = axes[1, 0]
    radii = np.sort((z**2).sum(axis=1))
    expected = stats.chi2.ppf((np.arange(n) + 0.5) / n, df=k)
    top = max(radii.max(), expected.max()) * 1.05
    axis.plot([0, top], [0, top], color="black", linewidth=1.0, label="y = x")
    axis.plot(expected, radii, ".", markersize=3, color="C0", label="latent")
    axis.set_xlim(0, top)
    axis.set_ylim(0, top)
    axis.set_xlabel(f"$\\chi^2_{{{k}}}$ quantile")
    axis.set_ylabel("$\\|z\\|^2$ (sorted)")
    axis.set_title("(c) radial QQ: $\\|z\\|^2$ against $\\chi^2_K$")
    axis.legend(frameon=False, loc="upper left")
    axis.text(0.97, 0.04, f"wristband total\nbefore {total_before:.1f}\nafter {total_after:.1f}",
              transform=axis.transAxes, ha="right", va="bottom", fontsize=9)

    # (d) a context and a residual coordinate, coloured by digit, with N(0, I) contours.
    axis = axes[1, 1]
    first, second = 0, k - 1
    scatter = axis.scatter(z[:, first], z[:, second], c=labels.numpy(), cmap="tab10", s=5, alpha=0.7, vmin=-0.5, vmax=9.5)
    angle = np.linspace(0, 2 * np.pi, 200)
    for mass in (0.5, 0.9, 0.99):
        radius = math.sqrt(stats.chi2.ppf(mass, df=2))
        axis.plot(radius * np.cos(angle), radius * np.sin(angle), color="black", linewidth=0.8)
        axis.text(radius * 0.71, radius * 0.71, f"{int(mass * 100)}%", fontsize=8)
    axis.set_xlim(-4, 4)
    axis.set_ylim(-4, 4)
    axis.set_aspect("equal")
    axis.set_xlabel(f"z[{first}] (context block)")
    axis.set_ylabel(f"z[{second}] (residual block)")
    axis.set_title("(d) two coordinates, N(0, I) mass contours")
    colorbar = fig.colorbar(scatter, ax=axis, ticks=range(10), fraction=0.046, pad=0.04)
    colorbar.set_label("digit")

    fig.suptitle(f"Latent of the {n} training digits, K = {k}", fontsize=13)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_completions(model, data: Tensor, labels: Tensor, path: Path, seed: int, samples: int = 6) -> Path:
    plt = _pyplot()
    index = _one_per_class(labels)
    originals = data[index]
    completed = model.complete(originals[:, BOTTOM_HALF], samples=samples,
                               generator=torch.Generator().manual_seed(seed + 2)).clone()
    completed[..., BOTTOM_HALF] = originals[:, None, BOTTOM_HALF]  # the given half is shown as given
    given = originals.clone().numpy()
    half = IMAGE_SIDE * IMAGE_SIDE // 2
    rows, columns = len(index), samples + 2
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.72 + 0.3, rows * 0.72 + 0.8), squeeze=False)
    for r in range(rows):
        masked = given[r].copy()
        masked[:half] = np.nan
        axes[r, 0].imshow(np.ma.masked_invalid(masked.reshape(IMAGE_SIDE, IMAGE_SIDE)), cmap="gray_r", vmin=0, vmax=1,
                          interpolation="nearest")
        axes[r, 0].set_facecolor("#d9e6f2")
        _hide(axes[r, 0])
        for c in range(samples):
            _show(axes[r, c + 1], completed[r, c].numpy())
        _show(axes[r, -1], given[r])
        for c in range(columns):
            axes[r, c].axhline(IMAGE_SIDE / 2 - 0.5, color="#3b7dd8", linewidth=0.8)
    axes[0, 0].set_title("given", fontsize=9)
    for c in range(samples):
        axes[0, c + 1].set_title(f"sample {c + 1}", fontsize=9)
    axes[0, -1].set_title("truth", fontsize=9)
    fig.suptitle("Completions: bottom half given, top half sampled (z$_c$ held, z$_r$ ~ N(0, I))", fontsize=11)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.01, top=0.91, wspace=0.08, hspace=0.08)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _hide(axis) -> None:
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_visible(False)


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

