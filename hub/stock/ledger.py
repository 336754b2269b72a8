"""The stock ledger: on-hand stock per master SKU and warehouse, and every movement that changed it.

Every change is one row of ``stock_movements`` (append-only); its id is the **ledger version**, so "computed from
version 1234" names exactly the stock a push was based on. ``stock_levels`` holds the running result per SKU and
warehouse, written in the same transaction as the movement.

Three kinds of movement:

    snapshot  a count replaced the level (WMS ``inventory.query``, ``orderhub stock import``): delta = new - old
    change    a reported movement (WMS ``stockchange.report``: damage, count adjustment, inbound), signed
    level     a ``stock_level`` record of a channel stream (POS store stock): like a snapshot

Reports carry their own id (``outBizCode``); ``(source, ref)`` is unique, so a replayed feed changes nothing. A
snapshot older than the level's ``as_of`` is ignored (the version guard of the stock room: a late count never undoes
a newer one). Stock does not go through the outbox: the outbox carries order events to sinks, while the pusher reads
the ledger itself and compares versions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from hub.errors import RecordError
from hub.ingest import (
    CursorMove,
    IngestResult,
    Source,
    archive_raw,
    close_page,
    raw_json,
    storable_id,
)
from hub.logging import get_logger
from hub.models import StockLevel
from hub.store import schema_stock as st
from hub.store.schema import utcnow

log = get_logger(__name__)


@dataclass(frozen=True)
class Movement:
    """One report about one SKU in one warehouse. ``quantity`` is the new level (snapshot, level) or the signed
    change (change); ``locked`` (snapshots only) is the part the warehouse holds for open documents."""

    sku: str
    warehouse: str
    kind: str
    quantity: int
    source: str
    at: datetime
    ref: str | None = None
    locked: int | None = None
    detail: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("snapshot", "change", "level"):
            raise ValueError(f"unknown movement kind {self.kind!r}")
        if self.at.tzinfo is None:
            raise ValueError("movement times must be timezone-aware")


@dataclass
class LedgerResult:
    received: int = 0
    applied: int = 0          # movements written (a snapshot equal to the level writes nothing)
    unchanged: int = 0        # snapshots equal to the level
    duplicates: int = 0       # reports already recorded (same source and ref)
    stale: int = 0            # snapshots older than the level
    version: int = 0          # the ledger version after this batch
    skus: set[str] = field(default_factory=set)  # SKUs whose on hand changed


def record_movements(conn: Connection, movements: Iterable[Movement], now: datetime | None = None) -> LedgerResult:
    """Apply ``movements`` in order inside the caller's transaction (the feed cursor moves in the same one)."""
    now = now or utcnow()
    result = LedgerResult()
    moves = list(movements)
    keys = {(m.sku, m.warehouse) for m in moves}
    levels = _levels_for(conn, keys)
    refs = _known_refs(conn, [(m.source, m.ref) for m in moves if m.ref is not None])
    for move in moves:
        result.received += 1
        if move.ref is not None and (move.source, move.ref) in refs:
            result.duplicates += 1
            continue
        current = levels.get((move.sku, move.warehouse))
        on_hand, locked, as_of = current if current else (0, 0, None)
        if move.kind == "change":
            delta, new_locked = move.quantity, locked
        else:
            if as_of is not None and move.at < as_of:
                result.stale += 1
                continue
            delta = move.quantity - on_hand
            new_locked = move.locked if move.locked is not None else locked
            if delta == 0 and current is not None:
                # the count confirms the level: no movement, but the level is now known as of this count
                result.unchanged += 1
                if new_locked != locked or move.at > as_of:
                    conn.execute(sa.update(st.stock_levels).where(
                        st.stock_levels.c.sku == move.sku, st.stock_levels.c.warehouse == move.warehouse)
                        .values(locked=new_locked, as_of=max(move.at, as_of), updated_at=now))
                    levels[(move.sku, move.warehouse)] = (on_hand, new_locked, max(move.at, as_of))
                continue
        after = on_hand + delta
        version = conn.execute(sa.insert(st.stock_movements).values(
            sku=move.sku, warehouse=move.warehouse, kind=move.kind, delta=delta, on_hand_after=after,
            source=move.source, ref=move.ref, detail=move.detail, at=move.at, recorded_at=now)).inserted_primary_key[0]
        new_as_of = max(move.at, as_of) if as_of is not None else move.at
        values = {"on_hand": after, "locked": new_locked, "version": version, "as_of": new_as_of, "updated_at": now}
        if current is None:
            conn.execute(sa.insert(st.stock_levels).values(sku=move.sku, warehouse=move.warehouse, **values))
        else:
            conn.execute(sa.update(st.stock_levels).where(
                st.stock_levels.c.sku == move.sku, st.stock_levels.c.warehouse == move.warehouse).values(**values))
        levels[(move.sku, move.warehouse)] = (after, new_locked, new_as_of)
        if move.ref is not None:
            refs.add((move.source, move.ref))
        result.applied += 1
        result.skus.add(move.sku)
        result.version = max(result.version, int(version))
    if not result.version:
        result.version = ledger_version(conn)
    return result


def apply_movements(engine: Engine, movements: Iterable[Movement], *,
                    in_same_transaction: CursorMove | None = None) -> LedgerResult:
    """``record_movements`` in a transaction of its own, with an optional cursor move inside it."""
    with engine.begin() as conn:
        result = record_movements(conn, movements)
        if in_same_transaction is not None:
            in_same_transaction(conn)
    if result.applied:
        log.info("stock ledger moved", applied=result.applied, duplicates=result.duplicates, stale=result.stale,
                 version=result.version)
    return result


def ledger_version(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(st.stock_movements.c.id), 0))).scalar() or 0)


@dataclass(frozen=True)
class Level:
    sku: str
    warehouse: str
    on_hand: int
    locked: int
    version: int
    as_of: datetime


def levels(conn: Connection) -> list[Level]:
    rows = conn.execute(sa.select(st.stock_levels).order_by(st.stock_levels.c.sku, st.stock_levels.c.warehouse))
    return [Level(r.sku, r.warehouse, r.on_hand, r.locked, int(r.version), r.as_of) for r in rows]


def _levels_for(conn: Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int, datetime]]:
    found: dict[tuple[str, str], tuple[int, int, datetime]] = {}
    skus = sorted({sku for sku, _ in keys})
    for start in range(0, len(skus), 500):
        rows = conn.execute(sa.select(st.stock_levels).where(st.stock_levels.c.sku.in_(skus[start:start + 500])))
        for r in rows:
            found[(r.sku, r.warehouse)] = (r.on_hand, r.locked, r.as_of)
    return found


def _known_refs(conn: Connection, pairs: list[tuple[str, str | None]]) -> set[tuple[str, str]]:
    known: set[tuple[str, str]] = set()
    by_source: dict[str, list[str]] = {}
    for source, ref in pairs:
        by_source.setdefault(source, []).append(str(ref))
    for source, refs in by_source.items():
        for start in range(0, len(refs), 500):
            rows = conn.execute(sa.select(st.stock_movements.c.ref).where(
                st.stock_movements.c.source == source, st.stock_movements.c.ref.in_(refs[start:start + 500])))
            known.update((source, r) for (r,) in rows)
    return known


# -- the stream entity "stock_level" (hub/entities.py) ---------------------------------------------------------------


def ingest_stock_levels(engine: Engine, source: Source, records: Iterable[Mapping[str, Any]], *,
                        in_same_transaction: CursorMove | None = None, actor: str = "sync",
                        quarantine_ids: Mapping[int, int] | None = None) -> IngestResult:
    """Store one page of stock_level records (a POS store's stock, a channel's warehouse stock) as ledger
    snapshots of ``<channel>:<shop>``, with the promises of ``hub.ingest.ingest_records``: one transaction with the
    cursor move inside, raw payloads archived, bad records quarantined with their reason, replays no-ops (a level
    equal to the ledger writes nothing; an older read never overwrites a newer one)."""
    now = utcnow()
    result = IngestResult()
    context = {"channel": source.channel, "shop": source.shop}
    good: list[Movement] = []
    raws: list[dict[str, Any]] = []
    bad: list[tuple[int, str | None, RecordError, str]] = []
    for index, record in enumerate(records):
        result.received += 1
        ext = source.external_id(record) if isinstance(record, Mapping) else None
        raw, unreadable = raw_json(record)  # personal values sealed when a key is configured
        if unreadable is not None:
            bad.append((index, storable_id(ext), unreadable, raw))
            continue
        try:
            level: StockLevel = source.mapper.to_model(record, context)
        except RecordError as exc:
            bad.append((index, ext, exc, raw))
            continue
        key = f"{level.warehouse_code}/{level.merchant_sku_code}"
        raws.append({"external_id": key, "raw": raw, "updated_at": None})
        # a channel's "available" excludes what it holds for its own open orders: on hand is both together
        good.append(Movement(sku=level.merchant_sku_code, warehouse=level.warehouse_code, kind="level",
                             quantity=level.available + level.locked, locked=level.locked,
                             source=f"{source.channel}:{source.shop}"[:64], at=now,
                             detail={"actor": actor}))
    with engine.begin() as conn:
        archive_raw(conn, source, raws, now)
        ledger = record_movements(conn, good, now)
        result.changed = ledger.applied
        result.unchanged = ledger.unchanged + ledger.stale + ledger.duplicates
        result.quarantined = close_page(conn, source, bad, now, quarantine_ids, in_same_transaction)
    for _index, ext, exc, _raw in bad:
        log.warning("stock record quarantined", external_id=ext, error=exc.to_dict())
    return result
