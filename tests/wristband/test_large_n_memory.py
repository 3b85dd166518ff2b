"""What the default wristband keeps at large N: shared gradients, blocked row products, values unchanged."""

from __future__ import annotations

import pytest
import torch

from latentshape import WristbandLoss
from latentshape.wristband import map as wristband_map_module
from latentshape.wristband import spectral
from latentshape.wristband.radial import _QUANTILES, radial_cost
from latentshape.wristband.spectral import shared_spectral_sums, spectral_sums


def _directions(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    u = torch.nn.functional.normalize(torch.randn(1, n, d, generator=g, dtype=torch.float64), dim=-1)
    return u.requires_grad_(), torch.rand(1, n, generator=g, dtype=torch.float64).requires_grad_()


def _second_consumer(alias: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "dense":  # a fresh, contiguous gradient: added into in place
        return (alias.sin() * alias).sum()
    return alias.sum()  # an expanded gradient (not owned): the fallback adds a copy


@pytest.mark.parametrize("kind", ["dense", "expanded"])
def test_shared_sums_give_the_gradient_of_two_separate_consumers(kind, monkeypatch):
    monkeypatch.setattr(spectral, "_BLOCK_ELEMENTS", 40)  # several blocks
    seen = []
    monkeypatch.setattr(spectral, "_owned", lambda grad: seen.append(wristband_map_module._owned(grad)) or seen[-1])
    u, t = _directions(70, 5)
    sums, alias = shared_spectral_sums(u, t, 4, 2)
    (sums.zeroth.sum() + (sums.first**2).sum() + (sums.second**2).sum() + _second_consumer(alias, kind)).backward()
    shared = (u.grad.clone(), t.grad.clone())
    assert seen == [kind == "dense"]  # written into in place only when nothing else holds it
    u.grad = t.grad = None
    plain = spectral_sums(u, t, 4, 2)
    (plain.zeroth.sum() + (plain.first**2).sum() + (plain.second**2).sum() + _second_consumer(u, kind)).backward()
    torch.testing.assert_close(shared[0], u.grad, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(shared[1], t.grad, rtol=1e-13, atol=1e-13)


def test_shared_sums_gradcheck(monkeypatch):
    monkeypatch.setattr(spectral, "_BLOCK_ELEMENTS", 40)
    u, t = _directions(9, 3, seed=1)

    def total(u, t):
        sums, alias = shared_spectral_sums(u, t, 3, 2)
        return sums.zeroth.sum() + (sums.first**2).sum() + (sums.second**2).sum() + (alias.cos() * alias).sum()

    assert torch.autograd.gradcheck(total, (u, t))


def test_row_dots_in_blocks_equal_vecdot():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(2, 20000, 7, generator=g), torch.randn(2, 20000, 7, generator=g)
    assert torch.equal(wristband_map_module._row_dots(a, b), torch.linalg.vecdot(a, b))


def test_large_batches_do_not_cache_their_mid_quantiles():
    _QUANTILES.clear()
    t = torch.rand(1, 70000, dtype=torch.float64)
    radial_cost(t, torch.special.ndtri(t))
    radial_cost(t[:, :1000], torch.special.ndtri(t[:, :1000]))
    assert [key[0] for key in _QUANTILES] == [1000]


def test_default_loss_values_and_gradients_on_the_shared_path():
    """At (3000, 16) the sharp residual runs on blocks with the shared feature sums: float64 gradcheck-level
    agreement with a central difference of the loss along a random direction."""
    g = torch.Generator().manual_seed(3)
    x = (1.1 * torch.randn(3000, 16, generator=g, dtype=torch.float64)).requires_grad_()
    loss = WristbandLoss()
    loss(x).backward()
    step = 1e-6 * torch.randn(3000, 16, generator=g, dtype=torch.float64)
    with torch.no_grad():
        slope = (loss(x + step) - loss(x - step)) / 2.0
    assert float(slope) == pytest.approx(float((x.grad * step).sum()), rel=1e-6)
