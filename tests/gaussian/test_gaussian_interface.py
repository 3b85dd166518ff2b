"""One interface: every N(0, I) regularizer is an nn.Module returning a 0-d tensor; bad input fails loudly."""

from __future__ import annotations

from typing import Callable

import pytest
import torch
from torch import nn

import latentshape
from latentshape.gaussian import (
    AdversarialPrior,
    GaussianMMD,
    MomentMatchingLoss,
    SIGReg,
    SlicedWassersteinGaussian,
)

BATCH_REGULARIZERS: dict[str, Callable[[], nn.Module]] = {
    "moment_matching": lambda: MomentMatchingLoss(),
    "sigreg": lambda: SIGReg(slices=16),
    "mmd": lambda: GaussianMMD(),
    "sliced_wasserstein": lambda: SlicedWassersteinGaussian(slices=16),
    "adversarial": lambda: AdversarialPrior(3, hidden=16, seed=0),
}


@pytest.mark.parametrize("name", list(BATCH_REGULARIZERS))
def test_each_regularizer_is_a_module_whose_forward_is_a_differentiable_scalar(name: str) -> None:
    loss_fn = BATCH_REGULARIZERS[name]()
    x = torch.randn(2, 32, 3, requires_grad=True)
    loss = loss_fn(x)
    loss.backward()
    assert isinstance(loss_fn, nn.Module)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0
    assert loss_fn(x.detach().to(torch.float64)).dtype == (torch.float32 if name == "adversarial" else torch.float64)


@pytest.mark.parametrize("name", list(BATCH_REGULARIZERS))
@pytest.mark.parametrize(
    "bad, error, message",
    [
        (torch.ones(8, 3, dtype=torch.int64), TypeError, "floating dtype"),
        (torch.ones(3), ValueError, "rank"),
        (torch.tensor([[0.0, 1.0, float("nan")], [1.0, 2.0, 3.0]]), ValueError, "NaN or Inf"),
        ([[0.0, 1.0, 2.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_is_a_clear_error(name: str, bad: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        BATCH_REGULARIZERS[name]()(bad)


@pytest.mark.parametrize("name", ["moment_matching", "sigreg", "mmd", "sliced_wasserstein"])
def test_batch_statistics_need_two_points(name: str) -> None:
    with pytest.raises(ValueError, match="at least 2 points"):
        BATCH_REGULARIZERS[name]()(torch.zeros(1, 3))


def test_the_public_names_are_exported_from_the_package() -> None:
    for name in (
        "MomentMatchingLoss",
        "GaussianKL",
        "reparameterize",
        "AdversarialPrior",
        "SIGReg",
        "GaussianMMD",
        "SlicedWassersteinGaussian",
    ):
        assert name in latentshape.__all__ and hasattr(latentshape, name)
