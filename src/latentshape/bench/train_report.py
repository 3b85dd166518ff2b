"""Markdown and plots of a ``train`` run: tables per setting and d, recommendations, the batch-size rule.

Follows :mod:`latentshape.bench.report`: :func:`markdown` returns the text, :func:`plot` writes one
Pareto figure per setting (held-out task metric against Gaussianity) and one of accuracy against
weight per batch size, :func:`write_report` writes ``bench_train.md``, the PNGs and the raw
records as ``bench_train.json`` (:func:`load_table` reads them back, to redraw without re-running).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

from .protocols import ResultTable
from .train_summary import DROP, FAILED_GAP, TOLERANCE, best_weights, recommend, scaling_rows, summarize

__all__ = ["markdown", "plot", "write_report", "load_table"]

_METRIC = {"supervised": "held-out accuracy of the head", "self_supervised": "held-out accuracy of a linear probe",
           "stochastic": "held-out accuracy of the head (on the means)"}
_PAIRS = (("rejected", "rejected tests of 8", 1), ("hz_log10p", "-log10 HZ p", 0), ("knn_kl", "kNN KL (nats)", 2),
          ("wristband", "wristband z", 1))


def _number(value: float, digits: int) -> str:
    if not math.isfinite(value):
        return "n/a" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.{digits}f}"


def _pm(row: dict, key: str, digits: int) -> str:
    value = _number(row.get(key, math.nan), digits)
    return value if row["seeds"] < 2 or value == "n/a" else f"{value} ± {_number(row.get(key + '_sd', math.nan), digits)}"


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---", "---:"] + ["---:"] * (len(header) - 2)) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _setting_table(group: Sequence[dict], setting: str) -> list[str]:
    prefixes = ("test", "train", "view") if setting == "self_supervised" else ("test", "train")
    header = ["regularizer", "w", "accuracy"] + [f"{label} ({' / '.join(p.replace('test', 'held-out') for p in prefixes)})"
                                                 for _, label, _ in _PAIRS]
    header += ["min sd", "eff. rank", "last-epoch R", "ms / step"]
    rows = []
    for row in group:
        cells = [row["regularizer"], "—" if row["regularizer"] == "none" else f"{row['weight']:g}", _pm(row, "accuracy", 3)]
        cells += [" / ".join(_pm(row, f"{p}_{key}", digits) for p in prefixes) for key, _, digits in _PAIRS]
        cells += [_pm(row, "min_sd", 2), _pm(row, "effective_rank", 2), _pm(row, "batch_value", 2),
                  _pm(row, "ms_per_step", 1)]
        if row["diverged"]:
            cells[0] += f" ({row['diverged']} diverged)"
        rows.append(cells)
    return _grid(header, rows)


def _best_weight_table(rows: Sequence[dict]) -> list[str]:
    chosen = best_weights(rows)
    names = list(dict.fromkeys(name for _, _, name in chosen))
    settings = list(dict.fromkeys((s, d) for s, d, _ in chosen))
    body = []
    for setting, d in settings:
        cells = [f"{setting}, d = {d}"]
        for name in names:
            if (setting, d, name) not in chosen:
                cells.append("")
                continue
            row = chosen[(setting, d, name)]
            cells.append("—" if row is None else f"{row['weight']:g}: {row['test_rejected']:.1f} / {row['train_rejected']:.1f}; "
                                                 f"KL {row['test_knn_kl']:.2f}; acc. {row['accuracy']:.3f}")
        body.append(cells)
    return _grid(["setting", *names], body)


def _drop(weight: float) -> str:
    if math.isnan(weight):
        return ""
    return "< grid" if weight == 0 else "> grid" if weight == math.inf else f"{weight:.2g}"


def _scaling_table(rows: Sequence[dict], growth: Sequence[dict], d: int) -> list[str]:
    entries = scaling_rows(rows, growth, d)
    batches = sorted({b for e in entries for b in e["drop"]})
    header = ["loss", "z ~ N^a, a (raw)", "a (whitened)"] + [f"w_drop, B = {b}" for b in batches]
    header += ["w_drop ~ B^c, c"] + [f"best w, B = {b}" for b in batches]
    body = []
    for e in entries:
        cells = [e["regularizer"], _number(e["growth_raw"], 2), _number(e["growth_whitened"], 2)]
        cells += [_drop(e["drop"].get(b, math.nan)) for b in batches]
        cells += [_number(e["drop_exponent"], 2)]
        cells += [f"{e[f'best_{b}']:g}" if math.isfinite(e.get(f"best_{b}", math.nan)) else "—" for b in batches]
        body.append(cells)
    return _grid(header, body)


def markdown(table: ResultTable) -> str:
    """The report's text: per setting, one table per d (mean ± sd over seeds), then recommendations and scaling."""
    rows = summarize(table.records)
    growth = [r for r in table.records if r.get("part") == "growth"]
    lines: list[str] = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        lines += [f"### {setting}", "", f"Task metric: {_METRIC[setting]}. Held-out N = 360, training N = 1437; "
                  "batch 128; mean ± sd over seeds.", ""]
        for d in dict.fromkeys(r["d"] for r in rows if r["setting"] == setting):
            group = [r for r in rows if r["setting"] == setting and r["d"] == d and r["batch_size"] == 128]
            lines += [f"**d = {d}**", "", *_setting_table(group, setting), ""]
    lines += ["### Recommendations (derived from the tables)", "",
              f"Rule: among regularized rows whose mean accuracy is within {100 * TOLERANCE:g} point of the reference "
              "(the unregularized encoder's accuracy; the best row's where the unregularized encoder fails, "
              f"more than {100 * FAILED_GAP:g} points below it), the fewest held-out rejections, then training "
              "rejections, then the smallest held-out kNN KL.", ""]
    lines += [f"- {line}" for line in recommend(rows)] + [""]
    lines += ["Best weight per regularizer by the same rule. Cell: w: held-out / training rejections; held-out kNN KL "
              "(nats); accuracy. — when no weight stays within the tolerance.", "", *_best_weight_table(rows), ""]
    d = table.settings.get("scaling_d", 8)
    if any(r["batch_size"] != 128 for r in rows) or growth:
        lines += [f"### How the weight scales with the batch size (supervised, d = {d})", "",
                  f"a: exponent of the calibrated value in N on random subsets of a fixed unregularized embedding "
                  f"(raw, and whitened to mean 0 and covariance I). w_drop: the weight at which accuracy falls "
                  f"{100 * DROP:g} points below the unregularized encoder's (log-interpolated on the grid); c: its "
                  f"exponent in B. Same-balance prediction: c = -a.", "", *_scaling_table(rows, growth, d), ""]
    return "\n".join(lines)


def _pareto_front(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not beaten on both axes (smaller x, larger y), sorted by x."""
    front, best_y = [], -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best_y:
            front.append((x, y))
            best_y = y
    return front


def _pareto_figure(rows: Sequence[dict], setting: str, path: Path) -> Path:
    import matplotlib.pyplot as plt

    dims = list(dict.fromkeys(r["d"] for r in rows if r["setting"] == setting))
    figure, axes = plt.subplots(2, len(dims), figsize=(5 * len(dims), 8), squeeze=False)
    for column, d in enumerate(dims):
        group = [r for r in rows if r["setting"] == setting and r["d"] == d and r["batch_size"] == 128]
        for axis, key, label in ((axes[0][column], "test_rejected", "held-out: rejected tests of 8"),
                                 (axes[1][column], "test_knn_kl", "held-out: kNN KL to N(0, I) (nats)")):
            for name in dict.fromkeys(r["regularizer"] for r in group):
                line = sorted((r["weight"], r[key], r["accuracy"]) for r in group if r["regularizer"] == name)
                style = {"marker": "*", "markersize": 12, "color": "black", "linestyle": ""} if name == "none" else {"marker": "o"}
                axis.plot([p[1] for p in line], [p[2] for p in line], label=name, **style)
            front = _pareto_front([(r[key], r["accuracy"]) for r in group if math.isfinite(r[key]) and math.isfinite(r["accuracy"])])
            if front:
                axis.step(*zip(*front), where="post", color="grey", linestyle="--", linewidth=0.8)
            if key == "test_knn_kl":
                axis.set_xscale("symlog", linthresh=0.1)  # KL spans decades between regularized and not
            axis.set_xlabel(label)
            axis.set_ylabel(_METRIC[setting])
            axis.set_title(f"{setting}, d = {d} (points: weights)")
    axes[0][-1].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _scaling_figure(rows: Sequence[dict], d: int, path: Path) -> Path | None:
    import matplotlib.pyplot as plt

    group = [r for r in rows if r["setting"] == "supervised" and r["d"] == d and r["regularizer"] != "none"]
    names = list(dict.fromkeys(r["regularizer"] for r in group))
    if not names or len({r["batch_size"] for r in group}) < 2:
        return None
    figure, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.4), squeeze=False)
    for axis, name in zip(axes[0], names):
        for batch in sorted({r["batch_size"] for r in group}):
            curve = sorted((r["weight"], r["accuracy"]) for r in group if r["regularizer"] == name and r["batch_size"] == batch)
            axis.plot(*zip(*curve), marker="o", label=f"B = {batch}")
        axis.set_xscale("log")
        axis.set_xlabel("w")
        axis.set_title(name)
    axes[0][0].set_ylabel("held-out accuracy")
    axes[0][-1].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot(table: ResultTable, directory: str | Path) -> list[Path]:
    """Write ``bench_train_<setting>.png`` (Pareto) per setting and ``bench_train_scaling.png``; needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    directory = Path(directory)
    rows = summarize(table.records)
    paths = [_pareto_figure(rows, setting, directory / f"bench_train_{setting}.png")
             for setting in dict.fromkeys(r["setting"] for r in rows)]
    scaling = _scaling_figure(rows, table.settings.get("scaling_d", 8), directory / "bench_train_scaling.png")
    return paths + ([scaling] if scaling else [])


def write_report(table: ResultTable, directory: str | Path, command: str = "") -> list[Path]:
    """Write ``bench_train.md`` (command, settings, tables, recommendations, pictures), ``bench_train.json``
    (the records) and the PNGs into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        images = plot(table, directory)
        pictures = [f"![{p.stem}]({p.name})" for p in images]
    except ImportError:
        images, pictures = [], ["(no plots: matplotlib is not installed; `pip install latentshape[plot]`)"]
    settings = "; ".join(f"{key}={value}" for key, value in table.settings.items())
    text = ["## train", ""] + ([f"Command: `{command}`", ""] if command else [])
    text += [f"Settings: {settings}; wall time {table.seconds:.0f} s.", "", markdown(table), *pictures, ""]
    path = directory / "bench_train.md"
    path.write_text("\n".join(text))
    raw = directory / "bench_train.json"
    raw.write_text(json.dumps({"protocol": table.protocol, "settings": table.settings, "seconds": table.seconds,
                               "records": table.records}, indent=1))
    return [path, raw, *images]


def load_table(path: str | Path) -> ResultTable:
    """The :class:`~latentshape.bench.protocols.ResultTable` saved as ``bench_train.json`` by :func:`write_report`."""
    content = json.loads(Path(path).read_text())
    return ResultTable(content["protocol"], content["records"], content["settings"], content["seconds"])
