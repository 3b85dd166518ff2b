"""Stateless functions behind the loss modules (``torch.nn.functional`` style).

Each ``nn.Module`` in latentshape holds configuration and caches and calls one of these. The
formulas live next to each function in its own module; this one only gathers them in one
namespace, grouped by target.
"""

from __future__ import annotations

# N(0, I): the wristband loss and the alternatives
from .gaussian.kl import gaussian_kl_diag, gaussian_kl_full
from .gaussian.mmd import gaussian_mmd
from .gaussian.moment_matching import moment_matching_loss
from .gaussian.moment_penalties import moment_penalty
from .gaussian.sigreg import sigreg_statistic
from .gaussian.sliced import sliced_wasserstein_gaussian
from .gaussian.vicreg import vicreg_variance_covariance
# uniform interval
from .interval.kde_cross_entropy import kde_cross_entropy
# class structure
from .neighbors.soft_nearest_neighbor import soft_nearest_neighbor_loss
# hypersphere
from .sphere.prototypes import prototype_separation
from .sphere.uniformity import alignment_loss, uniformity_loss
from .wristband.components import wristband_components, wristband_energy
from .wristband.map import wristband_map
from .wristband.radial import radial_distance

__all__ = [
    "wristband_map",
    "wristband_energy",
    "wristband_components",
    "radial_distance",
    "moment_penalty",
    "moment_matching_loss",
    "gaussian_kl_diag",
    "gaussian_kl_full",
    "sigreg_statistic",
    "gaussian_mmd",
    "sliced_wasserstein_gaussian",
    "vicreg_variance_covariance",
    "uniformity_loss",
    "alignment_loss",
    "prototype_separation",
    "soft_nearest_neighbor_loss",
    "kde_cross_entropy",
]
