r"""The wristband loss as a function of per-point feature means (its population mode).

Four of the default wristband's components depend on a batch only through means of per-point
features, so :class:`latentshape.PopulationMode` can evaluate them on a running estimate of the
*population's* feature means:

- ``rep`` and ``ang``: the spectral feature sums :math:`\sum_i w_{ik}`, :math:`\sum_i w_{ik} u_i`,
  :math:`\sum_i w_{ik} u_i u_i^\top` with :math:`w_{ik} = \cos(k\pi t_i)`
  (:class:`~latentshape.wristband.spectral.SpectralSums`), then
  :func:`~latentshape.wristband.spectral.energy_from_sums` at the effective size n;
- ``mom``: :math:`\sum_i x_i` and :math:`\sum_i x_i x_i^\top`, the covariance
  :math:`\frac{n}{n-1}(E - m m^\top)` and the moment penalty;
- ``coord``: per coordinate :math:`\sum_i \cos(k\pi\Phi(x_{ij}))`, k = 1..4, then Neyman's
  :math:`Q_j = 2n\sum_k c_{jk}^2` and :math:`\frac1d\sum_j Q_j^2`; that is of degree 2 in n, so
  its gradient through the batch is scaled by n / N_eff (:meth:`WristbandFeatures.gradient_scales`)
  to the per-batch loss's size.

The radial term ``rad`` is a sort statistic (a transport cost between the sorted radii and fixed
quantiles): it is not a function of feature means and stays **per batch**. The sharp term is split:
:math:`\mathrm{sharp} = \log(E_{\le 2} + E_{>2})/\beta` with its degrees <= 2 :math:`E_{\le 2}` from
the pooled spectral sums and its residual :math:`E_{>2}` (pairwise on blocks) from the batch alone.

Calibration (without the sharp term): the pooled components' null law is the loss's closed form at
the effective size :math:`N_{eff}`, ``rad``'s at the batch's N. A component pooled over :math:`N_{eff}` points shares
a fraction :math:`N/N_{eff}` of its points with the batch; for statistics that are (to leading
order) quadratic forms of centred feature means, :math:`\mathrm{Cov}(m_N^\top A m_N,\
m^\top B m) = 2\,\mathrm{tr}(A\Sigma B\Sigma)/N_{eff}^2`, so the correlation between ``rad`` and a
pooled component is the batch's correlation times :math:`N/N_{eff}`. With the sharp term (part
pooled, part per batch) the whole null is Monte-Carlo: ``null_samples`` draws of :math:`N_{eff}`
points from N(0, I), every pooled piece on all of them and the per-batch pieces on the last N (the
exact law for a window), once per (N_eff, N, d).

>>> from latentshape import WristbandLoss
>>> loss = WristbandLoss(calibrate=False)
>>> features = WristbandFeatures(loss)
>>> x = torch.randn(200, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
>>> raw = features.with_batch(features.raw(features.sums(x, None) / 200, 200, None), x)
>>> torch.allclose(raw, loss.raw(x))     # at the batch's own means: the batch statistic
True
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..calibration import NullStats
from ..gaussian.moment_penalties import gaussian_fit_penalty
from ..validation import autocast_disabled
from .blocks import block_residual_energy
from .components import COMPONENT_NAMES, kernel_coefficients
from .coordinates import DEFAULT_MODES
from .loss import WristbandLoss
from .map import map_unchecked
from .radial import radial_cost
from .spectral import SpectralSums, energy_from_sums, spectral_sums

__all__ = ["WristbandFeatures", "wristband_feature_map"]

_RAD, _SHARP, _COORD = COMPONENT_NAMES.index("rad"), COMPONENT_NAMES.index("sharp"), COMPONENT_NAMES.index("coord")
_DIAGONAL_PENALTIES = ("kl_diag", "jeff_diag")


class WristbandFeatures:
    r"""Spectral, moment and coordinate feature sums of a :class:`~latentshape.WristbandLoss` (global
    spectral path); ``rad`` and the sharp term's residual are computed on the batch alone."""

    def __init__(self, loss: WristbandLoss) -> None:
        config = loss.config
        if config.method != "spectral" or config.average != "global":
            raise ValueError("population mode of WristbandLoss needs method='spectral' and average='global' "
                             f"(got method={config.method!r}, average={config.average!r})")
        if loss.distributed:
            raise ValueError("population mode of WristbandLoss does not support distributed=True yet "
                             "(its radial term would need the global batch)")
        self.loss = loss
        self.config = config
        self.modes = config.k_modes + 1
        self.degree = 2 if config.sharp else config.degree  # the sharp term's degrees <= 2 need the d x d sums
        self._nulls: dict[tuple[int, int, int, str], NullStats] = {}

    def setup(self, x: Tensor) -> Tensor | None:
        """No extra state: the features are fixed functions of x."""
        return None

    def sums(self, x: Tensor, extra: Tensor | None) -> Tensor:
        """The feature sums of a batch ``(N, d)``, flattened, float64: spectral, then moments, then coordinates."""
        x64 = x.to(torch.float64)
        direction, cdf, _ = map_unchecked(x64)
        spectral = spectral_sums(direction.unsqueeze(0), cdf.unsqueeze(0), self.modes, self.degree)
        parts = [part.reshape(-1) for part in spectral if part.numel()]
        parts += [x64.sum(dim=0), (x64.T @ x64).reshape(-1)]
        if self.config.coordinates:
            parts.append(coordinate_cosine_sums(x64).reshape(-1))
        return torch.cat(parts)

    def raw(self, means: Tensor, n: float, extra: Tensor | None) -> Tensor:
        """Pooled ``(rep, 0, ang, mom, E_<=2, coord)`` at feature means ``means`` and effective size ``n``
        (float64; :meth:`with_batch` completes ``rad`` and turns the sharp energy's head into ``sharp``)."""
        d = self.width(means.shape[-1])
        spectral, mean, second, cosines = self._split(means, d)
        radial, angular, sharp_low = kernel_coefficients(self.config, d)
        spectral = _scaled_sums(spectral, n)
        angular = tuple(angular) + (0.0,) * (self.degree - self.config.degree)
        energy, angular_mean = energy_from_sums(spectral, n, d, radial, angular)
        tiny = torch.finfo(torch.float64).tiny
        rep = torch.log(energy.clamp_min(tiny)).reshape(()) / self.config.beta
        ang = torch.log(angular_mean.clamp_min(tiny)).reshape(()) / self.config.beta
        mom = _moment_from_means(mean, second, n, self.config.moment)
        zero = rep.new_zeros(())
        head = energy_from_sums(spectral, n, d, radial, sharp_low)[0].reshape(()) if sharp_low else zero
        if cosines is not None:
            q = 2.0 * n * (cosines * cosines).sum(dim=-1)
            coord = (q * q).mean()
        else:
            coord = zero
        return torch.stack([rep, zero, ang, mom, head, coord])

    def with_batch(self, pooled: Tensor, x: Tensor) -> Tensor:
        """The raw components from :meth:`raw`'s ``pooled`` and the batch ``x`` ``(N, d)``: ``rad`` of the
        batch, and ``sharp = log(E_<=2 + E_>2(batch)) / beta`` (float64)."""
        with autocast_disabled(x.device):
            direction, cdf, score = map_unchecked(x.to(torch.float64))
            rad = radial_cost(cdf, score).reshape(())
            sharp = pooled[_SHARP]
            if self.config.sharp:
                residual = self._residual(direction, cdf)
                tiny = torch.finfo(torch.float64).tiny
                sharp = torch.log((pooled[_SHARP] + residual).clamp_min(tiny)) / self.config.beta
        return torch.stack([pooled[0], rad, pooled[2], pooled[3], sharp, pooled[5]])

    def gradient_scales(self, n: int, n_eff: float) -> Tensor:
        r"""Per-component factors on the gradient through the batch ``(C,)``: n / N_eff for ``coord``, else 1.

        ``coord`` is :math:`\frac1d\sum_j Q_j^2` with :math:`Q_j \propto n`: homogeneous of degree 2
        in the sample size, so its gradient at the pooled estimate is N_eff / n times the per-batch
        loss's. The factor brings it back to the per-batch size (the other components are of degree 1,
        and their gradient at the pooled estimate already has the per-batch size).
        """
        scales = torch.ones(len(COMPONENT_NAMES), dtype=torch.float64)
        scales[_COORD] = n / max(float(n_eff), float(n))
        return scales

    def _residual(self, direction: Tensor, t: Tensor) -> Tensor:
        """The sharp kernel's degrees >= 3 on blocks of the batch, 0-d."""
        n, d = direction.shape
        radial, _, sharp_low = kernel_coefficients(self.config, d)
        return block_residual_energy(direction.unsqueeze(0), t.unsqueeze(0), radial, (float(self.config.sharp_scale),),
                                     (1.0,), self.config.block_size(n, d), low=sharp_low).reshape(())

    def null_stats(self, n_eff: float, n: int, d: int, device: torch.device | str = "cpu") -> NullStats:
        """Null law of :meth:`with_batch`'s components at (N_eff, N, d), cached: without the sharp term the
        closed forms (pooled components at round(N_eff), ``rad`` at N, their correlations scaled by
        N / N_eff), with it Monte-Carlo (module docstring)."""
        pooled_n = max(int(round(n_eff)), n)
        key = (pooled_n, int(n), int(d), str(device))
        if key not in self._nulls and self.config.sharp and pooled_n > n:
            self._nulls[key] = self._monte_carlo_null(pooled_n, int(n), int(d))
        if key not in self._nulls:
            pooled = self.loss.null_stats(pooled_n, d, device=device)
            self._nulls[key] = pooled if pooled_n == n else mixed_null_stats(
                pooled, self.loss.null_stats(n, d, device=device), n / pooled_n)
        return self._nulls[key]

    @torch.no_grad()
    def _monte_carlo_null(self, pooled_n: int, n: int, d: int) -> NullStats:
        """Null law by ``null_samples`` draws of ``pooled_n`` points, the batch being the last ``n`` of them."""
        generator = torch.Generator().manual_seed(self.loss.null_seed)
        values = []
        for _ in range(self.loss.null_samples):
            x = torch.randn(pooled_n, d, generator=generator, dtype=torch.float64)
            values.append(self.with_batch(self.raw(self.sums(x, None) / pooled_n, pooled_n, None), x[-n:]))
        return NullStats.from_samples(torch.stack(values))

    def width(self, features: int) -> int:
        """d from the number of features."""
        d = 1
        while self._count(d) < features:
            d += 1
        if self._count(d) != features:
            raise ValueError(f"{features} wristband features do not match any width d")
        return d

    def _count(self, d: int) -> int:
        degree = self.degree
        spectral = self.modes * (1 + (d if degree >= 1 else 0) + (d * d if degree >= 2 else 0))
        return spectral + d + d * d + (DEFAULT_MODES * d if self.config.coordinates else 0)

    def _split(self, means: Tensor, d: int):
        k, degree = self.modes, self.degree
        sizes = [k, k * d if degree >= 1 else 0, k * d * d if degree >= 2 else 0, d, d * d,
                 DEFAULT_MODES * d if self.config.coordinates else 0]
        zeroth, first, second, mean, moment, cosines = means.split(sizes)
        spectral = SpectralSums(zeroth.reshape(1, k), first.reshape(1, k, d) if degree >= 1 else first,
                                second.reshape(1, k, d, d) if degree >= 2 else second)
        return spectral, mean, moment.reshape(d, d), cosines.reshape(d, DEFAULT_MODES) if cosines.numel() else None


def coordinate_cosine_sums(x: Tensor, modes: int = DEFAULT_MODES) -> Tensor:
    r""":math:`\sum_i \cos(k\pi\Phi(x_{ij}))`, k = 1..K, of ``x`` ``(N, d)``, shape ``(d, K)`` (differentiable).

    With :math:`e = \mathrm{erf}(x/\sqrt2)`, :math:`\cos(\pi\Phi(x)) = -\sin(\pi e/2)`; the higher modes
    by the Chebyshev recurrence :math:`\cos k\theta = 2\cos\theta\cos(k-1)\theta - \cos(k-2)\theta`.
    """
    first = -torch.sin(torch.erf(x / math.sqrt(2.0)) * (0.5 * math.pi))
    previous, current = torch.ones_like(first), first
    sums = [current.sum(dim=0)]
    for _ in range(2, modes + 1):
        previous, current = current, 2.0 * first * current - previous
        sums.append(current.sum(dim=0))
    return torch.stack(sums, dim=-1)


def mixed_null_stats(pooled: NullStats, batch: NullStats, share: float) -> NullStats:
    """``pooled``'s law with the per-batch ``rad`` from ``batch``; rad's correlations are ``batch``'s times ``share``."""
    mean, std, corr = pooled.mean.clone(), pooled.std.clone(), pooled.corr.clone()
    mean[_RAD], std[_RAD] = batch.mean[_RAD], batch.std[_RAD]
    corr[_RAD, :] = batch.corr[_RAD, :] * share
    corr[:, _RAD] = batch.corr[:, _RAD] * share
    corr[_RAD, _RAD] = 1.0
    return NullStats(mean=mean, std=std, corr=corr, samples=max(pooled.samples, batch.samples))


def wristband_feature_map(loss: object) -> WristbandFeatures | None:
    """The feature map of a :class:`~latentshape.WristbandLoss` (``ValueError`` for an unsupported
    configuration), else None."""
    return WristbandFeatures(loss) if isinstance(loss, WristbandLoss) else None


def _scaled_sums(spectral: SpectralSums, n: float) -> SpectralSums:
    return SpectralSums(*(part * n for part in spectral))


def _moment_from_means(mean: Tensor, second: Tensor, n: float, kind: str) -> Tensor:
    """The moment penalty of N(m, n/(n-1) (E - m m^T)) against N(0, I), as a 0-d float64 tensor."""
    second = 0.5 * (second + second.T)  # exact symmetry for the eigen-solvers of the penalties
    covariance = (second - torch.outer(mean, mean)) * (n / (n - 1.0))
    if kind == "mu_only":
        return gaussian_fit_penalty(mean, kind)
    if kind in _DIAGONAL_PENALTIES:
        return gaussian_fit_penalty(mean, kind, variance=covariance.diagonal())
    return gaussian_fit_penalty(mean, kind, covariance=covariance)
