r"""``check(x)``: how Gaussian is an embedding, really? A calibrated report (DESIGN 5).

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

import copy
import math
import threading
from typing import Hashable

import numpy as np
import scipy.stats
import torch
from torch import Tensor

from .._validation import as_embeddings
from ..calibration import NullStats
from ..wristband import WristbandLoss
from .exact_nulls import henze_zirkler_null_moments, mardia_kurtosis_null_moments
from .report import Report, TestResult, _signed
from .statistics import (
    DEFAULT_NEIGHBORS,
    chi2_cdf,
    dimension_moments_test,
    gaussian_fit_statistics,
    henze_zirkler_smoothing,
    holm,
    ks_uniform,
    marginal_ks_test,
    null_p_value,
    require_testable_scale,
)

__all__ = ["check", "MIN_POINTS", "clear_check_cache"]

MIN_POINTS = 8
_PLOT_ROWS = 20000
_MAX_DRAW_ELEMENTS = 1 << 22
_COMPONENTS = ("rep", "rad", "ang", "mom")

_NULL_CACHE: dict[Hashable, tuple[np.ndarray, np.ndarray]] = {}
_LOCK = threading.Lock()


def check(
    x: Tensor | np.ndarray,
    wristband: WristbandLoss | None = None,
    null_samples: int = 100,
    seed: int = 0,
    max_pairwise: int = 2000,
    alpha: float = 0.05,
    neighbors: int = DEFAULT_NEIGHBORS,
) -> Report:
    r"""Test whether the rows of ``x`` (shape ``(N, d)``) look like i.i.d. draws from N(0, I).

    Args:
        x: a tensor or array of shape (N, d), N >= 8, finite.
        wristband: the :class:`~latentshape.wristband.WristbandLoss` whose configuration
            defines the wristband statistics (default: ``WristbandLoss()``). Its z-scores in the
            report are calibrated on the same null draws as its p-value, so the two agree.
        null_samples: Monte-Carlo null batches at (N, d) (cached per shape and seed). Each
            Monte-Carlo p-value is empirical within their range, a fitted (Pearson III) tail beyond.
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
    if null_samples < 20:
        raise ValueError(f"null_samples must be >= 20 for a three-moment fit, got {null_samples}")
    if max_pairwise < MIN_POINTS:
        raise ValueError(f"max_pairwise must be >= {MIN_POINTS}, got {max_pairwise}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    wristband = WristbandLoss() if wristband is None else wristband
    notes: list[str] = []

    subsample = batch
    if n > max_pairwise:
        generator = torch.Generator().manual_seed(seed)
        rows = torch.randperm(n, generator=generator)[:max_pairwise].sort().values
        subsample = batch[rows]
        notes.append(
            f"wristband, Mardia, Henze-Zirkler and kNN KL use a random subsample of {max_pairwise} of "
            f"{n} rows (their cost is O(N^2 d)); raise max_pairwise to use more"
        )
    m = subsample.shape[0]
    if not 1 <= neighbors < m:
        raise ValueError(f"neighbors must be in [1, {m - 1}], got {neighbors}")
    null_wristband, null_fit = _null_draws(wristband, m, d, null_samples, seed, neighbors)
    null_label = f"MC {null_samples} @ ({m}, {d})"

    # Wristband: z-scores and null totals from the same draws, combined as in WristbandLoss.
    raw_loss = copy.copy(wristband)
    raw_loss.calibrate = False
    observed_raw = torch.stack(list(raw_loss.components(subsample))[1:]).reshape(1, -1)
    null_stats = NullStats.from_samples(torch.from_numpy(null_wristband))
    weights = torch.tensor(wristband.weights, dtype=torch.float64)
    scale = null_stats.combined_std(weights)
    observed_z = null_stats.standardize(observed_raw)[0]
    observed_total = float((observed_z * weights).sum()) / scale
    null_total = ((null_stats.standardize(torch.from_numpy(null_wristband)) * weights).sum(dim=-1) / scale).numpy()
    wristband_parts = {"total": observed_total} | {name: float(v) for name, v in zip(_COMPONENTS, observed_z)}
    largest = max((name for name, w in zip(_COMPONENTS, wristband.weights) if w > 0),
                  key=lambda name: wristband_parts[name])
    wristband_detail = "z-score, ~N(0, 1)-scaled under H0"
    if observed_total > 3:
        wristband_detail = (f"{_signed(observed_total, 1)[1:]} null sd from N(0, I); largest part {largest} "
                            f"(z = {_signed(wristband_parts[largest], 1)[1:]})")
    tests = [_mc_test("wristband total", observed_total, null_total, "greater", null_label, wristband_detail)]

    moments = dimension_moments_test(batch.numpy())
    per_dimension_p = np.minimum(moments.p_mean, moments.p_variance)
    worst = int(np.argmin(per_dimension_p))
    largest_z = float(scipy.stats.norm.isf(0.5 * max(per_dimension_p[worst], 1e-300)))
    tests.append(TestResult(
        name="per-dim mean/std", statistic=largest_z, null_mean=math.nan, null_std=math.nan,
        p_value=float(moments.p_value), null="exact, Šidák over 2d",
        detail=f"largest |z| of {2 * d} tests: dim {worst}, mean {_signed(moments.mean[worst], 3)}, "
               f"std {_signed(moments.std[worst], 3)[1:]}",
    ))

    marginal_distance, marginal_p, marginal_combined = marginal_ks_test(batch.numpy())
    shape_worst = int(np.argmin(marginal_p))
    tests.append(TestResult(
        name="per-dim KS vs N(0,1)", statistic=float(marginal_distance[shape_worst]), null_mean=math.nan,
        null_std=math.nan, p_value=float(marginal_combined), null="exact, Šidák over d",
        detail=f"largest D of {d} marginals: dim {shape_worst}",
    ))

    squared_norms = (batch * batch).sum(dim=-1).numpy()
    t = chi2_cdf(squared_norms, d)
    ks_statistic, ks_p = ks_uniform(t)
    tests.append(TestResult(
        name="KS of t vs U[0,1]", statistic=float(ks_statistic), null_mean=math.nan, null_std=math.nan,
        p_value=float(ks_p), null="exact (Kolmogorov)",
        detail=f"t mean {t.mean():.3f}, sd {t.std():.3f} (H0: 0.500, 0.289)",
    ))

    observed_fit = gaussian_fit_statistics(subsample, k=neighbors)
    skewness, kurtosis, hz, kl = (float(v) for v in observed_fit)
    side = "above" if skewness > null_fit[:, 0].mean() else "below"
    tests.append(_mc_test("Mardia skewness", skewness, null_fit[:, 0], "two-sided", null_label,
                          f"b1 = mean (x_i.x_j)^3, {side} its null mean"))
    tail = "heavier" if kurtosis > null_fit[:, 1].mean() else "lighter"
    tests.append(_mc_test("Mardia kurtosis", kurtosis, null_fit[:, 1], "two-sided", null_label,
                          f"{tail} tails than N(0, I) (d(d+2) = {d * (d + 2)})", mardia_kurtosis_null_moments(m, d)))
    smoothing = henze_zirkler_smoothing(m, d)
    hz_detail = f"char. function distance, beta = {smoothing:.2f}"
    if smoothing * smoothing * d > 30:  # a typical pair has weight exp(-beta^2 d) < 1e-13: little power
        hz_detail += f"; near-degenerate at d = {d} (low power)"
    tests.append(_mc_test("Henze-Zirkler", hz, null_fit[:, 2], "greater", null_label, hz_detail,
                          henze_zirkler_null_moments(m, d, smoothing)))
    excess = kl - float(null_fit[:, 3].mean())
    tests.append(_mc_test("kNN KL(P || N(0,I))", kl, null_fit[:, 3], "two-sided", null_label,
                          f"{_signed(excess, 3)} nats vs its null mean (k = {neighbors})"))

    adjusted = holm(np.array([test.p_value for test in tests]))
    for test, p in zip(tests, adjusted):
        test.p_holm = float(p)
        test.rejected = bool(p <= alpha)

    sample = batch
    if n > _PLOT_ROWS:
        sample = batch[torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))[:_PLOT_ROWS]]
        notes.append(f"plots of coordinates use a random subsample of {_PLOT_ROWS} rows")
    return Report(
        n=n, d=d, pairwise_rows=m, alpha=alpha, null_samples=null_samples, seed=seed, tests=tests,
        wristband=wristband_parts, dimension_mean=moments.mean, dimension_std=moments.std,
        dimension_p=per_dimension_p, notes=notes, squared_norms=squared_norms, sample=sample.numpy(),
    )


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


def _null_draws(wristband: WristbandLoss, n: int, d: int, samples: int, seed: int,
                neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw wristband components ``(R, 4)`` and Gaussian-fit statistics ``(R, 4)`` of R batches from N(0, I)."""
    raw_loss = copy.copy(wristband)
    raw_loss.calibrate = False
    key = ("check", wristband.config, n, d, samples, seed, neighbors)
    with _LOCK:
        hit = _NULL_CACHE.get(key)
    if hit is not None:
        return hit
    generator = torch.Generator().manual_seed(seed)
    per_chunk = max(1, min(samples, _MAX_DRAW_ELEMENTS // (n * max(n, d))))
    wristband_parts, fit_parts = [], []
    done = 0
    with torch.no_grad():
        while done < samples:
            r = min(per_chunk, samples - done)
            draws = torch.randn(r, n, d, generator=generator, dtype=torch.float64)
            wristband_parts.append(torch.stack(list(raw_loss.components(draws))[1:], dim=-1).numpy())
            fit_parts.append(torch.stack(list(gaussian_fit_statistics(draws, k=neighbors)), dim=-1).numpy())
            done += r
    result = (np.concatenate(wristband_parts), np.concatenate(fit_parts))
    with _LOCK:
        return _NULL_CACHE.setdefault(key, result)


def clear_check_cache() -> None:
    """Forget the cached null draws of :func:`check`."""
    with _LOCK:
        _NULL_CACHE.clear()
