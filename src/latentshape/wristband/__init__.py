"""The Wristband Gaussian Loss: map, kernels, spectral path, components and the calibrated module."""

from .components import WristbandComponents, WristbandConfig, wristband_components, wristband_energy
from .loss import WristbandLoss
from .map import WristbandPoint, wristband_map

__all__ = [
    "WristbandComponents",
    "WristbandConfig",
    "WristbandLoss",
    "WristbandPoint",
    "wristband_components",
    "wristband_energy",
    "wristband_map",
]
