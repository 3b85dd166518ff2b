r"""Stateless wristband energy and raw loss components (docs/theory.md, "Energy and repulsion"
and "The radial and moment terms").

- ``rep`` (repulsion): global :math:`\log(E)/\beta` with :math:`E = \frac1{N^2}\sum_{i,j} K(i,j)`
  (V-statistic, diagonal included), or per point
  :math:`\frac1\beta \overline{\log(\frac1N \sum_j K(i,j))}`. The population energy is uniquely
  minimized by the uniform law on the wristband, i.e. by x ~ N(0, I).
- ``rad``: :func:`~latentshape.wristband.radial.radial_distance`.
- ``ang``: :math:`\frac1\beta \log \overline{k_{ang}(u_i, u_j)}_{i \ne j}` (angular uniformity).
- ``mom``: :func:`~latentshape.gaussian.moment_penalties.moment_penalty`.
- ``sharp``: :math:`\log(E_s)/\beta`, the energy of the sharp angular kernel
  :math:`e^{c_s(x-1)}` (``sharp_scale`` :math:`c_s = 8`) at *every* angular degree: degrees <= 2
  from the same feature sums as ``rep``, degrees >= 3 exactly on blocks of the batch
  (:mod:`~latentshape.wristband.blocks`). It sees clustered directions, lobes and other angular
  structure of every order, which the broad kernel of ``rep`` (85-97% of its weight in degrees
  <= 2) does not.
- ``coord``: :func:`~latentshape.wristband.coordinates.coordinate_smooth_statistic`, Neyman's smooth
  statistic of every coordinate, squared and averaged (one non-Gaussian coordinate).

The calibrated combination lives in :class:`~latentshape.wristband.loss.WristbandLoss`.

``distributed=True`` under an initialized ``torch.distributed`` process group computes every
component on the global batch (the concatenation of all ranks' rows): the global
spectral energy from all-reduced feature sums (:class:`~latentshape.wristband.spectral.SpectralSums`),
the radial term from all-gathered (t, z) sorted globally, the pairwise path, the per-point
spectral rows and the degree-2 Gram route (N_global < (K+1) d) from all-gathered (u, t), and the
moment penalty from all-reduced moment sums. The result is replicated on every rank; gradients
follow :mod:`latentshape.distributed`. The pairwise path then costs O(N_global^2) on every rank.
All components compute with ``torch.autocast`` switched off (float32, or float64 for float64 input);
:func:`raw_components` returns float64, since the null fluctuations of the components at large N are
below float32 resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from ..compiler_hints import constant_result
from ..validation import as_embeddings, autocast_disabled, is_real_number
from ..distributed import GlobalBatch, all_gather_rows, all_reduce_sum, global_batch, is_distributed
from ..gaussian.moment_penalties import MOMENT_PENALTIES, moment_penalty
from .blocks import block_residual_energy, low_degree_coefficients
from .coordinates import coordinate_smooth_statistic
from .kernel import pairwise_row_sums, pairwise_row_sums_and_sharp
from .map import map_unchecked
from .radial import radial_cost
from .spectral_fused import fused_spectral_sums
from .mercer import MAX_DEGREE, angular_coefficients, default_alpha, radial_coefficients
from .spectral import SpectralSums, energy_from_sums, shared_spectral_sums, spectral_kernel_sums, uses_feature_sums

__all__ = [
    "COMPONENT_NAMES",
    "WristbandConfig",
    "WristbandComponents",
    "wristband_energy",
    "wristband_components",
    "raw_components",
    "raw_component_batch",
    "default_block",
]

Method = Literal["spectral", "pairwise"]
Average = Literal["global", "per_point"]


class WristbandComponents(NamedTuple):
    """The loss and its parts, each of shape ``x.shape[:-2]`` (z-scores when calibrated)."""

    total: Tensor
    rep: Tensor
    rad: Tensor
    ang: Tensor
    mom: Tensor
    sharp: Tensor
    coord: Tensor


@dataclass(frozen=True)
class WristbandConfig:
    """Everything that defines the raw wristband statistics (hashable: a calibration cache key).

    >>> WristbandConfig(method="pairwise").alpha_value ** 2   # default alpha^2 = 1/12
    0.0833...
    """

    method: Method = "spectral"
    degree: int = 2
    k_modes: int = 6
    beta: float = 8.0
    alpha: float | None = None
    angular: Literal["chordal", "geodesic"] = "chordal"
    average: Average = "global"
    moment: str = "w2"
    sharp: bool = True
    sharp_scale: float = 8.0
    block: int | None = None
    coordinates: bool = True

    def __post_init__(self) -> None:
        if self.method not in ("spectral", "pairwise"):
            raise ValueError(f"method must be 'spectral' or 'pairwise', got {self.method!r}")
        if not (isinstance(self.degree, int) and 0 <= self.degree <= MAX_DEGREE):
            raise ValueError(f"degree must be 0, 1 or 2, got {self.degree!r}")
        if not (isinstance(self.k_modes, int) and self.k_modes >= 0):
            raise ValueError(f"k_modes must be a non-negative integer, got {self.k_modes!r}")
        if not self.beta > 0:
            raise ValueError(f"beta must be positive, got {self.beta!r}")
        if self.alpha is not None and not self.alpha > 0:
            raise ValueError(f"alpha must be positive (or None for the default), got {self.alpha!r}")
        if self.angular not in ("chordal", "geodesic"):
            raise ValueError(f"angular must be 'chordal' or 'geodesic', got {self.angular!r}")
        if self.average not in ("global", "per_point"):
            raise ValueError(f"average must be 'global' or 'per_point', got {self.average!r}")
        if self.moment not in MOMENT_PENALTIES:
            raise ValueError(f"moment must be one of {', '.join(MOMENT_PENALTIES)}, got {self.moment!r}")
        if not (isinstance(self.sharp_scale, (int, float)) and 0 < self.sharp_scale < float("inf")):
            raise ValueError(f"sharp_scale must be a positive number, got {self.sharp_scale!r}")
        if self.block is not None and not (isinstance(self.block, int) and not isinstance(self.block, bool) and self.block >= 1):
            raise ValueError(f"block must be None (automatic) or an integer >= 1, got {self.block!r}")

    def block_size(self, n: int, d: int) -> int:
        """Residual block size of the sharp term at (N, d): ``block``, or ``default_block(N, d)``."""
        return min(n, self.block) if self.block is not None else default_block(n, d)

    @property
    def alpha_value(self) -> float:
        return self.alpha if self.alpha is not None else default_alpha(self.angular)


def default_block(n: int, d: int) -> int:
    r"""Block size of the sharp term's residual: :math:`\min(N, \max(\lceil d/2 \rceil, \lfloor 2^{18}/N \rfloor, \lfloor 2^{30}/N^2 \rfloor))`.

    All pairs (one exact block, at most 2^20 pairs) up to N = 1024; then a pair budget N B that
    falls as 2^30/N to 2^18 at N = 4096 and stays there; never fewer than ceil(d/2) partners per
    point, so O(N d) cost per point at large N, like the degree-2 spectral sums.

    >>> default_block(1024, 16), default_block(2048, 64), default_block(4096, 128), default_block(65536, 16)
    (1024, 256, 64, 8)
    """
    return max(1, min(n, max(-(-d // 2), (1 << 18) // max(n, 1), (1 << 30) // max(n * n, 1))))


_COEFFICIENTS: dict[tuple[WristbandConfig, int], tuple[tuple[float, ...], ...]] = {}


# Depends on (config, d) only: under torch.compile it runs once while tracing and its floats are constants.
@constant_result
def kernel_coefficients(config: WristbandConfig, d: int) -> tuple[tuple[float, ...], ...]:
    """Radial (a_0..a_K) and angular (lambda_0..lambda_L) Mercer coefficients of ``config`` at width d, and
    lambda_0..lambda_2 of the sharp kernel (empty without the sharp term), cached."""
    key = (config, d)
    if key not in _COEFFICIENTS:
        sharp = low_degree_coefficients(d, (float(config.sharp_scale),), (1.0,)) if config.sharp else ()
        _COEFFICIENTS[key] = (radial_coefficients(config.beta, config.k_modes),
                              angular_coefficients(d, config.degree, config.beta, config.alpha_value, config.angular),
                              sharp)
    return _COEFFICIENTS[key]


def _kernel_sums(
    x: Tensor, config: WristbandConfig, per_point: bool, rows: GlobalBatch | None = None
) -> tuple[Tensor, Tensor, Tensor | None, Tensor, Tensor]:
    """(energy or rows, off-diagonal angular mean, sharp energy or None, t, score) for a validated
    ``(B, N, d)`` batch.

    With ``rows`` (every rank's N) all five are those of the global batch, replicated on all ranks.
    """
    radial, angular, sharp = kernel_coefficients(config, x.shape[-1])
    d = x.shape[-1]
    n_total = rows.total if rows is not None else x.shape[-2]
    if config.method == "spectral" and not sharp and uses_feature_sums(n_total, d, len(radial), config.degree, per_point):
        # Global energy from batch sums, with the map fused in: a few passes over x (see spectral_fused.py).
        sums, cdf, score = fused_spectral_sums(x, len(radial), config.degree)
        if rows is not None:
            sums = _all_reduce_sums(sums)
            cdf = all_gather_rows(cdf, dim=-1, sizes=rows)
            score = all_gather_rows(score, dim=-1, sizes=rows)
        energy, angular_mean = energy_from_sums(sums, n_total, d, radial, angular)
        return energy, angular_mean, None, cdf, score
    direction, cdf, score = map_unchecked(x)
    if rows is not None:
        cdf = all_gather_rows(cdf, dim=-1, sizes=rows)
        score = all_gather_rows(score, dim=-1, sizes=rows)
        direction = all_gather_rows(direction, dim=-2, sizes=rows)
    t = cdf.to(x.dtype)
    block = config.block_size(n_total, d) if sharp else 0
    sums, sharp_direction = None, direction
    if sharp and block < n_total and uses_feature_sums(n_total, d, len(radial), 2, False):
        # shared by rep (spectral) and sharp's degrees <= 2; the residual's gradient comes back through them
        sums, sharp_direction = shared_spectral_sums(direction, t, len(radial), 2)
    whole = None
    if config.method == "pairwise":
        if sharp and block >= n_total:  # one Gram product for both kernels
            kernel_rows, angular_rows, whole = pairwise_row_sums_and_sharp(
                direction, t, config.beta, config.alpha_value, config.angular, float(config.sharp_scale), radial)
        else:
            kernel_rows, angular_rows = pairwise_row_sums(direction, t, config.beta, config.alpha_value, config.angular)
        energy, angular_mean = (kernel_rows if per_point else kernel_rows.mean(dim=-1)), angular_rows.mean(dim=-1)
    elif sums is not None and not per_point:
        energy, angular_mean = energy_from_sums(sums, n_total, d, radial, angular + (0.0,) * (2 - config.degree))
    else:
        energy, angular_mean = spectral_kernel_sums(direction, t, radial, angular, per_point=per_point)
    if not sharp:
        return energy, angular_mean, None, cdf, score
    scale = (float(config.sharp_scale),)
    if block >= n_total:  # one block holds all pairs: the whole kernel there (nothing subtracted) is the exact energy
        if whole is None:
            whole = block_residual_energy(direction, t, radial, scale, (1.0,), n_total, low=(0.0, 0.0, 0.0))
        return energy, angular_mean, whole, cdf, score
    head = (energy_from_sums(sums, n_total, d, radial, sharp) if sums is not None
            else spectral_kernel_sums(direction, t, radial, sharp))[0]
    residual = block_residual_energy(sharp_direction, t, radial, scale, (1.0,), block, low=sharp)
    return energy, angular_mean, head + residual, cdf, score


def _all_reduce_sums(sums: SpectralSums) -> SpectralSums:
    """Sum the three feature sums over ranks with one (packed) autograd-aware all-reduce."""
    batch = sums.zeroth.shape[0]
    flat = [part.reshape(batch, -1) for part in sums]
    total = all_reduce_sum(torch.cat(flat, dim=-1)).split([f.shape[-1] for f in flat], dim=-1)
    return SpectralSums(*(summed.reshape(part.shape) for summed, part in zip(total, sums)))


COMPONENT_NAMES = ("rep", "rad", "ang", "mom", "sharp", "coord")


def raw_components(x: Tensor, config: WristbandConfig, distributed: bool = False) -> Tensor:
    """Raw ``(rep, rad, ang, mom, sharp, coord)`` stacked on the last axis, shape ``x.shape[:-2] + (6,)``,
    for a batch ``x`` ``(..., N, d)`` (validated here). A term switched off in ``config`` (``sharp``,
    ``coordinates``) is not computed and reads 0.

    Always float64 (gradients flow back to ``x`` in its own dtype): under N(0, I) the components
    fluctuate by O(1/N) around O(1) values, below float32 resolution at N ~ 1e6, and calibration
    standardizes exactly those fluctuations.

    ``distributed=True`` with an initialized process group: the components of the global batch
    (module docstring); otherwise of ``x`` alone.
    """
    active = distributed and is_distributed()
    x = as_embeddings(x, check_finite=False, min_points=0) if active else as_embeddings(x)
    return raw_component_batch(x, config, global_batch(x) if active else None)


def raw_component_batch(x: Tensor, config: WristbandConfig, rows: GlobalBatch | None) -> Tensor:
    """:func:`raw_components` of an already validated batch ``(..., N, d)`` (``rows``: every rank's N
    when the components are those of the global batch)."""
    leading = tuple(x.shape[:-2])
    batch = x.reshape((math.prod(leading),) + tuple(x.shape[-2:]))  # explicit: N may be 0
    per_point = config.average == "per_point"
    with autocast_disabled(batch.device):
        # mom and coord first: autograd runs later nodes first, so their N x d gradients then come after
        # the map's backward instead of being held through it (peak memory at large N)
        # float32 output suffices: mom's null sd is >= 1e-4 of its mean, unlike rep's and ang's
        mom = moment_penalty(batch, config.moment, distributed=rows is not None).to(torch.float64)
        coord = None
        if config.coordinates:
            everyone = all_gather_rows(batch, dim=-2, sizes=rows) if rows is not None else batch
            coord = coordinate_smooth_statistic(everyone)
        energy, angular_mean, sharp_energy, cdf, score = _kernel_sums(batch, config, per_point, rows)
        energy, angular_mean = energy.to(torch.float64), angular_mean.to(torch.float64)
        tiny = torch.finfo(energy.dtype).tiny
        # Truncated expansions are not positive-definite pointwise; clamp keeps log finite.
        log_energy = torch.log(energy.clamp_min(tiny))
        rep = (log_energy.mean(dim=-1) if per_point else log_energy) / config.beta
        ang = torch.log(angular_mean.clamp_min(tiny)) / config.beta
        rad = radial_cost(cdf, score).to(torch.float64)
        zero = torch.zeros_like(rep)
        sharp = torch.log(sharp_energy.to(torch.float64).clamp_min(tiny)) / config.beta if sharp_energy is not None else zero
        coord = coord if coord is not None else zero
        return torch.stack([rep, rad, ang, mom, sharp, coord], dim=-1).reshape(leading + (len(COMPONENT_NAMES),))


def wristband_energy(
    x: Tensor,
    method: Method = "spectral",
    degree: int = 2,
    k_modes: int = 6,
    beta: float = 8.0,
    alpha: float | None = None,
    angular: Literal["chordal", "geodesic"] = "chordal",
    average: Average = "global",
) -> Tensor:
    r"""Wristband kernel energy :math:`E = \frac{1}{N^2}\sum_{i,j} K(i,j)` of a batch ``(..., N, d)``.

    Pairwise evaluates the exact kernel with three radial images; spectral uses cosine modes
    0..``k_modes`` and harmonic degrees <= ``degree``. With ``average="per_point"`` the row means
    :math:`\frac1N\sum_j K(i,j)` are returned, shape ``x.shape[:-1]``; else shape ``x.shape[:-2]``.

    >>> x = torch.randn(512, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> spectral = wristband_energy(x, k_modes=12)
    >>> pairwise = wristband_energy(x, method="pairwise")
    >>> bool(abs(spectral / pairwise - 1) < 0.05)   # degree-2 truncation keeps ~90% of k_ang at d = 8
    True
    """
    config = WristbandConfig(method=method, degree=degree, k_modes=k_modes, beta=beta, alpha=alpha,
                             angular=angular, average=average)
    x = as_embeddings(x)
    leading = tuple(x.shape[:-2])
    batch = x.reshape((math.prod(leading),) + tuple(x.shape[-2:]))
    with autocast_disabled(batch.device):
        energy = _kernel_sums(batch, replace(config, sharp=False), per_point=average == "per_point")[0].to(batch.dtype)
    return energy.reshape(leading + energy.shape[1:])


def wristband_components(
    x: Tensor,
    config: WristbandConfig | None = None,
    lambda_rad: float = 0.1,
    lambda_ang: float = 0.0,
    lambda_mom: float = 1.0,
    lambda_sharp: float = 1.0,
    lambda_coord: float = 1.0,
    distributed: bool = False,
) -> WristbandComponents:
    r"""Raw (uncalibrated) components of ``x`` ``(..., N, d)`` and their weighted sum
    :math:`\mathrm{rep} + \lambda_{rad}\mathrm{rad} + \lambda_{ang}\mathrm{ang} + \lambda_{mom}\mathrm{mom}
    + \lambda_{sharp}\mathrm{sharp} + \lambda_{coord}\mathrm{coord}`.

    ``distributed=True``: the components of the global batch under ``torch.distributed`` (module
    docstring); the same as ``False`` without an initialized process group.

    >>> x = torch.randn(3, 256, 4, generator=torch.Generator().manual_seed(0))
    >>> parts = wristband_components(x)
    >>> parts.total.shape, parts.rep.dtype
    (torch.Size([3]), torch.float32)
    """
    if config is not None and not isinstance(config, WristbandConfig):
        raise TypeError(f"config must be a WristbandConfig or None, got {type(config).__name__}")
    weights = (lambda_rad, lambda_ang, lambda_mom, lambda_sharp, lambda_coord)
    if not all(is_real_number(w) and 0 <= w < float("inf") for w in weights):
        raise ValueError(f"lambda_rad, lambda_ang, lambda_mom, lambda_sharp, lambda_coord must be finite numbers >= 0, got {weights}")
    config = config or WristbandConfig()
    raw = raw_components(x, config, distributed=distributed)
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    rep, rad, ang, mom, sharp, coord = raw.to(dtype).unbind(-1)
    total = rep + lambda_rad * rad + lambda_ang * ang + lambda_mom * mom + lambda_sharp * sharp + lambda_coord * coord
    return WristbandComponents(total, rep, rad, ang, mom, sharp, coord)
