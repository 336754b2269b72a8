"""Read-only business state of the hub for the Airflow page and the SLA watch (no Airflow import here).

Reads the hub's tables with ``hub.store.db.reading`` (no write lock on SQLite) and reuses ``hub.status`` where it
already answers. Candidates to move into ``hub/status.py`` once its owners want them there.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub import status
from hub.store import schema as t
from hub.store.db import reading

OPEN_ORDER_STATUSES = ("PAID", "ON_HOLD", "PARTIALLY_SHIPPED")  # paid, not shipped, not cancelled or refunded
DELIVERED_DISPATCH = ("done", "skipped")


def unclosed_windows(engine: Engine) -> list[dict[str, Any]]:
    w = t.sync_windows
    with reading(engine) as conn:
        rows = conn.execute(sa.select(w.c.connector, w.c.shop, w.c.stream, sa.func.count(),
                                      sa.func.min(w.c.window_start), sa.func.max(w.c.window_end))
                            .where(w.c.closed.is_(False)).group_by(w.c.connector, w.c.shop, w.c.stream)).all()
        cursors = {(r.connector, r.shop, r.stream): r.position for r in conn.execute(sa.select(t.sync_cursors))}
    return [{"shop": f"{c}/{s}", "stream": st, "unclosed": n, "oldest_start": lo, "newest_end": hi,
             "cursor": cursors.get((c, s, st))} for c, s, st, n, lo, hi in rows]


def outbox_per_sink(engine: Engine, sinks: dict[str, tuple[str, ...]]) -> list[dict[str, Any]]:
    """Per sink (name -> event types it takes): outbox events past its subscription position that it has not
    claimed yet (the backlog), and its dispatch rows by status (parked and in doubt need a person or a replay)."""
    d, o = t.dispatches, t.outbox
    out = []
    with reading(engine) as conn:
        for sink, event_types in sinks.items():
            position = conn.execute(sa.select(t.subscriptions.c.position)
                                    .where(t.subscriptions.c.name == sink)).scalar() or 0
            backlog = conn.execute(sa.select(sa.func.count()).select_from(o).where(
                o.c.id > position, o.c.event_type.in_(event_types),
                ~sa.exists().where(d.c.sink == sink, d.c.event_id == o.c.id))).scalar() or 0
            counts = dict(conn.execute(sa.select(d.c.status, sa.func.count()).where(d.c.sink == sink)
                                       .group_by(d.c.status)).all())
            out.append({"sink": sink, "backlog": backlog,
                        "done": counts.get("done", 0), "skipped": counts.get("skipped", 0),
                        "parked": counts.get("parked", 0), "in_doubt": counts.get("in_doubt", 0),
                        "in_flight": counts.get("in_flight", 0)})
    return out


def sla_breaches(engine: Engine, wms_sinks: list[str], minutes: int, now: datetime | None = None,
                 limit: int = 200) -> list[dict[str, Any]]:
    """Orders paid more than ``minutes`` ago, still open, with no delivered dispatch to any WMS sink."""
    now = now or datetime.now(UTC)
    o, d, p = t.orders, t.dispatches, t.order_plans
    delivered = sa.exists().where(d.c.hub_id == o.c.hub_id, d.c.sink.in_(wms_sinks or ["-"]),
                                  d.c.status.in_(DELIVERED_DISPATCH))
    merged = sa.exists().where(p.c.hub_id == o.c.hub_id, p.c.merged_into.is_not(None))
    q = (sa.select(o.c.hub_id, o.c.channel, o.c.shop, o.c.order_id, o.c.status, o.c.paid_at)
         .where(o.c.paid_at.is_not(None), o.c.paid_at < now - timedelta(minutes=minutes),
                o.c.status.in_(OPEN_ORDER_STATUSES), ~delivered, ~merged)
         .order_by(o.c.paid_at).limit(limit))
    with reading(engine) as conn:
        rows = conn.execute(q).all()
        plans = dict(conn.execute(sa.select(p.c.hub_id, p.c.status)
                                  .where(p.c.hub_id.in_([r.hub_id for r in rows] or ["-"]))).all())
    return [{"hub_id": r.hub_id, "shop": f"{r.channel}/{r.shop}", "order_id": r.order_id, "status": r.status,
             "plan": plans.get(r.hub_id, "-"), "paid_at": r.paid_at,
             "waiting_minutes": round((now - r.paid_at).total_seconds() / 60, 1)} for r in rows]


def last_stock_push(engine: Engine) -> list[dict[str, Any]]:
    """Per channel and shop: the last available-to-sell push, how many SKUs it has been told, how many pushes still
    wait for the channel's acknowledgement or were rejected, and the ledger versions sent and acknowledged."""
    from hub.store.schema_stock import stock_pushes as p

    waiting = sa.func.sum(sa.case((p.c.status == "sent", 1), else_=0))
    rejected = sa.func.sum(sa.case((p.c.status == "rejected", 1), else_=0))
    acked = sa.func.max(sa.case((p.c.status == "acked", p.c.version), else_=None))
    with reading(engine) as conn:
        rows = conn.execute(sa.select(p.c.channel, p.c.shop, sa.func.max(p.c.created_at), sa.func.count(),
                                      sa.func.count(sa.distinct(p.c.sku)), waiting, rejected,
                                      sa.func.max(p.c.version), acked)
                            .group_by(p.c.channel, p.c.shop).order_by(p.c.channel, p.c.shop)).all()
    return [{"channel": f"{c}/{shop}", "last_push": last, "pushes": n, "skus": skus, "unacknowledged": int(w or 0),
             "rejected": int(r or 0), "version": version, "acked_version": av}
            for c, shop, last, n, skus, w, r, version, av in rows]


def _event_types(connector: Any, sink_settings: Any, engine: Engine) -> tuple[str, ...]:
    """The event types a sink takes, without opening it (opening resolves credentials: not in the API server).
    ``open`` is usually the sink class with ``event_types`` on it; otherwise, the types it has dispatched so far."""
    declared = getattr(connector.open, "event_types", None)
    if declared:
        return tuple(declared)
    with reading(engine) as conn:
        return tuple(conn.execute(sa.select(t.outbox.c.event_type).distinct().join(
            t.dispatches, t.dispatches.c.event_id == t.outbox.c.id).where(
            t.dispatches.c.sink == sink_settings.name)).scalars())


def business_state(engine: Engine, settings: Any, sla_minutes: int) -> dict[str, Any]:
    from connectors.registry import SINKS

    sinks = {s.name: _event_types(SINKS[s.kind], s, engine) for s in settings.enabled_sinks()}
    sinks["channel_writeback"] = ("shipment.recorded",)  # hub.feedback.ChannelWriteback
    wms = [s.name for s in settings.enabled_sinks() if "wms" in s.kind]
    summary = status.collect(engine)
    return {
        "generated_at": datetime.now(UTC),
        "sla_minutes": sla_minutes,
        "orders": summary["orders"],
        "orders_by_status": summary["orders_by_status"],
        "unclosed_windows": unclosed_windows(engine),
        "quarantine_open": summary["quarantine_open"],
        "quarantine_groups": [{"cause": k, "records": n, "shops": shops}
                              for k, n, shops in status.quarantine_groups(engine)],
        "sinks": outbox_per_sink(engine, sinks),
        "sla_breaches": sla_breaches(engine, wms, sla_minutes),
        "stock_pushes": last_stock_push(engine),
        "shipments": summary["shipments"],
    }
