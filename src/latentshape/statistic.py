r"""The one contract every batch statistic toward N(0, I) fills in: raw components, null, total.

A *batch statistic* maps a batch ``x`` of shape ``(..., N, d)`` to C raw components per batch
(shape ``x.shape[:-2] + (C,)``), named by :attr:`BatchStatistic.component_names` and weighted by
:attr:`BatchStatistic.weights`. Every statistic (:class:`~latentshape.WristbandLoss`,
:class:`~latentshape.MomentMatchingLoss`, :class:`~latentshape.SIGReg`,
:class:`~latentshape.GaussianMMD`, :class:`~latentshape.SlicedWassersteinGaussian`) exposes

- :meth:`~BatchStatistic.raw`: the raw components (validated input, autocast off);
- :meth:`~BatchStatistic.null_stats`: their law under x ~ N(0, I) at (N, d): the statistic's
  closed form where it has one (:meth:`~BatchStatistic._closed_form_null`), else
  :func:`~latentshape.calibration.monte_carlo_null`; cached by
  :func:`~latentshape.calibration.cached_null_stats`;
- :meth:`~BatchStatistic.zscore`: the calibrated total (:meth:`~latentshape.calibration.NullStats.total`);
- ``forward``: the mean over leading dims of the calibrated total (``calibrate=True``, the
  default) or of the raw weighted total -- a 0-d tensor.

Configuration is keyword-only. ``distributed=True`` computes the statistic of the global batch
under ``torch.distributed`` (:mod:`latentshape.distributed`): by default every rank's rows are
gathered with gradients; statistics that are sums over points override
:meth:`~BatchStatistic._evaluate_global` with one all-reduce. Calibration then uses the global N.
"""

from __future__ import annotations

import hashlib
from typing import ClassVar, Hashable

import torch
from torch import Tensor, nn

from .calibration import (NullStats, cached_null_stats, calibrated_total, check_flag, check_null_samples,
                          monte_carlo_null)
from .distributed import GlobalBatch, all_gather_rows, global_batch, is_distributed
from .null_lookup import null_law_tensors
from .validation import as_embeddings, autocast_disabled

__all__ = ["BatchStatistic", "tensor_digest"]

# The null's random slices come from their own fixed seed so that calibration never consumes
# (or depends on) a module's training-time generator.
NULL_SLICE_SEED = 1


class BatchStatistic(nn.Module):
    """Base class: C raw components per batch, z-scored against their N(0, I) null.

    Subclasses implement :meth:`_evaluate` (vectorized over leading dims, no validation) and
    :meth:`_config` (a hashable description of everything the null law depends on), and may
    override :meth:`_closed_form_null`, :meth:`_evaluate_global` and the small hooks below.

    Args:
        calibrate: return z-scores against the null at the batch's (N, d) (default) instead of
            raw values. The same default on every statistic, so that swapping one loss for
            another keeps the loss on the same scale: null standard deviations.
        null_samples: Monte-Carlo null batches per new (N, d), where no closed form exists.
        null_seed: seed of those draws.
        distributed: under an initialized process group, the statistic of the global batch.
    """

    component_names: ClassVar[tuple[str, ...]] = ("value",)
    null_dtype: ClassVar[torch.dtype] = torch.float64  # dtype of the Monte-Carlo null draws

    def __init__(self, *, calibrate: bool = True, null_samples: int = 512, null_seed: int = 0,
                 distributed: bool = False) -> None:
        super().__init__()
        self.calibrate = check_flag("calibrate", calibrate)
        self.distributed = check_flag("distributed", distributed)
        self.null_samples = check_null_samples(null_samples)
        if isinstance(null_seed, bool) or not isinstance(null_seed, int):
            raise ValueError(f"null_seed must be an int, got {null_seed!r}")
        self.null_seed = null_seed
        self.weights: tuple[float, ...] = (1.0,) * len(self.component_names)

    # -- to implement ---------------------------------------------------------------------------
    def _evaluate(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Raw components of a validated batch ``(..., N, d)``: shape ``x.shape[:-2]`` (C = 1) or ``+ (C,)``."""
        raise NotImplementedError

    def _config(self, d: int) -> Hashable:
        """A hashable description of everything the null law depends on at width ``d`` (a cache key)."""
        raise NotImplementedError

    # -- optional hooks -------------------------------------------------------------------------
    def _closed_form_null(self, n: int, d: int) -> NullStats | None:
        """Null law in closed form at (N, d), or None where there is none (Monte-Carlo is used)."""
        return None

    def _evaluate_global(self, x: Tensor, generator: torch.Generator | None, rows: GlobalBatch) -> Tensor:
        """Components of the concatenation of every rank's batch (``rows``: per-rank N), on all ranks."""
        return self._evaluate(all_gather_rows(x, dim=-2, sizes=rows), generator)

    def _check_dim(self, d: int) -> None:
        """Raise ValueError if the module cannot handle embeddings of width ``d``."""

    def _training_generator(self) -> torch.Generator | None:
        return None

    def _intermediate_size(self, n: int, d: int) -> int:
        """Elements of the largest intermediate per batch (bounds the Monte-Carlo chunks)."""
        return n * d

    def _null_transform(self, x: Tensor) -> Tensor:
        """Map N(0, I) null draws to the statistic's target law (identity by default)."""
        return x

    # -- public ---------------------------------------------------------------------------------
    def raw(self, x: Tensor) -> Tensor:
        """Raw components of each batch in ``x`` ``(..., N, d)``: shape ``x.shape[:-2] + (C,)``, float64
        or ``x``'s compute dtype. With ``distributed=True`` under a process group: those of the global batch."""
        return self._raw_and_rows(x)[0]

    def statistic(self, x: Tensor) -> Tensor:
        """Raw weighted total of each batch, shape ``x.shape[:-2]`` (the uncalibrated loss)."""
        raw = self.raw(x)
        return (raw * torch.tensor(self.weights, dtype=raw.dtype, device=raw.device)).sum(dim=-1)

    def null_stats(self, n: int, d: int, device: torch.device | str = "cpu") -> NullStats:
        """Null mean, sd and correlation of :meth:`raw` for batches of ``n`` points from N(0, I) in R^d.

        The closed form where the statistic has one, else Monte-Carlo over ``null_samples``
        batches with ``null_seed`` (random slicing, where used, is redrawn for every null batch, so
        the null law covers it too); cached per (class, configuration, n, d) in the process.
        """
        self._check_dim(d)
        n, d = int(n), int(d)
        key = (type(self).__name__, self._config(d), self.null_samples, self.null_seed, n, d)
        return cached_null_stats(key, lambda: self._closed_form_null(n, d) or self._monte_carlo_null(n, d, device))

    def zscore(self, x: Tensor) -> Tensor:
        """The calibrated total of each batch, shape ``x.shape[:-2]``: ~mean 0, sd 1 for N(0, I) rows."""
        raw, rows = self._raw_and_rows(x)
        return self.calibrated(raw, rows, x.shape[-1], device=x.device)[0]

    def calibrated(self, raw: Tensor, n: int, d: int, device: torch.device | str = "cpu",
                   dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
        """``(total, z)`` of raw components ``(..., C)`` against the null at (n, d)
        (:meth:`~latentshape.calibration.NullStats.total`). Under ``torch.compile`` the null law
        enters the graph as tensors (:mod:`latentshape.null_lookup`): a new n never recompiles it."""
        return calibrated_total(raw, torch.tensor(self.weights), *null_law_tensors(self, n, d, device), dtype)

    def forward(self, x: Tensor) -> Tensor:
        """Mean over leading dims of :meth:`zscore` (``calibrate=True``) or :meth:`statistic`; 0-d."""
        values = self.zscore(x) if self.calibrate else self.statistic(x)
        return values.mean()

    # -- plumbing -------------------------------------------------------------------------------
    def null_draw_function(self):
        """The map from N(0, I) draws ``(R, N, d)`` to raw components ``(R, C)`` used for the null."""
        slice_generator = torch.Generator().manual_seed(NULL_SLICE_SEED)
        size = len(self.component_names)

        def null_statistic(draws: Tensor) -> Tensor:
            with autocast_disabled(draws.device):
                return self._evaluate(self._null_transform(draws), slice_generator).reshape(draws.shape[0], size)

        return null_statistic

    def _monte_carlo_null(self, n: int, d: int, device: torch.device | str) -> NullStats:
        return monte_carlo_null(
            self.null_draw_function(), n, d, samples=self.null_samples, seed=self.null_seed, device=device,
            # Chunk the null draws so that the statistic's intermediates stay ~2^24 elements.
            max_elements=max(1, (1 << 24) * n * d // max(1, self._intermediate_size(n, d))),
            description=f"calibrating {type(self).__name__}", dtype=self.null_dtype,
        )

    def _raw_and_rows(self, x: Tensor) -> tuple[Tensor, int]:
        """Raw components ``(..., C)`` and the number of rows behind them (the global N when distributed)."""
        if self.distributed and is_distributed():
            # NaN/Inf and N >= 2 are checked on the global batch, at once on every rank (global_batch).
            x = as_embeddings(x, check_finite=False, min_points=0)
            rows = global_batch(x)
            self._check_dim(x.shape[-1])
            with autocast_disabled(x.device):
                raw = self._evaluate_global(x, self._training_generator(), rows)
            n = rows.total
        else:
            x = as_embeddings(x)
            self._check_dim(x.shape[-1])
            with autocast_disabled(x.device):
                raw = self._evaluate(x, self._training_generator())
            n = x.shape[-2]
        return raw.reshape(tuple(x.shape[:-2]) + (len(self.component_names),)), n

    def _flags_repr(self) -> str:
        return f"calibrate={self.calibrate}" + (", distributed=True" if self.distributed else "")


def tensor_digest(value: Tensor | None) -> str | None:
    """A short hashable fingerprint of a tensor's values (for calibration cache keys)."""
    if value is None:
        return None
    array = value.detach().to("cpu", torch.float64).contiguous().numpy()
    return hashlib.sha1(array.tobytes() + str(array.shape).encode()).hexdigest()
