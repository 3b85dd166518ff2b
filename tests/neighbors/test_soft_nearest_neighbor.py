import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from latentshape.neighbors import (
    LayerwiseSoftNearestNeighborLoss,
    SoftNearestNeighborLoss,
    annealed_temperature,
    neighbor_probabilities,
    pairwise_distances,
    soft_nearest_neighbor_loss,
)

# The worked example of a soft nearest neighbor loss tutorial: its features, the cosine distance
# matrix and exp(-D / T) before the diagonal is subtracted, as printed there.
SEED_FEATURES = torch.tensor(
    [
        [1.0999, -0.9438, 0.7996, -0.4247],
        [1.2150, -0.2953, 0.0417, -1.2913],
        [1.3218, 0.4214, -0.1541, 0.0961],
        [-0.7253, 1.1685, -0.1070, 1.3683],
    ]
)
SEED_DISTANCES = torch.tensor(
    [
        [0.0, 2.8502e-01, 6.2687e-01, 1.7732e00],
        [2.8502e-01, 0.0, 4.6293e-01, 1.8581e00],
        [6.2687e-01, 4.6293e-01, 0.0, 1.1171e00],
        [1.7732e00, 1.8581e00, 1.1171e00, 0.0],
    ]
)
SEED_AFFINITIES = torch.tensor(
    [
        [1.0000, 0.7520, 0.5343, 0.1698],
        [0.7520, 1.0000, 0.6294, 0.1560],
        [0.5343, 0.6294, 1.0000, 0.3272],
        [0.1698, 0.1560, 0.3272, 1.0000],
    ]
)
EPS = 1e-5


def brute_force_loss(features, labels, temperature, distance, eps=EPS):
    x = features.double().tolist()
    n = len(x)

    def dist(a, b):
        if distance == "euclidean":
            return sum((p - q) ** 2 for p, q in zip(a, b))
        dot = sum(p * q for p, q in zip(a, b))
        return 1.0 - dot / (math.sqrt(sum(p * p for p in a)) * math.sqrt(sum(q * q for q in b)))

    total = 0.0
    for i in range(n):
        affinities = [math.exp(-dist(x[i], x[j]) / temperature) if j != i else 0.0 for j in range(n)]
        denominator = eps + sum(affinities)
        same = sum(affinities[j] / denominator for j in range(n) if j != i and labels[j] == labels[i])
        total += -math.log(eps + same)
    return total / n


def test_seed_worked_example_distances_and_probabilities():
    distances = pairwise_distances(SEED_FEATURES)
    assert torch.allclose(distances, SEED_DISTANCES, atol=1e-4)
    # The printed exp(-D/T) matrix is reproduced with T = 1.
    probabilities = neighbor_probabilities(SEED_FEATURES, temperature=1.0, eps=EPS)
    affinities = torch.exp(-distances)
    assert torch.allclose(affinities, SEED_AFFINITIES, atol=1e-4)
    # The article's next step: subtract the identity and divide by the row sums + eps.
    off_diagonal = SEED_AFFINITIES - torch.eye(4)
    expected = off_diagonal / (off_diagonal.sum(dim=1, keepdim=True) + EPS)
    assert torch.allclose(probabilities, expected, atol=2e-4)
    assert torch.allclose(probabilities.diagonal(), torch.zeros(4))
    # Row 0 by hand: 0.7520 / (0.7520 + 0.5343 + 0.1698) = 0.5164.
    assert probabilities[0, 1].item() == pytest.approx(0.5164, abs=2e-4)


@pytest.mark.parametrize("labels", [[0, 0, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1]])
def test_seed_worked_example_loss(labels):
    labels_tensor = torch.tensor(labels)
    off_diagonal = SEED_AFFINITIES.double() - torch.eye(4, dtype=torch.float64)
    pick = off_diagonal / (off_diagonal.sum(dim=1, keepdim=True) + EPS)
    mask = labels_tensor.unsqueeze(0) == labels_tensor.unsqueeze(1)
    expected = -torch.log((pick * mask).sum(dim=1) + EPS).mean()
    value = soft_nearest_neighbor_loss(SEED_FEATURES, labels_tensor, temperature=1.0)
    assert value.item() == pytest.approx(expected.item(), abs=5e-4)
    assert SoftNearestNeighborLoss(temperature=1.0)(SEED_FEATURES, labels_tensor).item() == pytest.approx(value.item())


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
@pytest.mark.parametrize("temperature", [0.05, 0.7, 5.0])
def test_matches_float64_brute_force(distance, temperature):
    g = torch.Generator().manual_seed(0)
    features = torch.randn(10, 3, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0, 1, 3])  # class 3 is a singleton
    expected = brute_force_loss(features, labels.tolist(), temperature, distance)
    value = soft_nearest_neighbor_loss(features, labels, temperature, distance)
    assert value.dtype == torch.float64
    assert value.item() == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_tiny_temperature_is_finite_and_equals_the_formula():
    features = torch.randn(8, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1] * 4)
    value = soft_nearest_neighbor_loss(features, labels, temperature=1e-6, distance="euclidean")
    value.backward()
    # exp(-D / T) underflows for every pair: each point contributes -log(eps).
    assert value.item() == pytest.approx(-math.log(EPS), rel=1e-9)
    assert torch.isfinite(features.grad).all()


def test_gradcheck_float64_features_and_temperature():
    g = torch.Generator().manual_seed(2)
    features = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    temperature = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    for distance in ("cosine", "euclidean"):
        assert torch.autograd.gradcheck(
            lambda x, t: soft_nearest_neighbor_loss(x, labels, t, distance), (features, temperature)
        )


def random_rotation(d: int, seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 10),
    d=st.integers(1, 5),
    classes=st.integers(1, 3),
    seed=st.integers(0, 2**16),
    distance=st.sampled_from(["cosine", "euclidean"]),
    temperature=st.floats(0.05, 5.0),
)
def test_invariances(n, d, classes, seed, distance, temperature):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(n, d, generator=g, dtype=torch.float64)
    labels = torch.randint(0, classes, (n,), generator=g)
    value = soft_nearest_neighbor_loss(features, labels, temperature, distance)
    permutation = torch.randperm(n, generator=g)
    rotated = features @ random_rotation(d, seed)
    renamed = (labels + 7) * 3  # a relabelling keeps the partition
    assert torch.allclose(soft_nearest_neighbor_loss(features[permutation], labels[permutation], temperature, distance), value)
    assert torch.allclose(soft_nearest_neighbor_loss(rotated, labels, temperature, distance), value)
    assert torch.allclose(soft_nearest_neighbor_loss(features, renamed, temperature, distance), value)
    if distance == "euclidean":
        shifted = features + torch.randn(d, generator=g, dtype=torch.float64) * 100
        assert torch.allclose(soft_nearest_neighbor_loss(shifted, labels, temperature, distance), value, atol=1e-8)
    else:
        scales = torch.rand(n, 1, generator=g, dtype=torch.float64) * 10 + 0.1
        assert torch.allclose(soft_nearest_neighbor_loss(features * scales, labels, temperature, distance), value)


def test_leading_dims_are_independent_batches():
    g = torch.Generator().manual_seed(3)
    features = torch.randn(2, 3, 7, 4, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 2, (2, 3, 7), generator=g)
    per_batch = [
        soft_nearest_neighbor_loss(features[a, b], labels[a, b], 0.5, "euclidean") for a in range(2) for b in range(3)
    ]
    value = soft_nearest_neighbor_loss(features, labels, 0.5, "euclidean")
    assert value.item() == pytest.approx(torch.stack(per_batch).mean().item(), abs=1e-12)


def knn_accuracy(representation: torch.Tensor, labels: torch.Tensor, k: int = 5) -> float:
    distances = torch.cdist(representation, representation)
    distances.fill_diagonal_(math.inf)
    neighbours = distances.topk(k, largest=False).indices
    votes = labels[neighbours].float().mean(dim=1)
    return ((votes > 0.5).long() == labels).float().mean().item()


def test_minimizing_raises_knn_accuracy_on_a_two_class_toy():
    # The class lives in coordinate 0; four noisy nuisance coordinates dominate distances.
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(120) % 2
    inputs = torch.randn(120, 5, generator=g) * torch.tensor([0.5, 3.0, 3.0, 3.0, 3.0])
    inputs[:, 0] += 2.0 * labels - 1.0
    torch.manual_seed(0)
    encoder = torch.nn.Linear(5, 2)
    loss_fn = SoftNearestNeighborLoss(temperature=1.0, distance="euclidean")
    before_loss = loss_fn(encoder(inputs), labels).item()
    before = knn_accuracy(encoder(inputs).detach(), labels)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=0.05)
    for _ in range(100):
        optimizer.zero_grad()
        loss_fn(encoder(inputs), labels).backward()
        optimizer.step()
    after = knn_accuracy(encoder(inputs).detach(), labels)
    assert loss_fn(encoder(inputs), labels).item() < before_loss - 0.2
    assert before < 0.8
    assert after > 0.9
    assert after > before + 0.15


def test_learnable_temperature_and_setter():
    loss_fn = SoftNearestNeighborLoss(temperature=0.5, learnable_temperature=True)
    assert [name for name, _ in loss_fn.named_parameters()] == ["log_temperature"]
    assert loss_fn.temperature.item() == pytest.approx(0.5)
    g = torch.Generator().manual_seed(4)
    features, labels = torch.randn(12, 3, generator=g), torch.arange(12) % 3
    loss_fn(features, labels).backward()
    # d L / d log T = T dL/dT, compared with a central difference.
    step = 1e-3
    plus = soft_nearest_neighbor_loss(features.double(), labels, 0.5 * math.exp(step)).item()
    minus = soft_nearest_neighbor_loss(features.double(), labels, 0.5 * math.exp(-step)).item()
    assert loss_fn.log_temperature.grad.item() == pytest.approx((plus - minus) / (2 * step), rel=1e-3)
    loss_fn.temperature = 2.0
    assert loss_fn.temperature.item() == pytest.approx(2.0)
    fixed = SoftNearestNeighborLoss(temperature=0.3)
    assert list(fixed.parameters()) == [] and "log_temperature" in fixed.state_dict()
    fixed.temperature = annealed_temperature(3)
    assert fixed.temperature.item() == pytest.approx(4 ** -0.55, rel=1e-6)


def test_annealed_temperature_schedule():
    assert [annealed_temperature(e) for e in (0, 1, 9)] == pytest.approx([1.0, 2 ** -0.55, 10 ** -0.55])
    assert annealed_temperature(3, initial=2.0, rate=1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        annealed_temperature(-1)
    with pytest.raises(ValueError):
        annealed_temperature(1, initial=0.0)


class TwoLayerNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(3, 6), torch.nn.Tanh())
        self.head = torch.nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def test_layerwise_loss_uses_hooked_activations():
    torch.manual_seed(0)
    model = TwoLayerNet()
    g = torch.Generator().manual_seed(5)
    inputs, labels = torch.randn(10, 3, generator=g), torch.arange(10) % 2
    loss_fn = LayerwiseSoftNearestNeighborLoss(model, ["encoder", "head"], temperature=0.5, distance="euclidean")
    with pytest.raises(RuntimeError, match="forward"):
        loss_fn(labels)
    outputs = model(inputs)
    hidden = model.encoder(inputs)
    expected = {
        "encoder": soft_nearest_neighbor_loss(hidden, labels, 0.5, "euclidean"),
        "head": soft_nearest_neighbor_loss(outputs, labels, 0.5, "euclidean"),
    }
    per_layer = loss_fn.layer_losses(labels)
    for name in expected:
        assert per_layer[name].item() == pytest.approx(expected[name].item(), abs=1e-6)
    total = loss_fn(labels)
    assert total.item() == pytest.approx(sum(v.item() for v in expected.values()), abs=1e-6)
    total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    minimum = LayerwiseSoftNearestNeighborLoss(model, ["encoder", "head"], temperature=0.5, distance="euclidean", reduction="min")
    model(inputs)
    assert minimum(labels).item() == pytest.approx(min(v.item() for v in expected.values()), abs=1e-6)
    minimum.remove()


def test_layerwise_state_hooks_and_errors():
    model = TwoLayerNet()
    loss_fn = LayerwiseSoftNearestNeighborLoss(model, ["encoder.0", "head"], learnable_temperature=True)
    # The model is not a submodule of the loss: only the per-layer temperatures are state.
    assert set(loss_fn.state_dict()) == {"losses.0.log_temperature", "losses.1.log_temperature"}
    loss_fn.set_temperature(0.25)
    assert all(loss.temperature.item() == pytest.approx(0.25) for loss in loss_fn.losses)
    images = torch.randn(8, 3)
    model(images)
    assert loss_fn(torch.arange(8) % 2).shape == torch.Size([])
    loss_fn.remove()
    model(torch.randn(4, 3))
    with pytest.raises(RuntimeError):
        loss_fn(torch.arange(4) % 2)
    with pytest.raises(ValueError, match="no submodule"):
        LayerwiseSoftNearestNeighborLoss(model, ["decoder"])
    with pytest.raises(ValueError):
        LayerwiseSoftNearestNeighborLoss(model, [])
    with pytest.raises(ValueError):
        LayerwiseSoftNearestNeighborLoss(model, ["head"], reduction="mean")


def test_layerwise_flattens_convolutional_activations():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 2))
    loss_fn = LayerwiseSoftNearestNeighborLoss(model, ["0"])
    images = torch.randn(6, 1, 6, 6)
    model(images)
    expected = soft_nearest_neighbor_loss(model[0](images).reshape(6, -1), torch.arange(6) % 2)
    assert loss_fn(torch.arange(6) % 2).item() == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_and_zero_vectors(dtype):
    features = torch.randn(16, 4, generator=torch.Generator().manual_seed(6)).to(dtype)
    features[0] = 0
    features.requires_grad_(True)
    labels = torch.arange(16) % 2
    for distance in ("cosine", "euclidean"):
        value = soft_nearest_neighbor_loss(features, labels, 0.1, distance)
        assert value.dtype == torch.float32
        (grad,) = torch.autograd.grad(value, features)
        assert grad.dtype == dtype and torch.isfinite(grad).all()


def test_bad_arguments():
    features, labels = torch.randn(5, 2), torch.arange(5) % 2
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            SoftNearestNeighborLoss(temperature=bad)
        with pytest.raises(ValueError):
            soft_nearest_neighbor_loss(features, labels, temperature=bad)
    with pytest.raises(ValueError):
        SoftNearestNeighborLoss(eps=0.0)
    with pytest.raises(ValueError, match="distance"):
        SoftNearestNeighborLoss(distance="manhattan")
    with pytest.raises(TypeError, match="labels"):
        soft_nearest_neighbor_loss(features, labels.float())
    with pytest.raises(ValueError, match="labels must have shape"):
        soft_nearest_neighbor_loss(features, labels[:3])
    with pytest.raises(ValueError):
        soft_nearest_neighbor_loss(torch.randn(1, 2), torch.tensor([0]))
    with pytest.raises(TypeError):
        soft_nearest_neighbor_loss(torch.ones(4, 2, dtype=torch.long), torch.arange(4))


@pytest.mark.parametrize("distance, temperature, warns", [
    ("euclidean", 1.0, True),     # squared distances ~ 2 d = 128: every affinity is negligible beside eps
    ("euclidean", 128.0, False),  # a temperature on the distances' scale
    ("cosine", 1.0, False),       # cosine distances are at most 2
])
def test_a_loss_stuck_at_minus_log_eps_warns(distance: str, temperature: float, warns: bool) -> None:
    import warnings

    x = torch.randn(64, 64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    labels = torch.arange(64) % 4
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = soft_nearest_neighbor_loss(x, labels, temperature=temperature, distance=distance)
    value.backward()
    messages = [str(w.message) for w in caught if "soft nearest neighbor" in str(w.message)]
    assert bool(messages) == warns, messages
    if warns:  # what the warning says: the constant -log(eps), no gradient
        assert abs(float(value) + math.log(1e-5)) < 1e-4
        assert float(x.grad.abs().max()) < 1e-12
    else:
        assert float(x.grad.abs().max()) > 1e-6
