r"""``check(x)``: how Gaussian is an embedding, really? A calibrated report.

Eight tests of H0: "the rows of x are i.i.d. N(0, I)", each with a p-value from its law under H0
at the same (N, d):

========================  ==========================================  ==========================
test                      what it sees                                null
========================  ==========================================  ==========================
wristband total           the whole law, via (direction, radius)      Monte-Carlo
per-dimension mean/std    location and scale of every coordinate      exact (normal, chi^2), Šidák
per-dimension KS          the shape of every marginal                 exact (Kolmogorov), Šidák
KS of t                   the radius law, t = P(d/2, ||x||^2/2)       exact (Kolmogorov)
Mardia skewness           third moments                               Monte-Carlo
Mardia kurtosis           fourth moments (tails)                      Monte-Carlo
Henze-Zirkler             characteristic function (consistent test)   Monte-Carlo
kNN KL(P || N(0, I))      a divergence, in nats                       Monte-Carlo
========================  ==========================================  ==========================

The Monte-Carlo statistics share one set of ``null_samples`` batches drawn from N(0, I) at
(N, d) with a fixed seed and cached per shape. They are O(N^2 d) and are computed on a random
subsample of ``max_pairwise`` rows when N is larger (the report says so); the exact tests always
use all rows. The verdict controls the family-wise error rate with Holm's step-down procedure.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.stats
import torch
from torch import Tensor

from ..validation import as_embeddings, is_real_number
from ..calibration import cached_null_stats, monte_carlo_null
from ..wristband import WristbandLoss
from .exact_nulls import henze_zirkler_null_moments, mardia_kurtosis_null_moments
from .report import Report, TestResult, _signed
from .p_values import (
    chi2_cdf,
    dimension_moments_test,
    holm,
    ks_uniform,
    marginal_ks_test,
    null_p_value,
    require_testable_scale,
)
from .statistics import DEFAULT_NEIGHBORS, gaussian_fit_statistics, henze_zirkler_smoothing

__all__ = ["check", "MIN_POINTS"]

MIN_POINTS = 8
_PLOT_ROWS = 20000
_MAX_DRAW_ELEMENTS = 1 << 22


def check(
    x: Tensor | np.ndarray,
    *,
    wristband: WristbandLoss | None = None,
    null_samples: int = 400,
    seed: int = 0,
    max_pairwise: int = 2000,
    alpha: float = 0.05,
    neighbors: int = DEFAULT_NEIGHBORS,
) -> Report:
    r"""Test whether the rows of ``x`` (shape ``(N, d)``) look like i.i.d. draws from N(0, I).

    Args:
        x: a tensor or array of shape (N, d), N >= 8, finite.
        wristband: the :class:`~latentshape.WristbandLoss` whose configuration
            defines the wristband statistics (default: ``WristbandLoss()``). Its z-scores in the
            report are the loss's own (``wristband.components(x)`` on the same rows), and its
            p-value comes from null batches standardized the same way, so the two agree.
        null_samples: Monte-Carlo null batches R at (N, d), cached per shape and seed. Their p-values
            are empirical down to 1/(R+1) (below Holm's two-sided 0.05/16), a fitted Pearson III tail beyond.
        seed: seed of the null draws and of the subsample.
        max_pairwise: the Monte-Carlo statistics (O(N^2 d)) use a random subsample of this many
            rows when N is larger.
        alpha: family-wise level of the verdict (Holm over the eight tests).
        neighbors: k of the k-NN KL estimate.

    >>> generator = torch.Generator().manual_seed(0)
    >>> report = check(torch.randn(500, 4, generator=generator), null_samples=100)
    >>> report.is_gaussian
    True
    >>> check(torch.rand(500, 4, generator=generator), null_samples=100).is_gaussian
    False
    """
    batch = _validated(x)
    n, d = batch.shape
    _check_options(null_samples, max_pairwise, alpha, seed, neighbors, wristband)
    wristband = WristbandLoss() if wristband is None else wristband
    subsample, notes = _random_rows(batch, max_pairwise, seed)
    if subsample.shape[0] < n:
        notes[-1] = f"wristband, Mardia, Henze-Zirkler and kNN KL use {notes[-1]} (their cost is O(N^2 d)); raise max_pairwise to use more"
    m = subsample.shape[0]
    if not 1 <= neighbors < m:
        raise ValueError(f"neighbors must be in [1, {m - 1}], got {neighbors}")
    wristband_parts, null_total, null_fit = _wristband_and_null(wristband, subsample, null_samples, seed, neighbors)
    null_label = f"MC {null_samples} @ ({m}, {d})"
    tests = [_wristband_test(wristband, wristband_parts, null_total, null_label)]
    tests += _exact_tests(batch)
    tests += _gaussian_fit_tests(subsample, null_fit, neighbors, null_label)
    adjusted = holm(np.array([test.p_value for test in tests]))
    for test, p in zip(tests, adjusted):
        test.p_holm = float(p)
        test.rejected = bool(p <= alpha)
    moments, squared_norms = dimension_moments_test(batch.numpy()), (batch * batch).sum(dim=-1).numpy()
    sample, plot_notes = _random_rows(batch, _PLOT_ROWS, seed + 1)
    notes += [f"plots of coordinates use {note}" for note in plot_notes]
    return Report(
        n=n, d=d, pairwise_rows=m, alpha=alpha, null_samples=null_samples, seed=seed, tests=tests,
        wristband=wristband_parts, dimension_mean=moments.mean, dimension_std=moments.std,
        dimension_p=np.minimum(moments.p_mean, moments.p_variance), notes=notes, squared_norms=squared_norms, sample=sample.numpy(),
    )


def _random_rows(batch: Tensor, limit: int, seed: int) -> tuple[Tensor, list[str]]:
    """At most ``limit`` rows of ``batch``, drawn with ``seed`` (in their order), and a note if subsampled."""
    n = batch.shape[0]
    if n <= limit:
        return batch, []
    rows = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit].sort().values
    return batch[rows], [f"a random subsample of {limit} of {n} rows"]


def _check_options(null_samples: int, max_pairwise: int, alpha: float, seed: int, neighbors: int,
                   wristband: WristbandLoss | None) -> None:
    if wristband is not None and not isinstance(wristband, WristbandLoss):
        raise TypeError(f"wristband must be a WristbandLoss (or None for the default), got {type(wristband).__name__}")
    for name, value in (("null_samples", null_samples), ("max_pairwise", max_pairwise), ("seed", seed),
                        ("neighbors", neighbors)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {value!r}")
    if not is_real_number(alpha):
        raise TypeError(f"alpha must be a number in (0, 1), got {alpha!r}")
    if not -(2**63) <= seed < 2**63 - 1:  # seed and seed + 1 seed torch generators (64-bit)
        raise ValueError(f"seed must be in [-2**63, 2**63 - 1), got {seed}")
    if null_samples < 20:
        raise ValueError(f"null_samples must be >= 20 for a three-moment fit, got {null_samples}")
    if max_pairwise < MIN_POINTS:
        raise ValueError(f"max_pairwise must be >= {MIN_POINTS}, got {max_pairwise}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _wristband_test(wristband: WristbandLoss, parts: dict[str, float], null_total: np.ndarray, label: str) -> TestResult:
    observed_total = parts["total"]
    largest = max((name for name, w in zip(wristband.component_names, wristband.weights) if w > 0),
                  key=lambda name: parts[name])
    detail = "z-score, ~N(0, 1)-scaled under H0"
    if observed_total > 3:
        detail = (f"{_signed(observed_total, 1)[1:]} null sd from N(0, I); largest part {largest} "
                  f"(z = {_signed(parts[largest], 1)[1:]})")
    return _mc_test("wristband total", observed_total, null_total, "greater", label, detail)


def _exact_tests(batch: Tensor) -> list[TestResult]:
    """Per-dimension mean/std, per-dimension KS and KS of t: exact nulls, all rows."""
    d = batch.shape[1]
    moments = dimension_moments_test(batch.numpy())
    per_dimension_p = np.minimum(moments.p_mean, moments.p_variance)
    worst = int(np.argmin(per_dimension_p))
    largest_z = float(scipy.stats.norm.isf(0.5 * max(per_dimension_p[worst], 1e-300)))
    marginal_distance, marginal_p, marginal_combined = marginal_ks_test(batch.numpy())
    shape_worst = int(np.argmin(marginal_p))
    t = chi2_cdf((batch * batch).sum(dim=-1).numpy(), d)
    ks_statistic, ks_p = ks_uniform(t)
    return [
        TestResult(name="per-dim mean/std", statistic=largest_z, null_mean=math.nan, null_std=math.nan,
                   p_value=float(moments.p_value), null="exact, Šidák over 2d",
                   detail=f"largest |z| of {2 * d} tests: dim {worst}, mean {_signed(moments.mean[worst], 3)}, "
                          f"std {_signed(moments.std[worst], 3)[1:]}"),
        TestResult(name="per-dim KS vs N(0,1)", statistic=float(marginal_distance[shape_worst]), null_mean=math.nan,
                   null_std=math.nan, p_value=float(marginal_combined), null="exact, Šidák over d",
                   detail=f"largest D of {d} marginals: dim {shape_worst}"),
        TestResult(name="KS of t vs U[0,1]", statistic=float(ks_statistic), null_mean=math.nan, null_std=math.nan,
                   p_value=float(ks_p), null="exact (Kolmogorov)",
                   detail=f"t mean {t.mean():.3f}, sd {t.std():.3f} (H0: 0.500, 0.289)"),
    ]


def _gaussian_fit_tests(subsample: Tensor, null_fit: np.ndarray, neighbors: int, label: str) -> list[TestResult]:
    """Mardia skewness and kurtosis, Henze-Zirkler and kNN KL against their Monte-Carlo nulls."""
    m, d = subsample.shape
    skewness, kurtosis, hz, kl = (float(v) for v in gaussian_fit_statistics(subsample, k=neighbors))
    side = "above" if skewness > null_fit[:, 0].mean() else "below"
    tail = "heavier" if kurtosis > null_fit[:, 1].mean() else "lighter"
    smoothing = henze_zirkler_smoothing(m, d)
    hz_detail = f"char. function distance, beta = {smoothing:.2f}"
    if smoothing * smoothing * d > 30:  # a typical pair has weight exp(-beta^2 d) < 1e-13: little power
        hz_detail += f"; near-degenerate at d = {d} (low power)"
    excess = kl - float(null_fit[:, 3].mean())
    return [
        _mc_test("Mardia skewness", skewness, null_fit[:, 0], "two-sided", label,
                 f"b1 = mean (x_i.x_j)^3, {side} its null mean"),
        _mc_test("Mardia kurtosis", kurtosis, null_fit[:, 1], "two-sided", label,
                 f"{tail} tails than N(0, I) (d(d+2) = {d * (d + 2)})", mardia_kurtosis_null_moments(m, d)),
        _mc_test("Henze-Zirkler", hz, null_fit[:, 2], "greater", label, hz_detail,
                 henze_zirkler_null_moments(m, d, smoothing)),
        _mc_test("kNN KL(P || N(0,I))", kl, null_fit[:, 3], "two-sided", label,
                 f"{_signed(excess, 3)} nats vs its null mean (k = {neighbors})"),
    ]


def _mc_test(name: str, observed: float, null: np.ndarray, alternative: str, label: str, detail: str,
             exact=None) -> TestResult:
    """A Monte-Carlo p-value; ``exact``: the null's exact (mean, sd, skewness), for its fitted tail."""
    mean, std = (float(null.mean()), float(null.std(ddof=1))) if exact is None else exact[:2]
    return TestResult(
        name=name, statistic=observed, null_mean=mean, null_std=std,
        p_value=float(null_p_value(observed, null, alternative, exact)),  # type: ignore[arg-type]
        null=label + (", two-sided" if alternative == "two-sided" else ""), detail=detail,
    )


def _validated(x: Tensor | np.ndarray) -> Tensor:
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):  # integers too, as for tensors: one convention
            raise TypeError(f"x must hold floating-point numbers, got dtype {x.dtype}; convert with x.astype(float)")
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    elif not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor or numpy.ndarray of shape (N, d), got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"x must have shape (N, d), got {tuple(x.shape)}; reshape to (-1, d) first")
    batch = as_embeddings(x.detach(), min_points=MIN_POINTS).cpu().to(torch.float64)
    require_testable_scale(batch)
    return batch


def _wristband_and_null(wristband: WristbandLoss, batch: Tensor, samples: int, seed: int,
                        neighbors: int) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """The wristband's calibrated parts of ``batch`` (from the loss's own null, so they equal
    ``wristband.components(batch)``), its null totals, and the Gaussian-fit statistics of R null batches.

    The null batches come from the one Monte-Carlo routine and cache of :mod:`latentshape.calibration`;
    their wristband components are standardized with the same null as the observed batch, so the
    empirical p-value and the z-score agree.
    """
    n, d = batch.shape
    weights = torch.tensor(wristband.weights, dtype=torch.float64)
    stats = wristband.null_stats(n, d)
    observed_total, observed_z = stats.total(wristband.raw(batch).to(torch.float64), weights)
    parts = {"total": float(observed_total)} | dict(zip(wristband.component_names, observed_z.tolist()))
    size = len(wristband.component_names)
    wristband_raw = wristband.null_draw_function()

    def draw_statistics(draws: Tensor) -> Tensor:
        fit = torch.stack(list(gaussian_fit_statistics(draws, k=neighbors)), dim=-1)
        return torch.cat([wristband_raw(draws).to(torch.float64), fit.to(torch.float64)], dim=-1)

    key = ("check", wristband._config(d), n, d, samples, seed, neighbors)
    null = cached_null_stats(key, lambda: monte_carlo_null(
        draw_statistics, n, d, samples=samples, seed=seed, max_elements=_MAX_DRAW_ELEMENTS * d // max(n, d),
        description="check null", keep_draws=True))
    null_total = stats.total(null.draws[:, :size], weights)[0].numpy()
    return parts, null_total, null.draws[:, size:].numpy()
