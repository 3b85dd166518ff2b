"""Regularizers toward N(0, I) other than the wristband loss, and the shared moment penalties.

Every regularizer is an ``nn.Module`` whose ``forward`` returns a 0-d tensor, so trying another
one is a one-line change. The batch statistics (moment matching, SIGReg, MMD, sliced Wasserstein)
take ``calibrate=True`` to return a z-score against their own null at the batch's (N, d).
"""

from .adversarial import ADVERSARIAL_KINDS, AdversarialPrior, default_critic
from .kl import GaussianKL, gaussian_kl_diag, gaussian_kl_full, reparameterize, reparameterize_full
from .mmd import GaussianMMD, gaussian_kernel_means, gaussian_mmd
from .moment_matching import MOMENT_MATCHING_PENALTIES, MomentMatchingLoss, moment_matching_loss
from .moment_penalties import MOMENT_PENALTIES, moment_penalty
from .sigreg import SIGReg, epps_pulley, sigreg_statistic
from .sliced import SlicedWassersteinGaussian, gaussian_quantiles, sliced_wasserstein_gaussian
from .vicreg import VICRegLoss, vicreg_variance_covariance

__all__ = [
    "MOMENT_PENALTIES",
    "moment_penalty",
    "MOMENT_MATCHING_PENALTIES",
    "MomentMatchingLoss",
    "moment_matching_loss",
    "GaussianKL",
    "gaussian_kl_diag",
    "gaussian_kl_full",
    "reparameterize",
    "reparameterize_full",
    "ADVERSARIAL_KINDS",
    "AdversarialPrior",
    "default_critic",
    "SIGReg",
    "sigreg_statistic",
    "epps_pulley",
    "GaussianMMD",
    "gaussian_mmd",
    "gaussian_kernel_means",
    "SlicedWassersteinGaussian",
    "sliced_wasserstein_gaussian",
    "gaussian_quantiles",
    "VICRegLoss",
    "vicreg_variance_covariance",
]
