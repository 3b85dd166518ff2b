"""Diagnostics: ``check(x)`` -> a calibrated :class:`Report` on how Gaussian an embedding is (DESIGN 5)."""

from .check import check
from .report import Report, TestResult

__all__ = ["check", "Report", "TestResult"]
