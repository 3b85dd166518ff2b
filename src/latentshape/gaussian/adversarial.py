r"""Adversarial prior: a critic tells N(0, I) samples from codes; the encoder learns to fool it.

As in adversarial autoencoders, a critic :math:`C: \mathbb{R}^d \to \mathbb{R}` is trained to
separate "real" samples :math:`y \sim N(0, I)` from the encoder's codes z, and the encoder is
trained against it. With :math:`\sigma` the logistic function, the supported games are

- ``gan`` (non-saturating): critic
  :math:`-\mathbb{E}\log\sigma(C(y)) - \mathbb{E}\log(1 - \sigma(C(z)))`; encoder
  :math:`-\mathbb{E}\log\sigma(C(z))`.
- ``lsgan``: critic :math:`\tfrac12\mathbb{E}(C(y) - 1)^2 + \tfrac12\mathbb{E}\,C(z)^2`; encoder
  :math:`\tfrac12\mathbb{E}(C(z) - 1)^2`.
- ``wgan-gp``: critic
  :math:`\mathbb{E}\,C(z) - \mathbb{E}\,C(y) + \lambda\,\mathbb{E}(\|\nabla C(\hat x)\| - 1)^2`;
  encoder :math:`-\mathbb{E}\,C(z)`,

with :math:`\hat x = \epsilon y + (1 - \epsilon) z`, :math:`\epsilon \sim U[0, 1]` per sample, and
:math:`\lambda = 10` by default.

References: Makhzani, Shlens, Jaitly, Goodfellow & Frey (2016), "Adversarial autoencoders";
Goodfellow et al. (2014) (GAN); Mao et al. (2017) (LS-GAN); Gulrajani et al. (2017) (WGAN-GP).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ..validation import as_embeddings, autocast_disabled, is_compiling

__all__ = ["ADVERSARIAL_KINDS", "default_critic", "AdversarialPrior"]

ADVERSARIAL_KINDS: tuple[str, ...] = ("gan", "lsgan", "wgan-gp")
AdversarialKind = Literal["gan", "lsgan", "wgan-gp"]


def default_critic(dim: int, hidden: int = 256) -> nn.Module:
    """The default critic: an MLP ``dim -> hidden -> hidden -> 1`` with LeakyReLU(0.2), no normalization.

    (No batch normalization, which would couple samples and break the WGAN-GP penalty.)

    >>> default_critic(2, hidden=8)(torch.zeros(5, 2)).shape
    torch.Size([5, 1])
    """
    return nn.Sequential(
        nn.Linear(dim, hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, hidden),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden, 1),
    )


class AdversarialPrior(nn.Module):
    r"""Adversarial N(0, I) prior: owns a critic and its optimizer; ``forward`` is the encoder's loss.

    The two-player loop, one step each per batch::

        z = encoder(x)
        prior.critic_step(z)            # critic: one Adam step on z (detached) vs fresh N(0, I)
        loss = task_loss + weight * prior(z)
        loss.backward()                 # reaches the encoder only: the critic's parameters
        encoder_optimizer.step()        # are detached inside forward and get no gradient

    Args:
        dim: code dimension d.
        kind: ``"gan"`` (non-saturating), ``"lsgan"`` or ``"wgan-gp"`` (losses in the module docstring).
        critic: a module mapping ``(B, d)`` to ``(B, 1)`` or ``(B,)``; default :func:`~latentshape.gaussian.default_critic`.
        lr, betas: the critic's Adam optimizer (defaults 2e-4, (0.5, 0.9)).
        gradient_penalty: lambda of WGAN-GP (ignored by the other kinds).
        hidden: width of the default critic.
        seed: seed of the generator for the N(0, I) samples (and WGAN-GP's interpolation
            weights); ``None`` uses the global RNG.

    The optimizer's state and the generator's state are part of ``state_dict``. Move the module
    with ``.to(device)`` before training (the optimizer holds the critic's parameters).

    Reference: Makhzani et al. (2016), "Adversarial autoencoders".

    >>> _ = torch.manual_seed(0)
    >>> encoder = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    >>> encoder_optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-3)
    >>> prior = AdversarialPrior(dim=2, kind="lsgan", hidden=32, seed=0)
    >>> data = torch.rand(64, 4)
    >>> for step in range(10):
    ...     z = encoder(data)
    ...     critic_loss = prior.critic_step(z)   # 1. the critic learns N(0, I) vs codes
    ...     loss = prior(z)                      # 2. the encoder's loss (add your task loss here)
    ...     encoder_optimizer.zero_grad()
    ...     loss.backward()
    ...     encoder_optimizer.step()
    >>> isinstance(critic_loss, float), loss.dim()
    (True, 0)
    >>> all(p.grad is None for p in prior.critic.parameters())   # the encoder's loss left the critic alone
    True
    """

    def __init__(
        self,
        dim: int,
        *,
        kind: AdversarialKind = "gan",
        critic: nn.Module | None = None,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.9),
        gradient_penalty: float = 10.0,
        hidden: int = 256,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if int(dim) != dim or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if kind not in ADVERSARIAL_KINDS:
            raise ValueError(f"kind must be one of {', '.join(ADVERSARIAL_KINDS)}, got {kind!r}")
        if not (float(lr) > 0 and float(lr) < float("inf")):
            raise ValueError(f"lr must be a positive finite number, got {lr!r}")
        if not (float(gradient_penalty) >= 0 and float(gradient_penalty) < float("inf")):
            raise ValueError(f"gradient_penalty must be a finite number >= 0, got {gradient_penalty!r}")
        if int(hidden) != hidden or hidden < 1:
            raise ValueError(f"hidden must be a positive integer, got {hidden!r}")
        if critic is not None and not isinstance(critic, nn.Module):
            raise ValueError(f"critic must be an nn.Module, got {type(critic).__name__}")
        self.dim = int(dim)
        self.kind = kind
        self.gradient_penalty = float(gradient_penalty)
        self.critic = critic if critic is not None else default_critic(self.dim, int(hidden))
        parameters = [p for p in self.critic.parameters() if p.requires_grad]
        if not parameters:
            raise ValueError("the critic has no trainable parameters")
        self.optimizer = torch.optim.Adam(parameters, lr=float(lr), betas=tuple(betas))
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    # -- helpers ------------------------------------------------------------------------------
    def _codes(self, z: Tensor) -> Tensor:
        z = as_embeddings(z, name="z", min_points=1)
        if z.shape[-1] != self.dim:
            raise ValueError(f"the prior was built for dim = {self.dim} but z has d = {z.shape[-1]}")
        dtype = next(self.critic.parameters()).dtype
        codes = z.reshape(-1, self.dim).to(dtype)
        if not is_compiling() and dtype != z.dtype and not bool(torch.isfinite(codes).all()):
            largest = float(z.detach().abs().max())
            raise ValueError(f"z has entries up to {largest:.3g}, beyond the range of the critic's {dtype}: "
                             "the embeddings' scale is too large; rescale them")
        return codes

    def _scores(self, codes: Tensor, detach_critic: bool) -> Tensor:
        with autocast_disabled(codes.device):  # as every loss: the critic's dtype, not autocast's
            if detach_critic:
                frozen = {name: p.detach() for name, p in self.critic.named_parameters()}
                scores = functional_call(self.critic, frozen, (codes,))
            else:
                scores = self.critic(codes)
        return scores.reshape(codes.shape[0])

    def _draw(self, shape: torch.Size, like: Tensor, uniform: bool = False) -> Tensor:
        sampler = torch.rand if uniform else torch.randn
        if self.generator is None:
            return sampler(shape, dtype=like.dtype, device=like.device)
        return sampler(shape, generator=self.generator, dtype=like.dtype).to(like.device)

    # -- public -------------------------------------------------------------------------------
    def forward(self, z: Tensor) -> Tensor:
        """The encoder's (generator's) loss for codes ``z`` ``(..., N, d)``, a 0-d tensor.

        Gradients flow to ``z`` only; the critic's parameters are used detached.
        """
        scores = self._scores(self._codes(z), detach_critic=True)
        if self.kind == "gan":
            return F.softplus(-scores).mean()  # -log sigmoid(C(z)), the non-saturating loss
        if self.kind == "lsgan":
            return 0.5 * ((scores - 1.0) ** 2).mean()
        return -scores.mean()

    def critic_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """The critic's loss on ``real`` N(0, I) samples and ``fake`` codes, both ``(B, d)`` (differentiable)."""
        real_scores = self._scores(real, detach_critic=False)
        fake_scores = self._scores(fake, detach_critic=False)
        if self.kind == "gan":
            return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
        if self.kind == "lsgan":
            return 0.5 * ((real_scores - 1.0) ** 2).mean() + 0.5 * (fake_scores**2).mean()
        loss = fake_scores.mean() - real_scores.mean()
        if self.gradient_penalty > 0:
            weight = self._draw(torch.Size((real.shape[0], 1)), real, uniform=True)
            mixed = (weight * real + (1.0 - weight) * fake).requires_grad_(True)
            (gradient,) = torch.autograd.grad(self._scores(mixed, False).sum(), mixed, create_graph=True)
            # The small constant keeps the norm differentiable where the gradient vanishes.
            norm = torch.sqrt((gradient * gradient).sum(dim=-1) + 1e-12)
            loss = loss + self.gradient_penalty * ((norm - 1.0) ** 2).mean()
        return loss

    def critic_step(self, z: Tensor) -> float:
        """Train the critic one optimizer step: codes ``z`` (detached) against fresh N(0, I) samples.

        Returns the critic's loss before the step, as a float.
        """
        fake = self._codes(z).detach()
        with torch.enable_grad():
            real = self._draw(fake.shape, fake)
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.critic_loss(real, fake)
            loss.backward()
            self.optimizer.step()
        # Leave no critic gradients behind: they would only confuse a caller's own optimizers.
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def get_extra_state(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(),
            "generator": None if self.generator is None else self.generator.get_state(),
        }

    def set_extra_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("generator") is not None:
            if self.generator is None:
                self.generator = torch.Generator()
            self.generator.set_state(state["generator"])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, kind={self.kind!r}"
