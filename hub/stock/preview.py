"""Dry run of a stock policy change: what each channel and shop would be told under a policy file, beside what the
current policy tells it and what was last pushed. Nothing is written and no channel is called.

Also the reader of ``orderhub stock import FILE``: counts from a CSV (``sku,warehouse,quantity``) or YAML
(``counts: [{sku, warehouse, quantity}]``) file, e.g. the ERP's stock or a store's stocktake, as ledger snapshots.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.engine import Connection

from hub.config import ConfigError, ConfigProblem
from hub.processing.skus import SkuTables
from hub.stock.ats import ShopKey, StockPolicy, availability
from hub.stock.ledger import Movement
from hub.stock.push import load_states
from hub.store.schema import utcnow


@dataclass(frozen=True)
class PreviewRow:
    channel: str
    shop: str
    sku: str
    pool: str
    available: int
    current: int | None    # what the current policy tells (None: the current policy does not cover this shop)
    proposed: int
    last_pushed: int | None
    last_acked: int | None

    @property
    def changes(self) -> bool:
        return self.current != self.proposed


def preview(conn: Connection, current: StockPolicy, proposed: StockPolicy, skus: SkuTables, shops: list[ShopKey],
            now: datetime | None = None) -> list[PreviewRow]:
    now = now or utcnow()
    before = availability(conn, current, skus, shops, now=now)
    after = availability(conn, proposed, skus, shops, now=now)
    states = load_states(conn, after.targets)
    rows = []
    for (channel, shop), targets in sorted(after.targets.items()):
        entry = proposed.policy_for(channel, shop)
        assert entry is not None
        for sku, qty in sorted(targets.items()):
            state = states.get((channel, shop, sku))
            rows.append(PreviewRow(channel, shop, sku, entry.pool, after.available[entry.pool].get(sku, 0),
                                   before.targets.get((channel, shop), {}).get(sku), qty,
                                   state.target if state else None, state.channel_qty if state else None))
    return rows


class _Count(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: str = Field(min_length=1, max_length=128)
    warehouse: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=0)


def parse_counts(path: Path, at: datetime | None = None) -> list[Movement]:
    """Every row of a count file as a snapshot movement (all rows or none: ConfigError lists each problem)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        data = yaml.safe_load(text) or {}
        raw: list[Any] = data.get("counts", []) if isinstance(data, dict) else data
    else:
        raw = list(csv.DictReader(io.StringIO(text)))
    problems, out = [], []
    at = at or utcnow()
    for index, row in enumerate(raw, start=1):
        try:
            count = _Count.model_validate(row)
        except ValidationError as exc:
            problems.extend(ConfigProblem(where=f"row {index}", message=e["msg"] + f" ({'.'.join(map(str, e['loc']))})",
                                          how_to_fix="columns: sku, warehouse, quantity (>= 0)")
                            for e in exc.errors())
            continue
        out.append(Movement(sku=count.sku, warehouse=count.warehouse, kind="snapshot", quantity=count.quantity,
                            source=f"import:{path.name}"[:64], at=at))
    if problems:
        raise ConfigError(str(path), problems)
    return out
