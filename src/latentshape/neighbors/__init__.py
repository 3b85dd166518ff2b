"""Class-structure shapers: the soft nearest neighbor loss and its layer-wise form."""

from __future__ import annotations

from .soft_nearest_neighbor import (
    LayerwiseSoftNearestNeighborLoss,
    SoftNearestNeighborLoss,
    annealed_temperature,
    neighbor_probabilities,
    pairwise_distances,
    soft_nearest_neighbor_loss,
)

__all__ = [
    "SoftNearestNeighborLoss",
    "LayerwiseSoftNearestNeighborLoss",
    "soft_nearest_neighbor_loss",
    "neighbor_probabilities",
    "pairwise_distances",
    "annealed_temperature",
]
