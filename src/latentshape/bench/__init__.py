"""Benchmark harness: source distributions, regularizers, three protocols, reports.

>>> from latentshape import bench
>>> table = bench.detection(["anisotropic"], ["wristband"], n=128, dims=(2,), repeats=1, progress=False)
>>> table.value("z", distribution="anisotropic") > 5
True

Command line: ``latentshape bench {detection,gaussianize,speed,train} [--quick] [--out DIR]``.
"""

from .distributions import DISTRIBUTIONS, Sampler, register_distribution, sample, x_shape
from .protocols import ResultTable, W2Reference, detection, gaussianize, speed, w2_exact, w2_reference
from .regularizers import REGULARIZERS, Regularizer, register_regularizer, zscore
from .report import markdown, plot, write_report
from .train_protocol import train, zscore_growth

__all__ = [
    "DISTRIBUTIONS",
    "Sampler",
    "register_distribution",
    "sample",
    "x_shape",
    "REGULARIZERS",
    "Regularizer",
    "register_regularizer",
    "zscore",
    "ResultTable",
    "detection",
    "gaussianize",
    "speed",
    "w2_exact",
    "w2_reference",
    "W2Reference",
    "markdown",
    "plot",
    "write_report",
    "train",
    "zscore_growth",
]
