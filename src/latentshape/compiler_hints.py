"""Hints to ``torch.compile`` that do not import Dynamo when the library is imported.

``torch.compiler.disable`` and ``torch.compiler.assume_constant_result`` import ``torch._dynamo``
when they decorate, which takes ~2 s, about as long as importing torch itself. The two decorators
here give the same behaviour under ``torch.compile`` without that import at ``import latentshape``:
:func:`constant_result` never imports Dynamo, :func:`run_eagerly` imports it the first time a
decorated function runs (in practice the first calibrated call, which looks up a null law), so an
import, ``--help``, a user's mistake on the command line or an uncalibrated loss never pays it.

>>> @constant_result
... def table(d: int) -> tuple[float, ...]:
...     return tuple(float(k) for k in range(d))
>>> table(3), table._dynamo_marked_constant
((0.0, 1.0, 2.0), True)
"""

from __future__ import annotations

from typing import Any, Callable

import torch

__all__ = ["run_eagerly", "constant_result"]


def run_eagerly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.compiler.disable(fn)``, applied at the first call: Dynamo never traces ``fn`` (a call
    from compiled code is a graph break that runs it in Python), and importing it is deferred.

    ``torch._disable_dynamo`` is torch's own lazy form of the same decorator (its wrapper lives in a
    module Dynamo always skips); where a torch build lacks it, the eager decorator is used.
    """
    lazy = getattr(torch, "_disable_dynamo", None)
    return lazy(fn) if lazy is not None else torch.compiler.disable(fn)


def constant_result(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.compiler.assume_constant_result(fn)`` without importing Dynamo: under ``torch.compile``
    ``fn`` runs once while tracing and its result is a constant of the graph. Only for functions whose
    result depends on hashable configuration alone.

    The decorator marks the function with the attribute Dynamo reads; a test checks that it is the
    one ``torch.compiler.assume_constant_result`` sets.
    """
    fn._dynamo_marked_constant = True  # type: ignore[attr-defined]
    return fn
