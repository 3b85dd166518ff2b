"""Stateless functions behind the loss modules (``torch.nn.functional`` style).

Each ``nn.Module`` in latentshape holds configuration and caches and calls one of these. The
formulas live next to each function; this module only gathers them in one namespace.
"""

from __future__ import annotations

from .gaussian.moments import moment_penalty
from .wristband.components import wristband_components, wristband_energy
from .wristband.map import wristband_map
from .wristband.radial import radial_distance

__all__ = ["moment_penalty", "radial_distance", "wristband_components", "wristband_energy", "wristband_map"]
