r"""The null law of a batch statistic as graph *data* under ``torch.compile``.

A calibrated loss standardizes its raw components with the null mean, sd and correlation at the
batch's (N, d) (:class:`~latentshape.calibration.NullStats`). Eagerly those come from a Python
cache. Inside a ``torch.compile`` trace a Python lookup keyed on N would either break the graph
or turn N and the null moments into constants the graph guards on, so that every new batch size
recompiles. Here the lookup is one opaque operator,
``latentshape::null_law(token, n, d, components, device)``: N enters as a (symbolic) integer, the
moments leave as a tensor, and one compiled graph with a dynamic batch dimension serves every N.
The operator runs the ordinary cached computation
(:meth:`latentshape.statistic.BatchStatistic.null_stats`) when the graph executes.

>>> import latentshape as ls
>>> loss_fn = ls.MomentMatchingLoss()
>>> mean, std, corr = null_law_tensors(loss_fn, 64, 4)
>>> torch.equal(mean, loss_fn.null_stats(64, 4).mean)
True
"""

from __future__ import annotations

import itertools
import threading
import weakref

import torch
from torch import Tensor

from .compiler_hints import constant_result
from .validation import is_compiling

__all__ = ["null_law_tensors", "module_token", "registered_module", "HAS_CUSTOM_OPS"]

# torch.library.custom_op exists from torch 2.4; before it, compiled graphs break at these lookups instead.
HAS_CUSTOM_OPS = hasattr(torch.library, "custom_op")
_OWNERS: "weakref.WeakValueDictionary[str, torch.nn.Module]" = weakref.WeakValueDictionary()
_TOKENS: "weakref.WeakKeyDictionary[torch.nn.Module, str]" = weakref.WeakKeyDictionary()
_COUNTER = itertools.count()
_LOCK = threading.Lock()


@constant_result  # run once while tracing; the token is a constant of the graph
def module_token(owner: torch.nn.Module) -> str:
    """A name for ``owner`` that an operator can resolve at run time (:func:`registered_module`; held weakly)."""
    with _LOCK:
        token = _TOKENS.get(owner)
        if token is None:
            token = f"{type(owner).__name__}-{next(_COUNTER)}"
            _TOKENS[owner], _OWNERS[token] = token, owner
    return token


def registered_module(token: str) -> torch.nn.Module:
    """The module behind a :func:`module_token`."""
    owner = _OWNERS.get(token)
    if owner is None:
        raise RuntimeError(f"the module behind {token!r} no longer exists")
    return owner


def _null_law(token: str, n: int, d: int, components: int, device: str) -> Tensor:
    """Packed ``(mean (C), std (C), corr (C x C))`` of the null law of ``token``'s statistic at (n, d)."""
    stats = registered_module(token).null_stats(n, d, device=device)
    return torch.cat([stats.mean, stats.std, stats.corr.reshape(-1)]).to(torch.float64)


def _null_law_shape(token: str, n: int, d: int, components: int, device: str) -> Tensor:
    return torch.empty(components * (components + 2), dtype=torch.float64)


if HAS_CUSTOM_OPS:
    torch.library.custom_op("latentshape::null_law", _null_law, mutates_args=()).register_fake(_null_law_shape)


def null_law_tensors(owner: torch.nn.Module, n: int, d: int,
                     device: torch.device | str = "cpu") -> tuple[Tensor, Tensor, Tensor]:
    """``(mean, std, corr)`` of ``owner``'s null law at (n, d), float64 on the CPU.

    Eagerly the cached :class:`~latentshape.calibration.NullStats` fields; inside a ``torch.compile``
    trace the output of the ``latentshape::null_law`` operator (the same values, computed when the
    graph runs, with no guard on n).
    """
    if not (is_compiling() and HAS_CUSTOM_OPS):
        stats = owner.null_stats(n, d, device=device)
        return stats.mean, stats.std, stats.corr
    size = len(owner.component_names)
    packed = torch.ops.latentshape.null_law(module_token(owner), n, d, size, str(device))
    return packed[:size], packed[size: 2 * size], packed[2 * size:].view(size, size)
