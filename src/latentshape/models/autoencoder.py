r"""A deterministic Gaussian autoencoder: encoder, exact invertible flow, N(0, I) latent.

The model maps data x to a latent z in two steps, both deterministic:

.. math::
    h = (h_c, h_r) = (\mathrm{enc}_c(x_{\mathrm{ctx}}),\ \mathrm{enc}_r(x)), \qquad
    z = (z_c, z_r) = (F_c(h_c),\ F_r(h_r \mid h_c)),

where :math:`x_{\mathrm{ctx}}` is a chosen part of the input (the *context view*; all of x by
default), :math:`F_c` is a coupling flow and :math:`F_r` a coupling flow conditioned on
:math:`h_c` (RealNVP, Dinh et al. 2017, as implemented by ``zuko``). The map
:math:`h \mapsto z` is block-triangular, hence a bijection with an exact inverse:
:math:`h_c = F_c^{-1}(z_c)`, :math:`h_r = F_r^{-1}(z_r \mid h_c)`. The decoder reconstructs
from :math:`h`: :math:`\hat x = \mathrm{dec}(F^{-1}(z))`.

Training (:func:`~latentshape.models.training.train_autoencoder`) adds a Gaussian
regularizer on z (by default the calibrated :class:`~latentshape.wristband.WristbandLoss`) to
the reconstruction loss, so that the batch of codes looks like N(0, I); optionally the decoder is
trained on slightly perturbed codes, which smooths it between training codes without making the
encoder stochastic. A latent that *is*
N(0, I) is a plug-compatible interface:

* **sample**: decode z ~ N(0, I);
* **resample a factor**: N(0, I) has independent blocks, so replacing :math:`z_r` by a fresh
  N(0, I) draw while holding :math:`z_c` samples from p(x | z_c) (and vice versa);
* **condition on part of the input**: :math:`z_c` depends on :math:`x_{\mathrm{ctx}}` only, so
  given that part of an input (say, the bottom half of an image) one computes :math:`z_c`,
  draws :math:`z_r \sim N(0, I)` several times and decodes: several completions consistent with
  the given part. This relies only on the independence :math:`z_c \perp z_r` that the Gaussian
  regularizer enforces on the joint latent; no inference-time optimization is needed.

References: M. Parakhin, *Wristband Gaussian Loss* (2025); L. Dinh, J. Sohl-Dickstein and
S. Bengio, *Density estimation using Real NVP* (ICLR 2017); F. Rozet et al., *zuko*
(https://github.com/probabilists/zuko).
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor, nn

__all__ = ["GaussianAutoencoder"]

_ZUKO_MISSING = 'the Gaussian autoencoder needs zuko: pip install "latentshape[demo]"'


def _zuko_flows():
    """Import ``zuko.flows`` lazily, with an actionable message when it is missing."""
    try:
        import zuko.flows
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(_ZUKO_MISSING) from error
    return zuko.flows


def _mlp(in_features: int, out_features: int, hidden: int, layers: int = 2) -> nn.Sequential:
    modules: list[nn.Module] = []
    width = in_features
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.SiLU()]
        width = hidden
    modules.append(nn.Linear(width, out_features))
    return nn.Sequential(*modules)


class GaussianAutoencoder(nn.Module):
    r"""Deterministic autoencoder whose latent z = flow(encoder(x)) is trained to be N(0, I).

    The latent has ``latent_dim`` coordinates: a *context* block ``z[..., :context_dim]``
    computed from the context view of the input only, and a *residual* block
    ``z[..., context_dim:]`` computed from the whole input. See the module docstring for the
    maps; ``encode`` and ``decode`` are exact inverses on the flow part (``decode`` then applies
    the decoder network).

    Args:
        data_dim: number of input features (inputs are ``(..., data_dim)``).
        latent_dim: K, the latent dimension (context + residual).
        context_dim: size of the context block, ``0 <= context_dim < latent_dim``.
        context_features: indices of the input features the context encoder sees (the part of
            the input one conditions on, e.g. the bottom half of an image); ``None``: all.
        hidden: width of the encoder and decoder MLPs (two hidden layers each).
        flow_transforms: number of coupling transforms per flow.
        flow_hidden: hidden widths of the flows' coupling networks.
        output: ``"sigmoid"`` decodes into (0, 1) (data scaled to [0, 1]); ``"identity"`` leaves
            the decoder's output unbounded.

    >>> model = GaussianAutoencoder(data_dim=6, latent_dim=3, context_dim=1, context_features=[3, 4, 5])
    >>> x = torch.rand(5, 6)
    >>> z = model.encode(x)
    >>> z.shape, model.decode(z).shape, model.sample(4).shape
    (torch.Size([5, 3]), torch.Size([5, 6]), torch.Size([4, 6]))
    >>> h = torch.randn(5, 3)
    >>> bool(torch.allclose(model.flow_inverse(model.flow_forward(h)), h, atol=1e-5))   # exact inverse
    True
    >>> model.complete(x[:2, 3:], samples=4).shape     # 2 inputs, 4 completions each
    torch.Size([2, 4, 6])
    """

    def __init__(
        self,
        data_dim: int,
        latent_dim: int,
        context_dim: int = 0,
        context_features: Sequence[int] | Tensor | None = None,
        hidden: int = 256,
        flow_transforms: int = 3,
        flow_hidden: Sequence[int] = (64, 64),
        output: Literal["sigmoid", "identity"] = "sigmoid",
    ) -> None:
        super().__init__()
        if data_dim < 1 or latent_dim < 1:
            raise ValueError(f"data_dim and latent_dim must be >= 1, got {data_dim}, {latent_dim}")
        if not 0 <= context_dim < latent_dim:
            raise ValueError(f"context_dim must be in [0, latent_dim) = [0, {latent_dim}), got {context_dim}")
        if output not in ("sigmoid", "identity"):
            raise ValueError(f"output must be 'sigmoid' or 'identity', got {output!r}")
        if flow_transforms < 1:
            raise ValueError(f"flow_transforms must be >= 1, got {flow_transforms}")
        flows = _zuko_flows()
        self.data_dim = int(data_dim)
        self.latent_dim = int(latent_dim)
        self.context_dim = int(context_dim)
        self.residual_dim = self.latent_dim - self.context_dim
        self.output = output

        if context_features is None:
            index = torch.arange(data_dim)
        else:
            index = torch.as_tensor(context_features, dtype=torch.long).flatten()
            if index.numel() == 0 or int(index.min()) < 0 or int(index.max()) >= data_dim:
                raise ValueError(f"context_features must be non-empty indices in [0, {data_dim})")
        self.register_buffer("context_features", index, persistent=False)

        coupling = dict(transforms=flow_transforms, hidden_features=tuple(flow_hidden))
        if self.context_dim > 0:
            self.context_encoder = _mlp(index.numel(), self.context_dim, hidden)
            self.context_flow = flows.RealNVP(self.context_dim, **coupling)
        else:
            self.context_encoder = None
            self.context_flow = None
        self.residual_encoder = _mlp(data_dim, self.residual_dim, hidden)
        # Conditioning F_r on h_c keeps the map block-triangular (exactly invertible) while letting
        # the residual code depend on the context in any way the flow can express.
        self.residual_flow = flows.RealNVP(self.residual_dim, context=self.context_dim, **coupling)
        self.decoder = _mlp(self.latent_dim, data_dim, hidden)

    # -- the bijection h <-> z -------------------------------------------------------------
    def _split(self, v: Tensor) -> tuple[Tensor, Tensor]:
        return v[..., : self.context_dim], v[..., self.context_dim :]

    def _residual_transform(self, h_context: Tensor):
        return self.residual_flow.transform(h_context if self.context_dim > 0 else None)

    def flow_forward(self, h: Tensor) -> Tensor:
        """z = F(h): the flow applied to pre-flow codes ``h`` of shape ``(..., latent_dim)``."""
        h_context, h_residual = self._split(h)
        z_residual = self._residual_transform(h_context)(h_residual)
        if self.context_dim == 0:
            return z_residual
        z_context = self.context_flow.transform()(h_context)
        return torch.cat([z_context, z_residual], dim=-1)

    def flow_inverse(self, z: Tensor) -> Tensor:
        """h = F^-1(z), exact up to floating point: h_c = F_c^-1(z_c), h_r = F_r^-1(z_r | h_c)."""
        z_context, z_residual = self._split(z)
        if self.context_dim == 0:
            return self._residual_transform(z_context).inv(z_residual)
        h_context = self.context_flow.transform().inv(z_context)
        h_residual = self._residual_transform(h_context).inv(z_residual)
        return torch.cat([h_context, h_residual], dim=-1)

    # -- encoder / decoder -------------------------------------------------------------------
    def context_view(self, x: Tensor) -> Tensor:
        """The part of ``x`` the context block depends on: ``x[..., context_features]``."""
        return x.index_select(-1, self.context_features)

    def pre_flow(self, x: Tensor) -> Tensor:
        """h = (enc_c(x_ctx), enc_r(x)), the encoder networks' output before the flow."""
        h_residual = self.residual_encoder(x)
        if self.context_dim == 0:
            return h_residual
        return torch.cat([self.context_encoder(self.context_view(x)), h_residual], dim=-1)

    def encode(self, x: Tensor) -> Tensor:
        """z = F(h(x)), shape ``(..., latent_dim)``; trained to be N(0, I) over the data."""
        self._check_input(x, self.data_dim, "x")
        return self.flow_forward(self.pre_flow(x))

    def encode_context(self, x_context: Tensor) -> Tensor:
        """z_c from the context view alone (shape ``(..., len(context_features))``)."""
        if self.context_dim == 0:
            raise ValueError("this model has no context block (context_dim=0)")
        self._check_input(x_context, self.context_features.numel(), "x_context")
        return self.context_flow.transform()(self.context_encoder(x_context))

    def decode(self, z: Tensor) -> Tensor:
        """x_hat = dec(F^-1(z)), shape ``(..., data_dim)``."""
        self._check_input(z, self.latent_dim, "z")
        out = self.decoder(self.flow_inverse(z))
        return torch.sigmoid(out) if self.output == "sigmoid" else out

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(z, x_hat)``: the latent and the reconstruction of ``x``."""
        z = self.encode(x)
        return z, self.decode(z)

    # -- the Gaussian interface --------------------------------------------------------------
    def _normal(self, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
        reference = self.decoder[0].weight
        if generator is None:
            return torch.randn(shape, dtype=reference.dtype, device=reference.device)
        draw = torch.randn(shape, generator=generator, dtype=reference.dtype, device=generator.device)
        return draw.to(reference.device)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Decode ``n`` draws z ~ N(0, I): shape ``(n, data_dim)``."""
        return self.decode(self._normal((int(n), self.latent_dim), generator))

    def resample(
        self,
        z: Tensor,
        block: Literal["residual", "context"] = "residual",
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """A copy of ``z`` with one block replaced by fresh N(0, I) draws; the other is held exactly.

        With z ~ N(0, I) the blocks are independent, so ``decode(resample(z, "residual"))``
        samples p(x | z_c): same context, new residual (and symmetrically for ``"context"``).
        """
        self._check_input(z, self.latent_dim, "z")
        if block == "residual":
            start, stop = self.context_dim, self.latent_dim
        elif block == "context":
            if self.context_dim == 0:
                raise ValueError("this model has no context block (context_dim=0)")
            start, stop = 0, self.context_dim
        else:
            raise ValueError(f"block must be 'residual' or 'context', got {block!r}")
        out = z.clone()
        out[..., start:stop] = self._normal((*z.shape[:-1], stop - start), generator)
        return out

    def complete(self, x_context: Tensor, samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """Complete inputs from their context view: ``(B, samples, data_dim)`` decodings.

        z_c = F_c(enc_c(x_context)) is fixed, z_r ~ N(0, I) is drawn ``samples`` times per input.
        The output is the decoder's full reconstruction; paste the known part back if wanted.
        """
        z_context = self.encode_context(x_context)
        if z_context.dim() == 1:
            z_context = z_context.unsqueeze(0)
        z_context = z_context.unsqueeze(-2).expand(*z_context.shape[:-1], int(samples), self.context_dim)
        z_residual = self._normal((*z_context.shape[:-1], self.residual_dim), generator)
        return self.decode(torch.cat([z_context, z_residual], dim=-1))

    @staticmethod
    def _check_input(x: Tensor, features: int, name: str) -> None:
        if not isinstance(x, Tensor) or not torch.is_floating_point(x):
            raise TypeError(f"{name} must be a floating-point tensor")
        if x.dim() < 1 or x.shape[-1] != features:
            raise ValueError(f"{name} must have shape (..., {features}), got {tuple(x.shape)}")
