import math

import pytest
import torch

from latentshape.sphere import (
    PrototypeClassificationLoss,
    PrototypeRegressionLoss,
    fit_prototypes,
    prototype_separation,
)


def off_diagonal_cosines(prototypes: torch.Tensor) -> torch.Tensor:
    cosines = prototypes @ prototypes.T
    return cosines[~torch.eye(len(prototypes), dtype=torch.bool)]


@pytest.mark.parametrize("dim", [2, 3, 4, 8])
def test_two_d_prototypes_form_the_cross_polytope(dim):
    prototypes = fit_prototypes(2 * dim, dim, dtype=torch.float64)
    cosines = prototypes @ prototypes.T
    off = off_diagonal_cosines(prototypes)
    assert off.max().item() == pytest.approx(0.0, abs=1e-3)
    # Every prototype has its antipode, all the others are orthogonal to it.
    assert torch.allclose(cosines.amin(dim=1), torch.full((2 * dim,), -1.0, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(off.abs().sort().values[: 2 * dim * (2 * dim - 2)], torch.zeros(1, dtype=torch.float64), atol=1e-3)


@pytest.mark.parametrize("dim", [2, 3, 5, 10])
def test_d_plus_one_prototypes_form_the_regular_simplex(dim):
    prototypes = fit_prototypes(dim + 1, dim, dtype=torch.float64)
    off = off_diagonal_cosines(prototypes)
    assert torch.allclose(off, torch.full_like(off, -1.0 / dim), atol=1e-3)
    assert prototype_separation(prototypes).item() == pytest.approx(-1.0 / dim, abs=1e-3)


def test_four_prototypes_in_3d_form_the_tetrahedron():
    prototypes = fit_prototypes(4, 3)
    assert prototypes.dtype == torch.float32
    off = off_diagonal_cosines(prototypes)
    assert off.max().item() == pytest.approx(-1.0 / 3.0, abs=1e-3)
    # Tetrahedron: the vertices sum to zero and the Gram matrix has eigenvalues (0, 4/3, 4/3, 4/3).
    assert prototypes.sum(dim=0).abs().max().item() < 1e-3
    eigenvalues = torch.linalg.eigvalsh((prototypes @ prototypes.T).double())
    assert torch.allclose(eigenvalues, torch.tensor([0.0, 4 / 3, 4 / 3, 4 / 3], dtype=torch.float64), atol=1e-3)


def test_icosahedron_for_twelve_prototypes_in_3d():
    # Tammes problem for N = 12 is solved by the icosahedron: largest cosine 1/sqrt(5).
    prototypes = fit_prototypes(12, 3, dtype=torch.float64)
    assert off_diagonal_cosines(prototypes).max().item() == pytest.approx(1 / math.sqrt(5), abs=1e-3)


def test_fit_is_deterministic_with_unit_rows():
    first = fit_prototypes(7, 5, steps=200, seed=3)
    again = fit_prototypes(7, 5, steps=200, seed=3)
    other = fit_prototypes(7, 5, steps=200, seed=4)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)
    assert torch.allclose(first.norm(dim=1), torch.ones(7), atol=1e-6)


def test_fit_improves_on_the_random_start():
    start = fit_prototypes(20, 6, steps=0)
    fitted = fit_prototypes(20, 6, steps=300)
    assert prototype_separation(fitted) < prototype_separation(start) - 0.1


def ordered_triplet_fraction(prototypes: torch.Tensor, class_vectors: torch.Tensor) -> float:
    """Share of triplets (i, j, k), w_j closer to w_i than w_k, whose prototypes keep that order."""
    units = class_vectors / class_vectors.norm(dim=1, keepdim=True)
    semantic, cosines = units @ units.T, prototypes @ prototypes.T
    kept = total = 0
    for i in range(len(prototypes)):
        for j in range(len(prototypes)):
            for k in range(len(prototypes)):
                if len({i, j, k}) == 3 and semantic[i, j] > semantic[i, k]:
                    total += 1
                    kept += bool(cosines[i, j] > cosines[i, k])
    return kept / total


def test_semantic_priors_transfer_the_similarity_order():
    class_vectors = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    plain = fit_prototypes(10, 5, steps=400)
    informed = fit_prototypes(10, 5, steps=400, class_vectors=class_vectors, prior_weight=1.0)
    assert ordered_triplet_fraction(plain, class_vectors) < 0.6  # chance level is 0.5
    assert ordered_triplet_fraction(informed, class_vectors) > 0.7
    # The separation objective still matters: the prototypes stay well spread.
    assert prototype_separation(informed).item() < 0.1


def test_fit_prototypes_edge_cases_and_errors():
    single = fit_prototypes(1, 4)
    assert single.shape == (1, 4) and single.norm().item() == pytest.approx(1.0, abs=1e-6)
    pair = fit_prototypes(2, 1, steps=50)
    assert sorted(pair.flatten().tolist()) == pytest.approx([-1.0, 1.0], abs=1e-6)
    for kwargs in ({"num_classes": 0, "dim": 3}, {"num_classes": 3, "dim": 0}, {"num_classes": 3, "dim": 2, "steps": -1},
                   {"num_classes": 3, "dim": 2, "prior_weight": -1.0}):
        with pytest.raises(ValueError):
            fit_prototypes(**kwargs)
    with pytest.raises(ValueError, match="class_vectors"):
        fit_prototypes(3, 2, class_vectors=torch.randn(4, 5))


def test_classification_loss_matches_the_formula():
    prototypes = fit_prototypes(5, 4, steps=100, dtype=torch.float64)
    loss_fn = PrototypeClassificationLoss(prototypes)
    g = torch.Generator().manual_seed(1)
    features = torch.randn(9, 4, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 5, (9,), generator=g)
    expected = sum(
        (1.0 - float(features[i] @ prototypes[labels[i]] / features[i].norm())) ** 2 for i in range(9)
    ) / 9
    assert loss_fn(features, labels).item() == pytest.approx(expected, abs=1e-12)
    cosines = features @ prototypes.T / features.norm(dim=1, keepdim=True)
    assert torch.equal(loss_fn.predict(features), cosines.argmax(dim=1))
    assert torch.allclose(loss_fn.cosine_similarities(features), cosines, atol=1e-12)


def test_classification_training_separates_classes():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 6, generator=g) * 3
    labels = torch.arange(90) % 3
    inputs = centers[labels] + torch.randn(90, 6, generator=g)
    head = torch.nn.Linear(6, 2)
    loss_fn = PrototypeClassificationLoss(fit_prototypes(3, 2, steps=100))
    optimizer = torch.optim.Adam(head.parameters(), lr=0.05)
    for _ in range(150):
        optimizer.zero_grad()
        loss_fn(head(inputs), labels).backward()
        optimizer.step()
    accuracy = (loss_fn.predict(head(inputs)) == labels).float().mean().item()
    assert accuracy > 0.95


def test_classification_loss_buffers_shapes_and_errors():
    loss_fn = PrototypeClassificationLoss(torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]]))
    assert torch.allclose(loss_fn.prototypes.norm(dim=1), torch.ones(3))
    assert set(loss_fn.state_dict()) == {"prototypes"}
    features = torch.zeros(2, 4, 2, requires_grad=True)
    labels = torch.zeros(2, 4, dtype=torch.long)
    value = loss_fn(features, labels)
    value.backward()
    assert value.shape == torch.Size([]) and value.item() == pytest.approx(1.0)
    assert torch.isfinite(features.grad).all()
    assert loss_fn.predict(torch.randn(2, 4, 2)).shape == (2, 4)
    with pytest.raises(ValueError, match="labels must lie"):
        loss_fn(torch.randn(4, 2), torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="shape"):
        loss_fn(torch.randn(4, 2), torch.tensor([0, 1]))
    with pytest.raises(TypeError):
        loss_fn(torch.randn(4, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="d = 3"):
        loss_fn(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="zero row"):
        PrototypeClassificationLoss(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    half = loss_fn(torch.randn(4, 2).half(), torch.tensor([0, 1, 2, 0]))
    assert half.dtype == torch.float32 and torch.isfinite(half)


def test_regression_predict_inverts_the_target_map():
    loss_fn = PrototypeRegressionLoss(-3.0, 5.0, dim=4, seed=2)
    upper = loss_fn.upper_prototype
    assert torch.allclose(loss_fn.lower_prototype, -upper)
    assert upper.norm().item() == pytest.approx(1.0, abs=1e-6)
    targets = torch.tensor([-3.0, -1.0, 0.5, 5.0])
    cosines = loss_fn.target_cosine(targets)
    assert torch.allclose(cosines, torch.tensor([-1.0, -0.5, -0.125, 1.0]))
    # A feature at angle arccos(c) from p_up, plus an orthogonal part.
    orthogonal = torch.linalg.qr(torch.stack([upper, torch.randn(4)], dim=1)).Q[:, 1]
    features = 2.0 * (cosines.unsqueeze(1) * upper + (1 - cosines.unsqueeze(1) ** 2).sqrt() * orthogonal)
    assert torch.allclose(loss_fn.predict(features), targets, atol=1e-5)
    assert loss_fn(features, targets).item() == pytest.approx(0.0, abs=1e-10)


def test_regression_loss_matches_the_formula_and_trains():
    loss_fn = PrototypeRegressionLoss(0.0, 10.0, dim=3, upper_prototype=torch.tensor([0.0, 0.0, 2.0]))
    features = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    targets = torch.tensor([10.0, 2.0], dtype=torch.float64)
    expected = ((1 / math.sqrt(2) - 1.0) ** 2 + (0.0 + 0.6) ** 2) / 2
    assert loss_fn(features, targets).item() == pytest.approx(expected, abs=1e-12)

    g = torch.Generator().manual_seed(0)
    inputs = torch.rand(64, 1, generator=g) * 10
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(200):
        optimizer.zero_grad()
        loss_fn(model(inputs / 10), inputs.squeeze(1)).backward()
        optimizer.step()
    error = (loss_fn.predict(model(inputs / 10)) - inputs.squeeze(1)).abs().mean().item()
    assert error < 0.5


def test_regression_errors_and_state():
    with pytest.raises(ValueError):
        PrototypeRegressionLoss(1.0, 1.0, dim=2)
    with pytest.raises(ValueError):
        PrototypeRegressionLoss(2.0, 1.0, dim=2)
    with pytest.raises(ValueError):
        PrototypeRegressionLoss(0.0, 1.0, dim=0)
    with pytest.raises(ValueError):
        PrototypeRegressionLoss(0.0, 1.0, dim=2, upper_prototype=torch.ones(3))
    loss_fn = PrototypeRegressionLoss(0.0, 1.0, dim=2)
    assert set(loss_fn.state_dict()) == {"upper_prototype"}
    with pytest.raises(ValueError, match="targets"):
        loss_fn(torch.randn(3, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="NaN"):
        loss_fn(torch.randn(2, 2), torch.tensor([0.5, math.nan]))
    predictions = loss_fn.predict(torch.randn(5, 2))
    assert ((predictions >= 0) & (predictions <= 1)).all()
