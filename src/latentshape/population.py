r"""Population mode: evaluate a batch statistic on running estimates of the population's feature means.

A batch statistic that is a function :math:`f(\bar\phi, n)` of the means
:math:`\bar\phi = \frac1N\sum_i \phi(x_i)` of per-point features (moment matching, SIGReg; see
:mod:`latentshape.gaussian.population_features`) can be evaluated on an estimate of the
*encoder's output distribution* that pools many batches, while the gradient flows through the
current batch only. :class:`PopulationMode` keeps that estimate in module buffers (features, not
points: O(F) memory with ``momentum``, O(K F) with ``window``).

**Window** (``window=K``, the default K = 2, chosen from staleness measurements): the estimate is
the sum of the current batch's feature sums and those of the previous K - 1 batches (detached),
divided by their total count
:math:`n = \sum N_s`. Under the null (every batch i.i.d. N(0, I)) the pooled sums have exactly the
law of one batch of n points, so the value is calibrated by the loss's own null at n, exactly.
If the stored sums are those of the other points of a data set of n points, the gradient with
respect to the current rows *is* the full-data statistic's gradient restricted to them (factor 1),
which has the per-batch loss's size for a statistic of degree 1 in the sample size. A feature map
may rescale the gradient of components of higher degree (``gradient_scales(n, n_eff)``: the
wristband's coordinate term, of degree 2, by n / N_eff); values are never rescaled.

**EMA** (``momentum=a``): :math:`m_t = (1 - a_t)\, m_{t-1}^{\text{detached}} + a_t \bar\phi_t`, with
:math:`a_t = \max(a, 1/t)` (the first 1/a batches are averaged with equal weights, so no zero-
initialised bias). The estimate is a weighted mean :math:`m_t = \sum_s w_s \bar\phi_s`, and for
i.i.d. points :math:`\mathrm{Var}(m_t) = \sigma^2 \sum_s w_s^2 / N_s = \sigma^2 / N_{eff}`, the
variance of a mean of :math:`N_{eff}` points. :math:`q_t = 1/N_{eff}` follows the recursion
:math:`q_t = (1 - a_t)^2 q_{t-1} + a_t^2 / N_t` (tracked in a buffer); at stationarity with
constant N, :math:`q = a^2 / (N (1 - (1 - a)^2)) = a / (N (2 - a))`, i.e.
:math:`N_{eff} = N (2 - a) / a`. The value is z-scored by the loss's null at round(N_eff): exact for
the mean of the quadratic statistics here, and up to O(1/N_eff) corrections (the weighted mean's
higher cumulants) for their variance. The batch weighs :math:`a_t` in the mean but is a share
:math:`N_t / N_{eff}` of its points (:math:`a/(2-a)` at stationarity): its gradient is scaled by
:math:`N_t / (N_{eff} a_t)`, so that when :math:`m_t` equals the means of a data set of
:math:`M = N_{eff}` points the gradient with respect to the current rows is the full-data
statistic's gradient restricted to them (factor 1, as for a window); without that scaling it
would be :math:`2 - a` times larger.

Training mode updates the buffers (under ``torch.no_grad``) after each call; eval mode returns the
wrapped loss of the batch alone and touches nothing. With ``distributed=True`` on the wrapped loss
the batch sums are all-reduced (:func:`latentshape.distributed.all_reduce_sum`) and N is the global
count, so every rank holds the same estimate.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .compiler_hints import run_eagerly
from .distributed import all_reduce_sum, global_batch, is_distributed
from .gaussian.population_features import gaussian_feature_map
from .statistic import BatchStatistic
from .validation import as_embeddings, autocast_disabled, representable

__all__ = ["PopulationMode", "feature_map"]

DEFAULT_WINDOW = 2  # measured: benchmarks/population_staleness.py (docs/population.md, Staleness)


def feature_map(loss: BatchStatistic):
    """The feature map of ``loss``: its own ``population_feature_map()`` if it defines one, else the
    library's (moment matching, SIGReg); ``ValueError`` for a statistic with no population mode."""
    custom = getattr(loss, "population_feature_map", None)
    if callable(custom):
        found = custom()
    else:
        from .wristband.population import wristband_feature_map  # the wristband package imports this one's peers

        found = gaussian_feature_map(loss) or wristband_feature_map(loss)
    if found is None:
        raise ValueError(
            f"{type(loss).__name__} has no population mode (it is not a function of feature means); "
            "supported: MomentMatchingLoss, SIGReg, WristbandLoss, "
            "or a statistic defining population_feature_map()"
        )
    return found


class PopulationMode(nn.Module):
    r"""Wrap a batch statistic so that it scores a running estimate of the population, not one batch.

    Args:
        loss: a :class:`~latentshape.MomentMatchingLoss`, :class:`~latentshape.SIGReg` or
            :class:`~latentshape.WristbandLoss` (global spectral path; its own
            ``calibrate``, weights and ``distributed`` apply).
        window: K, the number of batches pooled (the current one and K - 1 stored); default 2
            (stored features go stale; see the staleness section of docs/population.md).
        momentum: a in (0, 1], an exponential moving average instead (exclusive with ``window``).

    The forward value is the loss's z-score at the effective size (``calibrate=True``) or its raw
    weighted total, as a 0-d tensor; see the module docstring for the formulas.

    >>> from latentshape import MomentMatchingLoss
    >>> population = PopulationMode(MomentMatchingLoss(calibrate=False), window=4)
    >>> generator = torch.Generator().manual_seed(0)
    >>> for _ in range(5):
    ...     z = torch.randn(64, 3, generator=generator, requires_grad=True)
    ...     population(z).backward()
    >>> population.effective_size()          # the next batch is pooled with the last 3 (of 64 points)
    192.0
    >>> population.reset_population().effective_size()
    0.0
    """

    def __init__(self, loss: BatchStatistic, *, window: int | None = None, momentum: float | None = None) -> None:
        super().__init__()
        if window is not None and momentum is not None:
            raise ValueError("pass either window= or momentum=, not both")
        if momentum is not None and not (isinstance(momentum, (int, float)) and 0.0 < float(momentum) <= 1.0):
            raise ValueError(f"momentum must be a number in (0, 1], got {momentum!r}")
        if window is None and momentum is None:
            window = DEFAULT_WINDOW
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise ValueError(f"window must be an integer >= 1, got {window!r}")
        self.loss = loss
        self.features = feature_map(loss)
        self.window = window
        self.momentum = None if momentum is None else float(momentum)
        # Sized at the first batch (F depends on d); load_state_dict resizes them to the saved shapes.
        self.register_buffer("feature_sums", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("feature_counts", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("feature_extra", torch.zeros(0, dtype=torch.float64))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def reset_population(self) -> "PopulationMode":
        """Forget the running estimate (the features' fixed extras, e.g. SIGReg's directions, stay)."""
        self.feature_sums = torch.zeros(0, dtype=torch.float64, device=self.steps.device)
        self.feature_counts = torch.zeros(0, dtype=torch.float64, device=self.steps.device)
        self.steps.zero_()
        return self

    def effective_size(self, next_batch: int = 0) -> float:
        """N_eff of the estimate that a next batch of ``next_batch`` points would be pooled with (0: stored part only)."""
        if self.feature_sums.numel() == 0:
            return float(next_batch)
        if self.momentum is None:
            return float(self.feature_counts.sum()) + next_batch
        if next_batch == 0:
            return 1.0 / float(self.feature_counts)
        weight = max(self.momentum, 1.0 / (int(self.steps) + 1))
        return 1.0 / ((1 - weight) ** 2 * float(self.feature_counts) + weight**2 / next_batch)

    def forward(self, x: Tensor) -> Tensor:
        """The loss at the pooled estimate (training) or of ``x`` alone (eval); 0-d."""
        if not self.training:
            return self.loss(x)
        x, n = self._validated(x)
        with autocast_disabled(x.device):
            extra = self._extra(x)
            sums = self.features.sums(x, extra)  # the per-point work: traced by torch.compile
        return self._population_value(sums, n, extra, x).to(torch.promote_types(x.dtype, torch.float32))

    @run_eagerly  # buffers, N_eff and the null lookup change every step: run eagerly, never guarded on
    def _population_value(self, sums: Tensor, n: int, extra: Tensor | None, x: Tensor) -> Tensor:
        if self.loss.distributed and is_distributed():
            sums = all_reduce_sum(sums)
        if not bool(torch.isfinite(sums).all()):  # eager here: an overflow never enters the estimate
            overflow = "overflows even float64" if sums.dtype == torch.float64 else f"overflows {sums.dtype}"
            wider = "" if sums.dtype == torch.float64 else " (or use float64)"
            raise ValueError(f"this batch's population features {overflow}: the embeddings' scale is too large; "
                             f"rescale them{wider}; the population estimate is left unchanged")
        means, n_eff = self._pooled(sums, n)
        raw = self.features.raw(means, n_eff, extra)
        with_batch = getattr(self.features, "with_batch", None)  # components that stay per batch (wristband's rad)
        if with_batch is not None:
            raw = with_batch(raw, x)
        scales = getattr(self.features, "gradient_scales", None)  # components of degree > 1 in the sample size
        if scales is not None:
            factor = scales(n, n_eff).to(raw.device, raw.dtype)
            raw = raw.detach() + factor * (raw - raw.detach())
        weights = torch.tensor(self.loss.weights, dtype=raw.dtype, device=raw.device)
        if not self.loss.calibrate:
            value = (raw * weights).sum()
        else:
            mixed = getattr(self.features, "null_stats", None)
            stats = (mixed(n_eff, n, x.shape[-1], device=x.device) if mixed is not None
                     else self.loss.null_stats(round(n_eff), x.shape[-1], device=x.device))
            value = stats.total(raw, weights)[0]
        # Checked before the buffers take this batch: an overflowing batch must not poison the estimate.
        value = representable(value, torch.promote_types(x.dtype, torch.float32),
                              f"the population-mode {type(self.loss).__name__}")
        self._update(sums.detach(), n)
        return value

    @run_eagerly
    def _extra(self, x: Tensor) -> Tensor | None:
        """The feature map's fixed extra tensor (drawn at the first batch), or None."""
        if self.feature_extra.numel() == 0:
            extra = self.features.setup(x)
            if extra is not None:
                self.feature_extra = extra.detach().to(torch.float64)
        return self.feature_extra if self.feature_extra.numel() else None

    def _validated(self, x: Tensor) -> tuple[Tensor, int]:
        """Checked rows ``(N, d)`` and N (the global N under ``distributed=True``)."""
        active = self.loss.distributed and is_distributed()
        x = as_embeddings(x, check_finite=not active, min_points=0 if active else 2)
        if x.dim() != 2:
            raise ValueError(f"population mode takes one batch of shape (N, d), got shape {tuple(x.shape)}")
        self.loss._check_dim(x.shape[-1])
        if self.feature_extra.numel() and self.feature_extra.shape[0] != x.shape[-1]:
            raise ValueError(f"this population module was set up for d = {self.feature_extra.shape[0]}, "
                             f"got d = {x.shape[-1]}; build a new one")
        return x, global_batch(x).total if active else x.shape[0]

    def _pooled(self, sums: Tensor, n: int) -> tuple[Tensor, float]:
        """Feature means of the pooled estimate (gradient through ``sums`` only) and its N_eff."""
        n_eff = self.effective_size(n)
        if self.feature_sums.numel() == 0:
            return sums / n, n_eff
        if self.feature_sums.shape[-1] != sums.shape[0]:
            raise ValueError(f"the population estimate has {self.feature_sums.shape[-1]} features but this batch "
                             f"gives {sums.shape[0]} (another width d?); call reset_population() first")
        if self.momentum is None:
            return (self.feature_sums.sum(dim=0) + sums) / n_eff, n_eff
        weight = max(self.momentum, 1.0 / (int(self.steps) + 1))
        # The batch weighs `weight` in the mean but is a share n / N_eff of its points: the gradient through
        # it gets that share (as in a window); the value is unchanged (x + c (x - x) == x).
        share = n / (n_eff * weight)
        sums = sums.detach() + share * (sums - sums.detach())
        return (1 - weight) * self.feature_sums + weight * (sums / n), n_eff

    @torch.no_grad()
    def _update(self, sums: Tensor, n: int) -> None:
        if self.momentum is not None:
            q = 1.0 / self.effective_size(n)
            means = self._pooled(sums, n)[0]
            self.feature_sums, self.feature_counts = means, means.new_tensor(q)
        elif self.window > 1:
            if self.feature_sums.numel() == 0:
                self.feature_sums = sums.new_zeros(self.window - 1, sums.shape[0])
                self.feature_counts = sums.new_zeros(self.window - 1)
            slot = int(self.steps) % (self.window - 1)
            self.feature_sums[slot] = sums
            self.feature_counts[slot] = n
        self.steps += 1

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The buffers' shapes depend on d: take the saved ones before copying the values in.
        for name in ("feature_sums", "feature_counts", "feature_extra"):
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved, device=self.steps.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        horizon = f"momentum={self.momentum}" if self.momentum is not None else f"window={self.window}"
        return f"{horizon}, steps={int(self.steps)}"
