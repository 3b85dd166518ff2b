r"""Source distributions for the benchmarks, and the registry that names them.

A *sampler* is a function ``(n, d, generator) -> Tensor`` of shape ``(n, d)``, float32 by default,
drawn on the CPU from ``generator``. Every built-in source is standardized: mean 0 and covariance
I (or, where the point of the source is a wrong covariance, mean 0 and trace d), so that
moment-based tests cannot tell most of them from N(0, I) by the first two moments alone.

===============  ===============================================================================
name             law
===============  ===============================================================================
``gaussian``     N(0, I): the null, every statistic should score ~N(0, 1) on it
``x``            uniform along both diagonals of a square; independent X's on coordinate pairs
``copula``       radial-angular copula impostor: u uniform on the sphere, t uniform, but
                 t = F(|u_1|) (exact marginals on the wristband, wrong joint law)
``mixture``      two Gaussian lobes at :math:`\pm 0.9\, e_1` with sd 0.436 along e_1 (cov I)
``student_t``    multivariate Student-t, 5 degrees of freedom, scaled to cov I (heavy radius)
``anisotropic``  N(0, diag(lambda)), lambda geometric from 4 to 1/4, rescaled to trace d
``ball``         uniform in the ball of radius :math:`\sqrt{d + 2}` (cov I)
``subspace``     N(0, (d/k) I_k) on the first k = ceil(d/2) coordinates, zero elsewhere (trace d)
===============  ===============================================================================

Register your own with :func:`register_distribution`; the protocols run every registered source.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from scipy import special
from torch import Tensor

__all__ = [
    "Sampler",
    "DISTRIBUTIONS",
    "register_distribution",
    "sample",
    "x_shape",
    "gaussian",
    "copula_impostor",
    "gaussian_mixture",
    "student_t",
    "anisotropic_gaussian",
    "uniform_ball",
    "subspace",
]

Sampler = Callable[[int, int, "torch.Generator | None"], Tensor]


def _check_shape(n: int, d: int) -> None:
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if int(d) != d or d < 1:
        raise ValueError(f"d must be a positive integer, got {d!r}")


def x_shape(
    n: int, d: int = 2, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    r"""The X shape: points uniform along both diagonals of a square, standardized.

    In 2-D, :math:`x = \sqrt{3}\,(t, s t)` with :math:`t \sim U[-1, 1]` and a fair sign s: each
    coordinate has mean 0 and variance 1 and the two are uncorrelated, so the mean is 0 and the
    covariance is I, yet the law is singular (supported on two lines). For d > 2, independent X's
    fill the coordinate pairs (0, 1), (2, 3), ...; an odd last coordinate is
    :math:`\sqrt{3}\, U[-1, 1]` (also standardized). Drawn on the CPU from ``generator``.

    >>> x = x_shape(4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> torch.allclose(x[:, 0].abs(), x[:, 1].abs())          # on the diagonals
    True
    >>> torch.cov(x.T).round(decimals=1).abs()
    tensor([[1., 0.],
            [0., 1.]], dtype=torch.float64)
    """
    _check_shape(n, d)
    along = (2.0 * torch.rand(n, d, generator=generator, dtype=torch.float64) - 1.0) * math.sqrt(3.0)
    pairs = d // 2
    if pairs:
        signs = torch.randint(0, 2, (n, pairs), generator=generator).to(torch.float64) * 2.0 - 1.0
        # The second coordinate of each pair is the first times the diagonal's sign.
        along[:, 1 : 2 * pairs : 2] = along[:, 0 : 2 * pairs : 2] * signs
    return along.to(dtype)


def gaussian(n: int, d: int, generator: torch.Generator | None = None) -> Tensor:
    """N(0, I) in R^d: the null source.

    >>> gaussian(3, 2, torch.Generator().manual_seed(0)).shape
    torch.Size([3, 2])
    """
    _check_shape(n, d)
    return torch.randn(n, d, generator=generator, dtype=torch.float64).float()


def copula_impostor(n: int, d: int, generator: torch.Generator | None = None) -> Tensor:
    r"""Radial-angular copula impostor: right wristband marginals, wrong joint law.

    With :math:`u` uniform on :math:`S^{d-1}`, :math:`t = F(|u_1|)` where F is the CDF of
    :math:`|u_1|` under uniformity (:math:`u_1^2 \sim \mathrm{Beta}(1/2, (d-1)/2)`), so t is
    exactly U[0, 1], and :math:`x = u\,\sqrt{F_{\chi^2_d}^{-1}(t)}`. The direction and the radius
    each have their N(0, I) law, but points far from the equator :math:`u_1 = 0` are far from the
    origin. The law is symmetric under every coordinate sign flip, so the mean is 0 and the
    covariance diagonal with trace d; the first coordinate has variance above 1, the others below.
    Needs d >= 2.

    >>> x = copula_impostor(20000, 3, torch.Generator().manual_seed(0)).double()
    >>> bool(x.mean(0).abs().max() < 0.05), round(float(torch.cov(x.T).trace()), 1)
    (True, 3.0)
    """
    _check_shape(n, d)
    if d < 2:
        raise ValueError(f"the copula impostor needs d >= 2 (a direction with a coordinate to depend on), got d = {d}")
    g = torch.randn(n, d, generator=generator, dtype=torch.float64)
    u = g / g.norm(dim=1, keepdim=True)
    first = u[:, 0].numpy()
    # P(|u_1| <= a) = P(u_1^2 <= a^2) with u_1^2 ~ Beta(1/2, (d-1)/2): the uniformizing transform.
    t = special.betainc(0.5, (d - 1) / 2.0, first * first)
    # Keep t strictly inside (0, 1) so the inverse chi-square CDF stays finite.
    t = np.clip(t, 1e-12, 1.0 - 1e-12)
    radius = np.sqrt(2.0 * special.gammaincinv(d / 2.0, t))
    return (u * torch.from_numpy(radius).unsqueeze(1)).float()


MIXTURE_OFFSET = 0.9


def gaussian_mixture(n: int, d: int, generator: torch.Generator | None = None) -> Tensor:
    r"""Two equal Gaussian lobes at :math:`\pm a\, e_1`, a = 0.9, sd :math:`\sqrt{1 - a^2}` along e_1.

    Mean 0 and covariance exactly I (the lobes' spread along e_1 makes up the variance). The
    lobes are opposite, so a statistic that only sees the mean direction (degree <= 1) misses them.

    >>> x = gaussian_mixture(20000, 2, torch.Generator().manual_seed(0)).double()
    >>> torch.cov(x.T).round(decimals=1).abs()
    tensor([[1., 0.],
            [0., 1.]], dtype=torch.float64)
    """
    _check_shape(n, d)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    side = torch.randint(0, 2, (n,), generator=generator).to(torch.float64) * 2.0 - 1.0
    x[:, 0] = MIXTURE_OFFSET * side + math.sqrt(1.0 - MIXTURE_OFFSET**2) * x[:, 0]
    return x.float()


STUDENT_DOF = 5.0


def student_t(n: int, d: int, generator: torch.Generator | None = None) -> Tensor:
    r"""Multivariate Student-t with :math:`\nu = 5`, scaled to covariance I: an elliptical law whose radius has heavy tails.

    :math:`x = \sqrt{(\nu - 2)/\nu}\; g / \sqrt{w/\nu}`, g ~ N(0, I), w ~ :math:`\chi^2_\nu`.

    >>> student_t(4, 3, torch.Generator().manual_seed(0)).shape
    torch.Size([4, 3])
    """
    _check_shape(n, d)
    g = torch.randn(n, d, generator=generator, dtype=torch.float64)
    w = torch.randn(n, int(STUDENT_DOF), generator=generator, dtype=torch.float64).square().sum(dim=1, keepdim=True)
    return (math.sqrt(STUDENT_DOF - 2.0) * g / w.sqrt()).float()


def anisotropic_gaussian(n: int, d: int, generator: torch.Generator | None = None) -> Tensor:
    """N(0, diag(lambda)) with lambda geometric from 4 down to 1/4, rescaled so that trace = d.

    A Gaussian with the wrong covariance: only second moments give it away.

    >>> x = anisotropic_gaussian(20000, 2, torch.Generator().manual_seed(0)).double()
    >>> round(float(torch.cov(x.T).trace()), 1)
    2.0
    """
    _check_shape(n, d)
    variances = torch.logspace(math.log10(4.0), math.log10(0.25), d, dtype=torch.float64) if d > 1 else torch.ones(1, dtype=torch.float64)
    variances = variances * (d / variances.sum())
    return (torch.randn(n, d, generator=generator, dtype=torch.float64) * variances.sqrt()).float()


def uniform_ball(n: int, d: int, generator: torch.Generator | None = None) -> Tensor:
    r"""Uniform in the ball of radius :math:`\sqrt{d + 2}`: each coordinate then has variance :math:`R^2/(d + 2) = 1`.

    >>> x = uniform_ball(2000, 4, torch.Generator().manual_seed(0))
    >>> bool(x.norm(dim=1).max() <= 6 ** 0.5)
    True
    """
    _check_shape(n, d)
    g = torch.randn(n, d, generator=generator, dtype=torch.float64)
    radius = torch.rand(n, 1, generator=generator, dtype=torch.float64) ** (1.0 / d) * math.sqrt(d + 2.0)
    return (g / g.norm(dim=1, keepdim=True) * radius).float()


def subspace(n: int, d: int, generator: torch.Generator | None = None) -> Tensor:
    """Data on a subspace: N(0, (d/k) I) on the first k = ceil(d/2) coordinates, zero elsewhere (trace d).

    >>> x = subspace(5, 4, torch.Generator().manual_seed(0))
    >>> bool((x[:, 2:] == 0).all())
    True
    """
    _check_shape(n, d)
    rank = (d + 1) // 2
    x = torch.zeros(n, d, dtype=torch.float64)
    x[:, :rank] = torch.randn(n, rank, generator=generator, dtype=torch.float64) * math.sqrt(d / rank)
    return x.float()


def _x_sampler(n: int, d: int, generator: torch.Generator | None = None) -> Tensor:
    return x_shape(n, d, generator)


DISTRIBUTIONS: dict[str, Sampler] = {
    "gaussian": gaussian,
    "x": _x_sampler,
    "copula": copula_impostor,
    "mixture": gaussian_mixture,
    "student_t": student_t,
    "anisotropic": anisotropic_gaussian,
    "ball": uniform_ball,
    "subspace": subspace,
}
"""Registered sources by name, in the order the reports list them."""


def register_distribution(name: str, sampler: Sampler, replace: bool = False) -> Sampler:
    """Add ``sampler`` ``(n, d, generator) -> (n, d)`` to :data:`DISTRIBUTIONS` under ``name``; returns it.

    The protocols then run it like the built-in sources. Standardize it (mean 0, covariance I)
    if it should test shape rather than scale. Pass ``replace=True`` to overwrite a name.

    >>> _ = register_distribution("cube", lambda n, d, g: (torch.rand(n, d, generator=g) - 0.5) * 12 ** 0.5)
    >>> sample("cube", 3, 2, seed=0).shape
    torch.Size([3, 2])
    >>> del DISTRIBUTIONS["cube"]
    """
    check_registration(DISTRIBUTIONS, "distribution", name, sampler, "sampler", "(n, d, generator) -> (n, d)", replace)
    DISTRIBUTIONS[name] = sampler
    return sampler


def sample(name: str, n: int, d: int, seed: int = 0) -> Tensor:
    """``n`` float32 points in R^d from the registered source ``name``, from a generator seeded with ``seed``.

    >>> torch.equal(sample("x", 4, 2, seed=1), sample("x", 4, 2, seed=1))
    True
    """
    if name not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {name!r}; registered: {', '.join(DISTRIBUTIONS)}")
    x = DISTRIBUTIONS[name](n, d, torch.Generator().manual_seed(seed))
    if not isinstance(x, Tensor) or tuple(x.shape) != (n, d):
        raise ValueError(f"sampler {name!r} returned {getattr(x, 'shape', type(x).__name__)}, expected ({n}, {d})")
    return x.to(torch.float32)


def check_registration(registry: dict, kind: str, name: str, function, role: str, signature: str, replace: bool) -> None:
    """Validate a new entry of a benchmark registry (a name, a callable, no silent overwrite)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a {kind} needs a non-empty string name, got {name!r}")
    if not callable(function):
        raise ValueError(f"{role} must be callable {signature}, got {type(function).__name__}")
    if name in registry and not replace:
        raise ValueError(f"{kind} {name!r} is already registered; pass replace=True to overwrite it")
