"""Ingest one batch (a page) of raw channel records in one transaction.

    raw archived -> mapped -> validated -> upserted with the version guard -> bound -> outbox written
    (+ the sync cursor and window ledger, when the caller hands them in, in the *same* transaction)

A record that cannot be mapped or validated is quarantined with its reason and raw payload and the rest of the page
lands. The version guard: a record whose ``updated_at`` is newer than the stored one replaces it (version + 1, an
``order.changed`` event); equal or older is a no-op, so replaying a window changes nothing. The guard sits in the
UPDATE's WHERE clause too, so two writers racing on one order cannot move it backwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from hub import crypto, jsontext
from hub.errors import RecordError
from hub.logging import get_logger, redact_value, scrub
from hub.mapping import Mapper
from hub.models import Order
from hub.store import schema as t
from hub.store.bulk import insert_rows
from hub.store.schema import utcnow

log = get_logger(__name__)
ENTITY = "order"


@dataclass
class IngestResult:
    received: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    quarantined: int = 0
    hub_ids: list[str] = field(default_factory=list)

    def add(self, other: IngestResult) -> None:
        for name in ("received", "new", "changed", "unchanged", "quarantined"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.hub_ids.extend(other.hub_ids)


def canonical_json(record: Any) -> str:
    return jsontext.canonical(record)


def content_hash(payload: str) -> str:
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def new_hub_id() -> str:
    """A time-ordered UUID (version 7, RFC 9562) as 32 hex digits.

    Hub ids are the primary key of the orders table and lead the keys of its lines, audit and dispatch rows. Random
    (version 4) ids scatter every insert over the whole index: InnoDB, which clusters rows by primary key, and
    SQLite both then touch a cold page per row once the table outgrows the cache. Ids that grow with time append
    at the right edge of the index instead, so the cost of an insert stays flat as the hub grows to millions.
    """
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | (rand >> 68) << 64 | 0b10 << 62 | (rand & (2**62 - 1))
    return uuid.UUID(int=value).hex


@dataclass(frozen=True)
class Source:
    """Who the records come from: channel, shop, how to read their external id, and the mapping to apply."""

    channel: str
    shop: str
    mapper: Mapper
    external_id: Callable[[Mapping[str, Any]], str | None]
    entity: str = ENTITY


CursorMove = Callable[[Connection], None]


def ingest_records(engine: Engine, source: Source, records: Iterable[Mapping[str, Any]], *,
                   in_same_transaction: CursorMove | None = None, actor: str = "sync",
                   quarantine_ids: Mapping[int, int] | None = None) -> IngestResult:
    """Map, validate and store ``records`` in one transaction; run ``in_same_transaction`` inside it.

    ``quarantine_ids`` (record index -> quarantine row id) marks records coming back from quarantine, so that their
    rows are closed (or updated with the new reason) in the same transaction.
    """
    now = utcnow()
    result = IngestResult()
    context = {"channel": source.channel, "shop": source.shop}
    good: dict[str, tuple[Order, str, int]] = {}  # external id -> (order, raw json, record index); newest wins
    raws: list[dict[str, Any]] = []
    bad: list[tuple[int, str | None, RecordError, str]] = []
    for index, record in enumerate(records):
        result.received += 1
        ext = source.external_id(record) if isinstance(record, Mapping) else None
        raw, unreadable = raw_json(record)
        if unreadable is not None:
            bad.append((index, storable_id(ext), unreadable, raw))
            continue
        try:
            order = source.mapper.to_model(record, context)
        except RecordError as exc:
            bad.append((index, storable_id(ext), exc, raw))
            continue
        ext = order.order_id
        raws.append({"external_id": ext, "raw": raw, "updated_at": order.updated_at})
        previous = good.get(ext)
        if previous is None or order.updated_at > previous[0].updated_at:
            good[ext] = (order, raw, index)

    with engine.begin() as conn:
        archive_raw(conn, source, raws, now)
        existing = _existing(conn, source, list(good))
        outbox_rows, audit_rows = [], []
        new_orders, new_lines, new_bindings = [], [], []
        for ext, (order, _raw, _index) in good.items():
            stored = existing.get(ext)
            if stored is None:
                hub_id = new_hub_id()
                new_bindings.append(_binding_row(source, ext, hub_id, now))
                new_orders.append(_order_row(hub_id, order, 1, now, first_seen=now))
                new_lines.extend(_line_rows(hub_id, order))
                outbox_rows.append(_event("order.accepted", hub_id, 1, order, now))
                audit_rows.append(_accepted_audit(hub_id, order, now, actor))
                result.new += 1
                result.hub_ids.append(hub_id)
                continue
            hub_id, stored_updated_at, stored_version = stored
            if order.updated_at <= stored_updated_at:
                result.unchanged += 1
                continue
            version = stored_version + 1
            row = _order_row(hub_id, order, version, now)
            updated = conn.execute(
                sa.update(t.orders)
                .where(t.orders.c.hub_id == hub_id, t.orders.c.updated_at < order.updated_at)
                .values(**{k: v for k, v in row.items() if k not in ("hub_id", "first_seen_at")})
            ).rowcount
            if updated != 1:  # another writer stored a newer version between our read and this update
                result.unchanged += 1
                continue
            conn.execute(sa.delete(t.order_lines).where(t.order_lines.c.hub_id == hub_id))
            new_lines.extend(_line_rows(hub_id, order))
            outbox_rows.append(_event("order.changed", hub_id, version, order, now))
            audit_rows.append(_audit(hub_id, now, "order.changed", actor,
                                     {"version": version, "status": order.status.value,
                                      "updated_at": order.updated_at.isoformat(),
                                      "previous_updated_at": stored_updated_at.isoformat()}))
            result.changed += 1
            result.hub_ids.append(hub_id)
        insert_rows(conn, t.bindings, new_bindings)
        insert_rows(conn, t.orders, new_orders)
        insert_rows(conn, t.order_lines, new_lines)
        insert_rows(conn, t.outbox, outbox_rows)
        insert_rows(conn, t.audit_trail, audit_rows)
        result.quarantined = close_page(conn, source, bad, now, quarantine_ids, in_same_transaction)
    for _index, ext, exc, _raw in bad:
        log.warning("record quarantined", external_id=ext, error=exc.to_dict())
    return result


def close_page(conn: Connection, source: Source, bad: list[tuple[int, str | None, RecordError, str]],
               now: datetime, quarantine_ids: Mapping[int, int] | None, in_same_transaction: CursorMove | None) -> int:
    """The end of every ingester's page transaction: quarantine the bad records, mark the replayed quarantine rows
    that now landed, and run the caller's bookkeeping (the cursor move) in the same transaction. Returns the number
    of records quarantined."""
    quarantined = quarantine_records(conn, source, bad, now, quarantine_ids or {})
    if quarantine_ids:
        still_bad = {b[0] for b in bad}
        back = [qid for idx, qid in quarantine_ids.items() if idx not in still_bad]
        if back:
            conn.execute(sa.update(t.quarantine).where(t.quarantine.c.id.in_(back))
                         .values(status="replayed", updated_at=now))
    if in_same_transaction is not None:
        in_same_transaction(conn)
    return quarantined


def raw_json(record: Any) -> tuple[str, RecordError | None]:
    """The record as canonical JSON (personal values sealed when a key is configured), or why it cannot be stored:
    text that is not valid Unicode (lone surrogates from a badly decoded payload) or nesting too deep to serialise
    would otherwise fail the whole page's transaction."""
    try:
        raw = canonical_json(crypto.seal_record(record))
    except (RecursionError, ValueError, TypeError) as exc:
        return (json.dumps({"unserialisable_record": type(exc).__name__}),
                RecordError(f"record cannot be serialised: {type(exc).__name__}", group_key="unserialisable record"))
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        # keep the raw payload, with the invalid code points as backslash-u escapes (ASCII JSON stays loadable)
        return (json.dumps(json.loads(raw), ensure_ascii=True, sort_keys=True, separators=(",", ":")),
                RecordError("record holds text that is not valid Unicode (lone surrogates: a bad encoding upstream)",
                            group_key="invalid text encoding"))
    return raw, None


def storable_id(ext: Any) -> str | None:
    """An external id fit for the quarantine row: text, valid UTF-8, within the column's size."""
    if ext is None:
        return None
    text = str(ext).encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:128]


def _existing(conn: Connection, source: Source, external_ids: list[str]) -> dict[str, tuple[str, datetime, int]]:
    """external id -> (hub id, stored updated_at, version) for the ids already bound."""
    found: dict[str, tuple[str, datetime, int]] = {}
    for chunk_start in range(0, len(external_ids), 500):
        chunk = external_ids[chunk_start:chunk_start + 500]
        rows = conn.execute(
            sa.select(t.bindings.c.external_id, t.orders.c.hub_id, t.orders.c.updated_at, t.orders.c.version)
            .join(t.orders, t.orders.c.hub_id == t.bindings.c.hub_id)
            .where(t.bindings.c.channel == source.channel, t.bindings.c.shop == source.shop,
                   t.bindings.c.entity == source.entity, t.bindings.c.external_id.in_(chunk))
        )
        for ext, hub_id, updated_at, version in rows:
            found[ext] = (hub_id, updated_at, version)
    return found


def archive_raw(conn: Connection, source: Source, raws: list[dict[str, Any]], now: datetime) -> None:
    """Keep every distinct received version of every record (hash-deduplicated)."""
    if not raws:
        return
    for item in raws:
        item["hash"] = content_hash(item["raw"])
    known: set[tuple[str, str]] = set()
    ids = list({r["external_id"] for r in raws})
    for chunk_start in range(0, len(ids), 500):
        rows = conn.execute(
            sa.select(t.raw_payloads.c.external_id, t.raw_payloads.c.content_hash).where(
                t.raw_payloads.c.channel == source.channel, t.raw_payloads.c.shop == source.shop,
                t.raw_payloads.c.entity == source.entity,
                t.raw_payloads.c.external_id.in_(ids[chunk_start:chunk_start + 500]))
        )
        known.update((e, h) for e, h in rows)
    fresh, seen = [], set()
    for item in raws:
        key = (item["external_id"], item["hash"])
        if key in known or key in seen:
            continue
        seen.add(key)
        fresh.append(_raw_row(source, item["external_id"], item["hash"], item["updated_at"], item["raw"], now))
    insert_rows(conn, t.raw_payloads, fresh)


def quarantine_records(conn: Connection, source: Source, bad: list[tuple[int, str | None, RecordError, str]],
                now: datetime, quarantine_ids: Mapping[int, int]) -> int:
    """Quarantine bad records ``(index, external id, error, raw json)`` of any entity; the same record seen again
    only bumps the attempt count of its open row (keeping the newest payload); ``quarantine_ids`` (index -> row)
    update rows being replayed."""
    count = 0
    for index, ext, exc, raw in bad:
        count += 1
        # reasons quote the offending value (a phone in the wrong field): personal data never enters them
        attrs = redact_value({k: v for k, v in exc.attributes.items() if k != "group_key"})
        group_key = scrub(str(exc.attributes.get("group_key") or exc.message))[:191]
        reason = scrub(exc.message)
        qid = quarantine_ids.get(index)
        if qid is None:
            qid = conn.execute(
                sa.select(t.quarantine.c.id).where(
                    t.quarantine.c.channel == source.channel, t.quarantine.c.shop == source.shop,
                    t.quarantine.c.entity == source.entity, t.quarantine.c.status == "open",
                    # a record with an id is one row however often and by whichever path (list, detail, push) it
                    # comes back; without an id only the identical payload is the same record
                    t.quarantine.c.external_id == ext if ext is not None
                    else sa.and_(t.quarantine.c.external_id.is_(None), t.quarantine.c.payload == raw))
            ).scalar()
        if qid is not None:
            conn.execute(sa.update(t.quarantine).where(t.quarantine.c.id == qid).values(
                attempts=t.quarantine.c.attempts + 1, reason=reason, group_key=group_key, attributes=attrs,
                error_kind=exc.kind, payload=raw, updated_at=now))
            continue
        conn.execute(sa.insert(t.quarantine).values(
            channel=source.channel, shop=source.shop, entity=source.entity, external_id=ext, error_kind=exc.kind,
            reason=reason, group_key=group_key, attributes=attrs, payload=raw, status="open", attempts=1,
            created_at=now, updated_at=now))
    return count


def _binding_row(source: Source, ext: str, hub_id: str, now: datetime) -> dict[str, Any]:
    return {"channel": source.channel, "shop": source.shop, "entity": source.entity, "external_id": ext,
            "hub_id": hub_id, "created_at": now}


def _raw_row(source: Source, ext: str, digest: str, updated_at: datetime, raw: str, now: datetime) -> dict[str, Any]:
    return {"channel": source.channel, "shop": source.shop, "entity": source.entity, "external_id": ext,
            "content_hash": digest, "updated_at": updated_at, "received_at": now, "payload": raw}


def _order_row(hub_id: str, order: Order, version: int, now: datetime, first_seen: datetime | None = None
               ) -> dict[str, Any]:
    row = {
        "hub_id": hub_id, "channel": order.platform, "shop": order.shop_id, "order_id": order.order_id,
        "status": order.status.value, "raw_status": order.raw_status[:64], "version": version,
        "updated_at": order.updated_at, "placed_at": order.created_at, "paid_at": order.paid_at,
        "paid_total": order.paid_total, "currency": order.currency,
        "document": crypto.seal_document(order.model_dump(mode="json")), "last_written_at": now,
    }
    if first_seen is not None:
        row["first_seen_at"] = first_seen
    return row


def _line_rows(hub_id: str, order: Order) -> list[dict[str, Any]]:
    return [{"hub_id": hub_id, "line_id": line.line_id, "merchant_sku_code": line.merchant_sku_code,
             "platform_sku_id": line.platform_sku_id, "title": (line.title or "")[:255] or None, "qty": line.qty,
             "unit_price": line.unit_price, "line_paid": line.line_paid, "status": line.status.value,
             "raw_status": line.raw_status[:64]} for line in order.lines]


def _event(event_type: str, hub_id: str, version: int, order: Order, now: datetime) -> dict[str, Any]:
    return {"event_type": event_type, "entity": ENTITY, "hub_id": hub_id, "version": version, "created_at": now,
            "payload": {"channel": order.platform, "shop": order.shop_id, "order_id": order.order_id,
                        "status": order.status.value, "version": version,
                        "updated_at": order.updated_at.isoformat()}}


def _accepted_audit(hub_id: str, order: Order, now: datetime, actor: str) -> dict[str, Any]:
    return _audit(hub_id, now, "order.accepted", actor, {"version": 1, "status": order.status.value,
                                                         "updated_at": order.updated_at.isoformat()})


def _audit(hub_id: str, now: datetime, action: str, actor: str, detail: dict[str, Any]) -> dict[str, Any]:
    return {"hub_id": hub_id, "at": now, "action": action, "actor": actor, "detail": detail}


def load_order(conn: Connection, hub_id: str) -> tuple[Order, int] | None:
    row = conn.execute(sa.select(t.orders.c.document, t.orders.c.version).where(t.orders.c.hub_id == hub_id)).first()
    if row is None:
        return None
    document = json.loads(row.document) if isinstance(row.document, str) else row.document
    return Order.model_validate_json(json.dumps(crypto.open_all(document))), row.version
