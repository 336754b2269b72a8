"""Helpers the reports share: local days, and each order's master SKU lines (from its plan, else its channel lines)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.store import schema as t

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local_day(moment: datetime) -> date:
    """Business days are Asia/Shanghai days, as the channels and the payment statements count them."""
    return moment.astimezone(SHANGHAI).date()


def sku_lines(conn: Connection, hub_ids: Iterable[str] | None = None) -> dict[str, list[tuple[str, int, int]]]:
    """hub_id -> [(master SKU, qty, gross fen)]: the plan's master lines (bundles expanded) when processing planned
    the order; otherwise the channel lines under their merchant SKU code."""
    out: dict[str, list[tuple[str, int, int]]] = {}
    q = sa.select(t.order_plans.c.hub_id, t.order_plans.c.plan)
    if hub_ids is not None:
        q = q.where(t.order_plans.c.hub_id.in_(list(hub_ids)))
    for hub_id, plan in conn.execute(q):
        lines = [(pl["master_sku"], int(pl.get("qty") or 0), int(pl.get("gross_fen") or 0))
                 for group in (plan or {}).get("groups") or [] for pl in group.get("lines") or []
                 if not pl.get("is_gift") and pl.get("master_sku")]
        if lines:
            out[hub_id] = lines
    q = sa.select(t.order_lines.c.hub_id, t.order_lines.c.merchant_sku_code, t.order_lines.c.platform_sku_id,
                  t.order_lines.c.qty, t.order_lines.c.unit_price)
    if hub_ids is not None:
        q = q.where(t.order_lines.c.hub_id.in_(list(hub_ids)))
    fallback: dict[str, list[tuple[str, int, int]]] = {}
    for hub_id, merchant, platform, qty, unit in conn.execute(q):
        if hub_id not in out:
            fallback.setdefault(hub_id, []).append((merchant or platform or "?", qty, qty * unit))
    out.update(fallback)
    return out
