r"""Moment penalties between the batch's Gaussian fit N(mu, S) and N(0, I).

One implementation serves the wristband loss (its ``mom`` component; docs/theory.md, "The radial and moment terms") and the
stand-alone :class:`~latentshape.MomentMatchingLoss`. With ``mu`` the sample mean and ``S`` the
unbiased sample covariance (divisor N - 1) of a batch ``x`` of shape ``(..., N, d)``:

- ``w2``: squared 2-Wasserstein distance between N(mu, S) and N(0, I), divided by d:
  :math:`(\|\mu\|^2 + \sum_i (\sqrt{\lambda_i} - 1)^2) / d` with :math:`\lambda_i` the eigenvalues
  of S. When d > N the covariance has at most N - 1 non-zero eigenvalues: they are taken from the
  N x N Gram matrix and the missing ones count as 0.
- ``kl_diag``: :math:`\frac{1}{2d} \sum_j (v_j + \mu_j^2 - 1 - \log v_j)`, v the diagonal of S.
- ``kl_full``: :math:`\frac{1}{2d} (\operatorname{tr} S + \|\mu\|^2 - d - \log\det S)`.
- ``jeff_diag`` / ``jeff_full``: half the Jeffreys divergence, (KL(p||q) + KL(q||p)) / 2, over d:
  :math:`\frac{1}{4d} (\operatorname{tr} S + \operatorname{tr} S^{-1} + \mu^\top (I + S^{-1}) \mu - 2d)`.
- ``mu_only``: :math:`\|\mu\|^2 / d`.

Eigenvalues (variances) entering a logarithm or an inverse are floored so that a rank-deficient
batch (d >= N) gives a large finite penalty rather than ``inf``: at ``EIGENVALUE_FLOOR *
min(1, lambda_max)`` in the logarithms of ``kl_*`` (the square roots of ``w2``: its square), i.e.
absolutely for a batch of unit scale or larger and relative to the largest eigenvalue for a
shrinking one, so that a collapsing batch (scale s -> 0) keeps being pulled outward: by W2 with a
scale-free force (:math:`\partial \sqrt{\lambda} / \partial x = O(1)`), by KL with one ~1/s. The
inverses of ``jeff_*`` are floored at ``EIGENVALUE_FLOOR`` itself (1/lambda would overflow): below
a standard deviation of ~1e-3 Jeffreys no longer pulls a collapsing batch outward (its trace term
then pulls inward), and neither does the ``mu_only`` penalty or anything at exact collapse.

Every batch path is scale-safe: the centred rows are divided by a power of two near their largest
magnitude before any product is formed (only when the plain computation would lose range), and the
penalty is assembled in float64 from the rescaled moments, so a batch of scale 1e-30 or 1e30
(float32), 1e-300 or 1e150 (float64) gives a finite value; a value beyond the output dtype's
range raises ``ValueError``.

Each formula lives in :func:`gaussian_fit_penalty`, a function of the fitted (mu, S); the batch
versions only compute (mu, S), locally or -- with ``distributed=True`` under ``torch.distributed``
-- from sums over every rank's rows (:func:`global_moments`).

References: Givens & Shortt (1984), "A class of Wasserstein metrics for probability
distributions"; the Wristband Gaussian Loss (Parakhin) for the choice of penalties.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

from ..validation import as_batch_input, is_compiling, representable
from .blocked_moments import blocked_moments
from ..distributed import all_gather_rows, all_reduce_sum, is_distributed

__all__ = [
    "MOMENT_PENALTIES",
    "EIGENVALUE_FLOOR",
    "moment_penalty",
    "gaussian_fit_penalty",
    "covariance_eigenvalues",
    "BatchMoments",
    "global_moments",
]

MomentKind = Literal["w2", "kl_diag", "kl_full", "jeff_diag", "jeff_full", "mu_only"]
MOMENT_PENALTIES: tuple[str, ...] = ("w2", "kl_diag", "kl_full", "jeff_diag", "jeff_full", "mu_only")
EIGENVALUE_FLOOR = 1e-6
_DIAGONAL_KINDS = ("kl_diag", "jeff_diag")


def covariance_eigenvalues(centered: Tensor) -> Tensor:
    r"""Eigenvalues of the unbiased covariance of ``centered`` rows ``(..., N, d)``, shape ``(..., d)``.

    Uses the d x d covariance when d <= N and the N x N Gram matrix otherwise (same non-zero
    spectrum); the missing eigenvalues are exact zeros. Computed in float64, ascending order.

    >>> x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]], dtype=torch.float64)
    >>> covariance_eigenvalues(x)
    tensor([0.6667, 2.6667], dtype=torch.float64)
    """
    n, d = centered.shape[-2], centered.shape[-1]
    c = centered.to(torch.float64)
    if d <= n:
        gram = c.transpose(-1, -2) @ c
        return torch.linalg.eigvalsh(gram) / (n - 1)
    eig = torch.linalg.eigvalsh(c @ c.transpose(-1, -2)) / (n - 1)
    zeros = eig.new_zeros(eig.shape[:-1] + (d - n,))
    return torch.cat([zeros, eig], dim=-1)


def gaussian_fit_penalty(
    mean: Tensor,
    kind: MomentKind = "w2",
    covariance: Tensor | None = None,
    variance: Tensor | None = None,
    eigenvalues: Tensor | None = None,
    scale: Tensor | None = None,
) -> Tensor:
    r"""Penalty of N(``mean``, S) against N(0, I), divided by d; shape ``mean.shape[:-1]``.

    S enters through what ``kind`` needs: the diagonal ``variance`` (``kl_diag``, ``jeff_diag``),
    the ``eigenvalues`` (``w2``, ``kl_full``, ``jeff_full``) and, for ``jeff_full``, the
    ``covariance`` itself. Missing pieces are derived from ``covariance``. With ``scale`` c (shape
    ``mean.shape[:-1]``) the pieces describe S / c^2 (well-scaled moments of rescaled rows); the
    mean is never rescaled. Formulas in the module docstring; computed in the inputs' dtype
    (float64 from the batch functions).

    >>> mean = torch.zeros(3, dtype=torch.float64)
    >>> float(gaussian_fit_penalty(mean, "w2", covariance=4.0 * torch.eye(3, dtype=torch.float64)))
    1.0
    """
    d = mean.shape[-1]
    mean_sq = (mean * mean).sum(dim=-1)
    squared_scale = None if scale is None else (scale * scale).unsqueeze(-1)
    if kind == "mu_only":
        value = mean_sq
    elif kind in _DIAGONAL_KINDS:
        if variance is None:
            variance = covariance.diagonal(dim1=-2, dim2=-1)
        if kind == "kl_diag":
            var = variance if scale is None else variance * squared_scale
            value = 0.5 * (var + mean * mean - 1.0 - _log_floored(variance, scale)).sum(dim=-1)
        else:
            var = (variance if scale is None else variance * squared_scale).clamp_min(EIGENVALUE_FLOOR)
            value = 0.25 * (var + 1.0 / var + mean * mean * (1.0 + 1.0 / var) - 2.0).sum(dim=-1)
    else:
        eig = eigenvalues if eigenvalues is not None else torch.linalg.eigvalsh(covariance)
        if kind == "w2":
            value = mean_sq + ((_floored_roots(eig, scale) - 1.0) ** 2).sum(dim=-1)
        elif kind == "kl_full":
            trace = (eig if scale is None else eig * squared_scale).sum(dim=-1)
            value = 0.5 * (trace + mean_sq - d - _log_floored(eig, scale).sum(dim=-1))
        else:
            if scale is not None:
                eig = eig * squared_scale
            floored = eig.clamp_min(EIGENVALUE_FLOOR)
            trace = eig.sum(dim=-1)
            if kind == "jeff_full":
                inv_mean_sq = _inverse_quadratic_form(covariance, mean, scale)
                value = 0.25 * (trace + (1.0 / floored).sum(dim=-1) + mean_sq + inv_mean_sq - 2.0 * d)
            else:
                raise ValueError(f"unknown moment penalty {kind!r}; choose one of {', '.join(MOMENT_PENALTIES)}")
    return value / d


def _log_floored(values: Tensor, scale: Tensor | None) -> Tensor:
    """log of the variances / eigenvalues of S = scale^2 diag(values), floored at
    EIGENVALUE_FLOOR min(1, largest): absolute for a batch of unit scale or more, relative for a
    shrinking one, whose -log lambda then keeps pulling it outward (~1/scale) instead of flattening;
    formed as log(values) + log(scale^2), so nothing underflows at tiny scales."""
    top = values.detach().amax(dim=-1, keepdim=True).clamp_min(0.0)
    if scale is None:
        return torch.log(values.clamp_min(EIGENVALUE_FLOOR * top.clamp_max(1.0) + 1e-300))
    c = scale.detach().unsqueeze(-1)
    floor = EIGENVALUE_FLOOR * torch.minimum(top, 1.0 / (c * c)) + 1e-300
    return torch.log(values.clamp_min(floor)) + 2.0 * torch.log(scale.unsqueeze(-1))


def _floored_roots(eig: Tensor, scale: Tensor | None) -> Tensor:
    """sqrt of the eigenvalues of S = scale^2 diag(eig), floored at EIGENVALUE_FLOOR^2 min(1, lambda_max).

    sqrt has an infinite slope at 0: the floor keeps gradients finite for rank-deficient S; being
    relative below unit scale, it leaves a shrinking batch its gradient (the 1e-300 guards exact collapse).
    """
    top = eig.detach().amax(dim=-1, keepdim=True).clamp_min(0.0)
    if scale is None:
        return torch.sqrt(eig.clamp_min(EIGENVALUE_FLOOR**2 * top.clamp_max(1.0) + 1e-300))
    c = scale.detach().unsqueeze(-1)
    floor = EIGENVALUE_FLOOR**2 * torch.minimum(top, 1.0 / (c * c)) + 1e-300
    return scale.unsqueeze(-1) * torch.sqrt(eig.clamp_min(floor))


def moment_penalty(x: Tensor, kind: MomentKind = "w2", distributed: bool = False) -> Tensor:
    r"""Moment penalty of a batch ``x`` of shape ``(..., N, d)`` against N(0, I); shape ``x.shape[:-2]``.

    See the module docstring for the formulas. The result is computed in float64 and returned
    in ``x``'s dtype. With ``distributed=True`` and an initialized ``torch.distributed`` process
    group, the batch is the concatenation of every rank's ``x`` (N may differ per rank; see
    :mod:`latentshape.distributed` for the gradient convention).

    >>> torch.manual_seed(0)
    <torch._C.Generator object at ...>
    >>> x = 3.0 * torch.randn(2000, 4, dtype=torch.float64)   # std 3: W2^2 / d = (3 - 1)^2 = 4
    >>> round(float(moment_penalty(x, "w2")), 1)
    4.0
    >>> float(moment_penalty(x, "mu_only")) < 0.05   # ||mu||^2 / d ~ 9 / 2000
    True
    """
    if kind not in MOMENT_PENALTIES:
        raise ValueError(f"unknown moment penalty {kind!r}; choose one of {', '.join(MOMENT_PENALTIES)}")
    x = as_batch_input(x, distributed and is_distributed())
    out_dtype = x.dtype
    if distributed and is_distributed():
        return _global_moment_penalty(x, kind).to(out_dtype)
    return representable(_local_moment_penalty(x, kind), out_dtype, f"the {kind} moment penalty")


def _local_moment_penalty(x: Tensor, kind: str) -> Tensor:
    """The penalty of one process's batch, float64."""
    n, d = x.shape[-2], x.shape[-1]
    if kind in _FULL_KINDS and d <= n and x.dtype != torch.float64:
        # The O(N d^2) scatter in float32 blocks accumulated in float64: half the time and none of
        # the N x d float64 copies of the path below, at float64-level accuracy of S (see blocked_moments.py).
        mu, covariance = blocked_moments(x)
        if is_compiling() or _well_scaled(covariance):
            return gaussian_fit_penalty(mu, kind, covariance=covariance)
    x64 = x.to(torch.float64)
    mu = x64.mean(dim=-2)
    if kind == "mu_only":
        return gaussian_fit_penalty(mu, kind)
    centered, scale = _rescaled(x64 - mu.unsqueeze(-2))
    if kind in _DIAGONAL_KINDS:
        variance = (centered * centered).sum(dim=-2) / (n - 1)
        return gaussian_fit_penalty(mu, kind, variance=variance, scale=scale)
    needs_covariance = d <= n or kind == "jeff_full"
    covariance = centered.transpose(-1, -2) @ centered / (n - 1) if needs_covariance else None
    # d > N: the covariance has rank < N; its spectrum comes cheaper from the N x N Gram matrix.
    eigenvalues = covariance_eigenvalues(centered) if d > n else None
    return gaussian_fit_penalty(mu, kind, covariance=covariance, eigenvalues=eigenvalues, scale=scale)


def _well_scaled(covariance: Tensor) -> bool:
    """Whether float32 products of the centred rows kept their range: variances neither overflowing
    nor so small that their squares reach float32's subnormals."""
    variances = covariance.diagonal(dim1=-2, dim2=-1)
    trace = variances.sum(dim=-1)
    return bool(((variances.amax(dim=-1) < 2.0**80) & (trace > variances.shape[-1] * 2.0**-80)).all())


def _rescaled(centered: Tensor) -> tuple[Tensor, Tensor | None]:
    """``centered / c`` and c, a power of two per batch near the largest |entry| (detached), or the rows
    and None when their products cannot lose range (rescaling is exact and changes no formula)."""
    peak = centered.detach().abs().amax(dim=(-2, -1))
    if is_compiling() or bool(((peak > 2.0**-400) & (peak < 2.0**400)).all()):
        return centered, None
    exponent = torch.frexp(peak).exponent.clamp(-1000, 1000)
    scale = torch.ldexp(torch.ones_like(peak), exponent)
    return centered / scale.unsqueeze(-1).unsqueeze(-1), scale


_FULL_KINDS = ("w2", "kl_full", "jeff_full")

class BatchMoments(NamedTuple):
    """Row count, mean ``(..., d)`` and unbiased covariance ``(..., d, d)`` (or its diagonal ``(..., d)``)."""

    count: int
    mean: Tensor
    covariance: Tensor | None
    variance: Tensor | None


def global_moments(x: Tensor, second: Literal["none", "diagonal", "full"] = "full") -> BatchMoments:
    r"""Mean and unbiased covariance (float64) of the concatenation of every rank's batch ``(..., N_r, d)``.

    Differentiable (gradients follow :mod:`latentshape.distributed`'s convention). Two
    all-reduces: the global mean first, without gradient, as a fixed shift c; then the shifted
    sums :math:`\sum_i (x_i - c)` and :math:`\sum_i (x_i - c)(x_i - c)^\top` (or their diagonal),
    from which :math:`S = (\sum_i (x_i - c)(x_i - c)^\top - N \delta\delta^\top)/(N - 1)` with
    :math:`\delta = \bar x - c`. The identity holds for any constant c; centring at the mean
    avoids the cancellation of raw second moments. Without a process group: this batch's moments.

    >>> x = torch.tensor([[1.0, 2.0], [3.0, 2.0], [2.0, 5.0]], dtype=torch.float64)
    >>> moments = global_moments(x)
    >>> moments.count, moments.mean.tolist(), torch.allclose(moments.covariance, torch.cov(x.T))
    (3, [2.0, 3.0], True)
    """
    x64 = x.to(torch.float64)
    count, shift = _global_count_and_mean(x64)
    return _shifted_moments(x64, second, count, shift)


def _shifted_moments(x64: Tensor, second: str, count: int, shift: Tensor) -> BatchMoments:
    centered = x64 - shift.unsqueeze(-2)
    pieces = [centered.sum(dim=-2)]
    if second == "diagonal":
        pieces.append((centered * centered).sum(dim=-2))
    elif second == "full":
        pieces.append(centered.transpose(-1, -2) @ centered)
    leading = pieces[0].shape[:-1]
    flat = [p.reshape(leading + (-1,)) for p in pieces]
    packed = all_reduce_sum(torch.cat(flat, dim=-1))  # one all-reduce for every sum
    summed = packed.split([f.shape[-1] for f in flat], dim=-1)
    offset = summed[0] / count
    mean = shift + offset
    covariance = variance = None
    if second == "diagonal":
        variance = (summed[1] - count * offset * offset) / (count - 1)
    elif second == "full":
        scatter = summed[1].reshape(pieces[1].shape)
        covariance = (scatter - count * offset.unsqueeze(-1) * offset.unsqueeze(-2)) / (count - 1)
    return BatchMoments(count, mean, covariance, variance)


def _global_count_and_mean(x64: Tensor) -> tuple[int, Tensor]:
    """Global row count and the global mean, detached (a replicated constant)."""
    with torch.no_grad():
        local = torch.cat([x64.sum(dim=-2), x64.new_full(x64.shape[:-2] + (1,), x64.shape[-2])], dim=-1)
        total = all_reduce_sum(local.detach())
    count = int(total.reshape(-1)[-1])
    return count, (total[..., :-1] / count).detach()


def _global_moment_penalty(x: Tensor, kind: str) -> Tensor:
    x64 = x.to(torch.float64)
    count, shift = _global_count_and_mean(x64)
    if kind == "mu_only" or kind in _DIAGONAL_KINDS:
        moments = _shifted_moments(x64, "none" if kind == "mu_only" else "diagonal", count, shift)
        return gaussian_fit_penalty(moments.mean, kind, variance=moments.variance)
    if x.shape[-1] > count:
        # Rank-deficient global covariance: its spectrum comes from the global Gram matrix.
        return moment_penalty(all_gather_rows(x, dim=-2), kind).to(torch.float64)
    moments = _shifted_moments(x64, "full", count, shift)
    return gaussian_fit_penalty(moments.mean, kind, covariance=moments.covariance)


def _inverse_quadratic_form(cov: Tensor, mu: Tensor, scale: Tensor | None = None) -> Tensor:
    """mu^T S^-1 mu with S floored at EIGENVALUE_FLOOR (ridge; or 2^-40 of the mean variance where that
    is larger), by a Cholesky solve; with ``scale`` c,
    S = c^2 ``cov``: solved as (mu/c)^T (cov + ridge/c^2)^-1 (mu/c) where c > 1 (nothing overflows),
    and as is where c <= 1 (c^2 cov may underflow, harmlessly, under the ridge)."""
    d = cov.shape[-1]
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    # At least 2^-40 of the mean variance: a rank-deficient S (d > N) stays factorizable at any scale.
    relative = 2.0**-40 * cov.detach().diagonal(dim1=-2, dim2=-1).mean(dim=-1)
    ridge = torch.maximum(relative * (1.0 if scale is None else scale * scale), torch.tensor(EIGENVALUE_FLOOR))
    if scale is not None:
        large = (scale > 1.0).unsqueeze(-1)
        c = scale.unsqueeze(-1)
        ridge = torch.where(large.squeeze(-1), torch.maximum(relative, EIGENVALUE_FLOOR / (scale * scale)), ridge)
        cov = torch.where(large.unsqueeze(-1), cov, cov * (c * c).unsqueeze(-1))
        mu = torch.where(large, mu / c, mu)
    chol = torch.linalg.cholesky(cov + ridge[..., None, None] * eye)
    solved = torch.cholesky_solve(mu.unsqueeze(-1), chol).squeeze(-1)
    return (mu * solved).sum(dim=-1)
