"""Data, encoders and augmented views for ``latentshape bench train`` (scikit-learn's 8x8 digits).

The 1797 digits of :func:`sklearn.datasets.load_digits` (pixels scaled to [0, 1]) are split once,
80/20, with a fixed seed: 1437 training and 360 held-out images, the same for every run, so the
shapes that ``latentshape.check`` calibrates at are the same across cells (its nulls are cached
per shape).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["Digits", "load_digits_split", "MLPEncoder", "StochasticEncoder", "augment", "minibatches", "SIDE", "PIXELS"]

SIDE = 8
PIXELS = SIDE * SIDE


@dataclass(frozen=True)
class Digits:
    """Training and held-out images ``(N, 64)`` float32 in [0, 1] with their labels ``(N,)`` int64."""

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor


@functools.lru_cache(maxsize=4)
def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> Digits:
    """scikit-learn's digits, shuffled with ``seed`` and split into training and held-out parts.

    >>> data = load_digits_split()
    >>> tuple(data.train_x.shape), tuple(data.test_x.shape), float(data.train_x.max())
    ((1437, 64), (360, 64), 1.0)
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError('bench train needs scikit-learn: pip install "latentshape[demo]"') from error
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    held_out = math.ceil(test_fraction * len(order))  # scikit-learn's train_test_split rounds up too
    pixels = torch.tensor(digits.data[order] / 16.0, dtype=torch.float32)
    labels = torch.tensor(digits.target[order], dtype=torch.long)
    split = len(order) - held_out
    return Digits(pixels[:split], labels[:split], pixels[split:], labels[split:])


class MLPEncoder(nn.Module):
    """The MLP ``64 -> 128 -> 128 -> d`` (ReLU between layers, a linear last layer).

    >>> MLPEncoder(8)(torch.zeros(5, 64)).shape
    torch.Size([5, 8])
    """

    def __init__(self, d: int, *, hidden: int = 128, inputs: int = PIXELS) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, d))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class StochasticEncoder(nn.Module):
    r"""The same trunk ``64 -> 128 -> 128`` with two linear heads: the mean and :math:`\log\sigma^2` of q(z|x).

    >>> mu, logvar = StochasticEncoder(4)(torch.zeros(3, 64))
    >>> mu.shape, logvar.shape
    (torch.Size([3, 4]), torch.Size([3, 4]))
    """

    def __init__(self, d: int, *, hidden: int = 128, inputs: int = PIXELS) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.mean = nn.Linear(hidden, d)
        self.logvar = nn.Linear(hidden, d)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.trunk(x)
        return self.mean(features), self.logvar(features)


def augment(x: Tensor, generator: torch.Generator, *, shift: int = 1, noise: float = 0.1, mask: float = 0.15) -> Tensor:
    """A random view of each image ``(B, 64)``: a shift of up to ``shift`` pixels per axis (zero fill),
    additive Gaussian noise of sd ``noise``, then each pixel zeroed with probability ``mask`` (the kept
    ones scaled by 1 / (1 - mask), as in inverted dropout, so that a view's mean intensity is that of
    the clean image the embeddings are measured on).

    >>> g = torch.Generator().manual_seed(0)
    >>> view = augment(torch.ones(4, 64), g, noise=0.0, mask=0.0)
    >>> view.shape, float(view.sum()) <= 4 * 64        # shifted-out pixels are zero-filled
    (torch.Size([4, 64]), True)
    """
    batch = x.shape[0]
    images = nn.functional.pad(x.reshape(batch, SIDE, SIDE), (shift, shift, shift, shift))
    offsets = torch.randint(0, 2 * shift + 1, (batch, 2), generator=generator)
    # Row r of the view is row r + offset of the padded image: gather rows, then columns.
    index = torch.arange(SIDE)
    rows = (offsets[:, 0, None] + index)[:, :, None].expand(batch, SIDE, SIDE + 2 * shift)
    images = images.gather(1, rows)
    columns = (offsets[:, 1, None] + index)[:, None, :].expand(batch, SIDE, SIDE)
    view = images.gather(2, columns).reshape(batch, PIXELS)
    if noise > 0:
        view = view + noise * torch.randn(view.shape, generator=generator)
    if mask > 0:
        view = view * (torch.rand(view.shape, generator=generator) >= mask) / (1.0 - mask)
    return view


def minibatches(n: int, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """A fresh random order of ``range(n)`` cut into batches of ``batch_size``; the last one is short, not dropped.

    (A last batch of a single row joins the one before: batch statistics need two points.)

    >>> [len(b) for b in minibatches(300, 128, torch.Generator().manual_seed(0))]
    [128, 128, 44]
    """
    if batch_size < 2:
        raise ValueError(f"batch_size must be >= 2, got {batch_size}")
    batches = list(torch.randperm(n, generator=generator).split(batch_size))
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches
