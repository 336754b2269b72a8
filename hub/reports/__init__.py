"""Business reports from the hub's own tables (no channel is asked): each function returns a ``Report`` - a title,
columns and rows of plain values - that hub/reports/render.py prints as a Rich table, writes as CSV or draws as PNG.

    sales.py      sales by channel / shop / day, refund rate, price check, co-purchase pairs
    operations.py SLA (paid -> WMS, paid -> shipped, shipped -> written back), quarantine ageing
    lineage.py    one order's full trail (``orderhub order show``)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Report:
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    chart: dict[str, Any] = field(default_factory=dict)  # how render.png draws it: kind, x, y, series


def yuan(fen: int | None) -> str:
    """Fen as a yuan string, exactly (no float on the way)."""
    if fen is None:
        return "-"
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"
