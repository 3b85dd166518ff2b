"""latentshape: shape the distribution of neural-network embeddings and measure the result."""

from __future__ import annotations

__version__ = "0.1.0"

__all__: list[str] = ["__version__"]
