"""The adversarial prior: losses by hand, the two-player plumbing, and an encoder it Gaussianizes."""

from __future__ import annotations

import copy
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from latentshape.bench.distributions import x_shape
from latentshape.gaussian.adversarial import AdversarialPrior


class LinearCritic(nn.Module):
    """C(z) = w . z + b: every score and gradient is known by hand."""

    def __init__(self, weight: list[float], bias: float) -> None:
        super().__init__()
        self.linear = nn.Linear(len(weight), 1)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([weight]))
            self.linear.bias.fill_(bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(z)


def _fixed() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(6, 2, generator=generator), torch.randn(6, 2, generator=generator) + 1.0


@pytest.mark.parametrize("kind", ["gan", "lsgan", "wgan-gp"])
def test_encoder_and_critic_losses_match_the_formulas(kind: str) -> None:
    critic = LinearCritic([2.0, 0.0], 0.5)  # gradient norm 2 everywhere
    prior = AdversarialPrior(2, kind=kind, critic=critic)
    real, fake = _fixed()
    real_scores, fake_scores = 2.0 * real[:, 0] + 0.5, 2.0 * fake[:, 0] + 0.5
    if kind == "gan":
        encoder = -torch.log(torch.sigmoid(fake_scores)).mean()
        critic_loss = -torch.log(torch.sigmoid(real_scores)).mean() - torch.log(1 - torch.sigmoid(fake_scores)).mean()
    elif kind == "lsgan":
        encoder = 0.5 * ((fake_scores - 1) ** 2).mean()
        critic_loss = 0.5 * ((real_scores - 1) ** 2).mean() + 0.5 * (fake_scores**2).mean()
    else:
        encoder = -fake_scores.mean()
        critic_loss = fake_scores.mean() - real_scores.mean() + 10.0 * (2.0 - 1.0) ** 2
    assert float(prior(fake).detach()) == pytest.approx(float(encoder), rel=1e-5)
    assert float(prior.critic_loss(real, fake).detach()) == pytest.approx(float(critic_loss), rel=1e-5)


def test_forward_sends_gradient_to_the_codes_only() -> None:
    prior = AdversarialPrior(3, seed=0)
    z = torch.randn(2, 10, 3, requires_grad=True)  # leading dims are flattened into one batch
    loss = prior(z)
    loss.backward()
    assert loss.dim() == 0
    assert z.grad is not None and float(z.grad.abs().sum()) > 0
    assert all(p.grad is None for p in prior.critic.parameters())


@pytest.mark.parametrize("kind", ["gan", "lsgan", "wgan-gp"])
def test_critic_step_trains_the_critic_on_detached_codes(kind: str) -> None:
    torch.manual_seed(1)
    prior = AdversarialPrior(2, kind=kind, seed=0, lr=1e-2)
    z = (torch.randn(256, 2) * 0.3 + 2.0).requires_grad_(True)
    before = [p.detach().clone() for p in prior.critic.parameters()]
    losses = [prior.critic_step(z) for _ in range(30)]
    assert all(isinstance(value, float) for value in losses)
    assert losses[-1] < losses[0]  # the critic learns to tell N(0, I) from the shifted codes
    assert any(not torch.equal(a, b) for a, b in zip(before, prior.critic.parameters()))
    assert z.grad is None  # the codes were detached
    assert all(p.grad is None for p in prior.critic.parameters())  # no stale gradients left behind


def test_gradient_penalty_uses_interpolates_between_real_and_fake() -> None:
    # For C(z) = ||z||^2 / 2 the gradient at x is x: the penalty is 10 * mean (||x_hat|| - 1)^2.
    class Quadratic(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(0.5))

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return self.scale * (z * z).sum(dim=-1)

    prior = AdversarialPrior(2, kind="wgan-gp", critic=Quadratic(), seed=3)
    real, fake = _fixed()
    generator_state = prior.generator.get_state()
    value = prior.critic_loss(real, fake)
    weight = torch.rand((6, 1), generator=torch.Generator().set_state(generator_state))
    mixed = weight * real + (1 - weight) * fake
    expected = 0.5 * ((fake**2).sum(-1).mean() - (real**2).sum(-1).mean()) + 10 * ((mixed.norm(dim=-1) - 1) ** 2).mean()
    assert float(value.detach()) == pytest.approx(float(expected), rel=1e-5)


def test_state_dict_carries_the_critic_its_optimizer_and_the_generator() -> None:
    torch.manual_seed(2)
    prior = AdversarialPrior(2, kind="lsgan", seed=5)
    z = torch.randn(64, 2) + 1.0
    for _ in range(3):
        prior.critic_step(z)
    checkpoint = copy.deepcopy(prior.state_dict())  # like torch.save: state_dict holds live references
    expected = [prior.critic_step(z) for _ in range(2)]
    torch.manual_seed(99)
    resumed = AdversarialPrior(2, kind="lsgan", seed=0)
    resumed.load_state_dict(checkpoint)
    assert [resumed.critic_step(z) for _ in range(2)] == pytest.approx(expected, rel=1e-6)


def test_custom_critic_with_flat_output_and_low_precision_codes() -> None:
    critic = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1), nn.Flatten(0))
    prior = AdversarialPrior(2, critic=critic, seed=0)
    z = torch.randn(16, 2).to(torch.bfloat16).requires_grad_(True)
    loss = prior(z)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(z.grad.float()).all()
    assert isinstance(prior.critic_step(z), float)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dim": 0}, "dim"),
        ({"dim": 2, "kind": "vanilla"}, "kind"),
        ({"dim": 2, "lr": 0.0}, "lr"),
        ({"dim": 2, "gradient_penalty": -1.0}, "gradient_penalty"),
        ({"dim": 2, "critic": lambda z: z}, "critic"),
    ],
)
def test_bad_configuration_is_a_clear_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AdversarialPrior(**kwargs)


def test_wrong_code_dimension_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="dim = 3"):
        AdversarialPrior(3)(torch.randn(5, 2))


def _train_autoencoder(kind: str | None, seed: int, steps: int = 300) -> tuple[nn.Module, torch.Tensor]:
    """A 4 -> 2 -> 4 autoencoder on the 4-D X shape, with or without the adversarial prior."""
    torch.manual_seed(seed)
    data = x_shape(256, 4, generator=torch.Generator().manual_seed(seed))
    encoder = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 2))
    decoder = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 4))
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=3e-3)
    prior = AdversarialPrior(2, kind=kind, seed=seed) if kind else None
    for _ in range(steps):
        z = encoder(data)
        loss = F.mse_loss(decoder(z), data)
        if prior is not None:
            prior.critic_step(z)
            loss = loss + prior(z)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    held_out = x_shape(2048, 4, generator=torch.Generator().manual_seed(1000 + seed))
    with torch.no_grad():
        return encoder, encoder(held_out)


@pytest.mark.parametrize("kind", ["gan", "lsgan"])
def test_the_prior_makes_an_encoders_latent_measurably_more_gaussian(
    kind: str, sliced_distance: Callable[[torch.Tensor], float]
) -> None:
    # WGAN-GP needs several critic steps per encoder step to be stable here, which is too slow
    # for a unit test; it is covered by the free-points test in test_gaussianization.py.
    _, without = _train_autoencoder(None, seed=0)
    _, with_prior = _train_autoencoder(kind, seed=0)
    assert sliced_distance(with_prior) < 0.2 * sliced_distance(without)
    assert sliced_distance(with_prior) < 0.1  # near the N(0, I) level of ~0.005 at this size
