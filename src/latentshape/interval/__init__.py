"""Interval shapers: cross-entropy from a uniform interval to a softmax-weighted kernel density."""

from __future__ import annotations

from .kde_cross_entropy import KDECrossEntropy, kde_cross_entropy, kde_log_density, quadrature_rule

__all__ = ["KDECrossEntropy", "kde_cross_entropy", "kde_log_density", "quadrature_rule"]
