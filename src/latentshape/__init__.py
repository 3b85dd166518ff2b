"""latentshape: shape the distribution of neural-network embeddings and measure the result."""

from __future__ import annotations

__version__ = "0.1.0"

from . import functional
from .calibration import NullStats, clear_null_cache
from .wristband import WristbandComponents, WristbandLoss, wristband_map

__all__: list[str] = [
    "__version__",
    "functional",
    "NullStats",
    "clear_null_cache",
    "WristbandComponents",
    "WristbandLoss",
    "wristband_map",
]

from .gaussian import (
    AdversarialPrior,
    GaussianKL,
    GaussianMMD,
    MomentMatchingLoss,
    SIGReg,
    SlicedWassersteinGaussian,
    VICRegLoss,
    reparameterize,
    reparameterize_full,
)

__all__ += [
    "AdversarialPrior",
    "GaussianKL",
    "GaussianMMD",
    "MomentMatchingLoss",
    "SIGReg",
    "SlicedWassersteinGaussian",
    "VICRegLoss",
    "reparameterize",
    "reparameterize_full",
]

from .interval import KDECrossEntropy
from .neighbors import LayerwiseSoftNearestNeighborLoss, SoftNearestNeighborLoss, annealed_temperature
from .sphere import (
    AlignmentLoss,
    PrototypeClassificationLoss,
    PrototypeRegressionLoss,
    UniformityLoss,
    fit_prototypes,
)

__all__ += [
    "UniformityLoss",
    "AlignmentLoss",
    "fit_prototypes",
    "PrototypeClassificationLoss",
    "PrototypeRegressionLoss",
    "SoftNearestNeighborLoss",
    "LayerwiseSoftNearestNeighborLoss",
    "annealed_temperature",
    "KDECrossEntropy",
]

# Diagnostics: "how Gaussian is this embedding, really?"
from .diagnostics import Report, check  # noqa: E402

__all__ += ["check", "Report"]

# Models: the deterministic Gaussian autoencoder (zuko is imported only when one is built)
from .models import GaussianAutoencoder, train_autoencoder  # noqa: E402

__all__ += ["GaussianAutoencoder", "train_autoencoder"]

# Population mode: a batch statistic scored on a running estimate pooled over batches
from .population import PopulationMode  # noqa: E402

__all__ += ["PopulationMode"]
