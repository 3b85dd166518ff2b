"""Hypersphere shapers: uniformity and alignment, hyperspherical prototypes."""

from __future__ import annotations

from .prototype_fitting import fit_prototypes, prototype_separation
from .prototypes import PrototypeClassificationLoss, PrototypeRegressionLoss
from .uniformity import AlignmentLoss, UniformityLoss, alignment_loss, uniformity_loss

__all__ = [
    "UniformityLoss",
    "AlignmentLoss",
    "uniformity_loss",
    "alignment_loss",
    "fit_prototypes",
    "prototype_separation",
    "PrototypeClassificationLoss",
    "PrototypeRegressionLoss",
]
