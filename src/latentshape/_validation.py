"""Deprecated: moved to :mod:`latentshape.validation` (kept for one release)."""

from .deprecation import moved_to

__getattr__ = moved_to(__name__, "latentshape.validation")
