"""Operations reports: SLA statistics and quarantine ageing.

SLA legs, each measured per order from the hub's own records:
    paid -> <sink>        ``paid_at`` to the first ``dispatch.done`` audit row of that sink (the WMS delivery order,
                          the ERP sales order...)
    paid -> shipped       ``paid_at`` to the first shipment's ``shipped_at``
    shipped -> written back  that ``shipped_at`` to the first ``dispatch.done`` of the channel write-back
Times are minutes; median, 90th percentile and max over the orders that completed the leg.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub.feedback import ChannelWriteback
from hub.reports import Report
from hub.store import schema as t
from hub.store.db import reading
from hub.store.schema import utcnow

WRITEBACK = ChannelWriteback.name
BUCKETS = ((3600, "< 1 h"), (86400, "1 h - 1 d"), (7 * 86400, "1 - 7 d"), (None, "> 7 d"))


def _minutes(values: list[float]) -> list[str]:
    if not values:
        return ["0", "-", "-", "-"]
    p90 = statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]
    return [str(len(values)), f"{statistics.median(values):.1f}", f"{p90:.1f}", f"{max(values):.1f}"]


def sla(engine: Engine) -> Report:
    with reading(engine) as conn:
        paid = dict(conn.execute(sa.select(t.orders.c.hub_id, t.orders.c.paid_at)
                                 .where(t.orders.c.paid_at.is_not(None))).all())
        done = conn.execute(sa.select(t.audit_trail.c.hub_id, t.audit_trail.c.actor, t.audit_trail.c.at)
                            .where(t.audit_trail.c.action == "dispatch.done")).all()
        shipped = conn.execute(sa.select(t.shipments.c.hub_id, sa.func.min(t.shipments.c.shipped_at))
                               .group_by(t.shipments.c.hub_id)).all()
    first: dict[tuple[str, str], datetime] = {}
    for hub_id, actor, at in done:
        if (hub_id, actor) not in first or at < first[(hub_id, actor)]:
            first[(hub_id, actor)] = at
    legs: dict[str, list[float]] = defaultdict(list)
    for (hub_id, actor), at in first.items():
        if actor != WRITEBACK and hub_id in paid:
            legs[f"paid -> {actor}"].append((at - paid[hub_id]).total_seconds() / 60)
    for hub_id, at in shipped:
        if hub_id in paid:
            legs["paid -> shipped"].append((at - paid[hub_id]).total_seconds() / 60)
        back = first.get((hub_id, WRITEBACK))
        if back is not None:
            legs["shipped -> written back"].append((back - at).total_seconds() / 60)
    report = Report("SLA (minutes)", ["leg", "orders", "median", "p90", "max"])
    order = sorted(k for k in legs if k.startswith("paid -> ") and k != "paid -> shipped")
    for leg in [*order, "paid -> shipped", "shipped -> written back"]:
        report.rows.append([leg, *_minutes(legs.get(leg, []))])
    report.chart = {"kind": "bar", "x": "leg", "y": "median"}
    return report


def quarantine_ageing(engine: Engine) -> Report:
    now = utcnow()
    with reading(engine) as conn:
        rows = conn.execute(sa.select(t.quarantine.c.channel, t.quarantine.c.entity, t.quarantine.c.created_at)
                            .where(t.quarantine.c.status == "open")).all()
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
    oldest: dict[tuple[str, str], datetime] = {}
    for channel, entity, created in rows:
        age = (now - created).total_seconds()
        index = next(i for i, (limit, _label) in enumerate(BUCKETS) if limit is None or age < limit)
        counts[(channel, entity)][index] += 1
        oldest[(channel, entity)] = min(oldest.get((channel, entity), created), created)
    report = Report("Open quarantine by age", ["channel", "entity", *(label for _l, label in BUCKETS), "total",
                                               "oldest (h)"])
    for key, buckets in sorted(counts.items()):
        report.rows.append([*key, *buckets, sum(buckets), f"{(now - oldest[key]).total_seconds() / 3600:.1f}"])
    report.notes.append(f"{len(rows)} open record(s)")
    report.chart = {"kind": "bar", "x": "channel", "y": "total"}
    return report
