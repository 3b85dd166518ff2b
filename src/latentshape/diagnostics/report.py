"""The :class:`Report` returned by :func:`~latentshape.diagnostics.check`: a table, a dict and a figure."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Report", "TestResult", "format_p"]


def format_p(p: float) -> str:
    """A p-value for people: three decimals, scientific below 0.001, a bound below 1e-300.

    >>> format_p(0.4321), format_p(2.5e-7), format_p(0.0)
    ('0.432', '2.5e-07', '<1e-300')
    """
    if p <= 1e-300:
        return "<1e-300"
    return f"{p:.3f}" if p >= 1e-3 else f"{p:.1e}"


@dataclass
class TestResult:
    """One test of H0: rows i.i.d. N(0, I). ``null`` says where the p-value comes from."""

    __test__ = False  # not a pytest test class

    name: str
    statistic: float
    null_mean: float
    null_std: float
    p_value: float
    null: str
    detail: str
    p_holm: float = math.nan
    rejected: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "statistic": _finite_or_none(self.statistic),
            "null_mean": _finite_or_none(self.null_mean),
            "null_std": _finite_or_none(self.null_std),
            "p_value": _finite_or_none(self.p_value),
            "p_holm": _finite_or_none(self.p_holm),
            "rejected": bool(self.rejected),
            "null": self.null,
            "detail": self.detail,
        }


@dataclass
class Report:
    """Result of :func:`~latentshape.check`.

    ``print(report)`` gives a table, :meth:`to_dict` a JSON-serializable dict, :meth:`plot` a PNG.
    ``tests`` holds the eight tests in a fixed order (:meth:`test` finds one by name); ``wristband`` the calibrated total and
    components (z-scores); ``dimension_mean`` / ``dimension_std`` / ``dimension_p`` the
    per-coordinate moments and the smaller of their two exact p-values.
    """

    n: int
    d: int
    pairwise_rows: int
    alpha: float
    null_samples: int
    seed: int
    tests: list[TestResult]
    wristband: dict[str, float]
    dimension_mean: np.ndarray
    dimension_std: np.ndarray
    dimension_p: np.ndarray
    notes: list[str] = field(default_factory=list)
    squared_norms: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    sample: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    source: str = ""

    @property
    def is_gaussian(self) -> bool:
        """True when no test rejects N(0, I) at family-wise level ``alpha`` (Holm)."""
        return not any(test.rejected for test in self.tests)

    def test(self, name: str) -> TestResult:
        """The test called ``name`` (e.g. ``"Henze-Zirkler"``)."""
        for test in self.tests:
            if test.name == name:
                return test
        raise KeyError(f"no test {name!r}; tests: {', '.join(t.name for t in self.tests)}")

    @property
    def rejected_by(self) -> list[str]:
        return [test.name for test in self.tests if test.rejected]

    @property
    def verdict(self) -> str:
        """The answer in one line, and the multiple-testing rule behind it."""
        rule = f"Holm over {len(self.tests)} tests, family-wise alpha = {self.alpha:g}"
        if self.is_gaussian:
            return f"consistent with N(0, I): no test rejects ({rule})"
        rejected = self.rejected_by
        return f"NOT N(0, I): rejected by {len(rejected)} of {len(self.tests)} tests ({rule})"

    def worst_dimensions(self, count: int = 3) -> list[dict[str, float]]:
        """The ``count`` coordinates whose mean/std are least like N(0, 1), worst first."""
        order = np.argsort(self.dimension_p, kind="stable")[:count]
        return [
            {"dim": int(j), "mean": float(self.dimension_mean[j]), "std": float(self.dimension_std[j]),
             "p": float(self.dimension_p[j])}
            for j in order
        ]

    def to_dict(self) -> dict[str, Any]:
        """Everything in the table as plain Python types (``json.dumps`` works: NaN and inf become None)."""
        return {
            "source": self.source,
            "n": self.n,
            "d": self.d,
            "pairwise_rows": self.pairwise_rows,
            "null_samples": self.null_samples,
            "seed": self.seed,
            "alpha": self.alpha,
            "is_gaussian": self.is_gaussian,
            "verdict": self.verdict,
            "wristband": {name: _finite_or_none(value) for name, value in self.wristband.items()},
            "tests": [test.to_dict() for test in self.tests],
            "dimensions": {
                "mean": [_finite_or_none(v) for v in self.dimension_mean],
                "std": [_finite_or_none(v) for v in self.dimension_std],
                "p": [_finite_or_none(v) for v in self.dimension_p],
                "worst": [{key: _finite_or_none(value) if key != "dim" else value for key, value in worst.items()}
                          for worst in self.worst_dimensions()],
            },
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        title = f"latentshape check{': ' + self.source if self.source else ''}  (N = {self.n}, d = {self.d})"
        header = f"{'test':<22} {'statistic':>11} {'null mean ± sd':>24} {'p':>8} {'p (Holm)':>9}  {'result':<6}  detail"
        lines = [title, f"verdict: {self.verdict}", "", header, "-" * len(header)]
        for test in self.tests:
            null = "" if math.isnan(test.null_mean) else f"{_number(test.null_mean, test.null_std)} ± {_number(test.null_std)}"
            result = "REJECT" if test.rejected else "ok"
            # Holm multiplies p by up to m; below the floor both are just "<1e-300".
            holm_text = format_p(test.p_holm) if test.p_value > 1e-300 else format_p(0.0)
            lines.append(
                f"{test.name:<22} {_number(test.statistic, test.null_std):>11} {null:>24} "
                f"{format_p(test.p_value):>8} {holm_text:>9}  {result:<6}  {test.detail}"
            )
        lines.append("")
        parts = "  ".join(f"{name} {_signed(value)}" for name, value in self.wristband.items() if name != "total")
        lines.append(f"wristband components (z-scores): {parts}")
        worst = "; ".join(
            f"dim {w['dim']} (mean {_signed(w['mean'], 3)}, std {_signed(w['std'], 3)[1:]}, p {format_p(w['p'])})"
            for w in self.worst_dimensions()
        )
        lines.append(f"worst dimensions by mean/std: {worst}")
        lines.append(
            f"p-values: 'MC' rows from {self.null_samples} null draws at ({self.pairwise_rows}, {self.d}), "
            f"empirical down to 1/{self.null_samples + 1}, a fitted Pearson III tail below; "
            "exact rows use all rows"
        )
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)

    def plot(self, path: str | Path, dpi: int = 110) -> Path:
        """Write the diagnostic figure as one PNG; returns the path. Needs matplotlib."""
        from .plots import plot_report

        return plot_report(self, path, dpi=dpi)


def _signed(value: float, decimals: int = 2) -> str:
    """``+1.23`` style, switching to ``+1.23e+22`` for magnitudes of 1e5 and more (and inf/nan as such).

    >>> _signed(85.0), _signed(-1.1157e22), _signed(float("inf"))
    ('+85.00', '-1.116e+22', '+inf')
    """
    if math.isfinite(value) and abs(value) >= 1e5:
        return f"{value:+.3e}"
    return f"{value:+.{decimals}f}"


def _number(value: float, resolution: float = math.nan) -> str:
    """``value`` to 4 significant digits, or to 2 digits of ``resolution`` (a null sd) if finer.

    >>> _number(1.68e60, 0.9), _number(float("inf"), 0.9), _number(float("nan"))
    ('1.680e+60', 'inf', 'nan')
    """
    if not math.isfinite(value):
        return str(value)
    if abs(value) < 1e-9 and not resolution < 1e-9:  # a null mean that is 0 up to rounding
        return "0"
    digits = 4
    if math.isfinite(resolution) and resolution > 0 and value != 0 and abs(value) < 1e12 * resolution:
        # more digits only while they resolve the null sd (a value 1e50 sds away needs none)
        digits = min(12, max(4, math.ceil(math.log10(abs(value) / resolution)) + 2))
    if 1e-3 <= abs(value) < 1e5 or digits > 4:
        return f"{value:.{digits}g}"
    return f"{value:.3e}"


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(float(value)) else None
