"""Deprecated: moved to :mod:`latentshape.wristband.closed_form_null` (kept for one release)."""

from ..deprecation import moved_to

__getattr__ = moved_to(__name__, "latentshape.wristband.closed_form_null")
