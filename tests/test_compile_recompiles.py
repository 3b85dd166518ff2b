"""A compiled training step over batches of varying size: eager values, no graph break, <= 2 graphs.

The null law enters a compiled graph as the output of one operator (``latentshape::null_law``) and
the random slices as another (``latentshape::slice_directions``), so a short last batch costs one
recompilation with a dynamic batch dimension, and none after it.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch._dynamo
from torch import nn

import latentshape as ls

SIZES = (128, 128, 104, 128, 104, 96)  # a third size must reuse the dynamic graph
RELATIVE = 1e-5

LOSSES = {
    "wristband": lambda: ls.WristbandLoss(),
    "moment matching": lambda: ls.MomentMatchingLoss(null_samples=64),
    "MMD": lambda: ls.GaussianMMD(),
    "SIGReg": lambda: ls.SIGReg(slices=32, null_samples=64),
    "sliced Wasserstein": lambda: ls.SlicedWassersteinGaussian(slices=32, null_samples=64),
}


def _compiled_run(loss_fn: nn.Module, backend: str) -> tuple[list[float], list[float], dict]:
    torch.manual_seed(0)
    data = torch.randn(max(SIZES), 12)
    encoder = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 6))

    def step(x: torch.Tensor) -> torch.Tensor:
        return loss_fn(encoder(x))

    compiled = torch.compile(step, backend=backend, fullgraph=True)  # a graph break raises
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    values, eager = [], []
    generator = getattr(loss_fn, "generator", None)
    for n in SIZES:
        x = data[:n]
        state = generator.get_state() if generator is not None else None
        value = compiled(x)
        value.backward()
        values.append(float(value))
        if generator is not None:  # the eager step draws the same slices
            generator.set_state(state)
        eager.append(float(step(x)))
    counters = torch._dynamo.utils.counters
    return values, eager, {"graphs": counters["stats"]["unique_graphs"], "frames": counters["frames"]["ok"],
                           "breaks": sum(counters["graph_break"].values())}


def _check(name: str, backend: str) -> None:
    getattr(torch._dynamo.utils, "warn_once_cache", set()).clear()  # Dynamo warns once per process
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        values, eager, counts = _compiled_run(LOSSES[name](), backend)
    for value, reference in zip(values, eager):
        assert abs(value - reference) <= RELATIVE * max(abs(reference), 1.0)
    assert counts["breaks"] == 0
    assert counts["graphs"] <= 2 and counts["frames"] <= 2  # the first batch size, then one dynamic graph
    flagged = [str(w.message) for w in caught
               if "lru_cache" in str(w.message) or "dynamo" in (str(w.filename) + str(w.message)).lower()]
    assert not flagged


# a few seconds each; the others take 5-20 s on two busy cores
FAST = ("moment matching", "sliced Wasserstein")


@pytest.mark.parametrize("name", [pytest.param(name, marks=() if name in FAST else pytest.mark.slow) for name in LOSSES])
def test_compiled_step_recompiles_once_and_matches_eager(name: str) -> None:
    # the "eager" backend runs Dynamo's capture (breaks, guards, recompiles) without AOT autograd's codegen
    _check(name, "eager")


@pytest.mark.slow
def test_compiled_wristband_step_with_aot_autograd() -> None:
    _check("wristband", "aot_eager")
