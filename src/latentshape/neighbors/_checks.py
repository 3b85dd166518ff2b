"""Argument checks shared by the soft nearest neighbor functions and modules, and the warning of a vanishing loss."""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

from ..validation import is_compiling

_DISTANCES = ("cosine", "euclidean")


def _check_distance(distance: str) -> str:
    if distance not in _DISTANCES:
        raise ValueError(f"distance must be one of {_DISTANCES}, got {distance!r}")
    return distance


def _check_positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _temperature_tensor(temperature: float | Tensor, like: Tensor) -> Tensor:
    if isinstance(temperature, Tensor):
        if temperature.numel() != 1:
            raise ValueError("temperature must be a scalar")
        if not bool((temperature.detach() > 0).all()) or not bool(torch.isfinite(temperature.detach()).all()):
            raise ValueError(f"temperature must be finite and > 0, got {float(temperature)}")
        return temperature.reshape(()).to(like.dtype)
    return like.new_tensor(_check_positive(temperature, "temperature"))


def _warn_if_eps_dominates(distances: Tensor, temperature: Tensor, eps: float) -> None:
    """Warn when even the closest pair's affinity is negligible beside eps: the loss is then the
    constant -log(eps) with a vanishing gradient (squared Euclidean distances grow like 2 d, so a
    temperature of 1 does this at d of a few dozen)."""
    if is_compiling():
        return
    n, temperature = distances.shape[-1], float(temperature.detach())
    off_diagonal = distances.detach().masked_fill(torch.eye(n, dtype=torch.bool, device=distances.device), math.inf)
    closest = float(off_diagonal.amin())
    # Every row's affinity mass is at most N exp(-closest / T); below eps * 1e-6 the gradient is nil.
    if -closest / temperature + math.log(n) < math.log(eps * 1e-6):
        warnings.warn(
            f"soft nearest neighbor loss: the closest pair's affinity exp(-D/T) = exp(-{closest / temperature:.3g}) "
            f"is negligible beside eps = {eps:g} in every row, so the loss is the constant -log(eps) = "
            f"{-math.log(eps):.2f} and its gradient vanishes; use a temperature on the scale of the distances "
            f"(the closest distance here is {closest:.3g}) or distance='cosine'", stacklevel=3)
