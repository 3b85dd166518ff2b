"""Markdown tables and PNG plots of benchmark results (matplotlib is imported only to plot).

:func:`markdown` renders a :class:`~latentshape.bench.protocols.ResultTable` as pivoted markdown
tables (one per d, or one for speed); :func:`plot` draws the PNG figure for it;
:func:`write_report` writes both into a directory and returns the paths.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .measure import fmt_bytes, fmt_seconds
from .protocols import ResultTable

__all__ = ["markdown", "plot", "write_report"]


def _number(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def _grid(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def markdown(table: ResultTable) -> str:
    """Markdown for one protocol's results: a source x regularizer grid per d, or the speed grid.

    >>> from latentshape.bench.protocols import ResultTable
    >>> t = ResultTable("detection", [{"distribution": "x", "d": 2, "regularizer": "mmd", "z": 7.25, "z_sd": 0.0}])
    >>> print(markdown(t))
    **d = 2**
    <BLANKLINE>
    | source | mmd |
    |---|---:|
    | x | 7.2 |
    """
    if table.protocol == "train":
        from . import train_report

        return train_report.markdown(table)
    lines: list[str] = []
    if table.protocol in ("detection", "gaussianize"):
        for d in table.unique("d"):
            names = [name for name in table.unique("regularizer")]
            sources = table.unique("distribution")
            rows = []
            for source in sources:
                cells = [table.values("z", distribution=source, d=d, regularizer=name) for name in names]
                if any(cells):
                    rows.append([source] + [_number(cell[0]) if cell else "" for cell in cells])
            if lines:
                lines.append("")
            lines += [f"**d = {d}**", ""] + _grid(["source"] + names, rows)
        if table.protocol == "gaussianize":
            lines += ["", "Wall seconds per regularizer (all sources, dimensions and learning rates):", ""]
            names = [name for name in table.unique("regularizer") if name != "start"]
            totals = [sum(table.values("seconds", regularizer=name)) for name in names]
            lines += _grid(["", *names], [["seconds", *(f"{t:.0f}" for t in totals)]])
    elif table.protocol == "speed":
        sizes = [(r["n"], r["d"]) for r in table.records]
        sizes = list(dict.fromkeys(sizes))
        names = table.unique("regularizer")
        rows = []
        for n, d in sizes:
            row = [f"{n}", f"{d}"]
            for name in names:
                seconds = table.values("seconds", regularizer=name, n=n, d=d)
                peak = table.values("peak_bytes", regularizer=name, n=n, d=d)
                row.append(f"{fmt_seconds(seconds[0])} / {fmt_bytes(peak[0])}" if seconds else "")
            rows.append(row)
        lines += _grid(["N", "d", *names], rows)
    else:
        raise ValueError(f"unknown protocol {table.protocol!r}")
    return "\n".join(lines)


def plot(table: ResultTable, path: str | Path) -> Path:
    """Save a PNG of the results to ``path`` (needs matplotlib: ``pip install latentshape[plot]``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    path = Path(path)
    if table.protocol in ("detection", "gaussianize"):
        dims = table.unique("d")
        names = table.unique("regularizer")
        sources = table.unique("distribution")
        figure, axes = plt.subplots(1, len(dims), figsize=(5.5 * len(dims), 4.2), squeeze=False)
        width = 0.8 / len(names)
        for axis, d in zip(axes[0], dims):
            for k, name in enumerate(names):
                values = [table.values("z", distribution=s, d=d, regularizer=name) for s in sources]
                heights = [v[0] if v else np.nan for v in values]
                # A symmetric log scale keeps z = 3 and z = 3000 both readable.
                axis.bar(np.arange(len(sources)) + (k - (len(names) - 1) / 2) * width, heights, width, label=name)
            axis.set_yscale("symlog", linthresh=5.0)
            axis.axhline(0.0, color="black", linewidth=0.6)
            axis.set_xticks(np.arange(len(sources)), sources, rotation=35, ha="right")
            axis.set_title(f"{table.protocol}, d = {d}")
            axis.set_ylabel("z (symlog)" if table.protocol == "detection" else "W2 z of the final cloud (symlog)")
        axes[0][-1].legend(fontsize=7)
    elif table.protocol == "speed":
        figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        names = table.unique("regularizer")
        sizes = list(dict.fromkeys((r["n"], r["d"]) for r in table.records))
        fixed_d = max({d for _, d in sizes}, key=lambda d: sum(1 for _, e in sizes if e == d))
        fixed_n = max({n for n, _ in sizes}, key=lambda n: sum(1 for m, _ in sizes if m == n))
        for name in names:
            for axis, vary, fixed, key in ((axes[0], "n", fixed_d, "d"), (axes[1], "d", fixed_n, "n")):
                points = sorted((r[vary], r["seconds"]) for r in table.records if r["regularizer"] == name and r[key] == fixed)
                if points:
                    axis.plot(*zip(*points), marker="o", label=name)
        for axis, vary, fixed, key in ((axes[0], "N", fixed_d, "d"), (axes[1], "d", fixed_n, "N")):
            axis.set_xscale("log")
            axis.set_yscale("log")
            axis.set_xlabel(vary)
            axis.set_ylabel("forward+backward seconds")
            axis.set_title(f"speed at {key} = {fixed}")
        axes[1].legend(fontsize=7)
    else:
        raise ValueError(f"unknown protocol {table.protocol!r}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_report(table: ResultTable, directory: str | Path, command: str = "") -> list[Path]:
    """Write ``bench_<protocol>.md`` (settings, command, table) and ``bench_<protocol>.png`` into ``directory``.

    The plot is skipped (with a note in the markdown) when matplotlib is missing. A ``train``
    table writes ``bench_train.md`` and one figure per setting (:mod:`latentshape.bench.train_report`).
    """
    if table.protocol == "train":
        from . import train_report

        return train_report.write_report(table, directory, command=command)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    image = directory / f"bench_{table.protocol}.png"
    written: list[Path] = []
    try:
        written.append(plot(table, image))
        picture = f"![{table.protocol}]({image.name})"
    except ImportError:
        picture = "(no plot: matplotlib is not installed; `pip install latentshape[plot]`)"
    settings = ", ".join(f"{key}={value}" for key, value in table.settings.items())
    text = [f"## {table.protocol}", ""]
    if command:
        text += [f"Command: `{command}`", ""]
    text += [f"Settings: {settings}; wall time {table.seconds:.0f} s.", "", markdown(table), "", picture, ""]
    path = directory / f"bench_{table.protocol}.md"
    path.write_text("\n".join(text))
    return [path, *written]
