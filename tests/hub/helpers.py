"""Small helpers for tests that drive the sandbox's admin API and read the hub's tables."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import requests
import sqlalchemy as sa

from hub.store import schema as t


def create_orders(sandbox_url: str, shop: str = "tm-flagship", count: int = 1, ago_s: int = 60, **extra) -> list[str]:
    """Paid orders placed ``ago_s`` seconds ago, so that a later change (stamped "now") is strictly newer and lies
    inside a window ending now."""
    at = (datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(seconds=ago_s)).strftime("%Y-%m-%d %H:%M:%S")
    resp = requests.post(f"{sandbox_url}/_sandbox/orders",
                         json={"channel": "tmall", "shop": shop, "count": count, "at": at, **extra}, timeout=30)
    resp.raise_for_status()
    return resp.json()["ids"]


def set_faults(sandbox_url: str, **knobs) -> None:
    requests.post(f"{sandbox_url}/_sandbox/faults", json={k.replace("__", "."): v for k, v in knobs.items()},
                  timeout=10).raise_for_status()


def truth(sandbox_url: str) -> dict:
    return requests.get(f"{sandbox_url}/_sandbox/truth", timeout=30).json()


def versions(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(t.orders.c.order_id, t.orders.c.version)).all())


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar()


def cursor(engine, shop: str = "tm-flagship"):
    with engine.connect() as conn:
        return conn.execute(sa.select(t.sync_cursors.c.position).where(t.sync_cursors.c.shop == shop)).scalar()
