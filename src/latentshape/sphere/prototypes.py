"""Hyperspherical prototype networks (Mettes, Van der Pol and Snoek, 2019).

Classes (or the two ends of a regression range) get fixed unit vectors, placed a priori
with large angular separation; a network is then trained to point its output at the
right prototype. Classification and regression share the same cosine output space.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..validation import is_compiling, as_embeddings
from ..geometry import normalize_rows

__all__ = [
    "fit_prototypes",
    "prototype_separation",
    "PrototypeClassificationLoss",
    "PrototypeRegressionLoss",
]

# Optimizer schedule of fit_prototypes (see its docstring): fractions of `steps`.
_ENERGY_FRACTION = 0.4
_ANNEAL_FRACTION = 0.4
_INITIAL_SHARPNESS = 10.0
_FINAL_SHARPNESS = 200.0
# Step size times sharpness: the curvature of the smooth surrogate grows like its sharpness.
_ENERGY_STEP = 1.0
_ANNEAL_STEP = 0.3
# Bounds the (C_chunk, C, C) ranking tensor built per step when class vectors are given.
_RANKING_CHUNK_ELEMENTS = 1 << 22


def prototype_separation(prototypes: Tensor) -> Tensor:
    r"""Mean cosine of each prototype with its nearest other prototype.

    .. math:: \frac{1}{C} \sum_i \max_{j \ne i} \cos(p_i, p_j)

    This is the separation objective that :func:`~latentshape.fit_prototypes` minimizes (lower is
    better separated). Reference: Mettes et al., NeurIPS 2019, Eq. 3.

    >>> import torch
    >>> print(round(prototype_separation(torch.eye(3)).item(), 4))
    0.0
    """
    if not isinstance(prototypes, Tensor) or prototypes.dim() != 2 or prototypes.shape[0] < 2:
        raise ValueError("prototypes must be a (C, d) tensor with C >= 2")
    units = normalize_rows(as_embeddings(prototypes, name="prototypes"))
    cosines = units @ units.T
    cosines = cosines.masked_fill(torch.eye(len(units), dtype=torch.bool, device=units.device), -math.inf)
    return cosines.amax(dim=1).mean()


def _ranking_loss(cosines: Tensor, semantic: Tensor) -> Tensor:
    # Mean over triplets (i, j, k), all distinct, with semantic[i, j] > semantic[i, k] of
    # -log( e^{cos_ij} / (e^{cos_ij} + e^{cos_ik}) ) = softplus(cos_ik - cos_ij).
    num_classes = cosines.shape[0]
    chunk = max(1, _RANKING_CHUNK_ELEMENTS // (num_classes * num_classes))
    distinct = ~torch.eye(num_classes, dtype=torch.bool, device=cosines.device)
    total = cosines.new_zeros(())
    count = 0
    for start in range(0, num_classes, chunk):
        anchors = torch.arange(start, min(start + chunk, num_classes), device=cosines.device)
        # ordered[a, j, k]: class j is semantically closer to anchor a than class k is.
        ordered = semantic[anchors].unsqueeze(-1) > semantic[anchors].unsqueeze(-2)
        valid = ordered & distinct[anchors].unsqueeze(-1) & distinct[anchors].unsqueeze(-2)
        margins = cosines[anchors].unsqueeze(-2) - cosines[anchors].unsqueeze(-1)  # cos_ak - cos_aj
        total = total + (F.softplus(margins) * valid).sum()
        count += int(valid.sum())
    return total / max(count, 1)


def fit_prototypes(
    num_classes: int,
    dim: int,
    steps: int = 1000,
    seed: int = 0,
    class_vectors: Tensor | None = None,
    prior_weight: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    r"""Place ``num_classes`` unit prototypes in ``R^dim`` with maximal angular separation.

    Objective (Mettes et al. 2019): minimize the mean cosine to the nearest neighbour,

    .. math::
        L_{HP} = \frac{1}{C} \sum_i \max_{j \ne i} \cos(p_i, p_j)
        \quad (+\ \lambda\, L_{PI} \text{ with class vectors}),

    by SGD with momentum; the cosines are taken of normalized rows (so gradients are
    tangent to the sphere) and the rows are renormalized after every step. Because the
    max is not smooth, the fit runs in three stages (fractions of ``steps``):

    1. 40 %: the smooth surrogate :math:`\frac{1}{C}\sum_i \frac{1}{\beta}\log\sum_{j\ne i}
       e^{\beta \cos(p_i, p_j)}` at sharpness :math:`\beta = 10` (a Gaussian potential
       energy; its minimizers include the regular simplex and the cross-polytope exactly);
    2. 40 %: the same with :math:`\beta` raised geometrically from 10 to 200 (approaching
       the max);
    3. 20 %: the exact objective with a step size decaying to zero.

    The iterate with the lowest exact objective is returned. The result is deterministic
    given ``seed`` (computed in float64 on the CPU). Known optima are reached to about
    1e-6: ``C = d + 1`` gives the simplex (all cosines ``-1/d``), ``C = 2d`` the
    cross-polytope (largest cosine 0). Cost per step: ``O(C^2 d)``; with class vectors
    ``O(C^3)``.

    Semantic priors (``class_vectors``, e.g. word embeddings, shape ``(C, k)``): the
    ranking loss :math:`L_{PI}` is the mean over triplets ``(i, j, k)`` with
    ``cos(w_i, w_j) > cos(w_i, w_k)`` of
    :math:`-\log \frac{e^{\cos(p_i,p_j)}}{e^{\cos(p_i,p_j)} + e^{\cos(p_i,p_k)}}`,
    weighted by ``prior_weight``: prototypes inherit the similarity *order* of the
    class vectors, not their raw similarities.

    Args:
        num_classes: number of prototypes ``C >= 1``.
        dim: output dimension ``d >= 1``.
        steps: optimizer steps (``0`` returns the random initialization).
        seed: seed of the random initialization.
        class_vectors: optional ``(C, k)`` tensor of class embeddings.
        prior_weight: weight of the ranking loss, ``>= 0``.
        dtype: dtype of the returned tensor.

    Returns:
        ``(C, d)`` tensor with unit rows.

    Reference: P. Mettes, E. van der Pol and C. G. M. Snoek, "Hyperspherical Prototype
    Networks", NeurIPS 2019.

    >>> prototypes = fit_prototypes(4, 3, steps=300)
    >>> prototypes.shape
    torch.Size([4, 3])
    >>> cosines = prototypes @ prototypes.T
    >>> print(round(cosines[0, 1].item(), 4))  # regular tetrahedron: -1/3
    -0.3333
    """
    for value, name in ((num_classes, "num_classes"), (dim, "dim")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if not math.isfinite(prior_weight) or prior_weight < 0:
        raise ValueError(f"prior_weight must be a finite number >= 0, got {prior_weight!r}")
    semantic = None
    if class_vectors is not None:
        vectors = as_embeddings(class_vectors, "class_vectors", min_points=1)
        if vectors.dim() != 2 or vectors.shape[0] != num_classes:
            raise ValueError(
                f"class_vectors must have shape ({num_classes}, k), got {tuple(class_vectors.shape)}"
            )
        vectors = normalize_rows(vectors.detach().to(device="cpu", dtype=torch.float64))
        semantic = vectors @ vectors.T

    generator = torch.Generator().manual_seed(seed)
    points = torch.randn(num_classes, dim, generator=generator, dtype=torch.float64)
    points = normalize_rows(points)
    if num_classes == 1 or steps == 0:
        return points.to(dtype)

    points.requires_grad_(True)
    optimizer = torch.optim.SGD([points], lr=0.0, momentum=0.9)
    self_pairs = torch.eye(num_classes, dtype=torch.bool)
    energy_steps = int(round(_ENERGY_FRACTION * steps))
    anneal_steps = int(round(_ANNEAL_FRACTION * steps))
    exact_steps = steps - energy_steps - anneal_steps
    best_objective, best_points = math.inf, points.detach().clone()

    for step in range(steps + 1):
        units = normalize_rows(points)
        cosines = units @ units.T
        neighbour_cosines = cosines.masked_fill(self_pairs, -math.inf)
        objective = neighbour_cosines.amax(dim=1).mean()
        if semantic is not None and prior_weight > 0:
            objective = objective + prior_weight * _ranking_loss(cosines, semantic)
        if objective.item() < best_objective:
            best_objective, best_points = objective.item(), points.detach().clone()
        if step == steps:
            break
        if step < energy_steps + anneal_steps:
            progress = max(step - energy_steps, 0) / max(anneal_steps - 1, 1)
            sharpness = _INITIAL_SHARPNESS * (_FINAL_SHARPNESS / _INITIAL_SHARPNESS) ** progress
            loss = (torch.logsumexp(sharpness * neighbour_cosines, dim=1) / sharpness).mean()
            if semantic is not None and prior_weight > 0:
                loss = loss + prior_weight * _ranking_loss(cosines, semantic)
            step_size = (_ENERGY_STEP if step < energy_steps else _ANNEAL_STEP) / sharpness
        else:
            loss = objective
            progress = (step - energy_steps - anneal_steps) / max(exact_steps, 1)
            step_size = _ANNEAL_STEP / _FINAL_SHARPNESS * 0.5 * (1.0 + math.cos(math.pi * progress))
        for group in optimizer.param_groups:
            group["lr"] = step_size
        optimizer.zero_grad()
        # Summing over prototypes (C times the mean) gives every row an O(1) gradient,
        # so the step sizes above do not depend on C.
        (loss * num_classes).backward()
        optimizer.step()
        with torch.no_grad():
            points.copy_(normalize_rows(points))

    return normalize_rows(best_points).to(dtype)


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
