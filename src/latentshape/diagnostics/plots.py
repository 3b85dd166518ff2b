r"""The diagnostic figure of a :class:`~latentshape.diagnostics.Report` , one PNG.

Six panels, each with its exact N(0, I) reference and a pointwise 95% band where one exists:

1. radial QQ: sorted :math:`s = \|x\|^2` against :math:`\chi^2_d` quantiles;
2. histogram of the radial CDF :math:`t = P(d/2, s/2)` against U[0, 1];
3. cosines :math:`u_i \cdot u_j` of random pairs against their null density
   :math:`\propto (1 - c^2)^{(d-3)/2}` (u uniform on :math:`S^{d-1}`);
4. per-dimension QQ against N(0, 1), the three least normal coordinates highlighted;
5. the points on their first two principal axes against N(0, I_2) contours;
6. the evidence: :math:`-\log_{10}` of each Holm-adjusted p-value against the level.

matplotlib is imported here only (``pip install latentshape[plot]``), with the Agg backend.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.special
import scipy.stats

if TYPE_CHECKING:
    from .report import Report

__all__ = ["plot_report"]

_DATA = "#1f4e79"
_REFERENCE = "#c0392b"
_BAND = "#f2c4bd"
_FAINT = "#9aa5b1"
_HIGHLIGHT = ("#d35400", "#8e44ad", "#16a085")
_OK = "#2e7d32"
_MAX_QQ_POINTS = 2000
_MAX_SCATTER = 4000
_PAIRS = 20000
_EVIDENCE_CAP = 30.0


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "report.plot needs matplotlib: pip install 'latentshape[plot]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_report(report: "Report", path: str | Path, dpi: int = 110) -> Path:
    """Draw the six panels of ``report`` into one PNG at ``path`` and return the path."""
    plt = _pyplot()
    path = Path(path)
    rng = np.random.default_rng(report.seed)
    style = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
             "axes.spines.top": False, "axes.spines.right": False}
    with plt.rc_context(style):
        figure, axes = plt.subplots(2, 3, figsize=(13.5, 8.0), constrained_layout=True)
        _radial_qq(axes[0, 0], report)
        _radius_histogram(axes[0, 1], report)
        _pair_cosines(axes[0, 2], report, rng)
        _dimension_qq(axes[1, 0], report, rng)
        _projection(axes[1, 1], report, rng)
        _evidence(axes[1, 2], report)
        name = f"{report.source}:  " if report.source else ""
        count = len(report.tests)
        verdict = (f"consistent with N(0, I) (no test of {count} rejects" if report.is_gaussian
                   else f"not N(0, I) (rejected by {len(report.rejected_by)} of {count} tests")
        figure.suptitle(f"{name}N = {report.n}, d = {report.d}: {verdict}; Holm, alpha = {report.alpha:g})",
                        fontsize=12, fontweight="bold", color=_OK if report.is_gaussian else _REFERENCE)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=dpi, facecolor="white", format="png")  # exactly `path`: no suffix added
        plt.close(figure)
    return path


def _order_statistic_band(n: int, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise 95% band of uniform order statistics: U_(i) ~ Beta(i, n - i + 1)."""
    ranks = np.clip(np.rint(probabilities * n + 0.5), 1, n)
    return scipy.stats.beta.ppf(0.025, ranks, n - ranks + 1), scipy.stats.beta.ppf(0.975, ranks, n - ranks + 1)


def _qq_positions(n: int) -> np.ndarray:
    """Plotting positions (i + 1/2) / n, thinned to at most _MAX_QQ_POINTS (tails kept)."""
    probabilities = (np.arange(n) + 0.5) / n
    if n <= _MAX_QQ_POINTS:
        return probabilities
    keep = np.unique(np.concatenate([np.linspace(0, n - 1, _MAX_QQ_POINTS).astype(int), np.arange(20), n - 1 - np.arange(20)]))
    return probabilities[keep]


def _radial_qq(ax: Any, report: "Report") -> None:
    d, s = report.d, np.sort(report.squared_norms)
    n = s.size
    probabilities = _qq_positions(n)
    observed = np.quantile(s, probabilities, method="inverted_cdf") if n > _MAX_QQ_POINTS else s
    expected = scipy.stats.chi2.ppf(probabilities, d)
    low, high = _order_statistic_band(n, probabilities)
    ax.fill_between(expected, scipy.stats.chi2.ppf(low, d), scipy.stats.chi2.ppf(high, d), color=_BAND,
                    label="95% band under H0", linewidth=0)
    ax.plot(expected, expected, color=_REFERENCE, linewidth=1, label="y = x")
    ax.plot(expected, observed, ".", color=_DATA, markersize=2.5, label="data")
    ax.set_xlabel(rf"$\chi^2_{{{d}}}$ quantile")
    ax.set_ylabel(r"sorted $\|x\|^2$")
    ax.set_title("radial QQ: squared norms vs $\\chi^2_d$")
    ax.legend(loc="upper left", frameon=False)


def _radius_histogram(ax: Any, report: "Report") -> None:
    t = scipy.special.gammainc(0.5 * report.d, 0.5 * report.squared_norms)
    n = t.size
    bins = int(np.clip(round(2 * n ** (1 / 3)), 10, 40))
    low = scipy.stats.binom.ppf(0.025, n, 1 / bins) * bins / n
    high = scipy.stats.binom.ppf(0.975, n, 1 / bins) * bins / n
    heights, _, _ = ax.hist(t, bins=bins, range=(0, 1), density=True, color=_DATA, alpha=0.85, edgecolor="white",
                            linewidth=0.5, label="data")
    for level in (low, high):
        ax.axhline(level, color=_REFERENCE, linewidth=0.9, linestyle=":", zorder=3,
                   label="95% range per bin" if level == low else None)
    ax.axhline(1.0, color=_REFERENCE, linewidth=1.2, label="U[0, 1]", zorder=3)
    ks = report.test("KS of t vs U[0,1]")
    ax.set_title(f"radial CDF $t = P(d/2, \\|x\\|^2/2)$ (KS p = {_short_p(ks.p_value)})")
    ax.set_xlabel("t")
    ax.set_ylabel("density")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(float(np.max(heights)), high) * 1.3)  # headroom for the legend
    ax.legend(loc="upper center", frameon=False, ncol=3)


def _pair_cosines(ax: Any, report: "Report", rng: np.random.Generator) -> None:
    x, d = report.sample, report.d
    norms = np.linalg.norm(x, axis=1)
    x = x[norms > 0] / norms[norms > 0, None]
    m = x.shape[0]
    if m < 2:
        ax.set_axis_off()
        return
    count = min(_PAIRS, m * (m - 1) // 2)
    first = rng.integers(0, m, size=count)
    second = (first + rng.integers(1, m, size=count)) % m  # never the same point
    cosines = np.einsum("ij,ij->i", x[first], x[second])
    ax.set_title(f"cosines of {count} random pairs vs uniform directions")
    ax.set_xlabel(r"$u_i \cdot u_j$")
    ax.set_ylabel("density")
    if d == 1:
        positive = float(np.mean(cosines > 0))
        ax.bar([-1, 1], [1 - positive, positive], width=0.4, color=_DATA, label="data")
        ax.plot([-1, 1], [0.5, 0.5], "_", color=_REFERENCE, markersize=40, markeredgewidth=2, label="null: 1/2 each")
        ax.set_ylabel("fraction")
        ax.set_ylim(0, 0.75)
        ax.legend(loc="upper center", frameon=False, ncol=2)
        return
    spread = 1.0 / math.sqrt(d)  # null sd of a cosine
    limit = 1.0 if d <= 8 else min(1.0, max(6 * spread, np.abs(cosines).max() * 1.05))
    bins = np.linspace(-limit, limit, 61)
    ax.hist(cosines, bins=bins, density=True, color=_DATA, alpha=0.85, edgecolor="white", linewidth=0.4,
            label="data")
    grid = np.linspace(-limit, limit, 801)[1:-1]
    # u.u' for u, u' uniform on S^{d-1}: density (1 - c^2)^((d-3)/2) / B(1/2, (d-1)/2), in log space for large d.
    log_density = 0.5 * (d - 3) * np.log1p(-grid ** 2) - scipy.special.betaln(0.5, 0.5 * (d - 1))
    ax.plot(grid, np.exp(log_density), color=_REFERENCE, linewidth=1.4, label="null density")
    ax.set_xlim(-limit, limit)
    if d == 2:
        ax.set_ylim(0, 3.0)
    ax.legend(loc="upper right", frameon=False)


def _dimension_qq(ax: Any, report: "Report", rng: np.random.Generator) -> None:
    x = report.sample
    n, d = x.shape
    probabilities = _qq_positions(n)
    expected = scipy.stats.norm.ppf(probabilities)
    ordered = np.sort(x, axis=0)
    if n > _MAX_QQ_POINTS:
        ordered = ordered[np.rint(probabilities * n - 0.5).astype(int)]
    # Least normal coordinates by the Kolmogorov distance of their marginal to N(0, 1).
    cdf = scipy.stats.norm.cdf(ordered)
    distance = np.abs(cdf - probabilities[:, None]).max(axis=0) + 0.5 / n
    worst = np.argsort(-distance, kind="stable")[: min(3, d)]
    low, high = _order_statistic_band(n, probabilities)
    ax.fill_between(expected, scipy.stats.norm.ppf(low), scipy.stats.norm.ppf(high), color=_BAND, linewidth=0,
                    label="95% band under H0")
    others = [j for j in range(d) if j not in set(worst.tolist())]
    if len(others) > 200:
        others = rng.choice(others, size=200, replace=False).tolist()
    for index, j in enumerate(others):
        ax.plot(expected, ordered[:, j], color=_FAINT, linewidth=0.6, alpha=0.5,
                label="other dims" if index == 0 else None)
    for color, j in zip(_HIGHLIGHT, worst):
        ax.plot(expected, ordered[:, j], color=color, linewidth=1.4, label=f"dim {j}")
    ax.plot(expected, expected, color=_REFERENCE, linewidth=1, linestyle="--", label="y = x")
    ax.set_xlabel("N(0, 1) quantile")
    ax.set_ylabel("sorted coordinate")
    ax.set_title("per-dimension QQ (least normal marginals highlighted)")
    ax.legend(loc="upper left", frameon=False)


def _projection(ax: Any, report: "Report", rng: np.random.Generator) -> None:
    x = report.sample
    n, d = x.shape
    radius = np.sqrt(-2.0 * np.log1p(-np.array([0.5, 0.9, 0.99])))  # N(0, I_2) mass inside: 50/90/99%
    if d == 1:
        grid = np.linspace(-4.5, 4.5, 400)
        ax.hist(x[:, 0], bins=int(np.clip(round(2 * n ** (1 / 3)), 10, 60)), density=True, color=_DATA, alpha=0.85, edgecolor="white", linewidth=0.4, label="data")
        ax.plot(grid, scipy.stats.norm.pdf(grid), color=_REFERENCE, linewidth=1.4, label="N(0, 1)")
        ax.set_title("the data (d = 1) vs N(0, 1)")
        ax.set_xlabel("x")
        ax.legend(frameon=False)
        return
    if d == 2:
        projected, labels, title = x, ("dim 0", "dim 1"), "the data (d = 2) vs N(0, I) contours"
    else:
        centred = x - x.mean(axis=0)
        _, _, right = np.linalg.svd(centred[: min(n, 20000)], full_matrices=False)
        projected = x @ right[:2].T  # not centred: a shifted mean shows against the contours
        labels = ("principal axis 1", "principal axis 2")
        title = "first two principal axes vs N(0, I) contours"
    shown = projected if n <= _MAX_SCATTER else projected[rng.choice(n, _MAX_SCATTER, replace=False)]
    ax.scatter(shown[:, 0], shown[:, 1], s=3, color=_DATA, alpha=0.35, linewidths=0, label="data")
    angle = np.linspace(0, 2 * np.pi, 300)
    for r, mass in zip(radius, ("50%", "90%", "99%")):
        ax.plot(r * np.cos(angle), r * np.sin(angle), color=_REFERENCE, linewidth=1)
        ax.annotate(mass, (r * np.cos(0.8), r * np.sin(0.8)), color=_REFERENCE, fontsize=7,
                    xytext=(2, 2), textcoords="offset points")
    extent = max(3.5, float(np.quantile(np.abs(projected), 0.995)) * 1.1)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    if d > 2:
        # Top principal axes of a Gaussian sample are stretched (Marchenko-Pastur edge).
        title += f"\n(under H0 their sd is about 1 + sqrt(d/N) = {1 + math.sqrt(d / report.n):.2f})"
    ax.set_title(title)


def _evidence(ax: Any, report: "Report") -> None:
    names = [test.name for test in report.tests][::-1]
    p_values = np.array([test.p_value for test in report.tests][::-1])
    evidence = -np.log10(np.clip(p_values, 1e-300, 1.0))
    colors = [_REFERENCE if test.rejected else _FAINT for test in report.tests][::-1]
    bars = ax.barh(names, np.minimum(evidence, _EVIDENCE_CAP), color=colors, height=0.6)
    # Holm compares the smallest p with alpha / m, the largest with alpha: the two lines bracket its thresholds.
    strictest = -math.log10(report.alpha / len(report.tests))
    loosest = -math.log10(report.alpha)
    ax.axvline(strictest, color="black", linewidth=1, linestyle="--", label=f"alpha / {len(report.tests)}")
    ax.axvline(loosest, color="black", linewidth=0.8, linestyle=":", label=f"alpha = {report.alpha:g}")
    for bar, value, p in zip(bars, evidence, p_values):
        ax.annotate(f"p = {_short_p(p)}", (min(value, _EVIDENCE_CAP), bar.get_y() + bar.get_height() / 2),
                    xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xlim(0, max(strictest * 2.2, min(_EVIDENCE_CAP, float(evidence.max())) * 1.35))
    ax.set_xlabel(r"$-\log_{10}$ p  (bars capped at 30)" if evidence.max() > _EVIDENCE_CAP else r"$-\log_{10}$ p")
    ax.set_title("evidence against N(0, I) (red: rejected, Holm)")
    ax.legend(loc="lower right", frameon=False)


def _short_p(p: float) -> str:
    if p <= 1e-300:
        return "<1e-300"
    return f"{p:.2f}" if p >= 0.01 else f"{p:.0e}"
