r"""A small training loop for :class:`~latentshape.models.GaussianAutoencoder`.

Per minibatch B of fixed size N the objective is

.. math::
    L = \frac{1}{N}\sum_{x \in B} \ell(x, \hat x) + w \cdot G(z_B),

where :math:`\ell` is the per-example reconstruction loss summed over features (binary
cross-entropy for data in [0, 1], or squared error), :math:`z_B` the batch's latent codes and G
a Gaussian regularizer, by default the calibrated
:class:`~latentshape.wristband.WristbandLoss` (a z-score against N(0, I) at the batch's (N, K)).
Optionally (``latent_noise``) the decoder sees :math:`z + \sigma\epsilon` in training. Batches
have a fixed size (the last short batch of an epoch is dropped), so the calibrated loss
calibrates once. Optimization is Adam with a cosine learning-rate decay.
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..validation import is_real_number
from .autoencoder import GaussianAutoencoder

if TYPE_CHECKING:
    from tqdm.auto import tqdm

__all__ = ["TrainingHistory", "train_autoencoder", "reconstruction_error"]


@dataclass
class TrainingHistory:
    """Per-epoch means of the training objective's parts, and the run's size and duration."""

    reconstruction: list[float] = field(default_factory=list)
    """Mean squared error per feature (the same yardstick whatever loss was trained)."""
    gaussianity: list[float] = field(default_factory=list)
    """Mean of the Gaussian regularizer over the epoch's batches (calibrated total by default)."""
    loss: list[float] = field(default_factory=list)
    """Mean of the full objective."""
    steps: int = 0
    seconds: float = 0.0


def reconstruction_error(model: GaussianAutoencoder, data: Tensor, batch_size: int = 4096) -> float:
    """Mean squared error per feature of ``model`` reconstructing ``data`` (no gradients)."""
    total = 0.0
    with torch.no_grad():
        for start in range(0, data.shape[0], batch_size):
            batch = data[start : start + batch_size]
            total += float(F.mse_loss(model(batch)[1], batch, reduction="sum"))
    return total / data.numel()


def train_autoencoder(
    model: GaussianAutoencoder,
    data: Tensor,
    epochs: int = 100,
    batch_size: int = 256,
    learning_rate: float = 2e-3,
    gaussian_weight: float = 0.05,
    regularizer: Callable[[Tensor], Tensor] | None = None,
    reconstruction: Literal["bce", "mse"] = "bce",
    latent_noise: float = 0.0,
    seed: int = 0,
    progress: bool = True,
    description: str = "training",
) -> TrainingHistory:
    """Train ``model`` on ``data`` ``(M, data_dim)`` in place; returns the per-epoch history.

    Args:
        epochs: passes over the data. batch_size: N, fixed (clipped to M); short batches dropped.
        learning_rate: Adam's initial step; decays on a cosine to 5% of it at the end.
        gaussian_weight: w, the weight of the Gaussian regularizer on z.
        regularizer: G(z) -> 0-d tensor; default ``WristbandLoss()`` (calibrated; every angular degree and the coordinates).
        reconstruction: ``"bce"`` (data in [0, 1], sigmoid decoder) or ``"mse"``.
        latent_noise: sigma; the decoder reconstructs from ``z + sigma * eps`` (eps ~ N(0, I)) during
            training only. The encoder stays deterministic; the noise smooths the decoder between
            training codes, so that decoded N(0, I) draws (which land between them) look like data.
        seed: seeds the shuffling; the run is deterministic given the model's initial weights.
        progress: show a tqdm progress bar.

    >>> torch.manual_seed(0) and None
    >>> model = GaussianAutoencoder(data_dim=4, latent_dim=2, hidden=16)
    >>> history = train_autoencoder(model, torch.rand(64, 4), epochs=2, batch_size=32, progress=False)
    >>> len(history.reconstruction), history.steps
    (2, 4)
    """
    _check_training_inputs(model, data, epochs, reconstruction)
    _check_training_options(batch_size, learning_rate, gaussian_weight, latent_noise, regularizer)
    objective = _Objective(
        regularizer=_resolve_regularizer(regularizer, data.device),
        gaussian_weight=gaussian_weight,
        reconstruction=reconstruction,
        latent_noise=latent_noise,
    )
    batch_size = max(2, min(int(batch_size), data.shape[0]))
    batches_per_epoch = data.shape[0] // batch_size
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    schedule = _cosine_schedule(optimizer, total_steps=max(1, epochs * batches_per_epoch))
    shuffle = torch.Generator().manual_seed(seed)
    history = TrainingHistory()
    started = time.perf_counter()
    model.train()
    bar = _progress_bar(epochs, description) if progress else None
    for _ in range(epochs):
        means = _train_epoch(model, data, objective, optimizer, schedule, shuffle, batch_size, batches_per_epoch)
        _record_epoch(history, means, batches_per_epoch, bar)
    if bar is not None:
        bar.close()
    model.eval()
    history.seconds = time.perf_counter() - started
    return history


@dataclass(frozen=True)
class _Objective:
    """The per-batch objective: mean reconstruction loss plus the weighted Gaussian regularizer."""

    regularizer: Callable[[Tensor], Tensor]
    gaussian_weight: float
    reconstruction: Literal["bce", "mse"]
    latent_noise: float


def _check_training_inputs(model: GaussianAutoencoder, data: Tensor, epochs: int, reconstruction: str) -> None:
    if not isinstance(model, GaussianAutoencoder):
        raise TypeError(f"model must be a GaussianAutoencoder, got {type(model).__name__}")
    if not isinstance(data, Tensor) or not torch.is_floating_point(data):
        raise TypeError(f"data must be a floating tensor of shape (M, {model.data_dim}), got {type(data).__name__}"
                        + (f" of dtype {data.dtype}" if isinstance(data, Tensor) else ""))
    if data.dim() != 2 or data.shape[-1] != model.data_dim:
        raise ValueError(f"data must have shape (M, {model.data_dim}), got {tuple(data.shape)}")
    if data.shape[0] < 2:
        raise ValueError("need at least 2 examples")
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if reconstruction not in ("bce", "mse"):
        raise ValueError(f"reconstruction must be 'bce' or 'mse', got {reconstruction!r}")
    if reconstruction == "bce" and model.output != "sigmoid":
        raise ValueError("reconstruction='bce' needs a model with output='sigmoid'")
    if not bool(torch.isfinite(data).all()):
        raise ValueError("data holds NaN or Inf; drop or fix those examples")
    if reconstruction == "bce" and not bool(((data >= 0) & (data <= 1)).all()):
        raise ValueError(f"reconstruction='bce' needs data in [0, 1], got values in [{float(data.min()):.3g}, "
                         f"{float(data.max()):.3g}]; rescale the data or use reconstruction='mse'")


def _check_training_options(batch_size: int, learning_rate: float, gaussian_weight: float, latent_noise: float,
                            regularizer: Callable[[Tensor], Tensor] | None) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 2:
        raise ValueError(f"batch_size must be an integer >= 2 (a batch statistic needs 2 rows), got {batch_size!r}")
    for name, value, low in (("learning_rate", learning_rate, 0.0), ("gaussian_weight", gaussian_weight, None),
                             ("latent_noise", latent_noise, None)):
        if not (is_real_number(value) and (value > low if low is not None else value >= 0) and value < math.inf):
            raise ValueError(f"{name} must be a finite number {'> 0' if low is not None else '>= 0'}, got {value!r}")
    if regularizer is not None and not callable(regularizer):
        raise TypeError(f"regularizer must be a callable (a loss module) or None, got {type(regularizer).__name__}")


def _resolve_regularizer(regularizer: Callable[[Tensor], Tensor] | None, device: torch.device) -> Callable[[Tensor], Tensor]:
    if regularizer is None:
        from ..wristband import WristbandLoss

        regularizer = WristbandLoss()
    if isinstance(regularizer, nn.Module):
        regularizer = regularizer.to(device)
    return regularizer


def _cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Learning-rate factor decaying on a cosine from 1 to 0.05 over ``total_steps``, then flat."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
    )


def _progress_bar(epochs: int, description: str) -> tqdm:
    from tqdm.auto import tqdm  # imported on use: keeps `import latentshape` light

    return tqdm(total=epochs, desc=description, unit="epoch", leave=True)


def _train_epoch(
    model: GaussianAutoencoder,
    data: Tensor,
    objective: _Objective,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LambdaLR,
    shuffle: torch.Generator,
    batch_size: int,
    batches_per_epoch: int,
) -> list[float]:
    """One pass over a fresh shuffle of ``data``; returns the means of (mse, gaussianity, loss)."""
    order = torch.randperm(data.shape[0], generator=shuffle).to(data.device)
    sums = torch.zeros(3, dtype=torch.float64)
    for step in range(batches_per_epoch):
        batch = data[order[step * batch_size : (step + 1) * batch_size]]
        sums += _train_step(model, batch, objective, optimizer, schedule, shuffle)
    return (sums / max(1, batches_per_epoch)).tolist()


def _train_step(
    model: GaussianAutoencoder,
    batch: Tensor,
    objective: _Objective,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LambdaLR,
    noise_generator: torch.Generator,
) -> Tensor:
    """One optimizer step on ``batch``; returns float64 (mse per feature, gaussianity, loss)."""
    z = model.encode(batch)
    if objective.latent_noise > 0:
        noise = torch.randn(z.shape, generator=noise_generator).to(z.device, z.dtype)
        x_hat = model.decode(z + objective.latent_noise * noise)
    else:
        x_hat = model.decode(z)
    if objective.reconstruction == "bce":
        fit = F.binary_cross_entropy(x_hat, batch, reduction="sum") / batch.shape[0]
    else:
        fit = F.mse_loss(x_hat, batch, reduction="sum") / batch.shape[0]
    gaussianity = objective.regularizer(z)
    loss = fit + objective.gaussian_weight * gaussianity
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
    with torch.no_grad():
        mse = F.mse_loss(x_hat, batch)
    return torch.tensor([float(mse), float(gaussianity.detach()), float(loss.detach())], dtype=torch.float64)


def _record_epoch(history: TrainingHistory, means: list[float], batches_per_epoch: int, bar: tqdm | None) -> None:
    history.reconstruction.append(means[0])
    history.gaussianity.append(means[1])
    history.loss.append(means[2])
    history.steps += batches_per_epoch
    if bar is not None:
        bar.set_postfix(mse=f"{means[0]:.4f}", gaussianity=f"{means[1]:.1f}")
        bar.update(1)
