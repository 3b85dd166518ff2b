"""Benchmark harness: impostor distributions (more protocols and the runner come later)."""

from .distributions import x_shape

__all__ = ["x_shape"]
