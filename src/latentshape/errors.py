"""The command line's one error type: a user's mistake, reported as one line with exit status 2."""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A mistake in the user's input: reported as one line, exit status 2."""
