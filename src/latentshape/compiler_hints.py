"""Hints to ``torch.compile`` that do not import Dynamo when the library is imported.

``torch.compiler.disable`` and ``torch.compiler.assume_constant_result`` import ``torch._dynamo``
when they decorate, which takes ~2 s, about as long as importing torch itself. The two decorators
here give the same behaviour under ``torch.compile`` and never import Dynamo themselves: a process
that does not compile (a command-line call, a worker, an eager training loop) never loads it.

>>> @constant_result
... def table(d: int) -> tuple[float, ...]:
...     return tuple(float(k) for k in range(d))
>>> table(3), table._dynamo_marked_constant
((0.0, 1.0, 2.0), True)
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

import torch

__all__ = ["run_eagerly", "constant_result"]


def run_eagerly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.compiler.disable(fn)`` without importing Dynamo: Dynamo never traces ``fn`` (a call from
    compiled code is a graph break that runs it in Python).

    Before Dynamo is loaded nothing can be compiling, so ``fn`` is called directly. Otherwise the call
    goes through ``torch._disable_dynamo``, torch's own lazy form of the decorator (its wrapper lives
    in a module Dynamo always skips; where a torch build lacks it, ``torch.compiler.disable``). While
    Dynamo traces, ``torch.compiler.is_compiling()`` is True and the module check is never reached.
    """
    lazy = getattr(torch, "_disable_dynamo", None)
    disabled = lazy(fn) if lazy is not None else None

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if not torch.compiler.is_compiling() and "torch._dynamo" not in sys.modules:
            return fn(*args, **kwargs)
        return (disabled or torch.compiler.disable(fn))(*args, **kwargs)

    return call


def constant_result(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.compiler.assume_constant_result(fn)`` without importing Dynamo: under ``torch.compile``
    ``fn`` runs once while tracing and its result is a constant of the graph. Only for functions whose
    result depends on hashable configuration alone.

    The decorator marks the function with the attribute Dynamo reads; a test checks that it is the
    one ``torch.compiler.assume_constant_result`` sets.
    """
    fn._dynamo_marked_constant = True  # type: ignore[attr-defined]
    return fn
