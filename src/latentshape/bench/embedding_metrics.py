r"""What ``latentshape bench train`` measures on an embedding: Gaussianity, collapse, a linear probe.

- :func:`gaussianity`: the :func:`latentshape.check` summary (rejected tests of eight,
  Henze-Zirkler p, kNN KL estimate, calibrated wristband total).
- :func:`collapse_indicators`: the smallest per-coordinate sd and the effective rank

  .. math::
      \operatorname{erank}(Z) = \exp\Big(-\sum_k p_k \log p_k\Big), \qquad p_k = \lambda_k / \textstyle\sum_j \lambda_j,

  with :math:`\lambda_k` the eigenvalues of the sample covariance (Roy & Vetterli (2007), "The
  effective rank: a measure of effective dimensionality", EUSIPCO). It is d for an isotropic
  cloud and 1 when all variance lies on one axis.
- :func:`linear_probe_accuracy`: multinomial logistic regression on standardized frozen
  embeddings (scikit-learn), accuracy on held-out ones.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = ["gaussianity", "collapse_indicators", "effective_rank", "linear_probe_accuracy", "GAUSSIANITY_KEYS"]

GAUSSIANITY_KEYS = ("rejected", "hz_log10p", "knn_kl", "wristband")
"""Keys of :func:`gaussianity`: rejected tests, -log10 Henze-Zirkler p, kNN KL (nats), wristband total (z)."""

_P_FLOOR = 1e-300


def gaussianity(z: Tensor, max_pairwise: int = 2000) -> dict[str, float]:
    """``latentshape.check(z, max_pairwise=max_pairwise)`` in four numbers (NaN for a non-finite embedding).

    ``rejected``: tests rejected of eight (Holm, alpha 0.05); ``hz_log10p``: -log10 of the
    Henze-Zirkler p-value (floored at 1e-300, i.e. at most 300); ``knn_kl``: the kNN estimate of
    KL(P || N(0, I)) in nats; ``wristband``: the calibrated wristband total.

    >>> summary = gaussianity(torch.randn(300, 3, generator=torch.Generator().manual_seed(1)))
    >>> summary["rejected"], summary["hz_log10p"] < 2
    (0.0, True)
    """
    from ..diagnostics import check

    if not bool(torch.isfinite(z).all()):
        return {key: math.nan for key in GAUSSIANITY_KEYS}
    report = check(z.detach().double(), max_pairwise=max_pairwise)
    return {
        "rejected": float(sum(test.rejected for test in report.tests)),
        "hz_log10p": -math.log10(max(report.test("Henze-Zirkler").p_value, _P_FLOOR)),
        "knn_kl": float(report.test("kNN KL(P || N(0,I))").statistic),
        "wristband": float(report.wristband["total"]),
    }


def effective_rank(z: Tensor) -> float:
    """exp of the entropy of the normalized covariance eigenvalues of ``z`` ``(N, d)`` (NaN if it has no variance).

    >>> round(effective_rank(torch.randn(4000, 5, generator=torch.Generator().manual_seed(0))), 1)
    5.0
    >>> effective_rank(torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]))
    1.0
    """
    z = z.detach().double()
    eigenvalues = torch.linalg.eigvalsh(torch.cov(z.T).reshape(z.shape[1], z.shape[1])).clamp_min(0.0)
    total = float(eigenvalues.sum())
    if not total > 0 or not math.isfinite(total):
        return math.nan
    p = eigenvalues[eigenvalues > 0] / total
    return float(torch.exp(-(p * p.log()).sum()))


def collapse_indicators(z: Tensor) -> dict[str, float]:
    """``{"min_sd": smallest per-coordinate sd, "effective_rank": ...}`` of ``z`` ``(N, d)``.

    >>> z = torch.randn(1000, 3, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 1.0, 0.01])
    >>> indicators = collapse_indicators(z)
    >>> round(indicators["min_sd"], 2), round(indicators["effective_rank"], 1)
    (0.01, 2.0)
    """
    if not bool(torch.isfinite(z).all()):
        return {"min_sd": math.nan, "effective_rank": math.nan}
    return {"min_sd": float(z.detach().double().std(dim=0).min()), "effective_rank": effective_rank(z)}


def linear_probe_accuracy(train_z: Tensor, train_y: Tensor, test_z: Tensor, test_y: Tensor) -> float:
    """Held-out accuracy of a logistic-regression probe fit on frozen, standardized training embeddings.

    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.arange(200) % 2
    >>> z = torch.randn(200, 2, generator=g) + 3.0 * y[:, None]
    >>> linear_probe_accuracy(z[:100], y[:100], z[100:], y[100:]) > 0.95
    True
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train, test = train_z.detach().double().numpy(), test_z.detach().double().numpy()
    if not (np.isfinite(train).all() and np.isfinite(test).all()):
        return math.nan
    scaler = StandardScaler().fit(train)
    probe = LogisticRegression(max_iter=2000).fit(scaler.transform(train), train_y.numpy())
    return float((probe.predict(scaler.transform(test)) == test_y.numpy()).mean())
