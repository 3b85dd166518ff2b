"""Input checks shared by every loss: clear errors instead of silent NaNs."""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "as_embeddings",
    "as_batch_input",
    "as_directions",
    "compute_dtype",
    "autocast_disabled",
    "count_nonfinite_rows",
    "is_compiling",
    "is_real_number",
    "representable",
    "computed_in_range",
]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a loss computes in: float64 is honoured, every other float becomes float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def autocast_disabled(device: torch.device) -> contextlib.AbstractContextManager:
    """A context that switches ``torch.autocast`` off on ``device``'s type (losses compute in float32/64).

    Autocast would otherwise run the losses' matmuls in bfloat16/float16 and lose the precision
    their statistics need; the caller's autocast region resumes after the loss.
    """
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # a device type autocast does not know: nothing to switch off
        return contextlib.nullcontext()


def as_embeddings(x: Tensor, name: str = "x", min_points: int = 2, check_finite: bool = True) -> Tensor:
    """Validate a batch of embeddings of shape ``(..., N, d)`` and cast it to its compute dtype.

    ``check_finite=False`` leaves the NaN/Inf check to the caller (the distributed losses make it
    on every rank at once, see :func:`latentshape.distributed.global_batch`).

    Raises:
        TypeError: ``x`` is not a tensor, or has an integer, bool or complex dtype.
        ValueError: rank below 2, an empty leading dimension (e.g. shape ``(0, N, d)``: there is no
            batch, and a mean over no batches would be NaN), fewer than ``min_points`` rows, ``d = 0``,
            or rows with NaN/Inf.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (..., N, d), got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(
            f"{name} must have a floating dtype (float16/bfloat16/float32/float64), got {x.dtype}"
        )
    if x.is_meta:
        raise ValueError(f"{name} is on the meta device (a shape without values); pass a tensor with data")
    if x.dim() < 2:
        raise ValueError(f"{name} must have shape (..., N, d) with rank >= 2, got shape {tuple(x.shape)}")
    n, d = x.shape[-2], x.shape[-1]
    if any(size == 0 for size in x.shape[:-2]):
        raise ValueError(
            f"{name} has an empty leading batch dimension (shape {tuple(x.shape)}): there is no batch to score"
        )
    if n < min_points:
        rows = "points (rows)" if min_points != 1 else "point (row)"
        raise ValueError(f"{name} needs at least {min_points} {rows} per batch, got N = {n}")
    if d < 1:
        raise ValueError(f"{name} has d = 0 features; expected d >= 1")
    if check_finite and not is_compiling():
        count = count_nonfinite_rows(x)
        if count:
            raise ValueError(
                f"{name} has {count} row(s) with NaN or Inf out of {x[..., 0].numel()}; "
                "drop or fix them before computing the loss"
            )
    return x.to(compute_dtype(x.dtype))


def representable(value: Tensor, dtype: torch.dtype, what: str) -> Tensor:
    """``value`` (computed wider, from finite input) cast to ``dtype``, or ValueError if it does not fit.

    A loss of finite input that grows with the input's scale (a squared distance, a variance) can
    exceed the output dtype's range: that is a one-line error about the scale, never a silent inf.
    Inside ``torch.compile`` the check is skipped (as the other data-dependent checks are).

    >>> representable(torch.tensor([1e40], dtype=torch.float64), torch.float32, "the loss")
    Traceback (most recent call last):
    ...
    ValueError: the loss is 1e+40, beyond the range of torch.float32: the embeddings' scale is too large; rescale them (or use float64)
    """
    out = value.to(dtype)
    if is_compiling() or bool(torch.isfinite(out).all()):
        return out
    largest = float(value.detach().abs().nan_to_num(nan=math.inf, posinf=math.inf).max())
    size = f"is {largest:.3g}, beyond the range of {dtype}" if math.isfinite(largest) else "overflows even float64"
    wider = " (or use float64)" if dtype != torch.float64 and math.isfinite(largest) else ""
    raise ValueError(f"{what} {size}: the embeddings' scale is too large; rescale them{wider}")


def computed_in_range(compute: Callable[..., Tensor], tensors: Sequence[Tensor], what: str) -> Tensor:
    """``compute(*tensors)``; where it overflows their dtype, recomputed from float64 copies and cast
    back, or a ValueError saying the scale is too large (see :func:`representable`).

    A loss that grows like a power of its input's scale (a variance, a squared distance) overflows
    float32 long before its input does; float64 holds it to far larger scales, so only an overflow
    pays for the wider pass. MPS has no float64: there a float32 overflow is the error. Inside
    ``torch.compile`` the result is returned unchecked.

    >>> mean_square = lambda x: (x * x).mean() / 1e30   # x * x overflows float32 at 1e20
    >>> float(computed_in_range(mean_square, (torch.tensor([1e20, 1e20]),), "the mean square"))
    10000000000.0
    """
    value = compute(*tensors)
    if is_compiling() or bool(torch.isfinite(value).all()):
        return value
    wide_dtype = torch.float32 if value.device.type == "mps" else torch.float64
    wide = value if value.dtype == wide_dtype else compute(*(t.to(wide_dtype) for t in tensors))
    return representable(wide, value.dtype, what)


def count_nonfinite_rows(x: Tensor) -> int:
    """Number of rows of ``x`` (last axis) holding a NaN or an Inf.

    One pass in the common case: a NaN or Inf always makes its row's sum non-finite, so the exact
    element-wise test runs only when some row sum is (a finite row can also overflow its sum).

    >>> count_nonfinite_rows(torch.tensor([[1.0, float("nan")], [3e38, 3e38], [0.0, 1.0]]))
    1
    """
    if bool(torch.isfinite(x.sum(dim=-1, dtype=torch.float32 if x.dtype != torch.float64 else None)).all()):
        return 0
    return int((~torch.isfinite(x)).any(dim=-1).sum())


def is_real_number(value: object) -> bool:
    """Whether ``value`` is a real number: a Python or NumPy real, or a 0-d real tensor (never a bool).

    >>> is_real_number(2), is_real_number(torch.tensor(0.5)), is_real_number(True), is_real_number("1")
    (True, True, False, False)
    """
    if isinstance(value, Tensor):
        return value.dim() == 0 and value.dtype != torch.bool and not value.is_complex()
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def is_compiling() -> bool:
    # Data-dependent checks would break a torch.compile graph; inside one we trust the caller.
    compiler = getattr(torch, "compiler", None)
    return bool(compiler is not None and compiler.is_compiling())


def as_batch_input(x: Tensor, distributed: bool = False, name: str = "x") -> Tensor:
    """:func:`as_embeddings` for a functional entry point that may compute the global batch: with
    ``distributed=True`` a rank may hold fewer than 2 rows and the finite check is left to the
    global batch (as the modules do)."""
    if distributed:
        return as_embeddings(x, name=name, check_finite=False, min_points=0)
    return as_embeddings(x, name=name)


def as_directions(directions: Tensor, x: Tensor) -> Tensor:
    """Validate slice directions ``(d, M)`` or ``(..., d, M)`` for embeddings ``x`` ``(..., N, d)``; cast to x's dtype.

    >>> as_directions(torch.eye(3), torch.zeros(5, 3)).shape
    torch.Size([3, 3])
    """
    if not isinstance(directions, Tensor) or not torch.is_floating_point(directions):
        raise TypeError(f"directions must be a floating tensor of shape (d, M), got {type(directions).__name__}"
                        + (f" of dtype {directions.dtype}" if isinstance(directions, Tensor) else ""))
    if directions.dim() < 2 or directions.shape[-2] != x.shape[-1]:
        raise ValueError(f"directions must have shape (..., d, M) with d = {x.shape[-1]} (the embeddings' width), "
                         f"got {tuple(directions.shape)}")
    if directions.shape[-1] < 1:
        raise ValueError(f"directions must hold at least one slice (M >= 1 columns), got shape {tuple(directions.shape)}")
    if not is_compiling() and not bool(torch.isfinite(directions).all()):
        raise ValueError("directions hold NaN or Inf")
    return directions.to(x.dtype)
