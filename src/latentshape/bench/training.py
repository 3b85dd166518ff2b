r"""One training run of ``latentshape bench train``: an encoder on the digits, task loss + w * regularizer.

Three settings (the regularizer always acts on the d-dimensional embedding):

- ``supervised``: :class:`~latentshape.bench.digits.MLPEncoder` and a linear head,
  :math:`\text{CE}(h(z), y) + w\, R(z)`; held-out metric: the head's accuracy.
- ``self_supervised`` (joint-embedding, as in LeJEPA and VICReg): two augmented views of each
  image, :math:`\frac{1}{B d} \sum_i \|z_i - z'_i\|^2 + \frac{w}{2}[R(Z) + R(Z')]` (the
  invariance is the mean squared error per coordinate); without R the encoder collapses to a
  constant. Held-out metric: a linear probe on frozen embeddings.
- ``stochastic``: ``kl`` is :class:`~latentshape.bench.digits.StochasticEncoder`, codes
  :math:`z = \mu + \sigma \varepsilon` (:func:`~latentshape.reparameterize`),
  :math:`\text{CE}(h(z), y) + w\, \text{KL}(q(z|x) \| N(0, I))`; the held-out accuracy uses
  :math:`h(\mu)` and the measured embedding is the sampled codes. ``adversarial`` is the
  deterministic encoder with :class:`~latentshape.AdversarialPrior` (one critic step per batch).

Every Gaussian batch statistic is built with ``calibrate=True``: R is a z-score against its own
N(0, I) null at the batch's (N, d), so w is a weight per null standard deviation. Adam
(lr 1e-3), minibatches of ``batch_size`` in a fresh order each epoch with a short last batch.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..gaussian import GaussianKL, VICRegLoss, reparameterize
from .digits import Digits, MLPEncoder, StochasticEncoder, augment, load_digits_split, minibatches
from .embedding_metrics import GAUSSIANITY_KEYS, collapse_indicators, gaussianity, linear_probe_accuracy
from .regularizers import REGULARIZERS

__all__ = ["SETTINGS", "CALIBRATED", "Cell", "build_regularizer", "train_encoder", "run_cell", "CLASSES"]

CLASSES = 10
CALIBRATED = ("wristband", "moment_matching", "sigreg", "mmd", "sliced_w2")
"""The Gaussian batch statistics (built with ``calibrate=True``)."""

SETTINGS: dict[str, tuple[str, ...]] = {
    "supervised": ("none", *CALIBRATED),
    "self_supervised": ("none", *CALIBRATED, "vicreg"),
    "stochastic": ("none", "kl", "adversarial"),
}
"""The regularizers each setting compares, ``"none"`` first."""


@dataclass(frozen=True)
class Cell:
    """One run: setting, regularizer, weight, embedding width, seed and the optimization budget."""

    setting: str
    regularizer: str
    weight: float
    d: int
    seed: int
    epochs: int
    batch_size: int = 128
    lr: float = 1e-3


def build_regularizer(name: str, d: int) -> nn.Module | None:
    """The module for ``name`` at width ``d`` (None for ``"none"``); batch statistics are calibrated.

    ``vicreg`` is :class:`~latentshape.VICRegLoss` with variance weight 1 and covariance weight
    2/25: at w = 1 the self-supervised loss is then the VICReg authors' released configuration
    (25 MSE + 25 x the two views' mean variance term + the sum of their covariance terms) / 25.

    >>> build_regularizer("sigreg", 4).calibrate
    True
    """
    if name == "none":
        return None
    if name == "vicreg":
        return VICRegLoss(variance_weight=1.0, covariance_weight=2.0 / 25.0)
    if name == "kl":
        return GaussianKL()
    if name not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {name!r}")
    # The adversarial prior has no calibration; every other registered loss gets it explicitly.
    return REGULARIZERS[name].build(d, None if name == "adversarial" else True)


class _Model(nn.Module):
    def __init__(self, cell: Cell) -> None:
        super().__init__()
        stochastic = cell.regularizer == "kl"
        self.encoder = StochasticEncoder(cell.d) if stochastic else MLPEncoder(cell.d)
        self.head = None if cell.setting == "self_supervised" else nn.Linear(cell.d, CLASSES)


def _supervised_loss(model: _Model, regularizer, weight: float, x: Tensor, y: Tensor, generator) -> tuple[Tensor, Tensor]:
    if isinstance(regularizer, GaussianKL):
        mu, logvar = model.encoder(x)
        z = reparameterize(mu, logvar, generator)
        return F.cross_entropy(model.head(z), y), regularizer(mu, logvar)
    z = model.encoder(x)
    if hasattr(regularizer, "critic_step"):
        regularizer.critic_step(z.detach())
    value = regularizer(z) if regularizer is not None else z.new_zeros(())
    return F.cross_entropy(model.head(z), y), value


def _self_supervised_loss(model: _Model, regularizer, weight: float, x: Tensor, y: Tensor, generator) -> tuple[Tensor, Tensor]:
    first, second = model.encoder(augment(x, generator)), model.encoder(augment(x, generator))
    invariance = F.mse_loss(first, second)
    value = 0.5 * (regularizer(first) + regularizer(second)) if regularizer is not None else first.new_zeros(())
    return invariance, value


def _train(cell: Cell, model: _Model, regularizer, data: Digits, generator: torch.Generator) -> dict:
    """Adam for ``cell.epochs`` epochs; the median step time and the regularizer's mean over the last epoch."""
    loss_of: Callable = _self_supervised_loss if cell.setting == "self_supervised" else _supervised_loss
    optimizer = torch.optim.Adam(model.parameters(), lr=cell.lr)
    seconds: list[float] = []
    last_epoch: list[float] = []
    for epoch in range(cell.epochs):
        last_epoch = []
        for rows in minibatches(len(data.train_y), cell.batch_size, generator):
            began = time.perf_counter()
            task, value = loss_of(model, regularizer, cell.weight, data.train_x[rows], data.train_y[rows], generator)
            loss = task + cell.weight * value if regularizer is not None else task
            if not bool(torch.isfinite(loss)):
                return {"diverged": True, "ms_per_step": math.nan, "batch_value": math.nan}
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seconds.append(time.perf_counter() - began)
            last_epoch.append(float(value.detach()))
    ms = 1e3 * statistics.median(seconds) if seconds else math.nan
    return {"diverged": False, "ms_per_step": ms, "batch_value": statistics.fmean(last_epoch) if last_epoch else math.nan}


@torch.no_grad()
def _embed(model: _Model, x: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``(embedding to measure, input of the head)``: the sampled codes and the means for a stochastic encoder."""
    if isinstance(model.encoder, StochasticEncoder):
        mu, logvar = model.encoder(x)
        return reparameterize(mu, logvar, generator), mu
    z = model.encoder(x)
    return z, z


def _evaluate(cell: Cell, model: _Model, data: Digits, check_rows: int) -> dict:
    generator = torch.Generator().manual_seed(10_000 + cell.seed)  # the codes' noise and views at evaluation
    train_z, _ = _embed(model, data.train_x, generator)
    test_z, test_input = _embed(model, data.test_x, generator)
    embeddings = {"test": test_z, "train": train_z}
    if cell.setting == "self_supervised":
        accuracy = linear_probe_accuracy(train_z, data.train_y, test_z, data.test_y)
        # The regularizer saw augmented views, not clean images: measure one view of each held-out image too.
        embeddings["view"] = _embed(model, augment(data.test_x, generator), generator)[0]
    elif bool(torch.isfinite(test_input).all()):
        with torch.no_grad():
            accuracy = float((model.head(test_input).argmax(dim=1) == data.test_y).double().mean())
    else:
        accuracy = math.nan
    record = {"accuracy": accuracy}
    for prefix, z in embeddings.items():
        record |= {f"{prefix}_{key}": value for key, value in gaussianity(z, check_rows).items()}
    return record | collapse_indicators(test_z)


def train_encoder(cell: Cell, data: Digits) -> tuple[_Model, dict]:
    """The trained model of ``cell`` and its training summary (``diverged``, ``ms_per_step``, ``batch_value``)."""
    if cell.setting not in SETTINGS:
        raise ValueError(f"unknown setting {cell.setting!r}; choose one of {', '.join(SETTINGS)}")
    torch.manual_seed(cell.seed)  # initial weights of the encoder, the head and a critic
    model = _Model(cell)
    regularizer = build_regularizer(cell.regularizer, cell.d)
    generator = torch.Generator().manual_seed(cell.seed)  # batch order, views, reparameterization noise
    model.train()
    trained = _train(cell, model, regularizer, data, generator)
    return model.eval(), trained


def run_cell(cell: Cell, data: Digits | None = None, check_rows: int = 2000) -> dict:
    """Train one cell and measure it: a flat record of the cell's fields and its metrics.

    Keys beyond the cell's: ``accuracy``, ``test_*`` and ``train_*`` for each of
    :data:`~latentshape.bench.embedding_metrics.GAUSSIANITY_KEYS`, ``min_sd``, ``effective_rank``
    (held-out), for ``self_supervised`` also ``view_*`` (one augmented view of each held-out
    image), ``ms_per_step`` (median), ``batch_value`` (the regularizer's mean value over the
    last epoch's batches, z units for the calibrated statistics), ``diverged``. ``check_rows``:
    ``max_pairwise`` of :func:`latentshape.check` (the default 2000 keeps all 1437 training rows).

    >>> record = run_cell(Cell("supervised", "moment_matching", 0.1, d=4, seed=0, epochs=1), check_rows=200)
    >>> 0 <= record["accuracy"] <= 1 and record["test_rejected"] <= 8
    True
    """
    data = load_digits_split() if data is None else data
    model, trained = train_encoder(cell, data)
    if trained["diverged"]:
        prefixes = ("test", "train", "view") if cell.setting == "self_supervised" else ("test", "train")
        metrics = {"accuracy": math.nan, "min_sd": math.nan, "effective_rank": math.nan}
        metrics |= {f"{p}_{key}": math.nan for p in prefixes for key in GAUSSIANITY_KEYS}
    else:
        metrics = _evaluate(cell, model, data, check_rows)
    return asdict(cell) | metrics | trained
