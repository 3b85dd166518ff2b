r"""``WristbandLoss``: the calibrated Wristband Gaussian Loss.

Each raw component c (rep, rad, ang, mom, sharp, coord; :mod:`~latentshape.wristband.components`)
is standardized against its law under x ~ N(0, I) at the batch's own (N, d):
:math:`z_c = (c - m_c)/s_c`, and

.. math::
    \mathrm{total} = \frac{z_{rep} + \lambda_{rad} z_{rad} + \lambda_{ang} z_{ang} + \lambda_{mom} z_{mom}
        + \lambda_{sharp} z_{sharp} + \lambda_{coord} z_{coord}}{s_{total}},

with :math:`s_{total}` the null sd of the weighted sum (:meth:`latentshape.calibration.NullStats.total`).
Under N(0, I) the total has mean ~0 and sd ~1 for every N, d and beta: "total = 40" reads "40 null
standard deviations from Gaussian" (docs/theory.md, "Calibration: the closed-form null").
"""

from __future__ import annotations

from typing import Hashable, Literal

import torch
from torch import Tensor

from ..calibration import NullStats
from ..distributed import GlobalBatch
from ..statistic import BatchStatistic
from .components import COMPONENT_NAMES, WristbandComponents, WristbandConfig, raw_component_batch
from .allorder_null import allorder_null_stats
from .closed_form_null import spectral_null_stats
from .pairwise_allorder_null import pairwise_allorder_null_stats
from .pairwise_null import pairwise_null_stats

__all__ = ["WristbandLoss"]


class WristbandLoss(BatchStatistic):
    r"""Wristband Gaussian Loss: pushes a batch of embeddings ``(..., N, d)`` toward N(0, I).

    The batch is mapped to the wristband :math:`(u, t) \in S^{d-1} \times [0, 1]`
    (:func:`~latentshape.wristband_map`), where N(0, I) is exactly the uniform
    product law; a kernel repulsion (``rep``) pushes toward that uniform law, helped by a 1-D
    transport term on the radius (``rad``), an optional angular uniformity term (``ang``), a
    moment penalty (``mom``), a sharp kernel's repulsion at every angular degree (``sharp``: clusters,
    lobes, angular structure of any order) and a per-coordinate smooth test (``coord``: one
    non-Gaussian coordinate); docs/theory.md derives each.

    The original loss's configuration (degree-1 spectral path of the broad kernel, no sharp or coordinate
    term) is one line: ``WristbandLoss(degree=1, lambda_sharp=0, lambda_coord=0)``; the
    degree-2-only loss of earlier releases is ``WristbandLoss(lambda_sharp=0, lambda_coord=0)``.

    Configuration is keyword-only.

    Args:
        method: ``"spectral"`` (O(N), Mercer expansion) or ``"pairwise"`` (exact kernel, O(N^2) time,
            O(N) memory).
        degree: spherical-harmonic degree kept by the spectral path (0, 1 or 2). Degree <= 1 only
            sees the mean direction: two opposite lobes are invisible to it.
        k_modes: highest radial cosine mode (modes 0..k_modes) of the spectral path.
        beta: kernel sharpness.
        alpha: angular scale (default :math:`\alpha^2 = 1/12` chordal, :math:`2/(3\pi^2)` geodesic).
        angular: ``"chordal"`` or ``"geodesic"`` angular kernel.
        average: ``"global"`` (log of the mean energy) or ``"per_point"`` (mean of log row energies).
        lambda_rad: weight of the radial term.
        lambda_ang: weight of the angular uniformity term.
        lambda_mom: weight of the moment penalty.
        lambda_sharp: weight of the sharp all-degree repulsion (0: not computed).
        lambda_coord: weight of the per-coordinate term (0: not computed).
        sharp_scale: chordal scale c of the sharp angular kernel :math:`e^{c(u \cdot u' - 1)}`.
        block: largest block of the sharp term's degrees >= 3 (None: all pairs up to N = 1024, then
            :math:`\max(\lceil d/2 \rceil, \lfloor 2^{18}/N \rfloor, \lfloor 2^{30}/N^2 \rfloor)`;
            cost O(N B d), memory O(N + B^2)).
        moment: moment penalty kind (``w2``, ``kl_diag``, ``kl_full``, ``jeff_diag``, ``jeff_full``,
            ``mu_only``).
        calibrate: return z-scores against the null at the batch's (N, d) (default), else raw values.
            The global spectral and the chordal pairwise paths calibrate in closed form, every term
            included (milliseconds, any N and d); the others by Monte-Carlo at the first batch of
            each new (N, d).
        null_samples: Monte-Carlo null batches per new (N, d) where Monte-Carlo is used; default 512
            (spectral ``per_point``), 128 (pairwise).
        null_seed: seed of those draws.
        distributed: under an initialized ``torch.distributed`` process group, compute the loss of
            the global batch (every rank's rows concatenated; N may differ per rank), calibrated at
            the global N. The value is the same on every rank and each rank's input gradient is its
            slice of the single-process gradient; under DDP multiply the loss by
            :func:`latentshape.distributed.world_size` for single-process parameter gradients (see
            :mod:`latentshape.distributed`).

    Calibration runs once per (configuration, N, d) and is shared by all instances in the
    process, so a short last batch just costs one more calibration (milliseconds on the default
    global spectral path).

    Reference: M. Parakhin, *Wristband Gaussian Loss* (2025); the O(N) spectral path after the
    spectral reformulation of its repulsion term (docs/theory.md, "The spectral expansion"); the
    per-coordinate term is Neyman's smooth test (J. Neyman, Skand. Aktuarietidskr. 20, 1937); the
    choice of the sharp and coordinate terms is measured in docs/allorder_design.md.

    >>> loss_fn = WristbandLoss()
    >>> z = torch.randn(256, 8, generator=torch.Generator().manual_seed(1))
    >>> bool(abs(loss_fn(z)) < 4)                          # Gaussian: a few null sd at most
    True
    >>> bool(loss_fn(2.0 * z + 1.0) > 20)                  # shifted and scaled: far from Gaussian
    True
    """

    component_names = COMPONENT_NAMES

    def __init__(
        self,
        *,
        method: Literal["spectral", "pairwise"] = "spectral",
        degree: int = 2,
        k_modes: int = 6,
        beta: float = 8.0,
        alpha: float | None = None,
        angular: Literal["chordal", "geodesic"] = "chordal",
        average: Literal["global", "per_point"] = "global",
        lambda_rad: float = 0.1,
        lambda_ang: float = 0.0,
        lambda_mom: float = 1.0,
        lambda_sharp: float = 1.0,
        lambda_coord: float = 1.0,
        sharp_scale: float = 8.0,
        block: int | None = None,
        moment: str = "w2",
        calibrate: bool = True,
        null_samples: int | None = None,
        null_seed: int = 0,
        distributed: bool = False,
    ) -> None:
        if null_samples is None:
            null_samples = 512 if method == "spectral" else 128
        super().__init__(calibrate=calibrate, null_samples=null_samples, null_seed=null_seed, distributed=distributed)
        lambdas = {"lambda_rad": lambda_rad, "lambda_ang": lambda_ang, "lambda_mom": lambda_mom,
                   "lambda_sharp": lambda_sharp, "lambda_coord": lambda_coord}
        for name, value in lambdas.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        # a term of weight 0 that costs extra (sharp, coord) is not computed at all
        self.config = WristbandConfig(method=method, degree=degree, k_modes=k_modes, beta=float(beta),
                                      alpha=alpha, angular=angular, average=average, moment=moment,
                                      sharp=lambda_sharp > 0, sharp_scale=float(sharp_scale), block=block,
                                      coordinates=lambda_coord > 0)
        self.weights = tuple(float(v) for v in (1.0, lambda_rad, lambda_ang, lambda_mom, lambda_sharp, lambda_coord))

    # float32 null draws: Monte-Carlo error dominates rounding, and they halve the cost
    null_dtype = torch.float32

    def components(self, x: Tensor) -> WristbandComponents:
        """``(total, rep, rad, ang, mom, sharp, coord)``, each of shape ``x.shape[:-2]`` (z-scores when calibrated)."""
        raw, rows = self._raw_and_rows(x)
        dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        if self.calibrate:
            total, values = self.calibrated(raw, rows, x.shape[-1], device=x.device, dtype=dtype)
        else:
            values = raw
            total = (raw * torch.tensor(self.weights, dtype=raw.dtype, device=raw.device)).sum(dim=-1)
        return WristbandComponents(total.to(dtype), *(v.to(dtype) for v in values.unbind(-1)))

    def forward(self, x: Tensor) -> Tensor:
        """The calibrated total (raw weighted total with ``calibrate=False``), averaged over leading dims: 0-d."""
        return self.components(x).total.mean()

    def _evaluate(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        return raw_component_batch(x, self.config, None)

    def _evaluate_global(self, x: Tensor, generator: torch.Generator | None, rows: GlobalBatch) -> Tensor:
        return raw_component_batch(x, self.config, rows)

    def _config(self, d: int) -> Hashable:
        return self.config

    def _closed_form_null(self, n: int, d: int) -> NullStats | None:
        """The closed form of the global spectral and pairwise paths (every term); None elsewhere (per-point
        rows, the geodesic pairwise kernel with extra terms), or where ``mom`` has none at (N, d)."""
        config = self.config
        if config.average != "global":
            return None
        extra = config.sharp or config.coordinates
        try:
            if config.method == "pairwise":
                if extra:
                    return pairwise_allorder_null_stats(config, n, d)
                return _padded(pairwise_null_stats(config, n, d), len(self.component_names))
            if extra:
                return allorder_null_stats(config, n, d)
            return _padded(spectral_null_stats(config, n, d), len(self.component_names))
        except ValueError:  # e.g. jeff_full near d = N: no finite inverse moments
            return None

    def _intermediate_size(self, n: int, d: int) -> int:
        return n * n if self.config.method == "pairwise" else n * d

    def extra_repr(self) -> str:
        c = self.config
        return (f"method={c.method!r}, degree={c.degree}, k_modes={c.k_modes}, beta={c.beta}, "
                f"angular={c.angular!r}, average={c.average!r}, lambda_rad={self.weights[1]}, "
                f"lambda_ang={self.weights[2]}, lambda_mom={self.weights[3]}, lambda_sharp={self.weights[4]}, "
                f"lambda_coord={self.weights[5]}, sharp_scale={c.sharp_scale}, block={c.block}, moment={c.moment!r}, "
                + self._flags_repr())


def _padded(stats: NullStats, size: int) -> NullStats:
    """``stats`` of the first components, extended by components that read 0 (mean 0, sd 1, uncorrelated)."""
    extra = size - stats.mean.shape[0]
    corr = torch.eye(size, dtype=torch.float64)
    corr[: size - extra, : size - extra] = stats.corr
    return NullStats(mean=torch.cat([stats.mean, stats.mean.new_zeros(extra)]),
                     std=torch.cat([stats.std, stats.std.new_ones(extra)]), corr=corr, samples=stats.samples)
