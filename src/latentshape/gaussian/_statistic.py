r"""Shared plumbing for batch statistics toward N(0, I): validation, leading dims, calibration.

A *batch statistic* maps a batch ``x`` of shape ``(..., N, d)`` to one number per batch (shape
``x.shape[:-2]``). The modules built on :class:`BatchStatisticLoss` expose

- :meth:`~BatchStatisticLoss.statistic`: the raw per-batch values;
- :meth:`~BatchStatisticLoss.zscore`: those values standardized against their own law under
  x ~ N(0, I) at the batch's (N, d) (Monte-Carlo, fixed seed, cached per configuration and shape;
  see :mod:`latentshape.calibration`);
- ``forward``: the mean over leading dims of the z-scores when ``calibrate=True`` and of the raw
  values otherwise -- a 0-d tensor.

Statistics that use random projections (:class:`~latentshape.SIGReg`,
:class:`~latentshape.SlicedWassersteinGaussian`) subclass :class:`RandomSlicingLoss`, which holds
the seeded generator (its state travels in ``state_dict`` so a resumed run continues the same
sequence of slices).

``distributed=True`` computes the statistic of the global batch under ``torch.distributed``
(:mod:`latentshape.distributed`): by default every rank's rows are gathered with gradients and the
statistic is evaluated on their concatenation; statistics that are sums over points override
:meth:`BatchStatisticLoss._evaluate_global` with one all-reduce. Calibration uses the global N.
All statistics compute with autocast switched off (float32, or float64 for float64 input).
"""

from __future__ import annotations

import hashlib
from typing import Hashable

import torch
from torch import Tensor, nn

from .._validation import as_embeddings, autocast_disabled
from ..calibration import NullStats, cached_null_stats, monte_carlo_null
from ..distributed import GlobalBatch, all_gather_rows, global_batch, is_distributed

__all__ = ["BatchStatisticLoss", "RandomSlicingLoss", "random_directions", "tensor_digest"]

# The null draws and the null's random slices come from their own fixed seeds so that
# calibration never consumes (or depends on) the module's training-time generator.
CALIBRATION_SEED = 0
CALIBRATION_SLICE_SEED = 1


def tensor_digest(value: Tensor | None) -> str | None:
    """A short hashable fingerprint of a tensor's values (for calibration cache keys)."""
    if value is None:
        return None
    array = value.detach().to("cpu", torch.float64).contiguous().numpy()
    return hashlib.sha1(array.tobytes() + str(array.shape).encode()).hexdigest()


def random_directions(
    d: int,
    count: int,
    generator: torch.Generator | None = None,
    leading: tuple[int, ...] = (),
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    r"""``count`` directions uniform on :math:`S^{d-1}`, as the columns of a ``(*leading, d, count)`` tensor.

    Drawn on the CPU (from ``generator`` if given) and then moved, so a seed gives the same
    slices on every device and every rank.

    >>> u = random_directions(3, 5, torch.Generator().manual_seed(0))
    >>> u.shape, torch.allclose(u.norm(dim=0), torch.ones(5))
    (torch.Size([3, 5]), True)
    """
    gaussian = torch.randn(*leading, d, count, generator=generator, dtype=torch.float64)
    # A zero draw has probability 0; the floor only guards the division.
    directions = gaussian / gaussian.norm(dim=-2, keepdim=True).clamp_min(1e-300)
    return directions.to(device=device, dtype=dtype)


class BatchStatisticLoss(nn.Module):
    """Base class: a per-batch statistic, optionally z-scored against its N(0, I) null.

    Subclasses implement :meth:`_evaluate` (vectorized over leading dims, no validation) and
    :meth:`_config` (a hashable description of everything the null law depends on).
    """

    def __init__(self, calibrate: bool = False, null_samples: int = 512, distributed: bool = False) -> None:
        super().__init__()
        if not isinstance(calibrate, bool):
            raise ValueError(f"calibrate must be True or False, got {calibrate!r}")
        if not isinstance(distributed, bool):
            raise ValueError(f"distributed must be True or False, got {distributed!r}")
        self.distributed = distributed
        if int(null_samples) != null_samples or null_samples < 2:
            raise ValueError(f"null_samples must be an integer >= 2, got {null_samples!r}")
        self.calibrate = calibrate
        self.null_samples = int(null_samples)

    # -- to implement -------------------------------------------------------------------------
    def _evaluate(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Raw statistic of a validated batch ``(..., N, d)``; shape ``x.shape[:-2]``."""
        raise NotImplementedError

    def _config(self, d: int) -> Hashable:
        raise NotImplementedError

    def _evaluate_global(self, x: Tensor, generator: torch.Generator | None, rows: GlobalBatch) -> Tensor:
        """Statistic of the concatenation of every rank's batch (``rows``: per-rank N), replicated on all ranks.

        Default: gather the rows with gradients and call :meth:`_evaluate` on the global batch.
        """
        return self._evaluate(all_gather_rows(x, dim=-2, sizes=rows), generator)

    def _check_dim(self, d: int) -> None:
        """Hook: raise ValueError if the module cannot handle embeddings of width ``d``."""

    def _training_generator(self) -> torch.Generator | None:
        return None

    def _intermediate_size(self, n: int, d: int) -> int:
        """Hook: elements of the largest intermediate per batch (bounds the calibration chunks)."""
        return n * d

    def _null_transform(self, x: Tensor) -> Tensor:
        """Hook: map N(0, I) null draws to the statistic's target law (identity by default)."""
        return x

    # -- public -------------------------------------------------------------------------------
    def statistic(self, x: Tensor) -> Tensor:
        """Raw (uncalibrated) statistic of each batch in ``x`` ``(..., N, d)``; shape ``x.shape[:-2]``.

        With ``distributed=True`` under an initialized process group: the statistic of the global
        batch, the same on every rank.
        """
        return self._statistic_and_rows(x)[0]

    def _statistic_and_rows(self, x: Tensor) -> tuple[Tensor, int]:
        """Raw statistic and the number of rows it was computed on (the global N when distributed)."""
        if self.distributed and is_distributed():
            # NaN/Inf and N >= 2 are checked on the global batch, at once on every rank (global_batch).
            x = as_embeddings(x, check_finite=False, min_points=0)
            rows = global_batch(x)
            self._check_dim(x.shape[-1])
            with autocast_disabled(x.device):
                return self._evaluate_global(x, self._training_generator(), rows), rows.total
        x = as_embeddings(x)
        self._check_dim(x.shape[-1])
        with autocast_disabled(x.device):
            return self._evaluate(x, self._training_generator()), x.shape[-2]

    def null_stats(self, n: int, d: int, device: torch.device | str = "cpu") -> NullStats:
        """Null mean and sd of :meth:`statistic` for batches of ``n`` points from N(0, I) in R^d.

        Monte-Carlo over ``null_samples`` float64 batches with a fixed seed, cached in memory per
        (class, configuration, n, d). Random slicing, where the statistic uses it, is redrawn for
        every null batch, so the null law covers the slice randomness too.
        """
        self._check_dim(d)
        key = (type(self).__name__, self._config(d), self.null_samples, int(n), int(d))
        slice_generator = torch.Generator().manual_seed(CALIBRATION_SLICE_SEED)

        def null_statistic(draws: Tensor) -> Tensor:
            return self._evaluate(self._null_transform(draws), slice_generator)

        def compute() -> NullStats:
            return monte_carlo_null(
                null_statistic,
                n,
                d,
                samples=self.null_samples,
                seed=CALIBRATION_SEED,
                device=device,
                # Chunk the null draws so that the statistic's intermediates stay ~2^24 elements.
                max_elements=max(1, (1 << 24) * n * d // max(1, self._intermediate_size(n, d))),
                description=f"calibrating {type(self).__name__}",
            )

        return cached_null_stats(key, compute)

    def zscore(self, x: Tensor) -> Tensor:
        """Statistic of each batch as a z-score against its null at the batch's (N, d); shape ``x.shape[:-2]``.

        About mean 0 and sd 1 when the rows of ``x`` are i.i.d. N(0, I) (or the module's target).
        """
        raw, rows = self._statistic_and_rows(x)
        stats = self.null_stats(rows, x.shape[-1], device=x.device)
        return stats.standardize(raw.unsqueeze(-1)).squeeze(-1)

    def forward(self, x: Tensor) -> Tensor:
        """Mean over leading dims of :meth:`zscore` (``calibrate=True``) or :meth:`statistic`; 0-d."""
        values = self.zscore(x) if self.calibrate else self.statistic(x)
        return values.mean()


class RandomSlicingLoss(BatchStatisticLoss):
    """A batch statistic on random 1-D projections, drawn fresh at every call from a seeded generator.

    Under ``distributed=True`` every rank must build the module with the same ``seed`` and call it
    the same number of times: the slices are then identical on all ranks (they are drawn on the
    CPU from the module's own generator, never from the global RNG).

    The sequence of slices is reproducible given ``seed``; the generator's state is saved in
    ``state_dict`` (as extra state) and restored by ``load_state_dict``.
    """

    def __init__(self, slices: int, seed: int, calibrate: bool, null_samples: int, distributed: bool = False) -> None:
        super().__init__(calibrate=calibrate, null_samples=null_samples, distributed=distributed)
        if int(slices) != slices or slices < 1:
            raise ValueError(f"slices must be a positive integer, got {slices!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int, got {seed!r}")
        self.slices = int(slices)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def manual_seed(self, seed: int) -> "RandomSlicingLoss":
        """Restart the sequence of slices from ``seed``; returns ``self``."""
        self.seed = seed
        self.generator.manual_seed(seed)
        return self

    def _training_generator(self) -> torch.Generator | None:
        return self.generator

    def directions(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Fresh unit directions ``(*leading, d, slices)``: one independent set per leading batch."""
        return random_directions(
            x.shape[-1], self.slices, generator, tuple(x.shape[:-2]), dtype=x.dtype, device=x.device
        )

    def get_extra_state(self) -> dict:
        return {"generator_state": self.generator.get_state(), "seed": self.seed}

    def set_extra_state(self, state: dict) -> None:
        self.seed = state["seed"]
        self.generator.set_state(state["generator_state"])

    def extra_repr(self) -> str:
        return f"slices={self.slices}, seed={self.seed}, calibrate={self.calibrate}"

