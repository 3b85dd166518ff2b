"""Deprecated: moved to :mod:`latentshape.gaussian.moment_penalties` (kept for one release)."""

from ..deprecation import moved_to

__getattr__ = moved_to(__name__, "latentshape.gaussian.moment_penalties")
