r"""Closed-form null law of every component of the default wristband: (rep, rad, ang, mom, sharp, coord).

Under x ~ N(0, I) at the batch's (N, d), with no Monte-Carlo (milliseconds at a new (N, d)):

- ``rep``, ``ang``, ``rad``, ``mom`` and their covariances:
  :func:`~latentshape.wristband.closed_form_null.spectral_null_stats`'s pieces;
- ``sharp`` = log(E_s)/beta, E_s = E_{<=2} + E_{>2} (degrees <= 2 over all pairs, the residual on
  blocks): :func:`~latentshape.wristband.blocks_null.allorder_energy_null_moments`, third-order
  delta method; its covariances with rad, ang, mom from the kernel table
  :func:`~latentshape.wristband.pairwise_null.kernel_null_covariances` (the residual meets them only
  through its diagonal) and with rep from
  :func:`~latentshape.wristband.blocks_null.energy_cross_covariance`;
- ``coord``: exact mean and variance (:func:`~latentshape.wristband.coordinates.coordinate_null_moments`)
  and leading-order covariances with the others
  (:func:`~latentshape.wristband.coordinates_null.coordinate_null_covariances`).

Covariances of the raw energies are carried to the logs by the first-order slopes
:math:`1/(\beta\,E[E])`. A component switched off (``sharp=False``, ``coordinates=False``) reads 0
and gets mean 0, sd 1 and no correlation, so its z-score is 0.
"""

from __future__ import annotations

import math


from ..calibration import NullStats
from .blocks import block_sizes, low_degree_coefficients
from .blocks_null import allorder_energy_null_moments, energy_cross_covariance, residual_kernel_sums
from .closed_form_null import (NullMoments, _log_moments, angular_mean_null_moments, spectral_energy_null_moments,
                               spectral_null_covariances)
from .coordinates import coordinate_null_moments
from .coordinates_null import coordinate_null_covariances
from .mercer import angular_coefficients, radial_coefficients, zonal_at_one
from .pairwise_null import kernel_null_covariances

__all__ = ["allorder_null_stats", "assemble_null"]

ORDER = ("E", "rad", "A", "mom", "S", "C")  # the raw quantities behind (rep, rad, ang, mom, sharp, coord)


def allorder_null_stats(config, n: int, d: int) -> NullStats:
    r"""Null mean, sd and correlation of the raw ``(rep, rad, ang, mom, sharp, coord)`` of the global
    spectral wristband with its sharp and coordinate terms, at (N, d).

    Raises ``ValueError`` where a piece has no closed form (e.g. a moment penalty near d = N); the
    caller then uses Monte-Carlo.

    >>> from latentshape.wristband.components import WristbandConfig
    >>> stats = allorder_null_stats(WristbandConfig(), n=1024, d=16)
    >>> stats.mean.shape, round(float(stats.mean[5]), 2)    # coord: E[Q^2] = 24 - 6/N
    (torch.Size([6]), 23.99)
    """
    from ..gaussian.moment_penalty_null import moment_null_moments
    from .radial import radial_null_moments

    if config.method != "spectral" or config.average != "global":
        raise ValueError("closed-form null moments exist for the global spectral path only")
    beta = config.beta
    radial = radial_coefficients(beta, config.k_modes)
    broad = angular_coefficients(d, config.degree, beta, config.alpha_value, config.angular)
    broad = tuple(broad) + (0.0,) * (2 - config.degree)
    energy = spectral_energy_null_moments(n, d, radial, broad)
    angle = angular_mean_null_moments(n, d, broad)
    logs = {"E": _log_moments(energy)}
    logs["A"] = _log_moments(angle) if angle.variance > 0 else NullMoments(math.log(angle.mean), 0.0)
    rad, mom = NullMoments(*radial_null_moments(n)), NullMoments(*moment_null_moments(config.moment, n, d))
    covariances = dict(spectral_null_covariances(n, d, radial, broad, config.moment, mom.variance))
    means = {"E": energy.mean, "A": angle.mean}
    if config.sharp:
        sharp_energy = _add_sharp(covariances, config, n, d, radial, broad, mom.variance)
        logs["S"], means["S"] = _log_moments(sharp_energy), sharp_energy.mean
    coord = None
    if config.coordinates:
        if config.angular != "chordal" or config.degree != 2:
            raise ValueError("the coordinate term's closed-form covariances assume the chordal degree-2 rep")
        coord = NullMoments(*coordinate_null_moments(n, d))
        scale = 2.0 * beta * config.alpha_value**2  # the chordal kernel e^{c (x - 1)} of rep
        for other, value in coordinate_null_covariances(n, d, beta=beta, broad=scale, sharp=config.sharp_scale,
                                                         k_modes=config.k_modes, moment=config.moment,
                                                         block=config.block_size(n, d)).items():
            if other != "S" or config.sharp:
                covariances[("C", other)] = value
    return assemble_null(beta, logs, means, rad, mom, coord, covariances)


def assemble_null(beta: float, logs: dict, means: dict, rad: NullMoments, mom: NullMoments,
                  coord: NullMoments | None, covariances: dict) -> NullStats:
    """The :class:`NullStats` of (rep, rad, ang, mom, sharp, coord) from the log-energy moments ``logs``
    and raw means ``means`` (keys among E, A, S), the rad, mom and coord moments and the raw covariances:
    the energies' covariances carried to their logs by the slopes 1/(beta E[E])."""
    slope = {k: 1.0 / (beta * m) for k, m in means.items()} | {"rad": 1.0, "mom": 1.0, "C": 1.0}
    sd = {k: v.std / beta for k, v in logs.items()} | {"rad": rad.std, "mom": mom.std}
    mean = {k: v.mean / beta for k, v in logs.items()} | {"rad": rad.mean, "mom": mom.mean}
    if coord is not None:
        sd["C"], mean["C"] = coord.std, coord.mean
    return NullStats.from_covariances(ORDER, mean, sd, slope, covariances)


def _add_sharp(covariances: dict, config, n: int, d: int, radial, broad, moment_variance: float) -> NullMoments:
    """Moments of the sharp energy; adds its covariances with E, A, rad, mom to ``covariances``."""
    scale = float(config.sharp_scale)
    block = config.block_size(n, d)
    sharp_low = low_degree_coefficients(d, (scale,), (1.0,))
    moments = allorder_energy_null_moments(n, d, radial, (scale,), (1.0,), block)
    pairs = float(sum(s * s for s in block_sizes(n, block)))
    residual_trace = residual_kernel_sums(int(d), (scale,), (1.0,))[0]
    dims = [zonal_at_one(d, level) for level in range(3)]
    # the residual enters the diagonal (the only place it meets degree <= 2 statistics) with weight N^2 / P
    effective_trace = sum(lam * m for lam, m in zip(sharp_low, dims)) + residual_trace * n * n / pairs
    cross_spread = sum(broad[level] * sharp_low[level] * dims[level] for level in (1, 2))
    table = kernel_null_covariances(n, d, radial, sharp_low, effective_trace, cross_spread, config.moment, moment_variance)
    for other in ("A", "rad", "mom"):
        covariances[("S", other)] = table[("E", other)]
    covariances[("E", "S")] = energy_cross_covariance(n, d, radial, broad, sharp_low, residual_trace, pairs)
    return moments
