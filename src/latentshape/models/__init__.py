"""Models built on a Gaussian latent: the deterministic Gaussian autoencoder and its training loop.

``zuko`` (the flow library) is imported only when a model is built; install it with
``pip install "latentshape[demo]"``.
"""

from __future__ import annotations

from .autoencoder import GaussianAutoencoder
from .training import TrainingHistory, reconstruction_error, train_autoencoder

__all__ = ["GaussianAutoencoder", "TrainingHistory", "train_autoencoder", "reconstruction_error"]
