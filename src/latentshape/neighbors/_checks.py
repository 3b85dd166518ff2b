"""Argument checks shared by the soft nearest neighbor functions and modules."""

from __future__ import annotations

import math

import torch
from torch import Tensor

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
