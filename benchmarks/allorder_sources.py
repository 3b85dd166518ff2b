"""Non-Gaussian sources for the all-order design measurements: a tuning suite and a held-out suite.

Every source has mean 0 and covariance I (exactly, in law), so the first two moments cannot tell
it from N(0, I); the held-out suite has sources of the same kinds with other parameters (pole
sets, concentrations, lobe counts, which coordinate, rotated axes). A sampler is
``(n, d, generator) -> (n, d)`` float32, like ``latentshape.bench.distributions``.

- ``poles``: directions u = normalize(p + s g / sqrt(d)) around P poles p, radius chi_d independent
  of u (so the radial law is exactly N(0, I)'s). The poles form a tight frame with zero mean, so
  E[u] = 0 and E[u u^T] = I / d exactly: the d + 1 vertices of a regular simplex (the "neural
  collapse" geometry of a classifier's class means; degree 3 is its first visible harmonic) or
  the 2d vertices +-q_j of a cross-polytope (degree 4), in a random rotation.
- ``lobes``: a Gaussian mixture with means m_k and within-lobe covariance I - Cov(m), so the
  total covariance is I.
- one non-Gaussian coordinate (bimodal, uniform), others N(0, 1); the X (``latentshape.bench``'s
  ``x``), the "plus" (the X turned by 45 degrees, uniform along the axes) and the "asterisk"
  (three lines); Student-t; a cube. Turned variants (plus, uniform_turned, cube_turned) are
  rotations of suite-A sources: the same for rotation-invariant statistics, not for
  per-coordinate ones.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

from latentshape.bench.distributions import x_shape

__all__ = ["SUITE_A", "SUITE_B", "rotation"]


def rotation(d: int, seed: int) -> torch.Tensor:
    """A fixed random orthogonal d x d matrix (float64)."""
    g = torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    return q * torch.sign(torch.diagonal(r))


def simplex_poles(d: int) -> torch.Tensor:
    """d + 1 unit vectors of a regular simplex centred at 0 (rows), float64."""
    e = torch.eye(d + 1, dtype=torch.float64) - 1.0 / (d + 1)
    basis = torch.linalg.svd(e, full_matrices=False)[2][:d]  # an orthonormal basis of the sum-zero plane
    vertices = e @ basis.T
    return vertices / vertices.norm(dim=1, keepdim=True)


def cross_poles(d: int) -> torch.Tensor:
    eye = torch.eye(d, dtype=torch.float64)
    return torch.cat([eye, -eye])


def _poles(n, d, generator, poles: torch.Tensor, spread: float) -> torch.Tensor:
    pick = torch.randint(0, poles.shape[0], (n,), generator=generator)
    u = poles[pick] + spread / math.sqrt(d) * torch.randn(n, d, generator=generator, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    radius = torch.randn(n, d, generator=generator, dtype=torch.float64).norm(dim=1, keepdim=True)
    return u * radius


def poles_simplex(n, d, generator=None, spread: float = 1.0):
    """Directions around the d + 1 simplex poles (randomly rotated), spread s = 1."""
    return (_poles(n, d, generator, simplex_poles(d) @ rotation(d, 11).T, spread)).float()


def poles_cross(n, d, generator=None, spread: float = 0.7):
    """Directions around the 2d poles +-q_j of a rotated cross-polytope, spread s = 0.7."""
    return (_poles(n, d, generator, cross_poles(d) @ rotation(d, 12).T, spread)).float()


def _lobes(n, d, generator, means: torch.Tensor) -> torch.Tensor:
    """Equal-weight mixture with these means (mean zero) and within-lobe covariance I - Cov(means)."""
    spread = means.T @ means / means.shape[0]
    root = torch.linalg.cholesky(torch.eye(d, dtype=torch.float64) - spread)
    pick = torch.randint(0, means.shape[0], (n,), generator=generator)
    return means[pick] + torch.randn(n, d, generator=generator, dtype=torch.float64) @ root.T


def lobes_cross(n, d, generator=None, offset: float = 1.2):
    """Four lobes at +-a e_1, +-a e_2 (a = 1.2; within-lobe sd 0.53 in that plane)."""
    means = torch.zeros(4, d, dtype=torch.float64)
    means[0, 0], means[1, 0] = offset, -offset
    if d > 1:
        means[2, 1], means[3, 1] = offset, -offset
    else:
        means[2, 0], means[3, 0] = offset, -offset
    return _lobes(n, d, generator, means).float()


def lobes_triangle(n, d, generator=None, offset: float = 1.25):
    """Three lobes at the vertices of a triangle (radius a = 1.25) in the plane of the last two coordinates."""
    means = torch.zeros(3, d, dtype=torch.float64)
    angles = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=torch.float64)
    if d == 1:
        raise ValueError("lobes_triangle needs d >= 2")
    means[:, d - 2], means[:, d - 1] = offset * torch.cos(angles), offset * torch.sin(angles)
    return _lobes(n, d, generator, means).float()


def _one_coordinate(n, d, generator, values: torch.Tensor, index: int, turn: torch.Tensor | None = None):
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    x[:, index] = values
    return (x @ turn.T if turn is not None else x).float()


def bimodal_coordinate(n, d, generator=None):
    """Coordinate 0 = +-0.8 + 0.6 g (symmetric, variance 1)."""
    side = torch.randint(0, 2, (n,), generator=generator).double() * 2 - 1
    values = 0.8 * side + 0.6 * torch.randn(n, generator=generator, dtype=torch.float64)
    return _one_coordinate(n, d, generator, values, 0)


def bimodal_skewed_coordinate(n, d, generator=None):
    """Last coordinate: weights 1/4, 3/4 at -1.5 and +0.5, within sd 0.5 (mean 0, variance 1, skewed)."""
    left = torch.rand(n, generator=generator, dtype=torch.float64) < 0.25
    values = torch.where(left, -1.5, 0.5) + 0.5 * torch.randn(n, generator=generator, dtype=torch.float64)
    return _one_coordinate(n, d, generator, values, d - 1)


def uniform_coordinate(n, d, generator=None):
    """Coordinate 0 uniform on [-sqrt 3, sqrt 3]."""
    values = (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1) * math.sqrt(3.0)
    return _one_coordinate(n, d, generator, values, 0)


def uniform_turned(n, d, generator=None):
    """Uniform along one random unit direction (the uniform coordinate, rotated off the axes)."""
    values = (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1) * math.sqrt(3.0)
    return _one_coordinate(n, d, generator, values, 0, rotation(d, 13))


def x_cloud(n, d, generator=None):
    """The X: uniform along both diagonals of each coordinate pair (``latentshape.bench``'s ``x``)."""
    return x_shape(n, d, generator)


def plus_cloud(n, d, generator=None):
    """The plus: the X turned by 45 degrees in every coordinate pair (uniform along the axes, cov I)."""
    x = x_shape(n, d, generator, dtype=torch.float64)
    pairs = d // 2
    if pairs:
        a, b = x[:, 0 : 2 * pairs : 2].clone(), x[:, 1 : 2 * pairs : 2].clone()
        x[:, 0 : 2 * pairs : 2], x[:, 1 : 2 * pairs : 2] = (a + b) / math.sqrt(2), (a - b) / math.sqrt(2)
    return x.float()


def asterisk_cloud(n, d, generator=None):
    """Three lines at 0, 60 and 120 degrees through the origin in every coordinate pair, uniform along each
    (s ~ sqrt(6) U[-1, 1]: covariance I); an odd last coordinate is sqrt(3) U[-1, 1]. Its first
    visible angular degree is 6 (the X's and the plus's is 4)."""
    x = (2 * torch.rand(n, d, generator=generator, dtype=torch.float64) - 1) * math.sqrt(3.0)
    pairs = d // 2
    if pairs:
        s = (2 * torch.rand(n, pairs, generator=generator, dtype=torch.float64) - 1) * math.sqrt(6.0)
        angle = torch.randint(0, 3, (n, pairs), generator=generator).double() * math.pi / 3
        x[:, 0 : 2 * pairs : 2], x[:, 1 : 2 * pairs : 2] = s * torch.cos(angle), s * torch.sin(angle)
    return x.float()


def _student(n, d, generator, dof: float):
    g = torch.randn(n, d, generator=generator, dtype=torch.float64)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    w = torch.from_numpy(stats.chi2.rvs(dof, size=(n, 1), random_state=np.random.default_rng(seed)))
    return (math.sqrt(dof - 2.0) * g / w.sqrt()).float()


def student_5(n, d, generator=None):
    return _student(n, d, generator, 5.0)


def student_8(n, d, generator=None):
    return _student(n, d, generator, 8.0)


def cube(n, d, generator=None):
    """Uniform on [-sqrt 3, sqrt 3]^d."""
    return ((2 * torch.rand(n, d, generator=generator, dtype=torch.float64) - 1) * math.sqrt(3.0)).float()


def cube_turned(n, d, generator=None):
    """The cube in a random rotation (its coordinates are near-Gaussian at large d)."""
    x = (2 * torch.rand(n, d, generator=generator, dtype=torch.float64) - 1) * math.sqrt(3.0)
    return (x @ rotation(d, 14).T).float()


SUITE_A = {
    "poles_simplex": poles_simplex,
    "lobes_cross": lobes_cross,
    "bimodal_coord": bimodal_coordinate,
    "uniform_coord": uniform_coordinate,
    "x": x_cloud,
    "student_5": student_5,
    "cube": cube,
}
"""The tuning suite."""

SUITE_B = {
    "poles_cross": poles_cross,
    "lobes_triangle": lobes_triangle,
    "bimodal_skewed": bimodal_skewed_coordinate,
    "uniform_turned": uniform_turned,
    "plus": plus_cloud,
    "asterisk": asterisk_cloud,
    "student_8": student_8,
    "cube_turned": cube_turned,
}
"""The held-out suite: the same kinds, other parameters."""
