"""Random 1-D slices: the seeded directions behind :class:`~latentshape.SIGReg` and
:class:`~latentshape.SlicedWassersteinGaussian`."""

from __future__ import annotations

import torch
from torch import Tensor

from ..null_lookup import HAS_CUSTOM_OPS, module_token, registered_module
from ..statistic import BatchStatistic
from ..validation import is_compiling

__all__ = ["RandomSlicingLoss", "random_directions"]


def random_directions(
    d: int,
    count: int,
    generator: torch.Generator | None = None,
    leading: tuple[int, ...] = (),
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    r"""``count`` directions uniform on :math:`S^{d-1}`, as the columns of a ``(*leading, d, count)`` tensor.

    Drawn on the CPU (from ``generator`` if given) and then moved, so a seed gives the same
    slices on every device and every rank.

    >>> u = random_directions(3, 5, torch.Generator().manual_seed(0))
    >>> u.shape, torch.allclose(u.norm(dim=0), torch.ones(5))
    (torch.Size([3, 5]), True)
    """
    gaussian = torch.randn(*leading, d, count, generator=generator, dtype=torch.float64)
    # A zero draw has probability 0; the floor only guards the division.
    directions = gaussian / gaussian.norm(dim=-2, keepdim=True).clamp_min(1e-300)
    return directions.to(device=device, dtype=dtype)


class RandomSlicingLoss(BatchStatistic):
    """A batch statistic on random 1-D projections, drawn fresh at every call from a seeded generator.

    Under ``distributed=True`` every rank must build the module with the same ``seed`` and call it
    the same number of times: the slices are then identical on all ranks (they are drawn on the
    CPU from the module's own generator, never from the global RNG).

    The sequence of slices is reproducible given ``seed``; the generator's state is saved in
    ``state_dict`` (as extra state) and restored by ``load_state_dict``.
    """

    def __init__(self, *, slices: int, seed: int, **calibration) -> None:
        super().__init__(**calibration)
        if isinstance(slices, bool) or int(slices) != slices or slices < 1:
            raise ValueError(f"slices must be a positive integer, got {slices!r}")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int, got {seed!r}")
        self.slices = int(slices)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def manual_seed(self, seed: int) -> "RandomSlicingLoss":
        """Restart the sequence of slices from ``seed``; returns ``self``."""
        self.seed = seed
        self.generator.manual_seed(seed)
        return self

    def _training_generator(self) -> torch.Generator | None:
        return self.generator

    def directions(self, x: Tensor, generator: torch.Generator | None) -> Tensor:
        """Fresh unit directions ``(*leading, d, slices)``: one independent set per leading batch.

        Under ``torch.compile`` (where ``generator`` is the module's own) the draw is one opaque
        operator that runs when the graph does: the same directions as eagerly, and no graph break."""
        if is_compiling() and HAS_CUSTOM_OPS:
            drawn = torch.ops.latentshape.slice_directions(module_token(self), x.shape[-1], self.slices,
                                                           list(x.shape[:-2]))
            return drawn.to(device=x.device, dtype=x.dtype)
        return random_directions(
            x.shape[-1], self.slices, generator, tuple(x.shape[:-2]), dtype=x.dtype, device=x.device
        )

    def get_extra_state(self) -> dict:
        return {"generator_state": self.generator.get_state(), "seed": self.seed}

    def set_extra_state(self, state: dict) -> None:
        self.seed = state["seed"]
        self.generator.set_state(state["generator_state"])

    def extra_repr(self) -> str:
        return f"slices={self.slices}, seed={self.seed}, {self._flags_repr()}"


def _slice_directions(token: str, d: int, count: int, leading: list[int]) -> Tensor:
    """:func:`random_directions` (float64, CPU) from the generator of the module behind ``token``."""
    return random_directions(d, count, registered_module(token).generator, tuple(leading), dtype=torch.float64)


def _slice_directions_shape(token: str, d: int, count: int, leading: list[int]) -> Tensor:
    return torch.empty(*leading, d, count, dtype=torch.float64)


if HAS_CUSTOM_OPS:
    torch.library.custom_op("latentshape::slice_directions", _slice_directions,
                            mutates_args=()).register_fake(_slice_directions_shape)
