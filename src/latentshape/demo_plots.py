"""The four figures of ``latentshape demo``: samples, reconstructions, the latent, completions.

Each function draws one PNG with matplotlib (the ``demo`` extra; imported lazily, Agg backend)
from a trained :class:`~latentshape.models.GaussianAutoencoder` on 8x8 digit images, and
returns the path it wrote.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["plot_samples", "plot_reconstructions", "plot_latent", "plot_completions", "IMAGE_SIDE", "BOTTOM_HALF"]

IMAGE_SIDE = 8
"""Side of the square digit images, in pixels."""
BOTTOM_HALF = list(range(IMAGE_SIDE * IMAGE_SIDE // 2, IMAGE_SIDE * IMAGE_SIDE))
"""Flat pixel indices of the bottom half of an image: the context the completions are given."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _hide(axis) -> None:
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_visible(False)


def _show(axis, image: np.ndarray) -> None:
    axis.imshow(image.reshape(IMAGE_SIDE, IMAGE_SIDE), cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    _hide(axis)


def _one_per_class(labels: Tensor, per_class: int = 1) -> list[int]:
    chosen: list[int] = []
    for digit in range(10):
        chosen += torch.nonzero(labels == digit).flatten()[:per_class].tolist()
    return chosen


def plot_samples(model, path: Path, seed: int, rows: int = 8, columns: int = 12) -> Path:
    """Write a ``rows x columns`` grid of images decoded from z ~ N(0, I) (generator seeded ``seed + 1``)."""
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


def plot_reconstructions(model, data: Tensor, labels: Tensor, path: Path) -> Path:
    """Write two held-out digits per class above their reconstructions x -> z -> x-hat."""
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


def plot_latent(z: Tensor, labels: Tensor, history, total_before: float, total_after: float, path: Path) -> Path:
    """Write the 2 x 2 latent figure: (a) training curves, (b) marginals against N(0, 1), (c) radial QQ
    of ||z||^2 against chi^2_K, (d) a context and a residual coordinate against N(0, I) contours."""
    plt = _pyplot()
    z = z.numpy().astype(np.float64)
    n, k = z.shape
    fig, axes = plt.subplots(2, 2, figsize=(10.5, 8.6))
    _draw_training_curves(axes[0, 0], history)
    _draw_marginals(axes[0, 1], z)
    _draw_radial_qq(axes[1, 0], z, total_before, total_after)
    _draw_context_against_residual(fig, axes[1, 1], z, labels)
    fig.suptitle(f"Latent of the {n} training digits, K = {k}", fontsize=13)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _draw_training_curves(axis, history) -> None:
    """(a) reconstruction and Gaussianity on one time axis (the z-score on a symlog scale)."""
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


def _draw_marginals(axis, z: np.ndarray) -> None:
    """(b) a histogram of every coordinate against the N(0, 1) density."""
    from scipy import stats

    k = z.shape[1]
    grid = np.linspace(-4, 4, 301)
    bins = np.linspace(-4, 4, 41)
    for j in range(k):
        axis.hist(z[:, j], bins=bins, density=True, histtype="step", alpha=0.55, linewidth=1.0)
    axis.plot(grid, stats.norm.pdf(grid), color="black", linewidth=2.0, label="N(0, 1)")
    axis.set_xlabel("coordinate value")
    axis.set_ylabel("density")
    axis.set_title(f"(b) the {k} latent coordinates (one line each)")
    axis.legend(frameon=False)


def _draw_radial_qq(axis, z: np.ndarray, total_before: float, total_after: float) -> None:
    """(c) sorted ||z||^2 against chi^2_K quantiles, with the wristband totals before and after."""
    from scipy import stats

    n, k = z.shape
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


def _draw_context_against_residual(fig, axis, z: np.ndarray, labels: Tensor) -> None:
    """(d) the first (context) and last (residual) coordinate, coloured by digit, with N(0, I) mass contours."""
    from scipy import stats

    first, second = 0, z.shape[1] - 1
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


def plot_completions(model, data: Tensor, labels: Tensor, path: Path, seed: int, samples: int = 6) -> Path:
    """Write one held-out digit per class: its given bottom half, ``samples`` sampled top halves, the truth."""
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
