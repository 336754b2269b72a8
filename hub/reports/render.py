"""Reports out: a Rich table, a CSV file (UTF-8 with BOM, so spreadsheet programs read the Chinese right), a PNG
chart (matplotlib, headless ``Agg`` backend, imported only when a chart is asked for)."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from hub.reports import Report

_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$|^-$")


def print_report(console: Console, report: Report) -> None:
    table = Table(title=report.title, title_justify="left")
    for index, column in enumerate(report.columns):
        numeric = bool(report.rows) and all(_NUMBER.match(str(row[index])) for row in report.rows)
        table.add_column(column, justify="right" if numeric else "left")
    for row in report.rows:
        table.add_row(*(str(v) for v in row))
    console.print(table)
    for note in report.notes:
        console.print(note, highlight=False)


def write_csv(report: Report, path: Path) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(report.columns)
        writer.writerows(report.rows)


def _number(value) -> float:
    try:
        return float(str(value).replace("+", ""))
    except ValueError:
        return 0.0


def write_png(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chart = report.chart or {"kind": "bar", "x": report.columns[0], "y": report.columns[-1]}
    xi, yi = report.columns.index(chart["x"]), report.columns.index(chart["y"])
    si = report.columns.index(chart["series"]) if chart.get("series") else None
    xs = list(dict.fromkeys(str(row[xi]) for row in report.rows))
    series: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in report.rows:
        series[str(row[si]) if si is not None else chart["y"]][str(row[xi])] += _number(row[yi])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(xs) + 3), 4), dpi=110)
    positions = range(len(xs))
    if chart["kind"] == "bar_stacked":
        bottom = [0.0] * len(xs)
        for name, values in sorted(series.items()):
            heights = [values.get(x, 0.0) for x in xs]
            ax.bar(positions, heights, bottom=bottom, label=name)
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    else:
        width = 0.8 / max(1, len(series))
        for n, (name, values) in enumerate(sorted(series.items())):
            ax.bar([p + n * width for p in positions], [values.get(x, 0.0) for x in xs], width=width, label=name)
        ax.set_xticks([p + width * (len(series) - 1) / 2 for p in positions])
    if chart["kind"] == "bar_stacked":
        ax.set_xticks(list(positions))
    ax.set_xticklabels(xs, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(chart["y"])
    ax.set_title(report.title, fontsize=10)
    if si is not None or len(series) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
