"""Deprecated: the batch-statistic base moved to :mod:`latentshape.statistic` and the random
slices to :mod:`latentshape.gaussian.slicing` (this path is kept for one release)."""

from ..deprecation import moved_to

_statistic = moved_to(__name__, "latentshape.statistic")
_slicing = moved_to(__name__, "latentshape.gaussian.slicing")


def __getattr__(name: str):
    if name == "BatchStatisticLoss":
        return _statistic("BatchStatistic")
    if name in ("RandomSlicingLoss", "random_directions"):
        return _slicing(name)
    return _statistic(name)
