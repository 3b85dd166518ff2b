r"""The benchmark protocols: detection, Gaussianization, speed and memory.

Each returns a :class:`ResultTable` (one record per cell) that :mod:`latentshape.bench.report`
turns into markdown and plots. All randomness comes from explicit seeds, so a run is repeatable
up to floating-point and thread-count effects.

1. :func:`detection`: each regularizer's calibrated z-score (its own null at the same (N, d)) on
   a batch from each registered source; the mean over ``repeats`` independent batches.
2. :func:`gaussianize`: the N points are the parameters, initialized from the source; each
   regularizer alone drives them with Adam for a fixed number of steps, for each learning rate
   of a small grid. Score of the final cloud X (best over the grid):

   .. math::
       z = \frac{W_2(X, R) - \operatorname{mean}_k W_2(G_k, R)}{\operatorname{sd}_k W_2(G_k, R)},

   with R one reference N(0, I) batch of N points, :math:`G_k` fresh N(0, I) batches of the same
   size and :math:`W_2(A, B)^2 = \min_\sigma \frac{1}{N}\sum_i \|a_i - b_{\sigma(i)}\|^2` by exact
   assignment (:func:`scipy.optimize.linear_sum_assignment`). z ~ N(0, 1) for a Gaussian cloud.
3. :func:`speed`: median forward+backward seconds and peak extra memory of one loss evaluation,
   in a fresh process per (regularizer, N, d) (:func:`~latentshape.bench.measure.measure`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn
from tqdm.auto import tqdm

from .distributions import DISTRIBUTIONS, sample
from .measure import measure, median_seconds
from .regularizers import REGULARIZERS, Regularizer, zscore

__all__ = ["ResultTable", "detection", "gaussianize", "speed", "w2_exact", "W2Reference", "w2_reference"]


@dataclass
class ResultTable:
    """Records of one protocol run: ``records`` is a list of dicts with the same keys.

    ``settings`` holds the run's parameters (for the report); ``seconds`` its wall time.
    """

    protocol: str
    records: list[dict[str, Any]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def values(self, column: str, **where: Any) -> list[Any]:
        """The ``column`` of the records matching every ``key=value`` in ``where``.

        >>> table = ResultTable("demo", [{"d": 2, "z": 1.0}, {"d": 10, "z": 3.0}])
        >>> table.values("z", d=10)
        [3.0]
        """
        return [r[column] for r in self.records if all(r.get(k) == v for k, v in where.items())]

    def value(self, column: str, **where: Any) -> Any:
        """The single ``column`` value of the one record matching ``where`` (ValueError otherwise)."""
        found = self.values(column, **where)
        if len(found) != 1:
            raise ValueError(f"{len(found)} records match {where}, expected 1")
        return found[0]

    def unique(self, column: str) -> list[Any]:
        """Distinct values of ``column`` in first-seen order."""
        seen: list[Any] = []
        for record in self.records:
            if record[column] not in seen:
                seen.append(record[column])
        return seen


def _select(names: Iterable[str] | None, registry: dict, kind: str) -> list[str]:
    if names is None:
        return list(registry)
    names = list(names)
    unknown = [name for name in names if name not in registry]
    if unknown:
        raise ValueError(f"unknown {kind} {', '.join(map(repr, unknown))}; registered: {', '.join(registry)}")
    return names


def _supports(source: str, d: int) -> bool:
    # The copula impostor needs a direction coordinate to depend on (d >= 2).
    return not (source == "copula" and d < 2)


# -- 1. detection -----------------------------------------------------------------------------
def detection(
    distributions: Iterable[str] | None = None,
    regularizers: Iterable[str] | None = None,
    n: int = 512,
    dims: Sequence[int] = (2, 10, 128),
    repeats: int = 3,
    seed: int = 0,
    progress: bool = True,
) -> ResultTable:
    """Calibrated z-score of every detecting regularizer on every source, at (``n``, d) for d in ``dims``.

    Record keys: ``distribution``, ``d``, ``regularizer``, ``z`` (mean over ``repeats`` batches),
    ``z_sd`` (their sd; 0 for one repeat). Batch r of a source uses seed ``seed + r``, the same
    batches for every regularizer. Calibration (each statistic's null at (n, d)) is cached per
    process and counted in the wall time.

    >>> table = detection(["gaussian", "x"], ["moment_matching"], n=64, dims=(2,), repeats=1, progress=False)
    >>> [round(z) > 5 for z in table.values("z")]      # X has the right covariance: invisible here
    [False, False]
    """
    sources = _select(distributions, DISTRIBUTIONS, "distribution")
    names = [name for name in _select(regularizers, REGULARIZERS, "regularizer") if REGULARIZERS[name].detects]
    start = time.perf_counter()
    table = ResultTable("detection", settings={"n": n, "dims": list(dims), "repeats": repeats, "seed": seed})
    cells = [(d, name) for d in dims for name in names]
    with tqdm(total=len(cells) * len(sources), desc="detection", disable=not progress) as bar:
        for d, name in cells:
            module = REGULARIZERS[name].build(d, True)
            for source in sources:
                bar.set_postfix_str(f"d={d} {name} {source}")
                if not _supports(source, d):
                    bar.update()
                    continue
                scores = [zscore(module, sample(source, n, d, seed=seed + r)) for r in range(repeats)]
                spread = float(np.std(scores, ddof=1)) if repeats > 1 else 0.0
                table.records.append({"distribution": source, "d": d, "regularizer": name,
                                      "z": float(np.mean(scores)), "z_sd": spread})
                bar.update()
    table.seconds = time.perf_counter() - start
    return table


# -- 2. Gaussianization -----------------------------------------------------------------------
def w2_exact(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    r"""Exact :math:`W_2` between two clouds of N points each (optimal assignment on squared distances).

    >>> a = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    >>> w2_exact(a, a.flip(0) + torch.tensor([0.0, 2.0]))   # every point moves by 2
    2.0
    """
    a = np.asarray(a.detach().cpu() if isinstance(a, Tensor) else a, dtype=np.float64)
    b = np.asarray(b.detach().cpu() if isinstance(b, Tensor) else b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"need two (N, d) clouds of the same shape, got {a.shape} and {b.shape}")
    cost = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    rows, cols = linear_sum_assignment(cost)
    return math.sqrt(max(float(cost[rows, cols].mean()), 0.0))


@dataclass(frozen=True)
class W2Reference:
    """A reference N(0, I) batch and the law of W2 from fresh same-size N(0, I) batches to it."""

    reference: np.ndarray
    fresh_mean: float
    fresh_sd: float

    def score(self, x: Tensor | np.ndarray) -> float:
        """z-score of W2(x, reference) among the fresh batches' distances; ~N(0, 1) for Gaussian x."""
        return (w2_exact(x, self.reference) - self.fresh_mean) / self.fresh_sd


_REFERENCES: dict[tuple[int, int, int, int], W2Reference] = {}

REFERENCE_SEED = 10_000
FRESH_SEED = 20_000


def w2_reference(n: int, d: int, fresh: int = 32, seed: int = 0) -> W2Reference:
    """The W2 reference for (n, d), cached per process: ``fresh`` independent batches against one reference.

    >>> ref = w2_reference(64, 2, fresh=8)
    >>> ref.fresh_sd > 0
    True
    """
    key = (int(n), int(d), int(fresh), int(seed))
    if key not in _REFERENCES:
        reference = sample("gaussian", n, d, seed=REFERENCE_SEED + seed).double().numpy()
        distances = [w2_exact(sample("gaussian", n, d, seed=FRESH_SEED + seed * 1000 + k), reference) for k in range(fresh)]
        _REFERENCES[key] = W2Reference(reference, float(np.mean(distances)), float(np.std(distances, ddof=1)))
    return _REFERENCES[key]


def _descend(spec: Regularizer, start: Tensor, steps: int, lr: float) -> Tensor | None:
    """Adam on the points for ``steps`` steps of ``spec`` alone; None if the loss or points go non-finite."""
    torch.manual_seed(0)  # critics' initial weights
    module = spec.build(start.shape[1], None)
    points = nn.Parameter(start.clone())
    optimizer = torch.optim.Adam([points], lr=lr)
    critic_step = getattr(module, "critic_step", None)
    for _ in range(steps):
        if critic_step is not None:
            critic_step(points.detach())
        loss = module(points)
        if not torch.isfinite(loss):
            return None
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    final = points.detach()
    return final if bool(torch.isfinite(final).all()) else None


def gaussianize(
    distributions: Iterable[str] | None = None,
    regularizers: Iterable[str] | None = None,
    n: int = 256,
    dims: Sequence[int] = (2, 10, 128),
    steps: int = 300,
    learning_rates: Sequence[float] = (0.01, 0.03, 0.1),
    fresh: int = 32,
    seed: int = 0,
    progress: bool = True,
) -> ResultTable:
    """Move ``n`` points from each source toward N(0, I) with each regularizer alone; score by W2 z.

    Records: ``distribution``, ``d``, ``regularizer`` (``"start"`` for the untouched cloud),
    ``z`` (the best final W2 z over ``learning_rates``; NaN if every rate diverged), ``lr`` (the
    best rate), ``seconds`` (wall time of all rates for that cell). The start cloud of a
    source uses seed ``seed``.

    >>> table = gaussianize(["gaussian"], ["moment_matching"], n=32, dims=(2,), steps=5,
    ...                     learning_rates=(0.01,), fresh=8, progress=False)
    >>> abs(table.value("z", regularizer="start")) < 4
    True
    """
    sources = _select(distributions, DISTRIBUTIONS, "distribution")
    names = [name for name in _select(regularizers, REGULARIZERS, "regularizer") if REGULARIZERS[name].gaussianizes]
    if steps < 0 or not learning_rates:
        raise ValueError("need steps >= 0 and at least one learning rate")
    start_time = time.perf_counter()
    table = ResultTable("gaussianize", settings={"n": n, "dims": list(dims), "steps": steps,
                                                 "learning_rates": list(learning_rates), "fresh": fresh, "seed": seed})
    cells = [(d, source) for d in dims for source in sources if _supports(source, d)]
    with tqdm(total=len(cells) * len(names) * len(learning_rates), desc="gaussianize", disable=not progress) as bar:
        for d, source in cells:
            reference = w2_reference(n, d, fresh, seed)
            start = sample(source, n, d, seed=seed)
            table.records.append({"distribution": source, "d": d, "regularizer": "start",
                                  "z": reference.score(start), "lr": float("nan"), "seconds": 0.0})
            for name in names:
                began = time.perf_counter()
                best_z, best_lr = float("nan"), float("nan")
                for lr in learning_rates:
                    bar.set_postfix_str(f"d={d} {source} {name} lr={lr:g}")
                    final = _descend(REGULARIZERS[name], start, steps, lr)
                    if final is not None:
                        z = reference.score(final)
                        if not best_z <= z:  # also replaces the NaN placeholder
                            best_z, best_lr = z, lr
                    bar.update()
                table.records.append({"distribution": source, "d": d, "regularizer": name, "z": best_z,
                                      "lr": best_lr, "seconds": time.perf_counter() - began})
    table.seconds = time.perf_counter() - start_time
    return table


# -- 3. speed and memory ----------------------------------------------------------------------
def _speed_step(spec: Regularizer, n: int, d: int, device: str):
    """``(step, device)`` for :func:`~latentshape.bench.measure.measure`: one forward+backward of the raw loss."""
    torch.manual_seed(0)
    module = spec.build(d, False).to(device)
    points = torch.randn(n, d, device=device, requires_grad=True)
    critic_step = getattr(module, "critic_step", None)

    def step() -> None:
        if critic_step is not None:
            critic_step(points.detach())
        points.grad = None
        module(points).backward()

    return step, device


def speed(
    regularizers: Iterable[str] | None = None,
    sizes: Sequence[tuple[int, int]] = ((256, 64), (1024, 64), (4096, 64), (16384, 64),
                                        (2048, 8), (2048, 32), (2048, 128), (2048, 512)),
    repeats: int = 5,
    device: str = "cpu",
    timeout: float = 120.0,
    threads: int | None = 1,
    progress: bool = True,
) -> ResultTable:
    """Median forward+backward seconds and peak extra memory of each regularizer at each (N, d) in ``sizes``.

    Each cell runs in a fresh spawned process (``threads`` torch threads) so its peak memory is
    its own; the raw (uncalibrated) loss is timed, as calibration is a one-off cost per shape.
    For the adversarial prior a step includes its critic's step. Records: ``regularizer``, ``n``,
    ``d``, ``seconds`` (NaN on failure), ``peak_bytes`` (int, or a short error string).
    A regularizer whose ``build`` cannot be pickled is timed in this process, memory ``"n/a"``.
    """
    names = _select(regularizers, REGULARIZERS, "regularizer")
    start = time.perf_counter()
    table = ResultTable("speed", settings={"sizes": [list(s) for s in sizes], "repeats": repeats,
                                           "device": device, "threads": threads})
    with tqdm(total=len(names) * len(sizes), desc="speed", disable=not progress) as bar:
        for name in names:
            spec = REGULARIZERS[name]
            for n, d in sizes:
                bar.set_postfix_str(f"{name} N={n} d={d}")
                try:
                    seconds, peak = measure(_speed_step, (spec, n, d, device), repeats=repeats,
                                            timeout=timeout, threads=threads)
                except (AttributeError, TypeError, RuntimeError) as error:
                    if "pickle" not in str(error).lower():
                        raise
                    seconds, peak = _time_here(spec, n, d, device, repeats), "n/a"
                table.records.append({"regularizer": name, "n": n, "d": d, "seconds": seconds, "peak_bytes": peak})
                bar.update()
    table.seconds = time.perf_counter() - start
    return table


def _time_here(spec: Regularizer, n: int, d: int, device: str, repeats: int) -> float:
    step, _ = _speed_step(spec, n, d, device)
    step()  # warm-up
    return median_seconds(step, repeats, device)
