"""Soft nearest neighbor loss (Salakhutdinov & Hinton 2007; Frosst, Papernot & Hinton 2019)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from ..validation import as_embeddings, autocast_disabled, is_compiling
from ..geometry import normalize_rows, pairwise_squared_distances
from ._checks import _check_distance, _check_positive, _temperature_tensor, _warn_if_eps_dominates

__all__ = [
    "pairwise_distances",
    "neighbor_probabilities",
    "soft_nearest_neighbor_loss",
    "annealed_temperature",
    "SoftNearestNeighborLoss",
    "LayerwiseSoftNearestNeighborLoss",
]

Distance = Literal["cosine", "euclidean"]
# Stability epsilon: the soft nearest neighbor loss tutorial names it without a value; 1e-5 is
# the value in the article author's public implementation (Agarap & Azcarraga, 2020).
DEFAULT_EPS = 1e-5


def pairwise_distances(features: Tensor, distance: Distance = "cosine") -> Tensor:
    r"""Pairwise distances used by the soft nearest neighbor loss: ``(..., N, d) -> (..., N, N)``.

    ``"cosine"``: :math:`D_{ij} = 1 - \cos(x_i, x_j)` (zero rows have cosine 0 with all);
    ``"euclidean"``: the *squared* distance :math:`D_{ij} = \lVert x_i - x_j \rVert^2`.

    >>> import torch
    >>> pairwise_distances(torch.tensor([[1.0, 0.0], [0.0, 3.0]]))
    tensor([[0., 1.],
            [1., 0.]])
    """
    _check_distance(distance)
    values = as_embeddings(features, "features")
    with autocast_disabled(values.device):  # bfloat16 Gram matrices would swamp near distances
        if distance == "cosine":
            units = normalize_rows(values)
            return 1.0 - units @ units.transpose(-1, -2)
        return pairwise_squared_distances(values)


def _log_neighbor_probabilities(distances: Tensor, temperature: Tensor, eps: float) -> Tensor:
    # log p_ij = -D_ij / T - log(eps + sum_{k != i} exp(-D_ik / T)), diagonal -inf.
    # The eps term joins the logsumexp as one more column, so nothing underflows to log(0).
    n = distances.shape[-1]
    self_pairs = torch.eye(n, dtype=torch.bool, device=distances.device)
    log_affinities = (-distances / temperature).masked_fill(self_pairs, -math.inf)
    eps_column = log_affinities.new_full((*log_affinities.shape[:-1], 1), math.log(eps))
    log_denominators = torch.logsumexp(torch.cat([log_affinities, eps_column], dim=-1), dim=-1, keepdim=True)
    return log_affinities - log_denominators


def neighbor_probabilities(
    features: Tensor,
    temperature: float | Tensor = 1.0,
    distance: Distance = "cosine",
    eps: float = DEFAULT_EPS,
) -> Tensor:
    r"""Probability that point ``i`` picks ``j`` as its neighbour: ``(..., N, d) -> (..., N, N)``.

    .. math::
        p_{ij} = \frac{e^{-D_{ij}/T}}{\epsilon + \sum_{k \ne i} e^{-D_{ik}/T}}\ (i \ne j),
        \qquad p_{ii} = 0 .

    >>> import torch
    >>> p = neighbor_probabilities(torch.tensor([[1.0, 0.0], [1.0, 0.1], [-1.0, 0.0]]))
    >>> p.sum(dim=-1).round(decimals=4)
    tensor([1., 1., 1.])
    """
    _check_distance(distance)
    eps = _check_positive(eps, "eps")
    distances = pairwise_distances(features, distance)
    return _log_neighbor_probabilities(distances, _temperature_tensor(temperature, distances), eps).exp()


def soft_nearest_neighbor_loss(
    features: Tensor,
    labels: Tensor,
    temperature: float | Tensor = 1.0,
    distance: Distance = "cosine",
    eps: float = DEFAULT_EPS,
) -> Tensor:
    r"""Soft nearest neighbor loss: how entangled the classes are in a representation.

    .. math::
        f_{ij} = e^{-D_{ij}/T}, \quad
        p_{ij} = \frac{f_{ij}}{\epsilon + \sum_{k \ne i} f_{ik}}, \quad
        L = -\frac{1}{N} \sum_i \log\Bigl(\epsilon + \sum_{j \ne i,\, y_j = y_i} p_{ij}\Bigr).

    Low values mean same-class points are much closer than other-class points. It is
    evaluated in log space (``logsumexp``, with :math:`\log\epsilon` as an extra term),
    so it equals the formula above without underflow at small ``T``. A point with no
    same-class partner contributes :math:`-\log\epsilon` (no gradient).
    With ``"euclidean"``, ``T`` must match squared distances (~2 d at unit variance): if every
    affinity is negligible beside :math:`\epsilon` the loss is :math:`-\log\epsilon`, flat (it warns).

    Args:
        features: ``(..., N, d)`` representations (leading dims: independent batches,
            averaged).
        labels: integer or bool labels ``(..., N)``.
        temperature: ``T > 0``, a float or a scalar tensor (e.g. learnable).
        distance: ``"cosine"`` (``1 - cos``) or ``"euclidean"`` (squared Euclidean).
        eps: stability constant :math:`\epsilon > 0` (reference implementation: 1e-5).

    References: R. Salakhutdinov and G. Hinton, "Learning a Nonlinear Embedding by
    Preserving Class Neighbourhood Structure", AISTATS 2007; N. Frosst, N. Papernot and
    G. Hinton, "Analyzing and Improving Representations with the Soft Nearest Neighbor
    Loss", ICML 2019.

    >>> import torch
    >>> features = torch.tensor([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [1.0, 0.1]])
    >>> separated = soft_nearest_neighbor_loss(features, torch.tensor([0, 0, 1, 1]), temperature=0.1)
    >>> entangled = soft_nearest_neighbor_loss(features, torch.tensor([0, 1, 0, 1]), temperature=0.1)
    >>> print(round(separated.item(), 4), round(entangled.item(), 4))
    0.0003 8.8512
    """
    _check_distance(distance)
    eps = _check_positive(eps, "eps")
    distances = pairwise_distances(features, distance)
    out_dtype = distances.dtype
    if distance == "euclidean" and not is_compiling() and not bool(torch.isfinite(distances).all()):
        distances = _wide_squared_distances(features)
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.is_complex():
        raise TypeError("labels must be an integer or bool tensor of shape (..., N)")
    if labels.shape != distances.shape[:-1]:
        raise ValueError(f"labels must have shape {tuple(distances.shape[:-1])}, got {tuple(labels.shape)}")
    temperature = _temperature_tensor(temperature, distances)
    _warn_if_eps_dominates(distances, temperature, eps)
    log_probabilities = _log_neighbor_probabilities(distances, temperature, eps)
    # Same-class pairs; the diagonal is already -inf in log_probabilities.
    same_class = labels.unsqueeze(-1) == labels.unsqueeze(-2)
    masked = log_probabilities.masked_fill(~same_class, -math.inf)
    eps_column = masked.new_full((*masked.shape[:-1], 1), math.log(eps))
    log_same_class_mass = torch.logsumexp(torch.cat([masked, eps_column], dim=-1), dim=-1)
    return -log_same_class_mass.mean().to(out_dtype)


def _wide_squared_distances(features: Tensor) -> Tensor:
    """Squared distances in float64, for rows whose float32 squares overflowed; the loss itself is
    bounded (between 0 and -log eps), so only a scale beyond float64's is an error."""
    distances = pairwise_squared_distances(as_embeddings(features, "features").to(torch.float64))
    if not bool(torch.isfinite(distances).all()):
        raise ValueError("the squared distances between the features overflow float64: the features' scale "
                         "is too large; rescale them (or use distance='cosine')")
    return distances


def annealed_temperature(epoch: int, initial: float = 1.0, rate: float = 0.55) -> float:
    r"""Annealing schedule of the temperature: :math:`T = T_0 / (1 + \text{epoch})^{0.55}`.

    Reference: A. F. Agarap and A. P. Azcarraga, "Improving k-Means Clustering
    Performance with Disentangled Internal Representations", IJCNN 2020.

    >>> [round(annealed_temperature(epoch), 4) for epoch in range(3)]
    [1.0, 0.683, 0.5465]
    """
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
    initial = _check_positive(initial, "initial")
    if not math.isfinite(rate) or rate < 0:
        raise ValueError(f"rate must be a finite number >= 0, got {rate!r}")
    return initial / (1.0 + epoch) ** rate


class SoftNearestNeighborLoss(nn.Module):
    r"""Module form of :func:`~latentshape.functional.soft_nearest_neighbor_loss`, called as ``loss_fn(features, labels)``.

    .. math:: L = -\frac{1}{N}\sum_i \log\Bigl(\epsilon + \sum_{j \ne i, y_j = y_i}
              \frac{e^{-D_{ij}/T}}{\epsilon + \sum_{k \ne i} e^{-D_{ik}/T}}\Bigr)

    The temperature is stored as ``log_temperature`` (so it stays positive): a buffer,
    or with ``learnable_temperature=True`` a parameter to hand to the optimizer. Set
    ``loss_fn.temperature = annealed_temperature(epoch)`` to anneal it.

    Reference: Frosst, Papernot and Hinton, ICML 2019.

    >>> import torch
    >>> loss_fn = SoftNearestNeighborLoss(temperature=0.5, distance="euclidean", learnable_temperature=True)
    >>> g = torch.Generator().manual_seed(0)
    >>> features, labels = torch.randn(32, 4, generator=g), torch.arange(32) % 2
    >>> loss = loss_fn(features, labels)
    >>> loss.backward()
    >>> loss.shape, loss_fn.log_temperature.grad is not None
    (torch.Size([]), True)
    """

    log_temperature: Tensor

    def __init__(
        self,
        *,
        temperature: float = 1.0,
        distance: Distance = "cosine",
        learnable_temperature: bool = False,
        eps: float = DEFAULT_EPS,
    ) -> None:
        super().__init__()
        log_temperature = torch.tensor(math.log(_check_positive(temperature, "temperature")))
        if learnable_temperature:
            self.log_temperature = nn.Parameter(log_temperature)
        else:
            self.register_buffer("log_temperature", log_temperature)
        self.distance = _check_distance(distance)
        self.eps = _check_positive(eps, "eps")
        self.learnable_temperature = bool(learnable_temperature)

    @property
    def temperature(self) -> Tensor:
        """The current temperature ``exp(log_temperature)`` (a 0-d tensor)."""
        return self.log_temperature.exp()

    @temperature.setter
    def temperature(self, value: float) -> None:
        with torch.no_grad():
            self.log_temperature.fill_(math.log(_check_positive(float(value), "temperature")))

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        return soft_nearest_neighbor_loss(features, labels, self.temperature, self.distance, self.eps)

    def extra_repr(self) -> str:
        return (
            f"temperature={float(self.temperature):.4g}, distance={self.distance!r}, "
            f"learnable_temperature={self.learnable_temperature}, eps={self.eps:g}"
        )


class LayerwiseSoftNearestNeighborLoss(nn.Module):
    r"""Soft nearest neighbor loss over several layers of a model, collected by forward hooks.

    .. math:: L = \sum_{\ell \in \text{layers}} L_{SNN}(h_\ell, y)
              \quad\text{or}\quad \min_{\ell} L_{SNN}(h_\ell, y)

    Forward hooks on the named modules (names as in ``model.named_modules()``) keep the
    activations of the model's latest forward pass; ``loss_fn(labels)`` then computes one
    :class:`SoftNearestNeighborLoss` per layer on the activations flattened to
    ``(N, features)`` (dim 0 is the batch) and reduces them. Each layer has its own
    temperature (learnable per layer with ``learnable_temperature=True``). The model is
    not registered as a submodule: the loss's ``state_dict`` holds only temperatures.
    Call :meth:`remove` to detach the hooks. Frosst et al. *maximize* the loss on hidden
    layers in some experiments; use a negative weight for that.

    Args:
        model: the network whose activations are shaped.
        layers: names of the submodules whose outputs enter the loss.
        temperature, distance, learnable_temperature, eps: as in :class:`SoftNearestNeighborLoss`.
        reduction: ``"sum"`` (as in the reference implementation) or ``"min"`` over layers.

    Reference: Frosst, Papernot and Hinton, ICML 2019; annealing: Agarap and Azcarraga 2020.

    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> loss_fn = LayerwiseSoftNearestNeighborLoss(model, layers=["0", "2"])
    >>> outputs = model(torch.randn(16, 4, generator=torch.Generator().manual_seed(0)))
    >>> sorted(loss_fn.layer_losses(torch.arange(16) % 2))
    ['0', '2']
    >>> loss_fn(torch.arange(16) % 2).shape
    torch.Size([])
    >>> loss_fn.remove()
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        *,
        temperature: float = 1.0,
        distance: Distance = "cosine",
        learnable_temperature: bool = False,
        reduction: Literal["sum", "min"] = "sum",
        eps: float = DEFAULT_EPS,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(layers, str) or len(layers) == 0:
            raise ValueError("layers must be a non-empty list of submodule names")
        if len(set(layers)) != len(layers):
            raise ValueError(f"layers contains duplicates: {list(layers)}")
        if reduction not in ("sum", "min"):
            raise ValueError(f"reduction must be 'sum' or 'min', got {reduction!r}")
        modules = dict(model.named_modules())
        missing = [name for name in layers if name not in modules]
        if missing:
            available = [name for name in modules if name][:20]
            raise ValueError(f"model has no submodule named {missing}; available: {available}")
        self.layers = list(layers)
        self.reduction = reduction
        self.losses = nn.ModuleList(
            SoftNearestNeighborLoss(temperature=temperature, distance=distance, learnable_temperature=learnable_temperature, eps=eps) for _ in self.layers
        )
        self._activations: dict[str, Tensor] = {}
        self._handles = [modules[name].register_forward_hook(self._hook(name)) for name in self.layers]

    def _hook(self, name: str) -> Callable[[nn.Module, object, object], None]:
        def keep_output(module: nn.Module, inputs: object, output: object) -> None:
            if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
                output = output[0]
            if not isinstance(output, Tensor):
                raise TypeError(f"layer {name!r} returned {type(output).__name__}, expected a tensor")
            self._activations[name] = output

        return keep_output

    def set_temperature(self, temperature: float) -> None:
        """Set every layer's temperature, e.g. to ``annealed_temperature(epoch)``."""
        for loss in self.losses:
            loss.temperature = temperature

    def layer_losses(self, labels: Tensor) -> dict[str, Tensor]:
        """The loss of each layer on the latest forward pass's activations, by layer name."""
        missing = [name for name in self.layers if name not in self._activations]
        if missing:
            raise RuntimeError(
                f"no activations captured for layers {missing}: run the model forward before calling the loss"
            )
        result = {}
        for name, loss in zip(self.layers, self.losses):
            activation = self._activations[name]
            features = activation.reshape(activation.shape[0], -1) if activation.dim() != 2 else activation
            result[name] = loss(features, labels)
        return result

    def forward(self, labels: Tensor) -> Tensor:
        per_layer = torch.stack(list(self.layer_losses(labels).values()))
        return per_layer.sum() if self.reduction == "sum" else per_layer.amin()

    def clear(self) -> None:
        """Drop the stored activations (and the autograd graph they keep alive)."""
        self._activations.clear()

    def remove(self) -> None:
        """Remove the forward hooks from the model and drop stored activations."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.clear()

    def extra_repr(self) -> str:
        return f"layers={self.layers}, reduction={self.reduction!r}"
