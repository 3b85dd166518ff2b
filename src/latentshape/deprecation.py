"""Old import paths kept for one release: a module-level ``__getattr__`` that forwards and warns."""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable

__all__ = ["moved_to"]


def moved_to(old: str, new: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the deprecated module ``old``: each name is looked up in ``new``
    with a ``DeprecationWarning`` naming the new path.

    >>> getattr_ = moved_to("latentshape.old_name", "latentshape.calibration")
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     stats_class = getattr_("NullStats")
    >>> stats_class.__name__, caught[0].category.__name__
    ('NullStats', 'DeprecationWarning')
    """

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        target = importlib.import_module(new)
        if not hasattr(target, name):
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        warnings.warn(f"{old} is deprecated and will be removed in the next release; import {name} from {new}",
                      DeprecationWarning, stacklevel=2)
        return getattr(target, name)

    return __getattr__
