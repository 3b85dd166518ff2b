r"""``WristbandLoss``: the calibrated Wristband Gaussian Loss (DESIGN 3.6).

Each raw component c (rep, rad, ang, mom) is standardized against its law under x ~ N(0, I) at
the batch's own (N, d): :math:`z_c = (c - m_c)/s_c`, and

.. math::
    \mathrm{total} = \frac{z_{rep} + \lambda_{rad} z_{rad} + \lambda_{ang} z_{ang} + \lambda_{mom} z_{mom}}{s_{total}},

with :math:`s_{total}` the null sd of the weighted sum. Under N(0, I) the total has mean ~0 and
sd ~1 for every N, d and beta: "total = 40" reads "40 null standard deviations from Gaussian".
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
from torch import Tensor, nn

from ..calibration import NullStats, cached_null_stats, monte_carlo_null
from ..distributed import global_batch, is_distributed
from .components import WristbandComponents, WristbandConfig, _as_batch, _raw_components, raw_components
from .null_moments import spectral_null_stats

__all__ = ["WristbandLoss"]


@functools.lru_cache(maxsize=1024)
def _closed_form_null_stats(config: WristbandConfig, n: int, d: int) -> NullStats | None:
    """Closed-form null of the global spectral path, or None (cached too) where mom has none."""
    try:
        return spectral_null_stats(config, n, d)
    except ValueError:  # e.g. jeff_full near d = N: no finite inverse moments
        return None

_COMPONENTS = ("rep", "rad", "ang", "mom")


class WristbandLoss(nn.Module):
    r"""Wristband Gaussian Loss: pushes a batch of embeddings ``(..., N, d)`` toward N(0, I).

    The batch is mapped to the wristband :math:`(u, t) \in S^{d-1} \times [0, 1]`
    (:func:`~latentshape.wristband_map`), where N(0, I) is exactly the uniform
    product law; a kernel repulsion (``rep``) pushes toward that uniform law, helped by a 1-D
    transport term on the radius (``rad``), an optional angular uniformity term (``ang``) and a
    moment penalty (``mom``). The math: docs/theory.md.

    Args:
        method: ``"spectral"`` (O(N), Mercer expansion) or ``"pairwise"`` (exact kernel, O(N^2) time,
            O(N) memory).
        degree: spherical-harmonic degree kept by the spectral path (0, 1 or 2). Degree <= 1 only
            sees the mean direction: two opposite lobes are invisible to it.
        k_modes: highest radial cosine mode (modes 0..k_modes) of the spectral path.
        beta: kernel sharpness. alpha: angular scale (default :math:`\alpha^2 = 1/12` chordal,
            :math:`2/(3\pi^2)` geodesic).
        angular: ``"chordal"`` or ``"geodesic"`` angular kernel.
        average: ``"global"`` (log of the mean energy) or ``"per_point"`` (mean of log row energies).
        lambda_rad, lambda_ang, lambda_mom: component weights. moment: moment penalty kind
            (``w2``, ``kl_diag``, ``kl_full``, ``jeff_diag``, ``jeff_full``, ``mu_only``).
        calibrate: return z-scores against the null at the batch's (N, d) (else raw values). The
            global spectral path calibrates in closed form (milliseconds, any N and d); the others
            by Monte-Carlo at the first batch of each new (N, d).
        calibration_samples: Monte-Carlo null batches per new (N, d) where Monte-Carlo is used;
            default 512 (spectral per_point), 128 (pairwise). calibration_seed: seed of those draws.
        distributed: under an initialized ``torch.distributed`` process group, compute the loss of
            the global batch (every rank's rows concatenated; N may differ per rank), calibrated at
            the global N. The value is the same on every rank and each rank's input gradient is its
            slice of the single-process gradient; under DDP multiply the loss by
            :func:`latentshape.distributed.world_size` for single-process parameter gradients (see
            :mod:`latentshape.distributed`). Without a process group: exactly ``False``.

    Calibration runs once per (configuration, N, d) and is shared by all instances in the
    process, so a short last batch just costs one more calibration (milliseconds on the default
    global spectral path, where the null moments are closed-form: DESIGN 3.6).

    Reference: M. Parakhin, *Wristband Gaussian Loss* (2025); spectral path after seeds/000.

    >>> loss_fn = WristbandLoss()
    >>> z = torch.randn(256, 8, generator=torch.Generator().manual_seed(1))
    >>> bool(abs(loss_fn(z)) < 4)                          # Gaussian: a few null sd at most
    True
    >>> bool(loss_fn(2.0 * z + 1.0) > 20)                  # shifted and scaled: far from Gaussian
    True
    """

    def __init__(
        self,
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
        calibration_samples: int | None = None,
        calibration_seed: int = 0,
        distributed: bool = False,
    ) -> None:
        super().__init__()
        self.config = WristbandConfig(method=method, degree=degree, k_modes=k_modes, beta=float(beta),
                                      alpha=alpha, angular=angular, average=average, moment=moment)
        for name, value in (("lambda_rad", lambda_rad), ("lambda_ang", lambda_ang), ("lambda_mom", lambda_mom)):
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        self.weights = (1.0, float(lambda_rad), float(lambda_ang), float(lambda_mom))
        self.calibrate = bool(calibrate)
        if calibration_samples is None:
            calibration_samples = 512 if method == "spectral" else 128
        if calibration_samples < 16:
            raise ValueError(f"calibration_samples must be >= 16, got {calibration_samples}")
        self.calibration_samples = int(calibration_samples)
        self.calibration_seed = int(calibration_seed)
        self.distributed = bool(distributed)

    def forward(self, x: Tensor) -> Tensor:
        """The calibrated total, averaged over leading dimensions: a 0-d tensor."""
        return self.components(x).total.mean()

    def components(self, x: Tensor) -> WristbandComponents:
        """``(total, rep, rad, ang, mom)``, each of shape ``x.shape[:-2]``."""
        active = self.distributed and is_distributed()
        batch, leading = _as_batch(x, checks_on_global_batch=active)
        rows = global_batch(batch) if active else None
        raw = _raw_components(batch, self.config, rows)  # float64: see raw_components
        weights = torch.tensor(self.weights, dtype=raw.dtype, device=raw.device)
        if self.calibrate:
            n = rows.total if rows is not None else batch.shape[-2]
            stats = self.null_stats(n, batch.shape[-1])
            values = stats.standardize(raw)
            total = (values * weights).sum(dim=-1) / stats.combined_std(weights.cpu())
        else:
            values = raw
            total = (values * weights).sum(dim=-1)
        parts = [total] + list(values.unbind(-1))
        return WristbandComponents(*(p.to(batch.dtype).reshape(leading) for p in parts))

    def null_stats(self, n: int, d: int) -> NullStats:
        """Null mean, sd and correlation of the raw components at (N, d) (cached per process).

        The global spectral path has them in closed form (docs/theory.md, section Calibration: the closed-form null;
        milliseconds at any N and d); the pairwise and per-point paths, and moment penalties without
        a valid closed form at this (N, d), use Monte-Carlo.
        """
        config = self.config
        if config.method == "spectral" and config.average == "global":
            closed = _closed_form_null_stats(config, n, d)
            if closed is not None:
                return closed
        key = ("wristband", config, n, d, self.calibration_samples, self.calibration_seed)

        def compute() -> NullStats:
            return monte_carlo_null(lambda x: raw_components(x, config), n, d,
                                    samples=self.calibration_samples, seed=self.calibration_seed,
                                    description="wristband null", dtype=torch.float32)

        return cached_null_stats(key, compute)

    def extra_repr(self) -> str:
        c = self.config
        return (f"method={c.method!r}, degree={c.degree}, k_modes={c.k_modes}, beta={c.beta}, "
                f"angular={c.angular!r}, average={c.average!r}, lambda_rad={self.weights[1]}, "
                f"lambda_ang={self.weights[2]}, lambda_mom={self.weights[3]}, moment={c.moment!r}, "
                f"calibrate={self.calibrate}" + (", distributed=True" if self.distributed else ""))
