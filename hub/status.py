"""Read-only views of the hub's state for `orderhub status`, the quarantine verbs and (later) the Airflow plugin."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub.store import schema as t
from hub.store.db import reading


def quarantine_groups(engine: Engine, status: str = "open") -> list[tuple[str, int, str]]:
    """(cause, records, shops) for open quarantine rows, biggest cause first."""
    with reading(engine) as conn:
        rows = conn.execute(
            sa.select(t.quarantine.c.group_key, t.quarantine.c.channel, t.quarantine.c.shop, sa.func.count())
            .where(t.quarantine.c.status == status)
            .group_by(t.quarantine.c.group_key, t.quarantine.c.channel, t.quarantine.c.shop)
        ).all()
    groups: dict[str, tuple[int, set[str]]] = {}
    for key, channel, shop, count in rows:
        total, shops = groups.get(key or "(none)", (0, set()))
        groups[key or "(none)"] = (total + count, shops | {f"{channel}/{shop}"})
    return sorted(((k, n, ", ".join(sorted(s))) for k, (n, s) in groups.items()), key=lambda g: -g[1])


def quarantine_rows(engine: Engine, include_closed: bool = False, limit: int = 50) -> list[Any]:
    q = sa.select(t.quarantine).order_by(t.quarantine.c.id.desc()).limit(limit)
    if not include_closed:
        q = q.where(t.quarantine.c.status == "open")
    with reading(engine) as conn:
        return list(conn.execute(q))


def quarantine_row(engine: Engine, record_id: int) -> Any:
    with reading(engine) as conn:
        return conn.execute(sa.select(t.quarantine).where(t.quarantine.c.id == record_id)).first()


def collect(engine: Engine) -> dict[str, Any]:
    with reading(engine) as conn:
        count = lambda table, *where: conn.execute(  # noqa: E731
            sa.select(sa.func.count()).select_from(table).where(*where)).scalar() or 0
        oldest = conn.execute(sa.select(t.sync_windows).where(t.sync_windows.c.closed.is_(False))
                              .order_by(t.sync_windows.c.window_start).limit(1)).first()
        parked_by_sink = dict(conn.execute(
            sa.select(t.dispatches.c.sink, sa.func.count()).where(t.dispatches.c.status == "parked")
            .group_by(t.dispatches.c.sink)).all())
        health = [r for r in conn.execute(sa.select(t.source_health).order_by(
            t.source_health.c.connector, t.source_health.c.shop, t.source_health.c.stream)) if r.state != "ok"]
        return {
            "source_problems": [
                {"source": f"{r.connector}/{r.shop}/{r.stream}", "state": r.state, "message": r.message,
                 "how_to_fix": r.how_to_fix, "until": r.until.isoformat(timespec="seconds") if r.until else None,
                 "text": _health_text(r)} for r in health],
            "open_windows": count(t.sync_windows, t.sync_windows.c.closed.is_(False)),
            "oldest_open_window": (f"{oldest.connector}/{oldest.shop}/{oldest.stream} "
                                   f"{oldest.window_start.isoformat()} .. {oldest.window_end.isoformat()}"
                                   if oldest else None),
            "quarantine_open": count(t.quarantine, t.quarantine.c.status == "open"),
            "quarantine_groups": [(k, n) for k, n, _ in quarantine_groups(engine)],
            "parked": sum(parked_by_sink.values()),
            "parked_by_sink": parked_by_sink,
            "in_doubt": count(t.dispatches, t.dispatches.c.status == "in_doubt"),
            "orders": count(t.orders),
            "orders_by_status": dict(conn.execute(sa.select(t.orders.c.status, sa.func.count())
                                                  .group_by(t.orders.c.status)).all()),
            "plans": dict(conn.execute(sa.select(t.order_plans.c.status, sa.func.count())
                                       .group_by(t.order_plans.c.status)).all()),
            "outbox": count(t.outbox),
            "shipments": count(t.shipments),
            "cursors": [(f"{r.connector}/{r.shop}/{r.stream}", r.position.isoformat())
                        for r in conn.execute(sa.select(t.sync_cursors))],
        }


def _health_text(row: Any) -> str:
    if row.state == "quota_exhausted":
        return f"quota exhausted until {row.until.isoformat(timespec='seconds') if row.until else '?'}"
    text = f"{row.state}: {row.message or ''}".strip()
    return f"{text} -> {row.how_to_fix}" if row.how_to_fix else text
