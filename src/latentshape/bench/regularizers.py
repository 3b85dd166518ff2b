r"""The regularizers the benchmarks compare, and the registry that names them.

A :class:`Regularizer` is a factory ``build(d) -> nn.Module`` whose forward maps a batch
``(N, d)`` to a 0-d differentiable loss (used by the Gaussianization and speed protocols), plus
a flag saying whether the module can report a calibrated z-score (used by detection):
:func:`zscore` reads ``components(x).total`` of a :class:`~latentshape.WristbandLoss` and
``zscore(x)`` of the batch statistics (:mod:`latentshape.statistic`).

A module that also has a ``critic_step(x)`` method (:class:`~latentshape.AdversarialPrior`) gets one
critic step before every loss evaluation in the Gaussianization protocol.

Excluded, and why:

- :class:`~latentshape.GaussianKL` is a loss on an encoder's (mu, log sigma^2), not on a cloud of
  points; it has nothing to act on here.
- :class:`~latentshape.AdversarialPrior` takes part in Gaussianization and speed but not in
  detection: its score depends on a critic trained for that very batch, so it has no fixed law
  under N(0, I) to calibrate against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ..gaussian import AdversarialPrior, GaussianMMD, MomentMatchingLoss, SIGReg, SlicedWassersteinGaussian
from ..wristband import WristbandLoss
from .distributions import check_registration

__all__ = [
    "Regularizer",
    "REGULARIZERS",
    "register_regularizer",
    "zscore",
    "build_wristband",
    "build_wristband_degree1",
    "build_moment_matching",
    "build_sigreg",
    "build_mmd",
    "build_sliced_w2",
    "build_adversarial",
]


@dataclass(frozen=True)
class Regularizer:
    """A named regularizer: ``build(d, calibrate)`` returns a fresh module for width d.

    ``calibrate=True`` asks for a module whose :func:`zscore` works (detection); ``None`` for
    the class's own default, as a user would build it (Gaussianization: every batch statistic
    calibrated); ``False`` for the raw loss (speed: no one-off calibration).
    Give ``build`` as a module-level function if the speed protocol should measure peak memory
    (it runs each configuration in a spawned process, which must unpickle ``build``).
    ``detects``: whether :func:`zscore` applies; ``gaussianizes``: whether the module is a loss
    on the points. ``description`` goes into the report.
    """

    name: str
    build: Callable[[int, bool | None], nn.Module]
    description: str = ""
    detects: bool = True
    gaussianizes: bool = True


def zscore(module: nn.Module, x: Tensor) -> float:
    """The calibrated z-score of batch ``x`` ``(N, d)`` under ``module``'s own N(0, I) null.

    >>> from latentshape import MomentMatchingLoss
    >>> z = zscore(MomentMatchingLoss(calibrate=True, null_samples=64), 2.0 * torch.randn(128, 3))
    >>> z > 5
    True
    """
    with torch.no_grad():
        if hasattr(module, "components"):
            return float(module.components(x).total)
        if hasattr(module, "zscore"):
            return float(module.zscore(x))
    raise TypeError(f"{type(module).__name__} has neither components(x) nor zscore(x): it cannot be calibrated")


def _kwargs(calibrate: bool | None) -> dict:
    # None keeps the class's own default, i.e. the module as a user would build it.
    return {} if calibrate is None else {"calibrate": calibrate}


def build_wristband(d: int, calibrate: bool | None) -> nn.Module:
    """``WristbandLoss()``: every angular degree (broad + sharp kernels) and the coordinates (calibrated by default)."""
    return WristbandLoss(**_kwargs(calibrate))


def build_wristband_degree1(d: int, calibrate: bool | None) -> nn.Module:
    """The original loss's configuration ``WristbandLoss(degree=1, lambda_sharp=0, lambda_coord=0)``: the mean direction
    and the radial law only (not opposite lobes)."""
    return WristbandLoss(degree=1, lambda_sharp=0.0, lambda_coord=0.0, **_kwargs(calibrate))


def build_moment_matching(d: int, calibrate: bool | None) -> nn.Module:
    """``MomentMatchingLoss()``: squared errors of the mean and covariance."""
    return MomentMatchingLoss(**_kwargs(calibrate))


def build_sigreg(d: int, calibrate: bool | None) -> nn.Module:
    """``SIGReg()``: Epps-Pulley on 256 random slices."""
    return SIGReg(**_kwargs(calibrate))


def build_mmd(d: int, calibrate: bool | None) -> nn.Module:
    """``GaussianMMD()``: MMD to N(0, I) with closed-form Gaussian-side terms."""
    return GaussianMMD(**_kwargs(calibrate))


def build_sliced_w2(d: int, calibrate: bool | None) -> nn.Module:
    """``SlicedWassersteinGaussian()``: 256 random slices against Gaussian quantiles."""
    return SlicedWassersteinGaussian(**_kwargs(calibrate))


def build_adversarial(d: int, calibrate: bool | None) -> nn.Module:
    """``AdversarialPrior(kind="gan", hidden=128, lr=1e-3)``: never calibrated."""
    # A faster critic than the library default (lr 2e-4) so that it learns within a few hundred steps.
    return AdversarialPrior(dim=d, kind="gan", hidden=128, lr=1e-3, seed=0)


REGULARIZERS: dict[str, Regularizer] = {
    "wristband": Regularizer("wristband", build_wristband, "WristbandLoss(): every angular degree + coordinates"),
    "wristband_deg1": Regularizer("wristband_deg1", build_wristband_degree1,
                                  "WristbandLoss(degree=1, lambda_sharp=0, lambda_coord=0): the original loss",
                                  gaussianizes=False),
    "moment_matching": Regularizer("moment_matching", build_moment_matching, "MomentMatchingLoss(): mean and covariance"),
    "sigreg": Regularizer("sigreg", build_sigreg, "SIGReg(): Epps-Pulley on 256 random slices"),
    "mmd": Regularizer("mmd", build_mmd, "GaussianMMD(): MMD to N(0, I), default widths"),
    "sliced_w2": Regularizer("sliced_w2", build_sliced_w2, "SlicedWassersteinGaussian(): 256 slices"),
    "adversarial": Regularizer("adversarial", build_adversarial,
                               "AdversarialPrior(kind='gan', hidden=128, critic lr 1e-3)", detects=False),
}
"""Registered regularizers by name, in the order the reports list them."""


def register_regularizer(
    name: str,
    build: Callable[[int, bool | None], nn.Module],
    description: str = "",
    detects: bool = True,
    gaussianizes: bool = True,
    replace: bool = False,
) -> Regularizer:
    """Add a regularizer to :data:`REGULARIZERS`; the protocols then run it with the built-in ones.

    ``build(d, calibrate)`` returns a module whose forward maps ``(N, d)`` to a 0-d loss; with
    ``detects=True`` the module built with ``calibrate=True`` must have ``zscore(x)`` or
    ``components(x).total``. Returns the :class:`Regularizer`.

    >>> spec = register_regularizer("frobenius", lambda d, c: MomentMatchingLoss(calibrate=c is not False))
    >>> spec.build(3, False)(torch.ones(4, 3)).item()           # |mean|^2 + |0 - I|_F^2 = 3 + 3
    6.0
    >>> del REGULARIZERS["frobenius"]
    """
    check_registration(REGULARIZERS, "regularizer", name, build, "build", "(d, calibrate) -> nn.Module", replace)
    spec = Regularizer(name, build, description, detects, gaussianizes)
    REGULARIZERS[name] = spec
    return spec
