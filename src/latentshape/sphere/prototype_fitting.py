"""Placing hyperspherical prototypes: unit vectors with maximal angular separation.

The class prototypes of :mod:`latentshape.sphere.prototypes` are fixed a priori by minimizing the
mean cosine of each prototype to its nearest other one, optionally ranked by class vectors
(Mettes, Van der Pol and Snoek, 2019).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..validation import as_embeddings
from ..geometry import normalize_rows

__all__ = ["fit_prototypes", "prototype_separation"]

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

    by SGD with momentum on normalized rows (gradients tangent to the sphere; rows renormalized
    after every step). The max is not smooth, so the fit runs in three stages (fractions of ``steps``):

    1. 40 %: the smooth surrogate :math:`\frac{1}{C}\sum_i \frac{1}{\beta}\log\sum_{j\ne i} e^{\beta \cos(p_i, p_j)}`
       at :math:`\beta = 10` (a Gaussian potential energy; its minimizers include the regular
       simplex and the cross-polytope exactly);
    2. 40 %: the same with :math:`\beta` raised geometrically from 10 to 200 (approaching the max);
    3. 20 %: the exact objective with a step size decaying to zero.

    The iterate with the lowest exact objective is returned, deterministic given ``seed`` (computed
    in float64 on the CPU). Known optima are reached to about 1e-6: ``C = d + 1`` gives the simplex
    (all cosines ``-1/d``), ``C = 2d`` the cross-polytope (largest cosine 0). Cost per step:
    ``O(C^2 d)``; with class vectors ``O(C^3)``.

    Semantic priors (``class_vectors``, e.g. word embeddings, shape ``(C, k)``): the ranking loss
    :math:`L_{PI}` is the mean over triplets ``(i, j, k)`` with ``cos(w_i, w_j) > cos(w_i, w_k)`` of
    :math:`-\log \frac{e^{\cos(p_i,p_j)}}{e^{\cos(p_i,p_j)} + e^{\cos(p_i,p_k)}}`, weighted by
    ``prior_weight``: prototypes inherit the similarity *order* of the class vectors, not their raw similarities.

    Args:
        num_classes: number of prototypes ``C >= 1``.
        dim: output dimension ``d >= 1``.
        steps: optimizer steps (``0`` returns the random initialization).
        seed: seed of the random initialization.
        class_vectors: optional ``(C, k)`` tensor of class embeddings.
        prior_weight: weight of the ranking loss, ``>= 0``.
        dtype: dtype of the result, a ``(C, d)`` tensor with unit rows.

    Reference: P. Mettes, E. van der Pol and C. G. M. Snoek, "Hyperspherical Prototype Networks", NeurIPS 2019.

    >>> prototypes = fit_prototypes(4, 3, steps=300)
    >>> prototypes.shape
    torch.Size([4, 3])
    >>> print(round((prototypes @ prototypes.T)[0, 1].item(), 4))  # regular tetrahedron: -1/3
    -0.3333
    """
    _check_fit_arguments(num_classes, dim, steps, prior_weight, dtype)
    semantic = None if class_vectors is None else _semantic_similarities(class_vectors, num_classes)
    generator = torch.Generator().manual_seed(seed)
    points = normalize_rows(torch.randn(num_classes, dim, generator=generator, dtype=torch.float64))
    if num_classes == 1 or steps == 0:
        return points.to(dtype)
    return _descend(points, steps, semantic if prior_weight > 0 else None, prior_weight).to(dtype)


def _check_fit_arguments(num_classes: int, dim: int, steps: int, prior_weight: float, dtype: torch.dtype) -> None:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:  # unit rows rounded to integers are not prototypes
        raise TypeError(f"dtype must be a floating torch.dtype (e.g. torch.float32), got {dtype}")
    for value, name in ((num_classes, "num_classes"), (dim, "dim")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if not math.isfinite(prior_weight) or prior_weight < 0:
        raise ValueError(f"prior_weight must be a finite number >= 0, got {prior_weight!r}")


def _semantic_similarities(class_vectors: Tensor, num_classes: int) -> Tensor:
    """Cosine similarities ``(C, C)`` of the class vectors, in float64 on the CPU."""
    vectors = as_embeddings(class_vectors, "class_vectors", min_points=1)
    if vectors.dim() != 2 or vectors.shape[0] != num_classes:
        raise ValueError(f"class_vectors must have shape ({num_classes}, k), got {tuple(class_vectors.shape)}")
    vectors = normalize_rows(vectors.detach().to(device="cpu", dtype=torch.float64))
    return vectors @ vectors.T


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


def _stage(step: int, steps: int) -> tuple[float | None, float]:
    """``(sharpness, step size)`` of optimizer step ``step`` of ``steps``; sharpness None: exact max."""
    energy_steps = int(round(_ENERGY_FRACTION * steps))
    anneal_steps = int(round(_ANNEAL_FRACTION * steps))
    if step < energy_steps + anneal_steps:
        progress = max(step - energy_steps, 0) / max(anneal_steps - 1, 1)
        sharpness = _INITIAL_SHARPNESS * (_FINAL_SHARPNESS / _INITIAL_SHARPNESS) ** progress
        return sharpness, (_ENERGY_STEP if step < energy_steps else _ANNEAL_STEP) / sharpness
    exact_steps = steps - energy_steps - anneal_steps
    progress = (step - energy_steps - anneal_steps) / max(exact_steps, 1)
    return None, _ANNEAL_STEP / _FINAL_SHARPNESS * 0.5 * (1.0 + math.cos(math.pi * progress))


def _descend(points: Tensor, steps: int, semantic: Tensor | None, prior_weight: float) -> Tensor:
    """Run the staged descent from unit rows ``points`` (float64); returns the best iterate's unit rows.

    ``semantic`` (class-vector cosines, or None for no prior) adds the weighted ranking loss.
    """
    num_classes = points.shape[0]
    points.requires_grad_(True)
    optimizer = torch.optim.SGD([points], lr=0.0, momentum=0.9)
    self_pairs = torch.eye(num_classes, dtype=torch.bool)
    best_objective, best_points = math.inf, points.detach().clone()
    for step in range(steps + 1):
        units = normalize_rows(points)
        cosines = units @ units.T
        neighbour_cosines = cosines.masked_fill(self_pairs, -math.inf)
        prior = None if semantic is None else prior_weight * _ranking_loss(cosines, semantic)
        objective = neighbour_cosines.amax(dim=1).mean()
        if prior is not None:
            objective = objective + prior
        if objective.item() < best_objective:
            best_objective, best_points = objective.item(), points.detach().clone()
        if step == steps:
            break
        sharpness, step_size = _stage(step, steps)
        if sharpness is None:
            loss = objective
        else:
            loss = (torch.logsumexp(sharpness * neighbour_cosines, dim=1) / sharpness).mean()
            if prior is not None:
                loss = loss + prior
        for group in optimizer.param_groups:
            group["lr"] = step_size
        optimizer.zero_grad()
        # Summing over prototypes (C times the mean) gives every row an O(1) gradient,
        # so the step sizes above do not depend on C.
        (loss * num_classes).backward()
        optimizer.step()
        with torch.no_grad():
            points.copy_(normalize_rows(points))
    return normalize_rows(best_points)
