r"""The fourth protocol, ``train``: regularizers on real encoders, over weights, widths and seeds.

:func:`train` runs every (setting, regularizer, weight, d, seed) cell of
:mod:`latentshape.bench.training` and two experiments on how the weight should follow the batch
size B:

- ``scaling`` cells: the supervised setting at ``scaling_d`` with batches of ``scaling_batches``
  (besides 128) and the same number of optimizer steps as at 128 (the epochs scale with B), with
  and without each calibrated loss, so that the weight at which the task starts to suffer can
  be read per B;
- ``growth`` records (:func:`zscore_growth`): each calibrated statistic's z on random subsets of
  N points of one fixed non-Gaussian embedding (an unregularized encoder's, raw and whitened), as
  a function of N. For a fixed departure a degenerate statistic's z grows like N (its null sd
  falls like 1/N while its mean stays); the fitted exponent a gives the rule w ~ B^-a.

The result is one :class:`~latentshape.bench.protocols.ResultTable` (protocol ``"train"``);
:mod:`latentshape.bench.train_report` turns it into tables, plots and recommendations.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .digits import load_digits_split
from .protocols import ResultTable
from .training import CALIBRATED, SETTINGS, Cell, build_regularizer, run_cell, train_encoder

__all__ = ["train", "zscore_growth", "TRAIN_NAMES", "GROWTH_REGULARIZERS"]

TRAIN_NAMES: tuple[str, ...] = tuple(dict.fromkeys(name for names in SETTINGS.values() for name in names))
"""Every regularizer name ``train`` knows (``--regularizers`` chooses among them)."""

GROWTH_REGULARIZERS: tuple[str, ...] = (*CALIBRATED, "vicreg")
"""Losses whose value :func:`zscore_growth` follows in N (VICReg raw: it has no null to standardize by)."""


DEFAULT_DIMS = {"supervised": (4, 8, 16), "self_supervised": (16,), "stochastic": (4, 8, 16)}
DEFAULT_WEIGHTS = {"supervised": (1e-4, 1e-3, 1e-2, 0.1, 1.0), "self_supervised": (0.1, 1.0, 10.0, 100.0),
                   "stochastic": (1e-3, 1e-2, 0.1, 1.0)}
DEFAULT_EPOCHS = {setting: 40 for setting in SETTINGS}


def _checked_settings(settings: Iterable[str], jobs: int) -> tuple[str, ...]:
    settings = tuple(settings)
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise ValueError(f"unknown setting {', '.join(map(repr, unknown))}; choose from {', '.join(SETTINGS)}")
    if int(jobs) != jobs or jobs < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    return settings


def _selected(regularizers: Iterable[str] | None) -> tuple[str, ...]:
    if regularizers is None:
        return TRAIN_NAMES
    names = tuple(regularizers)
    unknown = [name for name in names if name not in TRAIN_NAMES]
    if unknown:
        raise ValueError(f"unknown regularizer {', '.join(map(repr, unknown))} for bench train; known: {', '.join(TRAIN_NAMES)}")
    return names


def _steps_per_epoch(batch_size: int) -> int:
    return math.ceil(len(load_digits_split().train_y) / batch_size)


def _cells(settings: Sequence[str], names: tuple[str, ...], dims: Mapping[str, Sequence[int]],
           weights: Mapping[str, Sequence[float]], epochs: Mapping[str, int], seeds: int,
           scaling: Mapping[str, object]) -> list[Cell]:
    cells: list[Cell] = []
    for setting in settings:
        for d in dims[setting]:
            for name in (n for n in SETTINGS[setting] if n in names):
                grid = (0.0,) if name == "none" else weights[setting]
                cells += [Cell(setting, name, w, d, seed, epochs[setting]) for w in grid for seed in range(seeds)]
    if "supervised" not in settings:
        return cells
    steps = epochs["supervised"] * _steps_per_epoch(128)
    for batch in scaling["batches"]:
        budget = max(1, round(steps / _steps_per_epoch(batch)))  # the same number of optimizer steps as at 128
        for name in (n for n in ("none", *CALIBRATED) if n in names):
            grid = (0.0,) if name == "none" else scaling["weights"]
            cells += [Cell("supervised", name, w, scaling["d"], seed, budget, batch_size=batch)
                      for w in grid for seed in range(scaling["seeds"])]
    return cells


def _worker_start() -> None:
    torch.set_num_threads(1)


def _run_cells(cells: Sequence[Cell], check_rows: int, jobs: int, progress: bool) -> dict[tuple, dict]:
    """Every distinct cell's record, by :func:`_memo_key`; ``jobs`` > 1 runs them in spawned worker processes."""
    todo: dict[tuple, Cell] = {}
    for cell in cells:
        todo.setdefault(_memo_key(cell), cell)
    done: dict[tuple, dict] = {}
    with tqdm(total=len(todo), desc="train", disable=not progress) as bar:
        if jobs == 1:
            data = load_digits_split()
            for key, cell in todo.items():
                done[key] = run_cell(cell, data, check_rows)
                bar.update()
            return done
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_worker_start) as pool:
            futures = {pool.submit(run_cell, cell, None, check_rows): key for key, cell in todo.items()}
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                bar.update()
    return done


def _memo_key(cell: Cell) -> tuple:
    # "none" in the stochastic setting is the same deterministic encoder as in the supervised one.
    setting = "supervised" if cell.setting == "stochastic" and cell.regularizer == "none" else cell.setting
    return (setting, cell.regularizer, cell.weight, cell.d, cell.seed, cell.epochs, cell.batch_size, cell.lr)


def zscore_growth(embedding: torch.Tensor, sizes: Sequence[int], repeats: int,
                  regularizers: Iterable[str] = GROWTH_REGULARIZERS, seed: int = 0) -> list[dict]:
    """Mean value of each loss on ``repeats`` random subsets of N rows of ``embedding``, for N in ``sizes``.

    Records: ``part="growth"``, ``departure`` (filled in by the caller), ``regularizer``, ``n``,
    ``value`` (mean), ``value_sd``. The calibrated statistics give z-scores.

    >>> x = torch.randn(600, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([2.0, 1.0, 1.0])
    >>> rows = zscore_growth(x, (64, 256), repeats=3, regularizers=["moment_matching"])
    >>> rows[1]["value"] > 2 * rows[0]["value"] > 0              # z grows with N for a fixed departure
    True
    """
    generator = torch.Generator().manual_seed(seed)
    records = []
    for name in regularizers:
        module = build_regularizer(name, embedding.shape[1])
        for n in sizes:
            if n > embedding.shape[0]:
                raise ValueError(f"size {n} exceeds the embedding's {embedding.shape[0]} rows")
            with torch.no_grad():
                values = [float(module(embedding[torch.randperm(embedding.shape[0], generator=generator)[:n]]))
                          for _ in range(repeats)]
            records.append({"part": "growth", "regularizer": name, "n": int(n), "value": float(np.mean(values)),
                            "value_sd": float(np.std(values, ddof=1)) if repeats > 1 else 0.0})
    return records


def _whiten(z: torch.Tensor) -> torch.Tensor:
    z = z.double() - z.double().mean(dim=0)
    eigenvalues, vectors = torch.linalg.eigh(torch.cov(z.T))
    return (z @ vectors / eigenvalues.clamp_min(1e-12).sqrt()).float()


def _growth(names: tuple[str, ...], d: int, epochs: int, sizes: Sequence[int], repeats: int) -> list[dict]:
    data = load_digits_split()
    model, _ = train_encoder(Cell("supervised", "none", 0.0, d, 0, epochs), data)
    with torch.no_grad():
        raw = model.encoder(torch.cat([data.train_x, data.test_x]))
    chosen = [name for name in GROWTH_REGULARIZERS if name in names]
    records = []
    for departure, embedding in (("raw", raw), ("whitened", _whiten(raw))):
        records += [r | {"departure": departure} for r in zscore_growth(embedding, sizes, repeats, chosen)]
    return records


def train(
    settings: Iterable[str] = tuple(SETTINGS),
    regularizers: Iterable[str] | None = None,
    dims: Mapping[str, Sequence[int]] | None = None,
    weights: Mapping[str, Sequence[float]] | None = None,
    epochs: Mapping[str, int] | None = None,
    seeds: int = 3,
    scaling_batches: Sequence[int] = (64, 256),
    scaling_d: int = 8,
    scaling_seeds: int = 2,
    scaling_weights: Sequence[float] | None = None,
    growth_sizes: Sequence[int] = (64, 128, 256, 512),
    growth_repeats: int = 10,
    check_rows: int = 2000,
    jobs: int = 1,
    progress: bool = True,
) -> ResultTable:
    """Train every cell and measure it; returns the records of :func:`~latentshape.bench.training.run_cell`
    (``part="cell"``) and of :func:`zscore_growth` (``part="growth"``).

    ``dims``, ``weights`` and ``epochs`` map a setting to its widths, weight grid (``"none"``
    runs once, at w = 0) and epoch budget. ``scaling_weights`` (default: the supervised grid) is
    the grid of the scaling cells. Empty ``scaling_batches`` or ``growth_sizes`` skip those
    experiments (both need the supervised setting). ``jobs``: worker processes for the cells (one
    torch thread each; step times then include the workers' contention). ``check_rows`` is
    ``max_pairwise`` of :func:`latentshape.check` (below 1437 it subsamples the training
    embedding for the O(N^2) tests).

    >>> table = train(["supervised"], ["none", "moment_matching"], dims={"supervised": (4,)},
    ...               weights={"supervised": (0.01,)}, epochs={"supervised": 1}, seeds=1, scaling_batches=(),
    ...               growth_sizes=(), check_rows=200, progress=False)
    >>> [(r["regularizer"], r["weight"]) for r in table.records]
    [('none', 0.0), ('moment_matching', 0.01)]
    """
    settings = _checked_settings(settings, jobs)
    names = _selected(regularizers)
    dims, weights, epochs = dims or DEFAULT_DIMS, weights or DEFAULT_WEIGHTS, epochs or DEFAULT_EPOCHS
    scaling_batches = tuple(scaling_batches) if "supervised" in settings else ()
    scaling_weights = tuple(weights["supervised"] if scaling_weights is None else scaling_weights) if scaling_batches else ()
    scaling = {"batches": scaling_batches, "weights": scaling_weights, "d": scaling_d, "seeds": scaling_seeds}
    start = time.perf_counter()
    table = ResultTable("train", settings={
        "settings": list(settings), "dims": {k: list(dims[k]) for k in settings}, "weights": {k: list(weights[k]) for k in settings},
        "epochs": {k: epochs[k] for k in settings}, "seeds": seeds, "batch_size": 128, "scaling_batches": list(scaling_batches),
        "scaling_weights": list(scaling_weights), "scaling_d": scaling_d, "scaling_seeds": scaling_seeds,
        "growth_sizes": list(growth_sizes), "growth_repeats": growth_repeats, "check_rows": check_rows, "jobs": jobs})
    cells = _cells(settings, names, dims, weights, epochs, seeds, scaling)
    done = _run_cells(cells, check_rows, int(jobs), progress)
    for cell in cells:
        table.records.append({"part": "cell"} | done[_memo_key(cell)] | {"setting": cell.setting})
    if growth_sizes and "supervised" in settings:
        table.records += _growth(names, scaling_d, epochs["supervised"], growth_sizes, growth_repeats)
    table.seconds = time.perf_counter() - start
    return table
