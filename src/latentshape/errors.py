"""The command line's one error type, and the up-front checks that raise it before long work."""

from __future__ import annotations

import tempfile
from pathlib import Path

__all__ = ["UserError", "writable_folder"]


class UserError(Exception):
    """A mistake in the user's input: reported as one line, exit status 2."""


def writable_folder(path: str | Path) -> Path:
    """Create the folder ``path`` if needed and prove that a file can be written in it, before any work.

    Raises OSError with one clear line (a command turns it into a :class:`UserError`): a long run
    must not end in a traceback because its output cannot be written.

    >>> import tempfile
    >>> writable_folder(tempfile.mkdtemp()).is_dir()
    True
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OSError(f"{folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        reason = error.strerror or (str(error).splitlines() or [type(error).__name__])[0]
        raise OSError(f"cannot write into {folder}: {reason}") from None
    return folder
