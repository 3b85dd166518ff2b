"""Deprecated: moved to :mod:`latentshape.wristband.spectral_fused` (kept for one release)."""

from ..deprecation import moved_to

__getattr__ = moved_to(__name__, "latentshape.wristband.spectral_fused")
