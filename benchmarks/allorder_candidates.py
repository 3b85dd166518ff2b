"""Candidate wristband statistics for the all-order design, as differentiable prototypes.

A :class:`Spec` names one candidate: an angular kernel (the mean of exp(c (u.u' - 1)) over
``scales``; Mercer weights add), a radial sharpness ``beta``, and how the energy is evaluated:

- exact pairwise (three-image radial kernel, the library's ``method="pairwise"``);
- ``degree=L``: the kernel truncated at angular degree L with K = 6 radial cosine modes, i.e. the
  value a spectral path of degree L computes (here evaluated in Gram form, for measurement only);
- ``block=B``: degrees <= 2 (spectral, K = 6) on the whole batch plus the residual kernel
  (degrees >= 3, three images) on consecutive blocks of B points: O(N B d);
- ``features=M``: random Fourier features of the angular kernel (fixed seed) times the K = 6
  radial modes, over the whole batch: O(N M d);
- ``drop_radial``: rep without the kernel's pure-radial channel (angular degree 0 times radial
  modes k >= 1, i.e. lambda_0 sum_k a_k (mean_i cos(k pi t_i))^2), which the ``rad`` term covers
  and which holds most of the energy's null variance at large d;
- ``second=scales``: a second rep component with its own kernel (exact pairwise, or with
  ``second_block`` the block hybrid), z-scored separately: scales combined at the z level;
- ``coord=w``: an extra per-coordinate component, the radial term's 1-D transport applied to each
  coordinate against N(0, 1), averaged over coordinates, with weight w.

Every candidate returns raw components (rep, rad, mom[, coord]); the total is their calibrated
combination with weights (1, 0.1, 1[, w]), standardized by a Monte-Carlo null (fixed seed) at the
batch's (N, d), like ``WristbandLoss``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from latentshape.calibration import NullStats
from latentshape.gaussian.moment_penalties import moment_penalty
from latentshape.wristband.harmonics import mercer_coefficients, zonal_dimension
from latentshape.wristband.map import wristband_map
from latentshape.wristband.radial import radial_distance
from latentshape.wristband.mercer import radial_coefficients

K_MODES = 6


@dataclass(frozen=True)
class Spec:
    name: str
    scales: tuple[float, ...] = (4.0 / 3.0,)
    beta: float = 8.0
    degree: int | None = None
    block: int | None = None
    features: int | None = None
    coord: float = 0.0
    coord_kind: str = "transport"  # or "neyman_sq"
    drop_radial: bool = False  # remove the kernel's pure-radial channel (degree 0 x modes k >= 1) from rep
    lambda_rad: float = 0.1
    second: tuple[float, ...] = ()  # a second rep component: the exact all-degree energy of these scales
    second_block: int | None = None  # ... on blocks (degrees <= 2 on the whole batch + residual on blocks)

    @property
    def weights(self) -> tuple[float, ...]:
        head = (1.0, 1.0) if self.second else (1.0,)
        return head + (self.lambda_rad, 1.0) + ((self.coord,) if self.coord > 0 else ())


def coordinate_neyman_squared(x: Tensor, modes: int = 4) -> Tensor:
    """Mean over coordinates of Q_j^2, Q_j = sum_{k <= 4} (mean_i cos(k pi Phi(x_ij)))^2 (a Neyman smooth statistic)."""
    t = torch.special.ndtr(x)
    k = torch.arange(1, modes + 1, dtype=x.dtype, device=x.device)
    c = torch.cos(math.pi * t[..., None] * k).mean(dim=-3)  # (d, K)
    return ((c * c).sum(-1) ** 2).mean(-1)


def coordinate_distance(x: Tensor) -> Tensor:
    """Mean over coordinates of the radial term's 1-D transport of each coordinate to N(0, 1)."""
    n = x.shape[-2]
    s, _ = torch.sort(x, dim=-2)
    q = (torch.arange(n, dtype=x.dtype, device=x.device) + 0.5) / n
    uniform = 12.0 * ((torch.special.ndtr(s) - q[:, None]) ** 2).mean(dim=-2)
    gaussian = ((s - torch.special.ndtri(q)[:, None]) ** 2).mean(dim=-2)
    return (0.5 * (uniform + gaussian)).mean(dim=-1)


class Batch:
    """Shared per-batch quantities (map, Gram, kernels per scale) for evaluating many specs."""

    def __init__(self, x: Tensor) -> None:
        self.x = x
        self.u, t, self.score = wristband_map(x)
        self.t = t.to(x.dtype)
        self.n, self.d = x.shape
        self._cache: dict = {}

    def memo(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def gram(self) -> Tensor:
        return self.memo("gram", lambda: self.u @ self.u.T)

    def images(self, beta: float) -> Tensor:
        def make():
            a, b = self.t[:, None], self.t[None, :]
            return sum(torch.exp(-beta * g * g) for g in (a - b, a + b, a + b - 2.0))
        return self.memo(("images", beta), make)

    def cosines(self, beta: float) -> Tensor:
        """Spectral radial kernel sum_k a_k cos(k pi t) cos(k pi t') (K = 6), as an N x N matrix."""
        def make():
            a = torch.tensor(radial_coefficients(beta, K_MODES), dtype=self.x.dtype)
            w = torch.cos(self.t[:, None] * math.pi * torch.arange(K_MODES + 1, dtype=self.x.dtype))
            return (w * a) @ w.T
        return self.memo(("cosines", beta), make)

    def angular(self, scales) -> Tensor:
        return self.memo(("angular", scales), lambda: sum(torch.exp(c * (self.gram - 1.0)) for c in scales) / len(scales))

    def truncated(self, scales, degree: int) -> Tensor:
        def make():
            lam = [sum(mercer_coefficients(self.d, degree, c)[l] for c in scales) / len(scales) for l in range(degree + 1)]
            g = self.gram.clamp(-1.0, 1.0)
            previous, current = torch.ones_like(g), g
            total = lam[0] * previous + (lam[1] * zonal_dimension(self.d, 1) * current if degree >= 1 else 0.0)
            for level in range(1, degree):  # Legendre recurrence of S^{d-1}
                previous, current = current, ((2 * level + self.d - 2) * g * current - level * previous) / (level + self.d - 2)
                total = total + lam[level + 1] * zonal_dimension(self.d, level + 1) * current
            return total
        return self.memo(("truncated", scales, degree), make)


def _energy(spec: Spec, batch: Batch) -> Tensor:
    if spec.features is not None:
        return _feature_energy(spec, batch)
    if spec.degree is not None:
        return _mean64(batch.truncated(spec.scales, spec.degree) * batch.cosines(spec.beta))
    if spec.block is None or spec.block >= batch.n:
        return _mean64(batch.angular(spec.scales) * batch.images(spec.beta))
    low = _mean64(batch.truncated(spec.scales, 2) * batch.cosines(spec.beta))
    blocks = batch.n // spec.block
    rows = blocks * spec.block
    residual = (batch.angular(spec.scales) - batch.truncated(spec.scales, 2)) * batch.images(spec.beta)
    block_sums = residual[:rows, :rows].reshape(blocks, spec.block, blocks, spec.block).diagonal(dim1=0, dim2=2)
    return low + block_sums.sum(dim=(0, 1), dtype=torch.float64).mean() / spec.block**2


def _mean64(values: Tensor) -> Tensor:
    return values.sum(dtype=torch.float64) / values.numel()


@functools.lru_cache(maxsize=64)
def _frequencies(d: int, scales: tuple[float, ...], features: int, dtype) -> Tensor:
    g = torch.Generator().manual_seed(2024)
    per_scale = [math.sqrt(c) * torch.randn(features, d, generator=g, dtype=torch.float64) for c in scales]
    return torch.cat(per_scale).to(dtype)


def _feature_energy(spec: Spec, batch: Batch) -> Tensor:
    """exp(c(u.u' - 1)) = E cos(w.(u - u')), w ~ N(0, c I): random Fourier features, mean over scales."""
    omega = _frequencies(batch.d, spec.scales, spec.features, batch.x.dtype)
    phase = batch.u @ omega.T  # (N, S M)
    a = torch.tensor(radial_coefficients(spec.beta, K_MODES), dtype=batch.x.dtype)
    w = torch.cos(batch.t[:, None] * math.pi * torch.arange(K_MODES + 1, dtype=batch.x.dtype))
    count = omega.shape[0]
    cos_sums = torch.cos(phase).T @ w / batch.n  # (S M, K + 1)
    sin_sums = torch.sin(phase).T @ w / batch.n
    return ((cos_sums**2 + sin_sums**2) * a).sum(dtype=torch.float64) / count


def _radial_channel(spec: Spec, batch: Batch) -> Tensor:
    lam0 = sum(mercer_coefficients(batch.d, 0, c)[0] for c in spec.scales) / len(spec.scales)
    a = torch.tensor(radial_coefficients(spec.beta, K_MODES)[1:], dtype=torch.float64)
    w = torch.cos(batch.t[:, None].to(torch.float64) * math.pi * torch.arange(1, K_MODES + 1, dtype=torch.float64))
    return lam0 * (a * w.mean(dim=0) ** 2).sum()


def raw_components(spec: Spec, batch: Batch) -> Tensor:
    """(rep, rad, mom[, coord]) of one batch, float64."""
    energy = _energy(spec, batch).to(torch.float64)
    if spec.drop_radial:
        energy = energy - _radial_channel(spec, batch)
    rep = torch.log(energy) / spec.beta
    rad = radial_distance(batch.t.to(torch.float64), batch.score)
    mom = batch.memo("mom", lambda: moment_penalty(batch.x, "w2").to(torch.float64))
    parts = [rep, rad, mom]
    if spec.second:
        other = Spec("second", spec.second, beta=spec.beta, block=spec.second_block)
        parts.insert(1, torch.log(_energy(other, batch).to(torch.float64)) / spec.beta)
    if spec.coord > 0:
        make = coordinate_distance if spec.coord_kind == "transport" else coordinate_neyman_squared
        parts.append(batch.memo(("coord", spec.coord_kind), lambda: make(batch.x).to(torch.float64)))
    return torch.stack(parts)


_NULLS: dict = {}


def null_stats(specs, n: int, d: int, samples: int, seed: int = 777, dtype=torch.float64) -> dict[str, NullStats]:
    """Monte-Carlo null of every spec's raw components at (n, d) from shared null batches (cached)."""
    missing = [s for s in specs if (s, n, d, samples, seed) not in _NULLS]
    if missing:
        generator = torch.Generator().manual_seed(seed + 31 * n + d)
        draws = {s: [] for s in missing}
        with torch.no_grad():
            for _ in range(samples):
                batch = Batch(torch.randn(n, d, generator=generator, dtype=dtype))
                for s in missing:
                    draws[s].append(raw_components(s, batch))
        for s in missing:
            _NULLS[(s, n, d, samples, seed)] = NullStats.from_samples(torch.stack(draws[s]))
    return {s.name: _NULLS[(s, n, d, samples, seed)] for s in specs}


def calibrated_total(raw: Tensor, stats: NullStats, spec: Spec) -> Tensor:
    w = torch.tensor(spec.weights, dtype=torch.float64)
    return (stats.standardize(raw.to(torch.float64)) * w).sum() / stats.combined_std(w)
