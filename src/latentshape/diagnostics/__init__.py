"""Diagnostics: ``check(x)`` -> a calibrated :class:`Report` on how Gaussian an embedding is."""

from .check import check
from .report import Report, TestResult

__all__ = ["check", "Report", "TestResult"]
