"""Regularizers toward N(0, I) other than the wristband loss, and the shared moment penalties."""

from .moments import MOMENT_PENALTIES, moment_penalty

__all__ = ["MOMENT_PENALTIES", "moment_penalty"]
