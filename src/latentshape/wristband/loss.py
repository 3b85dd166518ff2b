r"""``WristbandLoss``: the calibrated Wristband Gaussian Loss.

Each raw component c (rep, rad, ang, mom; :mod:`~latentshape.wristband.components`) is
standardized against its law under x ~ N(0, I) at the batch's own (N, d):
:math:`z_c = (c - m_c)/s_c`, and

.. math::
    \mathrm{total} = \frac{z_{rep} + \lambda_{rad} z_{rad} + \lambda_{ang} z_{ang} + \lambda_{mom} z_{mom}}{s_{total}},

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
from .closed_form_null import spectral_null_stats

__all__ = ["WristbandLoss"]


class WristbandLoss(BatchStatistic):
    r"""Wristband Gaussian Loss: pushes a batch of embeddings ``(..., N, d)`` toward N(0, I).

    The batch is mapped to the wristband :math:`(u, t) \in S^{d-1} \times [0, 1]`
    (:func:`~latentshape.wristband_map`), where N(0, I) is exactly the uniform
    product law; a kernel repulsion (``rep``) pushes toward that uniform law, helped by a 1-D
    transport term on the radius (``rad``), an optional angular uniformity term (``ang``) and a
    moment penalty (``mom``); docs/theory.md derives each.

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
        moment: moment penalty kind (``w2``, ``kl_diag``, ``kl_full``, ``jeff_diag``, ``jeff_full``,
            ``mu_only``).
        calibrate: return z-scores against the null at the batch's (N, d) (default), else raw values.
            The global spectral path calibrates in closed form (milliseconds, any N and d); the
            others by Monte-Carlo at the first batch of each new (N, d).
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
    spectral reformulation of its repulsion term (docs/theory.md, "The spectral expansion").

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
        moment: str = "w2",
        calibrate: bool = True,
        null_samples: int | None = None,
        null_seed: int = 0,
        distributed: bool = False,
    ) -> None:
        if null_samples is None:
            null_samples = 512 if method == "spectral" else 128
        super().__init__(calibrate=calibrate, null_samples=null_samples, null_seed=null_seed, distributed=distributed)
        self.config = WristbandConfig(method=method, degree=degree, k_modes=k_modes, beta=float(beta),
                                      alpha=alpha, angular=angular, average=average, moment=moment)
        for name, value in (("lambda_rad", lambda_rad), ("lambda_ang", lambda_ang), ("lambda_mom", lambda_mom)):
            if not (float(value) >= 0 and float(value) < float("inf")):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        self.weights = (1.0, float(lambda_rad), float(lambda_ang), float(lambda_mom))

    # float32 null draws: Monte-Carlo error dominates rounding, and they halve the cost
    null_dtype = torch.float32

    def components(self, x: Tensor) -> WristbandComponents:
        """``(total, rep, rad, ang, mom)``, each of shape ``x.shape[:-2]`` (z-scores when calibrated)."""
        raw, rows = self._raw_and_rows(x)
        if self.calibrate:
            total, values = self.null_stats(rows, x.shape[-1], device=x.device).total(raw, torch.tensor(self.weights))
        else:
            values = raw
            total = (raw * torch.tensor(self.weights, dtype=raw.dtype, device=raw.device)).sum(dim=-1)
        dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
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
        """The global spectral path's closed form; None elsewhere, or where ``mom`` has none at (N, d)."""
        if self.config.method != "spectral" or self.config.average != "global":
            return None
        try:
            return spectral_null_stats(self.config, n, d)
        except ValueError:  # e.g. jeff_full near d = N: no finite inverse moments
            return None

    def _intermediate_size(self, n: int, d: int) -> int:
        return n * n if self.config.method == "pairwise" else n * d

    def extra_repr(self) -> str:
        c = self.config
        return (f"method={c.method!r}, degree={c.degree}, k_modes={c.k_modes}, beta={c.beta}, "
                f"angular={c.angular!r}, average={c.average!r}, lambda_rad={self.weights[1]}, "
                f"lambda_ang={self.weights[2]}, lambda_mom={self.weights[3]}, moment={c.moment!r}, "
                + self._flags_repr())
