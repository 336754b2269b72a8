"""The stock steps the Hub runs (``Hub.push_stock`` / ``stock_intake`` / ``stock_count``), wired from the
configuration: WMS sinks feed the ledger, source connectors with a ``push_stock`` are told what to sell.

    stock_intake   every enabled WMS sink's stockchange.report feed -> ledger (cursor in the same transaction)
    stock_count    inventory.query of every master SKU -> ledger snapshots (recovery after a missed report)
    push_stock     intake, then one versioned push cycle (hub/stock/push.py) to every shop that has a policy
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

import mappings
from hub.logging import bind_run, get_logger
from hub.stock.ats import StockPolicy, load_policy
from hub.stock.ledger import apply_movements
from hub.stock.push import Pusher, StockPushReport, run_push
from hub.store import schema as t
from hub.store.db import reading
from hub.store.schema import utcnow

if TYPE_CHECKING:
    from hub.runtime import Hub

log = get_logger(__name__)
POLICY_FILE = "stock.yaml"


def policy(hub: Hub, path: Path | None = None) -> StockPolicy:
    return load_policy(path or mappings.path(POLICY_FILE, hub.settings.mappings_dir))


def pushers(hub: Hub, channel: str | None = None, shop: str | None = None) -> dict[tuple[str, str], tuple[Any, Pusher]]:
    """(channel, shop) -> (shop settings, pusher) of every enabled shop whose connector can push stock."""
    from connectors.registry import SOURCES

    out: dict[tuple[str, str], tuple[Any, Pusher]] = {}
    for settings in hub.settings.enabled_shops():
        if (channel and settings.channel != channel) or (shop and settings.shop != shop):
            continue
        connector = SOURCES.get(settings.channel)
        if connector is not None and connector.push_stock is not None:
            out[(settings.channel, settings.shop)] = (settings, connector.push_stock)
    return out


def _wms_sinks(hub: Hub) -> list[Any]:
    return [s for s in hub.settings.enabled_sinks() if s.kind == "qimen_wms"]


def _position(conn, name: str) -> int:
    return int(conn.execute(sa.select(t.subscriptions.c.position).where(t.subscriptions.c.name == name)).scalar()
               or 0)


def _move_position(name: str, position: int):
    def move(conn) -> None:
        now = utcnow()
        if conn.execute(sa.select(t.subscriptions.c.name).where(t.subscriptions.c.name == name)).first():
            conn.execute(sa.update(t.subscriptions).where(t.subscriptions.c.name == name,
                                                          t.subscriptions.c.position < position)
                         .values(position=position, updated_at=now))
        else:
            conn.execute(sa.insert(t.subscriptions).values(name=name, position=position, updated_at=now))
    return move


def intake(hub: Hub, max_pages: int = 50) -> dict[str, int]:
    """Read every WMS's stock change feed into the ledger; the feed position moves with the movements."""
    from connectors.qimen_wms.stock import poll_stockchanges

    counts = {"reports": 0, "applied": 0, "duplicates": 0}
    for sink in _wms_sinks(hub):
        name = f"stock:{sink.name}"
        with bind_run(sink=sink.name, step="stock_intake"):
            for _ in range(max_pages):
                with reading(hub.engine) as conn:
                    after = _position(conn, name)
                movements, last, more = poll_stockchanges(sink, after)
                if last == after:
                    break
                result = apply_movements(hub.engine, movements, in_same_transaction=_move_position(name, last))
                counts["reports"] += len(movements)
                counts["applied"] += result.applied
                counts["duplicates"] += result.duplicates
                if not more:
                    break
    return counts


def count(hub: Hub, skus: list[str] | None = None) -> dict[str, int]:
    """Ask every WMS for the stock of ``skus`` (default: every master SKU) and record it as snapshots."""
    from connectors.qimen_wms.stock import query_inventory

    wanted = skus or sorted(hub.processing_tables().skus.masters)
    counts = {"items": 0, "applied": 0}
    for sink in _wms_sinks(hub):
        movements = query_inventory(sink, wanted)
        result = apply_movements(hub.engine, movements)
        counts["items"] += len(movements)
        counts["applied"] += result.applied
    return counts


def push(hub: Hub, channel: str | None = None, shop: str | None = None, *, resync: bool = False,
         policy_path: Path | None = None, only_skus: list[str] | None = None, with_intake: bool = True
         ) -> StockPushReport:
    rules = policy(hub, policy_path)
    with bind_run(step="push_stock"):
        taken = intake(hub) if with_intake else {}
        report = run_push(hub.engine, rules, hub.processing_tables().skus, pushers(hub, channel, shop),
                          resync=resync, only_skus=only_skus)
    report.intake = taken
    return report
