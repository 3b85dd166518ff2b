"""torch.autocast (bfloat16, CPU) and torch.compile give the eager float32 values.

Supported and checked here (README, "Multi-process training, autocast and torch.compile"):

- autocast: every loss switches autocast off inside and computes in float32 (float64 input stays
  float64). A float32 batch under ``torch.autocast("cpu", dtype=torch.bfloat16)`` gives the eager
  value to rel. 1e-6 (in practice bit for bit); bfloat16 embeddings from an autocast encoder are
  upcast first, so the loss equals the eager loss of those same values upcast, and differs from an
  all-float32 encoder only by the bfloat16 rounding of the embeddings. As PyTorch recommends, call
  ``backward()`` after leaving the autocast region: inside it, the backward ops would autocast too.
- torch.compile: value and input gradient within rel. 1e-5 of eager in float32 (observed ~3e-7).
  The whole step is one graph (tests/test_compile_recompiles.py: no break, one recompilation for a
  short last batch).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from latentshape.gaussian import MomentMatchingLoss, SIGReg, SlicedWassersteinGaussian
from latentshape.wristband import WristbandLoss

COMPILE_RELATIVE = 1e-5
AUTOCAST_RELATIVE = 1e-6

LOSSES = {
    "wristband spectral": lambda: WristbandLoss(),
    "wristband spectral per_point": lambda: WristbandLoss(average="per_point", calibrate=False),
    "wristband pairwise": lambda: WristbandLoss(method="pairwise", lambda_ang=0.2),
    "SIGReg": lambda: SIGReg(slices=32, seed=1),
    "sliced Wasserstein": lambda: SlicedWassersteinGaussian(slices=32, seed=2),
    "moment matching": lambda: MomentMatchingLoss(),
}


def _batch(n: int = 256, d: int = 8) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=generator) * torch.linspace(0.6, 1.6, d) + 0.2


def _relative(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.detach().double() - expected.detach().double()).abs().max()
                 / expected.detach().double().abs().max().clamp_min(1e-30))


def _value_and_grad(loss_fn, x: torch.Tensor, autocast: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        value = loss_fn(x)
    value.backward()  # outside the autocast region
    return value.detach(), x.grad


@pytest.mark.parametrize("name", list(LOSSES))
def test_float32_input_under_bfloat16_autocast_gives_the_eager_value(name: str) -> None:
    x = _batch()
    eager_value, eager_grad = _value_and_grad(LOSSES[name](), x)
    value, grad = _value_and_grad(LOSSES[name](), x, autocast=True)
    assert value.dtype == torch.float32
    assert _relative(value, eager_value) <= AUTOCAST_RELATIVE
    assert _relative(grad, eager_grad) <= AUTOCAST_RELATIVE


def test_bfloat16_encoder_outputs_under_autocast() -> None:
    x = _batch(256, 6)
    torch.manual_seed(0)
    encoder = nn.Linear(6, 8)
    loss_fn = WristbandLoss()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = encoder(x)
        loss = loss_fn(z)
    assert z.dtype == torch.bfloat16 and loss.dtype == torch.float32
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters())
    # The loss sees the bfloat16 embeddings upcast: exactly the eager loss of those values ...
    assert _relative(loss, loss_fn(z.detach().float())) <= AUTOCAST_RELATIVE
    # ... and within their rounding (2^-8 relative) of the all-float32 pipeline.
    assert _relative(loss, loss_fn(encoder(x))) <= 2e-2


@pytest.mark.parametrize("name", ["wristband spectral", "wristband pairwise", "SIGReg", "moment matching"])
def test_compiled_loss_matches_eager_aot_eager(name: str) -> None:
    # aot_eager traces with dynamo and AOT autograd (graph breaks included) without inductor's codegen.
    x = _batch()
    eager_value, eager_grad = _value_and_grad(LOSSES[name](), x)
    value, grad = _value_and_grad(torch.compile(LOSSES[name](), backend="aot_eager"), x)
    assert _relative(value, eager_value) <= COMPILE_RELATIVE
    assert _relative(grad, eager_grad) <= COMPILE_RELATIVE


def _training_step(encoder: nn.Module, loss_fn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return loss_fn(encoder(x))


# inductor (the default backend; its C++ codegen takes 10-20 s on two cold CPU cores) runs here only,
# on the realistic step: an encoder and the calibrated default loss.
@pytest.mark.parametrize("backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)])
def test_compiled_encoder_and_calibrated_loss_step(backend: str) -> None:
    x = _batch(256, 6)
    results = []
    for compiled in (False, True):
        torch.manual_seed(0)
        encoder = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 8))
        step = torch.compile(_training_step, backend=backend) if compiled else _training_step
        loss = step(encoder, WristbandLoss(), x)
        loss.backward()
        results.append((loss.detach(), [p.grad for p in encoder.parameters()]))
    (eager_loss, eager_grads), (loss, grads) = results
    assert _relative(loss, eager_loss) <= COMPILE_RELATIVE
    for grad, eager_grad in zip(grads, eager_grads):
        assert _relative(grad, eager_grad) <= COMPILE_RELATIVE
