r"""Moment matching of a batch to a target Gaussian ("treat each minibatch as the marginal").

For a batch :math:`z_1, \dots, z_N \in \mathbb{R}^d` with mean :math:`\hat\mu` and unbiased covariance
:math:`\hat\Sigma = \frac{1}{N-1} \sum_i (z_i - \hat\mu)(z_i - \hat\mu)^\top`, and a target
N(mu, Sigma) (default N(0, I)):

.. math::

    L_M = \alpha \|\mu - \hat\mu\|^2 + \gamma \|\Sigma - \hat\Sigma\|_F^2 .

The same module also offers the shared moment penalties of
:func:`latentshape.functional.moment_penalty` (``w2``, ``kl_diag``, ``kl_full``,
``jeff_diag``, ``jeff_full``, ``mu_only``) through ``penalty=``, so that each penalty has exactly
one implementation, used here and by the wristband loss. Moments see only the first two moments:
any distribution with mean 0 and covariance I (e.g. the standardized X shape) scores like N(0, I).
"""

from __future__ import annotations

from typing import Hashable, Literal

import torch
from torch import Tensor

from ..validation import as_batch_input, computed_in_range, is_real_number
from ..distributed import GlobalBatch, all_gather_rows, is_distributed
from ..calibration import NullStats
from ..statistic import BatchStatistic, tensor_digest
from .frobenius_null import frobenius_null_moments
from .moment_penalties import MOMENT_PENALTIES, _global_count_and_mean, _shifted_moments, moment_penalty
from .moment_penalty_null import moment_null_moments

__all__ = ["MOMENT_MATCHING_PENALTIES", "moment_matching_loss", "MomentMatchingLoss"]

MOMENT_MATCHING_PENALTIES: tuple[str, ...] = ("frobenius",) + MOMENT_PENALTIES
PenaltyKind = Literal["frobenius", "w2", "kl_diag", "kl_full", "jeff_diag", "jeff_full", "mu_only"]


def moment_matching_loss(
    x: Tensor,
    alpha: float = 1.0,
    gamma: float = 1.0,
    mean: Tensor | None = None,
    cov: Tensor | None = None,
    distributed: bool = False,
) -> Tensor:
    r""":math:`\alpha \|\mu - \hat\mu\|^2 + \gamma \|\Sigma - \hat\Sigma\|_F^2` for each batch ``x`` ``(..., N, d)``.

    ``mean`` ``(d,)`` and ``cov`` ``(d, d)`` default to 0 and I. :math:`\hat\Sigma` is unbiased
    (divisor N - 1). With the identity target and d > N the Frobenius term is computed from the
    N x N Gram matrix (:math:`\|\hat\Sigma - I\|_F^2 = \|\hat\Sigma\|_F^2 - 2 \operatorname{tr}\hat\Sigma + d`),
    O(N^2 d) instead of O(N d^2). Returns shape ``x.shape[:-2]``.

    ``distributed=True`` under an initialized ``torch.distributed`` process group: the loss of the
    concatenation of every rank's batch, from all-reduced sums (float64; see
    :mod:`latentshape.distributed`), or from the all-gathered rows when the
    identity target meets d > N_global.

    >>> x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    >>> float(moment_matching_loss(x))      # mean 0, covariance (2/3) I: 2 (1/3)^2 = 2/9
    0.2222...
    >>> float(moment_matching_loss(x + 1.0, alpha=0.5))   # adds 0.5 * ||(1, 1)||^2 = 1
    1.2222...
    """
    active = distributed and is_distributed()
    x = as_batch_input(x, active)
    _check_arguments(alpha, gamma, mean, cov, x.shape[-1])
    if active:
        return _global_moment_matching_loss(x, alpha, gamma, mean, cov)
    # The loss grows like scale^4: it overflows a float32 product long before x does.
    return computed_in_range(lambda rows: _local_moment_matching_loss(rows, alpha, gamma, mean, cov), (x,),
                             "the moment matching loss")


def _check_arguments(alpha: float, gamma: float, mean: Tensor | None, cov: Tensor | None, d: int) -> None:
    """Cheap checks of the functional's weights and targets (the module checks the targets' values once)."""
    for name, weight in (("alpha", alpha), ("gamma", gamma)):
        if not is_real_number(weight) or not 0 <= weight < float("inf"):
            raise ValueError(f"{name} must be a finite number >= 0, got {weight!r}")
    for name, target, shape in (("mean", mean, (d,)), ("cov", cov, (d, d))):
        # integer targets are promoted like x (as before this check); bool and complex ones are mistakes
        if target is not None and (not isinstance(target, Tensor) or target.dtype == torch.bool or target.is_complex()):
            raise TypeError(f"{name} must be None or a real tensor of shape {shape}, got {type(target).__name__}"
                            + (f" of dtype {target.dtype}" if isinstance(target, Tensor) else ""))
        if target is not None and tuple(target.shape) != shape:
            raise ValueError(f"{name} must have shape {shape} for embeddings of width d = {d}, got {tuple(target.shape)}")


def _local_moment_matching_loss(
    x: Tensor, alpha: float, gamma: float, mean: Tensor | None, cov: Tensor | None
) -> Tensor:
    n, d = x.shape[-2], x.shape[-1]
    sample_mean = x.mean(dim=-2)
    centered = x - sample_mean.unsqueeze(-2)
    if cov is None and d > n:
        gram = centered @ centered.transpose(-1, -2) / (n - 1)
        cov_term = (gram * gram).sum(dim=(-2, -1)) - 2.0 * gram.diagonal(dim1=-2, dim2=-1).sum(dim=-1) + d
    else:
        cov_term = _covariance_gap(centered.transpose(-1, -2) @ centered / (n - 1), cov)
    return alpha * _mean_gap(sample_mean, mean) + gamma * cov_term


def _mean_gap(sample_mean: Tensor, mean: Tensor | None) -> Tensor:
    gap = sample_mean if mean is None else sample_mean - mean.to(sample_mean)
    return (gap * gap).sum(dim=-1)


def _covariance_gap(sample_cov: Tensor, cov: Tensor | None) -> Tensor:
    d = sample_cov.shape[-1]
    target = torch.eye(d, dtype=sample_cov.dtype, device=sample_cov.device) if cov is None else cov.to(sample_cov)
    gap = sample_cov - target
    return (gap * gap).sum(dim=(-2, -1))


def _global_moment_matching_loss(
    x: Tensor, alpha: float, gamma: float, mean: Tensor | None, cov: Tensor | None
) -> Tensor:
    x64 = x.to(torch.float64)
    count, shift = _global_count_and_mean(x64)
    if cov is None and x.shape[-1] > count:
        return moment_matching_loss(all_gather_rows(x, dim=-2), alpha, gamma, mean, cov)
    moments = _shifted_moments(x64, "full", count, shift)
    value = alpha * _mean_gap(moments.mean, mean) + gamma * _covariance_gap(moments.covariance, cov)
    return value.to(x.dtype)


class MomentMatchingLoss(BatchStatistic):
    r"""Moment matching to a Gaussian target: :math:`\alpha \|\mu - \hat\mu\|^2 + \gamma \|\Sigma - \hat\Sigma\|_F^2`.

    Args:
        alpha: weight of the mean term (>= 0).
        gamma: weight of the covariance term (>= 0).
        mean: target mean ``(d,)``; default 0.
        cov: target covariance ``(d, d)``, symmetric positive semi-definite; default I.
        penalty: ``"frobenius"`` (default, the formula above) or one of the shared moment
            penalties against N(0, I) -- ``"w2"``, ``"kl_diag"``, ``"kl_full"``, ``"jeff_diag"``,
            ``"jeff_full"``, ``"mu_only"`` -- computed by
            :func:`~latentshape.functional.moment_penalty` (they are normalized by d and take
            no weights or targets: leave ``alpha``, ``gamma``, ``mean``, ``cov`` at their defaults).
        calibrate: return a z-score against the statistic's law for batches drawn from the target
            at the batch's (N, d).
        null_samples: Monte-Carlo null batches for calibration.
        distributed: under ``torch.distributed``, the loss of the global batch from all-reduced
            moment sums (see :mod:`latentshape.distributed`).

    Collapse: at an exactly collapsed batch every penalty's gradient is 0. Near collapse (scale
    s -> 0) the Frobenius form pulls outward with an O(s) gradient,
    :math:`4\gamma (I - \hat\Sigma)(x_i - \hat\mu) / (N - 1)` (1.4e-6 at s = 1e-6, N = 64, d = 8);
    ``w2`` with a scale-free one (~0.09 there, as at unit scale); ``kl_full`` / ``kl_diag`` with one
    ~1/s; ``jeff_*`` and ``mu_only`` not at all below s ~ 1e-3 (module
    ``latentshape.gaussian.moment_penalties``).

    The answer to a recurring question (Cross Validated, "regularize an embedding to be Gaussian"):
    match the first two moments of each minibatch.

    >>> x = torch.randn(1000, 3, generator=torch.Generator().manual_seed(0))
    >>> raw = MomentMatchingLoss(calibrate=False)
    >>> float(raw(x)) < 0.05, float(raw(2.0 * x)) > 20                 # ||4 I - I||_F^2 = 27
    (True, True)
    >>> float(MomentMatchingLoss(penalty="w2", calibrate=False)(2.0 * x))   # (sqrt(4) - 1)^2 per dimension
    1.0...
    >>> loss_fn = MomentMatchingLoss(null_samples=256)                 # default: a z-score (closed-form null)
    >>> abs(float(loss_fn(x))) < 4, float(loss_fn(2.0 * x)) > 100
    (True, True)
    """

    def __init__(
        self,
        *,
        alpha: float = 1.0,
        gamma: float = 1.0,
        mean: Tensor | None = None,
        cov: Tensor | None = None,
        penalty: PenaltyKind = "frobenius",
        calibrate: bool = True,
        null_samples: int = 512,
        null_seed: int = 0,
        distributed: bool = False,
    ) -> None:
        super().__init__(calibrate=calibrate, null_samples=null_samples, null_seed=null_seed, distributed=distributed)
        if penalty not in MOMENT_MATCHING_PENALTIES:
            raise ValueError(f"unknown penalty {penalty!r}; choose one of {', '.join(MOMENT_MATCHING_PENALTIES)}")
        for name, weight in (("alpha", alpha), ("gamma", gamma)):
            if not (float(weight) >= 0 and float(weight) < float("inf")):
                raise ValueError(f"{name} must be a finite number >= 0, got {weight!r}")
        if penalty != "frobenius" and (alpha != 1.0 or gamma != 1.0 or mean is not None or cov is not None):
            raise ValueError(
                f"penalty={penalty!r} compares with N(0, I) and takes no alpha, gamma, mean or cov; "
                "use penalty='frobenius' for weighted or non-standard targets"
            )
        mean, cov = _checked_targets(mean, cov)
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.penalty = penalty
        # Buffers follow .to(device) and are saved in state_dict; None means the default 0 / I.
        self.register_buffer("mean", mean)
        self.register_buffer("cov", cov)
        self.register_buffer("_cov_root", None if cov is None else _psd_root(cov), persistent=False)

    def _check_dim(self, d: int) -> None:
        target_d = self.mean.shape[0] if self.mean is not None else (self.cov.shape[0] if self.cov is not None else d)
        if target_d != d:
            raise ValueError(f"the target Gaussian has dimension {target_d} but the embeddings have d = {d}")

    def _evaluate(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        if self.penalty == "frobenius":
            return moment_matching_loss(x, self.alpha, self.gamma, self.mean, self.cov)
        return moment_penalty(x, self.penalty)

    def _evaluate_global(self, x: Tensor, generator: torch.Generator | None, rows: GlobalBatch) -> Tensor:
        if self.penalty == "frobenius":
            return moment_matching_loss(x, self.alpha, self.gamma, self.mean, self.cov, distributed=True)
        return moment_penalty(x, self.penalty, distributed=True)

    def _null_transform(self, x: Tensor) -> Tensor:
        # The null law is the target N(mean, cov): map the N(0, I) draws onto it.
        if self._cov_root is not None:
            x = x @ self._cov_root.to(x).transpose(-1, -2)
        if self.mean is not None:
            x = x + self.mean.to(x)
        return x

    def _closed_form_null(self, n: int, d: int) -> NullStats | None:
        """Exact null mean and variance where known: the Frobenius form toward N(mu, I)
        (:func:`~latentshape.gaussian.frobenius_null.frobenius_null_moments`) and the shared
        penalties (:func:`~latentshape.gaussian.moment_penalty_null.moment_null_moments`); else
        None (Monte-Carlo)."""
        if self.penalty == "frobenius":
            if self.cov is not None:
                return None
            return NullStats.from_moments(*frobenius_null_moments(n, d, self.alpha, self.gamma))
        try:
            return NullStats.from_moments(*moment_null_moments(self.penalty, n, d))
        except ValueError:  # moments that do not exist or a floor hit too often at this (N, d)
            return None

    def _config(self, d: int) -> Hashable:
        return (self.penalty, self.alpha, self.gamma, tensor_digest(self.mean), tensor_digest(self.cov))

    def _intermediate_size(self, n: int, d: int) -> int:
        return n * d + min(n, d) ** 2 + d * d

    def extra_repr(self) -> str:
        targets = "N(0, I)" if self.mean is None and self.cov is None else "custom"
        return f"penalty={self.penalty!r}, alpha={self.alpha}, gamma={self.gamma}, target={targets}, {self._flags_repr()}"


def _checked_targets(mean: Tensor | None, cov: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    if mean is not None:
        mean = torch.as_tensor(mean)
        if not torch.is_floating_point(mean):
            mean = mean.to(torch.get_default_dtype())
        if mean.dim() != 1:
            raise ValueError(f"mean must be a vector of shape (d,), got shape {tuple(mean.shape)}")
        if not bool(torch.isfinite(mean).all()):
            raise ValueError("mean holds NaN or Inf; it must be finite")
        mean = mean.detach().clone()
    if cov is not None:
        cov = torch.as_tensor(cov)
        if not torch.is_floating_point(cov):
            cov = cov.to(torch.get_default_dtype())
        if cov.dim() != 2 or cov.shape[0] != cov.shape[1]:
            raise ValueError(f"cov must be a square matrix (d, d), got shape {tuple(cov.shape)}")
        if not bool(torch.isfinite(cov).all()):
            raise ValueError("cov holds NaN or Inf; it must be finite")
        if not torch.allclose(cov, cov.T, rtol=1e-5, atol=1e-8):
            raise ValueError("cov must be symmetric")
        smallest = float(torch.linalg.eigvalsh(cov.to(torch.float64))[0])
        if smallest < -1e-8 * max(1.0, float(cov.abs().max())):
            raise ValueError(f"cov must be positive semi-definite (smallest eigenvalue {smallest:.3g})")
        cov = cov.detach().clone()
    if mean is not None and cov is not None and mean.shape[0] != cov.shape[0]:
        raise ValueError(f"mean has dimension {mean.shape[0]} but cov is {tuple(cov.shape)}")
    return mean, cov


def _psd_root(cov: Tensor) -> Tensor:
    """A matrix R with R R^T = cov (symmetric square root; works for singular cov)."""
    values, vectors = torch.linalg.eigh(cov.to(torch.float64))
    return (vectors * values.clamp_min(0.0).sqrt()) @ vectors.T
