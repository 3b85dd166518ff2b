"""Hyperspherical prototype networks (Mettes, Van der Pol and Snoek, 2019).

Classes (or the two ends of a regression range) get fixed unit vectors, placed a priori
with large angular separation; a network is then trained to point its output at the
right prototype. Classification and regression share the same cosine output space.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..validation import autocast_disabled, is_compiling, as_embeddings
from ..geometry import normalize_rows
from .prototype_fitting import fit_prototypes, prototype_separation  # re-exported: public names of this module too

__all__ = [
    "fit_prototypes",
    "prototype_separation",
    "PrototypeClassificationLoss",
    "PrototypeRegressionLoss",
]


def _check_prototypes(prototypes: Tensor) -> Tensor:
    if not isinstance(prototypes, Tensor) or not torch.is_floating_point(prototypes):
        raise TypeError("prototypes must be a floating-point tensor of shape (C, d)")
    if prototypes.dim() != 2 or prototypes.shape[0] < 2:
        raise ValueError(f"prototypes must have shape (C, d) with C >= 2, got {tuple(prototypes.shape)}")
    if not bool(torch.isfinite(prototypes).all()):
        raise ValueError("prototypes contain NaN or Inf")
    if bool((prototypes.detach().abs().amax(dim=-1) == 0).any()):
        raise ValueError("prototypes contain a zero row; every prototype needs a direction")
    return normalize_rows(prototypes.detach().to(torch.promote_types(prototypes.dtype, torch.float32)))


def _features(features: Tensor, dim: int) -> Tensor:
    values = as_embeddings(features, "features", min_points=1)
    if values.shape[-1] != dim:
        raise ValueError(f"features have d = {values.shape[-1]}, the prototypes d = {dim}")
    return values


class PrototypeClassificationLoss(nn.Module):
    r"""Classification against fixed hyperspherical prototypes.

    .. math::
        L = \frac{1}{N} \sum_i \bigl(1 - \cos(f(x_i), p_{y_i})\bigr)^2, \qquad
        \hat y = \arg\max_c \cos(f(x), p_c).

    Args:
        prototypes: ``(C, d)`` tensor (e.g. from :func:`fit_prototypes`); rows are
            normalized and stored as a buffer (moved by ``.to()``, saved in ``state_dict``).

    Call as ``loss_fn(features, labels)`` with features ``(..., N, d)`` and integer
    labels ``(..., N)`` in ``[0, C)``.

    Reference: Mettes et al., "Hyperspherical Prototype Networks", NeurIPS 2019.

    >>> import torch
    >>> loss_fn = PrototypeClassificationLoss(torch.eye(3))
    >>> features = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
    >>> loss_fn.predict(features)
    tensor([0, 1])
    >>> print(round(loss_fn(features, torch.tensor([0, 2])).item(), 4))  # (0 + (1 + 0.7071)^2) / 2
    1.4571
    """

    prototypes: Tensor

    def __init__(self, prototypes: Tensor) -> None:
        super().__init__()
        self.register_buffer("prototypes", _check_prototypes(prototypes))

    @property
    def num_classes(self) -> int:
        return self.prototypes.shape[0]

    def cosine_similarities(self, features: Tensor) -> Tensor:
        """Cosine of every feature row with every prototype: ``(..., N, d) -> (..., N, C)``."""
        values = _features(features, self.prototypes.shape[1])
        dtype = torch.promote_types(values.dtype, self.prototypes.dtype)
        with autocast_disabled(values.device):  # a bfloat16 matmul would round the cosines to 2^-8
            return normalize_rows(values.to(dtype)) @ self.prototypes.to(dtype).T

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        cosines = self.cosine_similarities(features)
        if not isinstance(labels, Tensor) or labels.dtype not in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
            raise TypeError("labels must be an integer tensor of class indices")
        if labels.shape != cosines.shape[:-1]:
            raise ValueError(f"labels must have shape {tuple(cosines.shape[:-1])}, got {tuple(labels.shape)}")
        if not is_compiling() and labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes}), got range [{int(labels.min())}, {int(labels.max())}]")
        target_cosines = cosines.gather(-1, labels.long().unsqueeze(-1)).squeeze(-1)
        return ((1.0 - target_cosines) ** 2).mean()

    @torch.no_grad()
    def predict(self, features: Tensor) -> Tensor:
        """Class index of the most similar prototype: ``(..., N, d) -> (..., N)``."""
        return self.cosine_similarities(features).argmax(dim=-1)

    def extra_repr(self) -> str:
        return f"num_classes={self.prototypes.shape[0]}, dim={self.prototypes.shape[1]}"


class PrototypeRegressionLoss(nn.Module):
    r"""Regression on the great circle between two opposite prototypes.

    The upper prototype :math:`p_{up}` stands for ``r_max`` and :math:`p_{low} = -p_{up}`
    for ``r_min``; a target ``r`` is mapped to a cosine in ``[-1, 1]``:

    .. math::
        c(r) = 2\,\frac{r - r_{min}}{r_{max} - r_{min}} - 1, \qquad
        L = \frac{1}{N} \sum_i \bigl(\cos(f(x_i), p_{up}) - c(r_i)\bigr)^2,

    and ``predict`` inverts the map: :math:`\hat r = r_{min} + \tfrac{1}{2}(\cos + 1)(r_{max} - r_{min})`.
    Targets outside ``[r_min, r_max]`` give unreachable cosines (the loss still pulls
    towards the nearer prototype); predictions always lie in the range.

    Args:
        r_min, r_max: the regression range, ``r_min < r_max``.
        dim: output dimension ``d >= 1``.
        seed: seed of the random unit vector used as :math:`p_{up}` when
            ``upper_prototype`` is not given (any direction works: the network adapts).
        upper_prototype: optional ``(d,)`` direction for :math:`p_{up}`.

    Reference: Mettes et al., "Hyperspherical Prototype Networks", NeurIPS 2019.

    >>> import torch
    >>> loss_fn = PrototypeRegressionLoss(0.0, 10.0, dim=2, upper_prototype=torch.tensor([1.0, 0.0]))
    >>> features = torch.tensor([[1.0, 1.0], [-3.0, 0.0]])
    >>> loss_fn.predict(features)
    tensor([8.5355, 0.0000])
    >>> print(round(loss_fn(features, torch.tensor([8.5355, 0.0])).item(), 6))
    0.0
    """

    upper_prototype: Tensor

    def __init__(
        self,
        r_min: float,
        r_max: float,
        *,
        dim: int,
        seed: int = 0,
        upper_prototype: Tensor | None = None,
    ) -> None:
        super().__init__()
        if not (math.isfinite(r_min) and math.isfinite(r_max)) or r_min >= r_max:
            raise ValueError(f"need finite r_min < r_max, got r_min={r_min!r}, r_max={r_max!r}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be an integer >= 1, got {dim!r}")
        self.r_min = float(r_min)
        self.r_max = float(r_max)
        if upper_prototype is None:
            generator = torch.Generator().manual_seed(seed)
            direction = torch.randn(1, dim, generator=generator)
        else:
            if not isinstance(upper_prototype, Tensor) or upper_prototype.shape != (dim,):
                raise ValueError(f"upper_prototype must be a tensor of shape ({dim},)")
            direction = upper_prototype.reshape(1, dim)
        self.register_buffer("upper_prototype", _check_prototypes(torch.cat([direction, -direction]))[0])

    @property
    def lower_prototype(self) -> Tensor:
        """The prototype of ``r_min``: ``-upper_prototype``."""
        return -self.upper_prototype

    def cosine_to_upper(self, features: Tensor) -> Tensor:
        """``cos(f(x), p_up)`` for every row: ``(..., N, d) -> (..., N)``."""
        values = _features(features, self.upper_prototype.shape[0])
        dtype = torch.promote_types(values.dtype, self.upper_prototype.dtype)
        with autocast_disabled(values.device):
            return normalize_rows(values.to(dtype)) @ self.upper_prototype.to(dtype)

    def target_cosine(self, targets: Tensor) -> Tensor:
        """Map regression targets to cosines: ``r -> 2 (r - r_min) / (r_max - r_min) - 1``."""
        return 2.0 * (targets - self.r_min) / (self.r_max - self.r_min) - 1.0

    def forward(self, features: Tensor, targets: Tensor) -> Tensor:
        cosines = self.cosine_to_upper(features)
        if not isinstance(targets, Tensor) or targets.shape != cosines.shape:
            raise ValueError(f"targets must be a tensor of shape {tuple(cosines.shape)}")
        if not is_compiling() and not bool(torch.isfinite(targets).all()):
            raise ValueError("targets contain NaN or Inf")
        return ((cosines - self.target_cosine(targets.to(cosines.dtype))) ** 2).mean()

    @torch.no_grad()
    def predict(self, features: Tensor) -> Tensor:
        """Regression estimate in ``[r_min, r_max]``: ``(..., N, d) -> (..., N)``."""
        cosines = self.cosine_to_upper(features)
        return self.r_min + 0.5 * (cosines + 1.0) * (self.r_max - self.r_min)

    def extra_repr(self) -> str:
        return f"r_min={self.r_min}, r_max={self.r_max}, dim={self.upper_prototype.shape[0]}"
