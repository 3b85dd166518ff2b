r"""Null covariances of the per-coordinate term with the other wristband components (leading order in 1/N).

The per-coordinate term is :math:`\mathrm{coord} = \frac1d\sum_j Q_j^2`,
:math:`Q_j = |g_j|^2`, :math:`g_{jk} = \sqrt{2/N}\sum_i \varphi_k(x_{ij})`,
:math:`\varphi_k(x) = \cos(k\pi\Phi(x))`, k = 1..K (:mod:`~latentshape.wristband.coordinates`).
Under x ~ N(0, I_d) every coordinate gives the same covariance, so Cov(coord, S) = Cov(Q_j^2, S).

**Degenerate V-statistics** :math:`V = \sum_{a,b} w_{ab}\, h(x_a, x_b)` with
:math:`E[h(x, y) \mid x]` constant (energies, the angular mean, the radial transport's quantile
process). Counting the index patterns of :math:`Q_j^2` (a sum over four points) that meet a pair
(a, b), a != b, the leading term is

.. math::
    \mathrm{Cov}(Q_j^2, h(x_a, x_b)) = \frac{8(K+2)}{N}\sum_{k=1}^{K} G_k, \qquad
    G_k = E_{x,y}[\varphi_k(x_j)\, h(x, y)\, \varphi_k(y_j)],

the Isserlis value :math:`\mathrm{Cov}(|g|^4, y^\top A y) = 4(K+2)\,\mathrm{tr}(A C^\top C)` of the
Gaussian limit. A diagonal term :math:`h(x_a, x_a)` (weight 1/N^2 on all pairs, but 1/P on blocks
with :math:`P = \sum_b n_b^2`, where it is not negligible) meets :math:`Q_j^2` as

.. math::
    \mathrm{Cov}(Q_j^2, h(x_a, x_a)) = \frac4N\Big[\frac{K+2}{2}\sum_{k=1}^{K} E[h_{aa}\varphi_{2k}]
    + \sum_{k=1}^{\lfloor K/2 \rfloor} E[h_{aa}\varphi_{2k}]\Big].

**Kernels.** With :math:`h = r(t, t')\,k(u \cdot u')`,
:math:`r = \sum_{k'} a_{k'}\cos(k'\pi t)\cos(k'\pi t')`, :math:`k = \sum_l \lambda_l Z_l`, the
addition theorem and Funk-Hecke (the feature is zonal about :math:`e_j`) give

.. math::
    G_k = \sum_{k'} a_{k'} \sum_l \lambda_l Z_l(1)\, \mu_{k k' l}^2, \qquad
    \mu_{k k' l} = E[\cos(k\pi\Phi(r s))\cos(k'\pi t(r)) P_l(s)],

r ~ chi_d, :math:`s = u_j` (density :math:`\propto (1-s^2)^{(d-3)/2}`), :math:`P_l = Z_l/Z_l(1)`.
Parity (:math:`\Phi(-x) = 1 - \Phi(x)`): :math:`\mu_{kk'l} = 0` unless k + l is even. The sharp
all-degree energy uses its Mercer coefficients of every degree; its residual (degrees >= 3) on
blocks carries the pair share (P - N)/P and its diagonal the weight N/P. The radial transport is
:math:`\frac12\int_0^1 (F_N(s) - s)^2\,\omega(s)\,ds`, :math:`\omega = 12 + 1/\varphi(\Phi^{-1}(s))^2`,
so :math:`G_k = \frac12\int \omega(s)\, E[\varphi_k(x_j) 1\{t \le s\}]^2 ds` (no diagonal: it is
not integrable).

**Moment penalty** (w2): :math:`E[\mathrm{mom} \mid x_{\cdot j}] = (\mu_j^2 + \psi(S_{jj}))/d + c`
(the other columns are rotation invariant), :math:`\psi(\sigma) \approx \psi_1(\sigma - 1) +
(\sigma - 1)^2/4`, :math:`\psi_1 = 1 - E[\tfrac1d\operatorname{tr} S^{1/2}]` (Marchenko-Pastur at
:math:`\gamma = d/(N-1)`; scale column j to see it), so the features x and :math:`x^2 - 1` of
coordinate j carry the whole covariance.

References: J. Neyman (1937), smooth test; L. Isserlis, Biometrika 12 (1918); Atkinson & Han,
*Spherical Harmonics and Approximations on the Unit Sphere* (2012), ch. 2; V. A. Marchenko and
L. A. Pastur, Math. USSR Sb. 1 (1967).

>>> cov = coordinate_null_covariances(1024, 16)
>>> sorted(cov)
['A', 'E', 'S', 'mom', 'rad']
>>> all(v > 0 for v in cov.values())
True
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special

from .blocks import block_sizes, low_degree_coefficients
from .blocks_null import residual_kernel_sums
from .chi_quantiles import chi_square_quantiles
from .harmonics import degree_for_share, legendre_table, log_zonal_dimensions, mercer_coefficients
from .mercer import radial_coefficients, zonal_at_one

__all__ = ["coordinate_feature_moments", "coordinate_null_covariances", "marchenko_pastur_root_mean"]

_Z_LIMIT, _Z_NODES = 10.0, 201  # t = Phi(z): the trapezoid is spectrally accurate here (rad: cumulative, ~1e-3)
_SHARE = 1.0 - 1e-13  # Mercer series of the sharp kernel kept to this share of its trace


# the rules of the usual grid sizes, built once at import (~1 ms) rather than at every new width
_GAUSS_LEGENDRE = {nodes: special.roots_legendre(nodes) for nodes in (96, 160)}


def _direction_grid(d: int, nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes s = u_j and weights (sum 1) for a uniform direction: Gauss-Legendre in the angle theta."""
    if d == 1:
        return np.array([-1.0, 1.0]), np.array([0.5, 0.5])
    half = min(math.pi / 2.0, 14.0 / math.sqrt(d))  # beyond, sin^(d-2) weighs < 1e-40
    t, w = _GAUSS_LEGENDRE[nodes] if nodes in _GAUSS_LEGENDRE else special.roots_legendre(nodes)
    theta = math.pi / 2.0 + half * t
    log_weight = np.log(w) + ((d - 2) * np.log(np.sin(theta)) if d > 2 else 0.0)
    weight = np.exp(log_weight - log_weight.max())
    return np.cos(theta), weight / weight.sum()


def _legendre(max_level: int, d: int, s: np.ndarray) -> np.ndarray:
    if d == 1:  # S^0: only degrees 0 and 1
        table = np.zeros((max_level + 1,) + s.shape)
        table[0] = 1.0
        if max_level >= 1:
            table[1] = s
        return table
    return legendre_table(max_level, d, s)


@functools.lru_cache(maxsize=128)
def coordinate_feature_moments(d: int, modes: int, k_modes: int, max_level: int) -> dict[str, np.ndarray]:
    r"""Integrals of one coordinate's features against the wristband's features under x ~ N(0, I_d), cached per d.

    ``mu[k-1, k', l]`` = :math:`E[\cos(k\pi\Phi(x_j))\cos(k'\pi t) P_l(u_j)]` (k = 1..K, k' = 0..``k_modes``,
    l = 0..``max_level``); ``diagonal[m-1, k']`` = :math:`E[\cos(m\pi\Phi(x_j))\cos(k'\pi t)]`
    (m = 1..2K, k' = 0..2 ``k_modes``); ``radial[k-1]`` the radial transport's :math:`G_k`;
    ``linear``/``quadratic`` :math:`E[\varphi_k x]`, :math:`E[\varphi_k (x^2 - 1)]`;
    ``square[m-1]`` :math:`E[x^2 \varphi_m]`.

    >>> m = coordinate_feature_moments(3, 4, 6, 4)
    >>> bool(abs(m["mu"][0, :, 0]).max() < 1e-12 and abs(m["mu"][1, :, 1]).max() < 1e-12)   # parity zeros
    True
    """
    z = np.linspace(-_Z_LIMIT, _Z_LIMIT, _Z_NODES)
    step = z[1] - z[0]
    trapezoid = np.full(_Z_NODES, step)
    trapezoid[[0, -1]] = step / 2.0
    density = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    t = special.ndtr(z)
    r = np.sqrt(chi_square_quantiles(d, z, stride=1))  # a coarse grid: every node inverted
    s, ws = _direction_grid(d, max(96 if d <= 16 else 160, max_level + 48))  # converged to ~1e-7 / 1e-4
    # the grid is symmetric (s_i = -s_{n-1-i}) and phi_m(-x) = (-1)^m phi_m(x), P_l(-s) = (-1)^l P_l(s):
    # an s-integral is twice its half over s > 0 (the centre node, if any, at half weight), or 0
    half = (s.size + 1) // 2
    s, ws = s[:half], ws[:half] * np.where(np.arange(half) == s.size // 2, 0.5, 1.0)  # an odd grid's centre
    coordinate = special.ndtr(r[:, None] * s[None, :])  # Phi(x_j) on the (z, s > 0) grid
    m = np.arange(1, 2 * modes + 1)
    features = np.empty((2 * modes,) + coordinate.shape)  # cos(m pi Phi(x_j)), m = 1..2K, by Chebyshev's recurrence
    np.cos(np.multiply(coordinate, math.pi, out=features[0]), out=features[0])
    features[1] = 2.0 * features[0] * features[0] - 1.0
    for index in range(2, 2 * modes):  # in place: T_{m+1} = 2 T_1 T_m - T_{m-1}
        np.multiply(features[0], features[index - 1], out=features[index])
        features[index] *= 2.0
        features[index] -= features[index - 2]
    legendre = _legendre(max_level, d, s)  # (L + 1, s)
    radial = np.cos(math.pi * np.arange(2 * k_modes + 1)[:, None] * t[None, :])  # (2K' + 1, z)
    wz = trapezoid * density
    parity = 1.0 + (-1.0) ** (m[:, None] + np.arange(max_level + 1)[None, :])  # 2 where m + l is even, else 0
    # einsum, not @: these products are small, and a multi-threaded BLAS call on a busy machine costs
    # 10-20x a single-threaded loop; the z sum first (the smaller intermediate), two operands each
    per_mode = np.einsum("pz,kzs->kps", radial[: k_modes + 1] * wz, features[:modes])  # E_t[cos(k' pi t) phi_k] per s
    mu = np.einsum("kps,ls->kpl", per_mode * ws, legendre) * parity[:modes, None, :]  # (K, K' + 1, L + 1)
    angular_mean = np.einsum("mzs,s->mz", features, ws) * parity[:, :1]  # (2K, z): E_s[phi_m]
    diagonal = np.einsum("mz,pz->mp", angular_mean * wz, radial)
    # E[phi_k 1{t <= s}] at s = Phi(zeta): a cumulative integral, taken from the nearer tail
    pieces = angular_mean[:modes] * wz
    below = np.cumsum(pieces, axis=1) - 0.5 * pieces
    above = np.cumsum(pieces[:, ::-1], axis=1)[:, ::-1] - 0.5 * pieces
    partial = np.where(z < 0, below, -above)
    omega = (12.0 * density + 1.0 / density) * trapezoid  # omega(s) ds with s = Phi(zeta)
    x = z
    phi_x = np.cos(math.pi * m[:, None] * t[None, :])  # phi_m(x), x ~ N(0, 1) on the z grid
    return {
        "mu": mu,
        "diagonal": diagonal,
        "radial": 0.5 * (partial**2 * omega).sum(axis=1),
        "linear": phi_x[:modes] @ (wz * x),
        "quadratic": phi_x[:modes] @ (wz * (x * x - 1.0)),
        "square": phi_x @ (wz * x * x),
    }


def _diagonal_factor(values: np.ndarray, modes: int) -> float:
    r"""N/4 Cov(Q^2, f(x_a)) from :math:`E[f\varphi_m]`, m = 1..2K (``values[m-1]``)."""
    even = values[1::2]  # m = 2, 4, ..., 2K
    return (modes + 2) / 2.0 * float(even[:modes].sum()) + float(even[: modes // 2].sum())


def _energy_terms(moments: dict, d: int, radial: tuple[float, ...], lam: np.ndarray, levels: slice):
    """(sum_k G_k, diagonal factor / T) of the energy with angular coefficients ``lam`` on ``levels``."""
    mu = moments["mu"][:, : len(radial), levels]
    log_dim = log_zonal_dimensions(d, moments["mu"].shape[2] - 1)[levels]
    with np.errstate(divide="ignore"):
        weight = np.where(lam[levels] > 0, np.exp(np.log(np.maximum(lam[levels], 1e-300)) + log_dim), 0.0)
    overlap = float(np.einsum("kpl,p,l->", mu * mu, np.asarray(radial), weight))
    # h(a, a) = T r(t, t), cos^2 = (1 + cos 2x) / 2: E[r(t,t) phi_m] = sum_k' a_k' / 2 E[phi_m cos(2k' pi t)]
    self_term = moments["diagonal"][:, 2 * np.arange(1, len(radial))] @ (np.asarray(radial[1:]) / 2.0)
    return overlap, self_term


_ANGLE_RULE = ((special.roots_legendre(64)[0] + 1.0) * math.pi / 2.0, special.roots_legendre(64)[1])


def marchenko_pastur_root_mean(ratio: float) -> float:
    r""":math:`\int \sqrt{\lambda}\, dF_\gamma(\lambda)` under the Marchenko-Pastur law of ratio :math:`\gamma`
    (mass :math:`1 - 1/\gamma` at 0 when :math:`\gamma > 1`): the limit of :math:`\frac1d\operatorname{tr} S^{1/2}`.

    >>> round(marchenko_pastur_root_mean(1e-4), 6), round(1 - marchenko_pastur_root_mean(0.01), 5)   # ~ 1 - gamma/8
    (1.0, 0.00125)
    """
    if ratio <= 0:
        return 1.0
    low, high = (1.0 - math.sqrt(ratio)) ** 2, (1.0 + math.sqrt(ratio)) ** 2
    theta, w = _ANGLE_RULE
    eig = (low + high) / 2.0 + (high - low) / 2.0 * np.cos(theta)
    density = ((high - low) / 2.0) ** 2 * np.sin(theta) ** 2 / (2.0 * math.pi * ratio * eig)
    return float((w * math.pi / 2.0 * density * np.sqrt(eig)).sum())


@functools.lru_cache(maxsize=256)
def _per_dimension(d: int, beta: float, broad: float, sharp: float, k_modes: int, modes: int) -> dict[str, float]:
    """The N-free pieces: sums of G_k and diagonal factors per component, cached per (d, configuration)."""
    radial = radial_coefficients(beta, k_modes)
    top = max(2, degree_for_share(d, sharp, _SHARE))
    moments = coordinate_feature_moments(d, modes, k_modes, top)
    low_b = np.array(low_degree_coefficients(d, (broad,), (1.0,)) + (0.0,) * (top - 2))
    lam_s = np.array(mercer_coefficients(d, top, sharp))
    head, tail = slice(0, 3), slice(3, top + 1)
    broad_g, self_term = _energy_terms(moments, d, radial, low_b, head)
    sharp_low, _ = _energy_terms(moments, d, radial, lam_s, head)
    sharp_high, _ = _energy_terms(moments, d, radial, lam_s, tail) if top >= 3 else (0.0, None)
    angular_g, _ = _energy_terms(moments, d, (1.0,), low_b, head)
    trace = lambda lam: sum(lam[level] * zonal_at_one(d, level) for level in range(3))  # noqa: E731
    unit_diagonal = _diagonal_factor(self_term, modes)  # for T = 1
    return {
        "broad": broad_g, "broad_self": trace(low_b) * unit_diagonal, "unit_diagonal": unit_diagonal,
        "sharp_low": sharp_low, "sharp_low_self": trace(lam_s) * unit_diagonal,
        "sharp_high": sharp_high, "sharp_high_self": residual_kernel_sums(d, (sharp,), (1.0,))[0] * unit_diagonal,
        "angular": angular_g, "radial": float(moments["radial"].sum()),
        "mean": float((moments["linear"] ** 2).sum()), "covariance": float((moments["quadratic"] ** 2).sum()),
        "square_self": _diagonal_factor(moments["square"], modes),
    }


@functools.lru_cache(maxsize=64)
def _exact_broad_pieces(d: int, beta: float, broad: float, sharp: float, k_modes: int, modes: int) -> tuple[float, float]:
    """(sum_k G_k of the broad energy, of the broad angular mean) with the broad kernel at every degree
    (the exact pairwise path); only computed for that path."""
    top = max(2, degree_for_share(d, sharp, _SHARE))  # the sharp kernel needs more degrees than the broad one
    moments = coordinate_feature_moments(d, modes, k_modes, top)
    lam = np.array(mercer_coefficients(d, top, broad))
    levels = slice(0, top + 1)
    energy, _ = _energy_terms(moments, d, radial_coefficients(beta, k_modes), lam, levels)
    angular, _ = _energy_terms(moments, d, (1.0,), lam, levels)
    return energy, angular


def exact_broad_coordinate_covariances(n: int, d: int, beta: float = 8.0, broad: float = 4.0 / 3.0,
                                       sharp: float = 8.0, k_modes: int = 6, modes: int = 4) -> dict[str, float]:
    r"""Cov(coord, E) and Cov(coord, A) when E and A take the broad kernel at every degree (the pairwise
    path's exact energy and angular mean; diagonal :math:`k(1) = 1`), leading order in 1/N as in
    :func:`coordinate_null_covariances`.

    >>> cov = exact_broad_coordinate_covariances(4096, 3)
    >>> bool(cov["E"] > coordinate_null_covariances(4096, 3)["E"] > 0)   # degrees > 2 add overlap
    True
    """
    pieces = _per_dimension(int(d), float(beta), float(broad), float(sharp), int(k_modes), int(modes))
    energy, angular = _exact_broad_pieces(int(d), float(beta), float(broad), float(sharp), int(k_modes), int(modes))
    off = 8.0 * (modes + 2) * (n - 1) / n**2
    # the exact kernel's diagonal is k(1) = 1: the unit diagonal factor itself
    return {"E": float(off * energy + 4.0 * pieces["unit_diagonal"] / n**2), "A": float(8.0 * (modes + 2) / n * angular)}


def coordinate_null_covariances(
    n: int,
    d: int,
    beta: float = 8.0,
    broad: float = 4.0 / 3.0,
    sharp: float = 8.0,
    k_modes: int = 6,
    modes: int = 4,
    moment: str = "w2",
    block: int | None = None,
) -> dict[str, float]:
    r"""Null covariances of the raw coord with the raw "E" (broad energy), "S" (sharp all-degree energy),
    "A" (broad angular mean), "rad" and "mom" at (N, d), leading order in 1/N (module docstring).

    ``block``: the sharp residual's block size (None: all pairs). ``moment`` must be ``"w2"`` (the
    default loss's penalty); other kinds raise ``ValueError``. The N-free integrals are cached per
    (d, configuration): a first call at a new d costs milliseconds, later ones microseconds.

    >>> cov = coordinate_null_covariances(4096, 3)
    >>> round(cov["E"] / coordinate_null_covariances(8192, 3)["E"], 2)   # O(1/N)
    2.0
    """
    if moment != "w2":
        raise ValueError(f"closed-form coord covariances exist for moment='w2' only, got {moment!r}")
    if n < 2 or d < 1 or modes < 1 or k_modes < 0:
        raise ValueError(f"need n >= 2, d >= 1, modes >= 1, k_modes >= 0; got n={n}, d={d}, modes={modes}, k_modes={k_modes}")
    pieces = _per_dimension(int(d), float(beta), float(broad), float(sharp), int(k_modes), int(modes))
    off = 8.0 * (modes + 2) * (n - 1) / n**2  # all pairs: N(N-1)/N^2 times 8(K+2)/N
    pairs = float(sum(b * b for b in block_sizes(n, block))) if block else float(n * n)
    residual_off = 8.0 * (modes + 2) / n * (pairs - n) / pairs
    sharp_cov = (off * pieces["sharp_low"] + 4.0 * pieces["sharp_low_self"] / n**2
                 + residual_off * pieces["sharp_high"] + 4.0 * pieces["sharp_high_self"] / pairs)
    slope = 1.0 - marchenko_pastur_root_mean(d / (n - 1.0))  # psi'(1): the column's scale in tr S - 2 tr S^(1/2)
    mean_square = off * pieces["mean"]
    variance_part = 4.0 * pieces["square_self"] / n - mean_square  # Cov(Q^2, S_jj), S_jj ~ mean x^2 - xbar^2
    out = {
        "E": off * pieces["broad"] + 4.0 * pieces["broad_self"] / n**2,
        "S": sharp_cov,
        "A": 8.0 * (modes + 2) / n * pieces["angular"],
        "rad": off * pieces["radial"],
        "mom": (mean_square + off * pieces["covariance"] / 4.0 + slope * variance_part) / d,
    }
    return {key: float(value) for key, value in out.items()}
