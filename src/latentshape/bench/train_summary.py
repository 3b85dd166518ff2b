"""Numbers derived from a ``train`` run: means over seeds, recommendations, and the batch-size rule.

Everything the report says is computed here from the records of
:func:`~latentshape.bench.train_protocol.train`, so a recommendation changes when the numbers do.

- :func:`summarize`: mean and sd over seeds per (setting, d, regularizer, weight, batch size).
- :func:`recommend`: per setting and d, the most Gaussian regularized row whose accuracy stays
  within ``tolerance`` of the reference (:func:`reference_accuracy`: the unregularized encoder's,
  or the best row's where the unregularized encoder fails); most Gaussian = fewest held-out
  rejections, then fewest training rejections, then the smallest held-out kNN KL.
- :func:`weight_for_drop`: the weight at which a loss costs a given accuracy (log-interpolated).
- :func:`scaling_rows`: per loss, that weight at each batch size and the fitted exponents.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = ["GROUP", "summarize", "reference_accuracy", "best_row", "recommend", "best_weights", "weight_for_drop",
           "power_law_exponent", "scaling_rows", "TOLERANCE", "DROP", "FAILED_GAP"]

GROUP = ("setting", "d", "regularizer", "weight", "batch_size")
TOLERANCE = 0.01
"""Accuracy a recommended weight may cost against the reference accuracy (1 point)."""
FAILED_GAP = 0.05
"""The unregularized encoder counts as failed (self-supervised collapse) when it is this far below the best row."""
DROP = 0.02
"""Accuracy loss (2 points below the unregularized encoder) that defines the weight of :func:`weight_for_drop`."""


def summarize(records: Iterable[dict]) -> list[dict[str, Any]]:
    """One row per :data:`GROUP` key (first-seen order): ``<metric>`` = mean, ``<metric>_sd`` = sd over seeds.

    NaN (a diverged seed) is left out of the mean; ``seeds`` counts the runs, ``diverged`` those that diverged.

    >>> rows = summarize([{"part": "cell", "setting": "s", "d": 2, "regularizer": "r", "weight": 1.0,
    ...                    "batch_size": 128, "seed": k, "accuracy": a, "diverged": False} for k, a in enumerate((0.8, 0.9))])
    >>> round(rows[0]["accuracy"], 2), round(rows[0]["accuracy_sd"], 3), rows[0]["seeds"]
    (0.85, 0.071, 2)
    """
    groups: dict[tuple, list[dict]] = {}
    for record in records:
        if record.get("part", "cell") == "cell":
            groups.setdefault(tuple(record[k] for k in GROUP), []).append(record)
    rows = []
    for key, members in groups.items():
        row: dict[str, Any] = dict(zip(GROUP, key)) | {"seeds": len(members),
                                                       "diverged": sum(bool(m.get("diverged")) for m in members)}
        metrics = [k for k, v in members[0].items() if k not in GROUP and k not in ("seed", "epochs", "lr", "part", "diverged")
                   and isinstance(v, (int, float))]
        for metric in metrics:
            values = np.array([m.get(metric, math.nan) for m in members], dtype=float)
            finite = values[np.isfinite(values)]
            row[metric] = float(finite.mean()) if finite.size else math.nan
            row[f"{metric}_sd"] = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
        rows.append(row)
    return rows


def _order(row: dict) -> tuple:
    # Fewer rejections first; NaN (diverged) last.
    return tuple(row.get(key, math.nan) if math.isfinite(row.get(key, math.nan)) else math.inf
                 for key in ("test_rejected", "train_rejected", "test_knn_kl")) + (-row["accuracy"],)


def best_row(rows: Sequence[dict], tolerance: float = TOLERANCE, reference: float | None = None) -> dict | None:
    """The most Gaussian regularized row among ``rows`` whose mean accuracy is within ``tolerance`` of ``reference``
    (default: the best mean accuracy in ``rows``); None if there is none."""
    accuracies = [r["accuracy"] for r in rows if math.isfinite(r["accuracy"])]
    if not accuracies:
        return None
    reference = max(accuracies) if reference is None else reference
    feasible = [r for r in rows if r["regularizer"] != "none" and math.isfinite(r["accuracy"])
                and r["accuracy"] >= reference - tolerance - 1e-12]
    return min(feasible, key=_order) if feasible else None


def _describe(row: dict, none: dict | None) -> str:
    def versus(key: str, digits: int) -> str:
        value = f"{row[key]:.{digits}f}"
        return value + (f" (none: {none[key]:.{digits}f})" if none is not None else "")

    return (f"{row['regularizer']} at w = {row['weight']:g}: accuracy {versus('accuracy', 3)}, check rejects "
            f"{versus('test_rejected', 1)} of 8 tests on the held-out embedding and {versus('train_rejected', 1)} "
            f"on the training one; held-out kNN KL {versus('test_knn_kl', 2)} nats")


def reference_accuracy(group: Sequence[dict]) -> float:
    """The unregularized row's mean accuracy, or the best row's when that is more than :data:`FAILED_GAP` higher.

    >>> rows = [{"regularizer": "none", "accuracy": 0.57}, {"regularizer": "a", "accuracy": 0.95}]
    >>> reference_accuracy(rows), reference_accuracy([dict(rows[0], accuracy=0.93), rows[1]])
    (0.95, 0.93)
    """
    best = max(r["accuracy"] for r in group if math.isfinite(r["accuracy"]))
    none = next((r["accuracy"] for r in group if r["regularizer"] == "none" and math.isfinite(r["accuracy"])), None)
    return none if none is not None and none >= best - FAILED_GAP else best


def recommend(rows: Sequence[dict], tolerance: float = TOLERANCE) -> list[str]:
    """One line per (setting, d) at batch 128, derived from ``rows`` (:func:`summarize`'s output)."""
    lines = []
    for setting, d in dict.fromkeys((r["setting"], r["d"]) for r in rows if r["batch_size"] == 128):
        group = [r for r in rows if r["setting"] == setting and r["d"] == d and r["batch_size"] == 128]
        none = next((r for r in group if r["regularizer"] == "none"), None)
        reference = reference_accuracy(group)
        chosen = best_row(group, tolerance, reference)
        head = f"**{setting}, d = {d}** (reference accuracy {reference:.3f}): "
        if chosen is None:
            wider = best_row(group, 5 * tolerance, reference)
            text = f"no regularizer stays within {100 * tolerance:g} point(s) of it"
            text += f"; within {500 * tolerance:g}: {_describe(wider, none)}." if wider else "."
        else:
            text = _describe(chosen, none) + "."
        passing = [r for r in group if r["regularizer"] != "none" and r["test_rejected"] == 0 and r["train_rejected"] == 0]
        if passing:
            top = max(passing, key=lambda r: r["accuracy"])
            text += f" Passing check on both embeddings (all seeds): {top['regularizer']} at w = {top['weight']:g}, accuracy {top['accuracy']:.3f}."
        else:
            text += " No row passes check on both embeddings."
        lines.append(head + text)
    return lines


def best_weights(rows: Sequence[dict], tolerance: float = TOLERANCE) -> dict[tuple[str, int, str], dict | None]:
    """Per (setting, d, regularizer) at batch 128: the row :func:`best_row` picks from that regularizer's weights,
    against the setting's :func:`reference_accuracy`."""
    chosen: dict[tuple[str, int, str], dict | None] = {}
    base = [r for r in rows if r["batch_size"] == 128]
    for setting, d, name in dict.fromkeys((r["setting"], r["d"], r["regularizer"]) for r in base if r["regularizer"] != "none"):
        group = [r for r in base if r["setting"] == setting and r["d"] == d]
        reference = reference_accuracy(group)
        chosen[(setting, d, name)] = best_row([r for r in group if r["regularizer"] == name], tolerance, reference)
    return chosen


def weight_for_drop(weights: Sequence[float], accuracies: Sequence[float], threshold: float) -> float:
    """The weight at which accuracy first falls below ``threshold``, log-linearly interpolated between grid points.

    0 if the smallest weight is already below it, inf if no weight is.

    >>> weight_for_drop([0.01, 0.1, 1.0], [0.98, 0.96, 0.80], 0.97)     # halfway between 0.01 and 0.1 in log w
    0.0316...
    """
    pairs = sorted((w, a) for w, a in zip(weights, accuracies) if w > 0 and math.isfinite(a))
    for k, (w, a) in enumerate(pairs):
        if a < threshold:
            if k == 0:
                return 0.0
            (w0, a0) = pairs[k - 1]
            share = (a0 - threshold) / (a0 - a)
            return float(math.exp(math.log(w0) + share * (math.log(w) - math.log(w0))))
    return math.inf


def power_law_exponent(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of log y on log x over the pairs with finite, positive y (NaN for fewer than two).

    >>> round(power_law_exponent([64, 128, 256], [3.0, 6.0, 12.0]), 6)
    1.0
    """
    pairs = [(x, y) for x, y in zip(xs, ys) if x > 0 and math.isfinite(y) and y > 0]
    if len(pairs) < 2:
        return math.nan
    logs = np.log(np.array(pairs, dtype=float))
    return float(np.polyfit(logs[:, 0], logs[:, 1], 1)[0])


def _growth_exponents(growth: Sequence[dict], name: str) -> dict[str, float]:
    exponents = {}
    for departure in ("raw", "whitened"):
        points = [(g["n"], g["value"]) for g in growth if g["regularizer"] == name and g["departure"] == departure]
        exponents[f"growth_{departure}"] = power_law_exponent(*zip(*points)) if points else math.nan
    return exponents


def scaling_rows(rows: Sequence[dict], growth: Sequence[dict], d: int) -> list[dict[str, Any]]:
    """Per calibrated loss: z-growth exponents, the 2-point-drop weight per batch size and its exponent, best weights.

    Both weights are read against the unregularized encoder trained at the same batch size.
    """
    supervised = [r for r in rows if r["setting"] == "supervised" and r["d"] == d]
    none = {r["batch_size"]: r for r in supervised if r["regularizer"] == "none"}
    results = []
    for name in dict.fromkeys(r["regularizer"] for r in supervised if r["regularizer"] != "none"):
        entry: dict[str, Any] = {"regularizer": name} | _growth_exponents(growth, name)
        drops = {}
        for batch in sorted(none):
            curve = [r for r in supervised if r["regularizer"] == name and r["batch_size"] == batch]
            if curve:
                reference = none[batch]["accuracy"]
                drops[batch] = weight_for_drop([r["weight"] for r in curve], [r["accuracy"] for r in curve], reference - DROP)
                chosen = best_row(curve, TOLERANCE, reference)
                entry[f"best_{batch}"] = chosen["weight"] if chosen else math.nan
        entry["drop"] = drops
        finite = [(b, w) for b, w in drops.items() if 0 < w < math.inf]
        entry["drop_exponent"] = power_law_exponent(*zip(*finite)) if len(finite) >= 2 else math.nan
        results.append(entry)
    for name in dict.fromkeys(g["regularizer"] for g in growth):
        if name not in {e["regularizer"] for e in results}:
            results.append({"regularizer": name, "drop": {}, "drop_exponent": math.nan} | _growth_exponents(growth, name))
    return results
