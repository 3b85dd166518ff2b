"""Shared timing/memory harness for the benchmark scripts: re-exported from :mod:`latentshape.bench.measure`.

Numbers are printed, never asserted. One implementation lives in the package (the ``latentshape
bench speed`` protocol uses it too); this module keeps the scripts' ``from _measure import ...``.
"""

from latentshape.bench.measure import fmt_bytes, fmt_seconds, measure

__all__ = ["measure", "fmt_seconds", "fmt_bytes"]
