"""Shared fixtures for the N(0, I) regularizer tests."""

from __future__ import annotations

from typing import Callable

import pytest
import torch

from latentshape.bench.distributions import x_shape
from latentshape.gaussian.sliced import sliced_wasserstein_gaussian
from latentshape.gaussian.slicing import random_directions


@pytest.fixture
def sliced_distance() -> Callable[[torch.Tensor], float]:
    """The yardstick of the Gaussianization tests: sliced W2^2 to N(0, I) on 128 fixed directions.

    It is :func:`sliced_wasserstein_gaussian` with directions that never change, so two clouds
    are always compared on the same slices.
    """
    fixed = random_directions(2, 128, torch.Generator().manual_seed(12345), dtype=torch.float64)

    def measure(points: torch.Tensor) -> float:
        return float(sliced_wasserstein_gaussian(points.detach().to(torch.float64), fixed))

    return measure


@pytest.fixture
def x_cloud() -> torch.Tensor:
    """512 points on the standardized 2-D X shape, scaled by 2 and shifted by (1, -1)."""
    points = x_shape(512, 2, generator=torch.Generator().manual_seed(7))
    return 2.0 * points + torch.tensor([1.0, -1.0])
