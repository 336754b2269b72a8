"""Sales reports: sales by channel/shop/day, refund rate, price check against a list price, co-purchase pairs.

Orders count once (their latest version), on the day they were paid; unpaid ones (no ``paid_at``) are not sales, and
an order refunded later stays a sale (its refund shows in the refund rate). Money is summed in fen, shown in yuan.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import Decimal
from itertools import combinations
from pathlib import Path

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine

from hub.errors import ConfigurationError
from hub.reports import Report, yuan
from hub.reports.common import local_day, sku_lines
from hub.store import schema as t
from hub.store.db import reading
from hub.store.schema_aftersales import refunds as refunds_t


def _paid_orders(conn, since: date | None):
    q = sa.select(t.orders.c.hub_id, t.orders.c.channel, t.orders.c.shop, t.orders.c.paid_at,
                  t.orders.c.paid_total, t.orders.c.status).where(t.orders.c.paid_at.is_not(None))
    rows = conn.execute(q).all()
    return [r for r in rows if since is None or local_day(r.paid_at) >= since]


def sales(engine: Engine, since: date | None = None) -> Report:
    with reading(engine) as conn:
        orders = _paid_orders(conn, since)
        units = {hub_id: sum(q for _sku, q, _g in lines) for hub_id, lines in sku_lines(conn).items()}
    groups: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for o in orders:
        g = groups[(local_day(o.paid_at), o.channel, o.shop)]
        g[0] += 1
        g[1] += units.get(o.hub_id, 0)
        g[2] += o.paid_total
    report = Report("Sales by channel, shop and day (paid, Asia/Shanghai)",
                    ["day", "channel", "shop", "orders", "units", "paid (yuan)"])
    for (day, channel, shop), (n, u, fen) in sorted(groups.items()):
        report.rows.append([day.isoformat(), channel, shop, n, u, yuan(fen)])
    total = [sum(g[i] for g in groups.values()) for i in range(3)]
    report.notes.append(f"total: {total[0]} orders, {total[1]} units, {yuan(total[2])} yuan")
    report.chart = {"kind": "bar_stacked", "x": "day", "series": "shop", "y": "paid (yuan)"}
    return report


def refund_rate(engine: Engine, since: date | None = None) -> Report:
    with reading(engine) as conn:
        orders = _paid_orders(conn, since)
        refunds = conn.execute(sa.select(refunds_t.c.channel, refunds_t.c.shop, refunds_t.c.hub_id,
                                         refunds_t.c.refunded_amount).where(refunds_t.c.status == "SUCCESS")).all()
    sold: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    hubs = {o.hub_id for o in orders}
    for o in orders:
        sold[(o.channel, o.shop)][0] += 1
        sold[(o.channel, o.shop)][1] += o.paid_total
    back: dict[tuple[str, str], list] = defaultdict(lambda: [set(), 0])
    for r in refunds:
        if r.hub_id in hubs:
            back[(r.channel, r.shop)][0].add(r.hub_id)
            back[(r.channel, r.shop)][1] += r.refunded_amount
    report = Report("Refund rate by channel and shop (successful refunds of paid orders)",
                    ["channel", "shop", "orders", "paid (yuan)", "refunded orders", "refunded (yuan)",
                     "order rate %", "amount rate %"])
    for key, (n, fen) in sorted(sold.items()):
        orders_back, fen_back = back[key]
        report.rows.append([*key, n, yuan(fen), len(orders_back), yuan(fen_back),
                            f"{100 * len(orders_back) / n:.1f}" if n else "-",
                            f"{100 * fen_back / fen:.1f}" if fen else "-"])
    report.chart = {"kind": "bar", "x": "shop", "y": "amount rate %"}
    return report


def load_list_prices(path: Path, skus_path: Path | None = None) -> tuple[dict[str, int], float]:
    """``prices.yaml``: ``list_prices: {MASTER-SKU: "199.00"}`` (yuan) and ``tolerance_pct`` (default 5); without
    that file, the ``list_price_fen`` of the master catalogue in skus.yaml."""
    if path.exists():
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        prices = {str(k): int(Decimal(str(v)) * 100) for k, v in (data.get("list_prices") or {}).items()}
        return prices, float(data.get("tolerance_pct", 5))
    if skus_path is not None and skus_path.exists():
        masters = (yaml.safe_load(skus_path.read_text(encoding="utf-8")) or {}).get("masters") or {}
        prices = {str(k): int(v["list_price_fen"]) for k, v in masters.items()
                  if isinstance(v, dict) and v.get("list_price_fen")}
        if prices:
            return prices, 5.0
    raise ConfigurationError(f"no list prices at {path}", how_to_fix="create prices.yaml with list_prices: "
                                                                     "{SKU: '199.00'} in the mappings folder")


def price_check(engine: Engine, prices_path: Path, skus_path: Path | None = None, days: int = 30) -> Report:
    """Each channel's latest selling price of a master SKU (gross per unit, before order discounts) against the
    configured list price; deviations beyond the tolerance are flagged."""
    prices, tolerance = load_list_prices(prices_path, skus_path)
    with reading(engine) as conn:
        orders = {r.hub_id: r for r in conn.execute(sa.select(t.orders.c.hub_id, t.orders.c.channel,
                                                              t.orders.c.placed_at))}
        lines = sku_lines(conn)
    horizon = max((o.placed_at for o in orders.values()), default=None)
    latest: dict[tuple[str, str], tuple] = {}
    for hub_id, items in lines.items():
        order = orders.get(hub_id)
        if order is None or (horizon and order.placed_at < horizon - timedelta(days=days)):
            continue
        for sku, qty, gross in items:
            if sku in prices and qty:
                key = (sku, order.channel)
                if key not in latest or order.placed_at > latest[key][0]:
                    latest[key] = (order.placed_at, gross // qty)
    report = Report(f"Price check against list prices (tolerance {tolerance:g} %)",
                    ["master sku", "channel", "list (yuan)", "channel (yuan)", "deviation %", "flag"])
    flagged = 0
    for (sku, channel), (_at, unit) in sorted(latest.items()):
        deviation = 100 * (unit - prices[sku]) / prices[sku] if prices[sku] else 0.0
        flag = "BELOW" if deviation < -tolerance else "ABOVE" if deviation > tolerance else ""
        flagged += bool(flag)
        report.rows.append([sku, channel, yuan(prices[sku]), yuan(unit), f"{deviation:+.1f}", flag])
    report.notes.append(f"{flagged} price(s) outside the tolerance")
    report.chart = {"kind": "bar", "x": "master sku", "series": "channel", "y": "deviation %"}
    return report


def copurchase(engine: Engine, top: int = 3, min_orders: int = 1) -> Report:
    """'Bought together': for each master SKU, the SKUs most often in the same order (support = orders holding
    both; confidence = support / orders holding the SKU)."""
    with reading(engine) as conn:
        lines = sku_lines(conn)
    baskets = [sorted({sku for sku, _q, _g in items}) for items in lines.values()]
    holding = Counter(sku for basket in baskets for sku in basket)
    pairs = Counter(pair for basket in baskets for pair in combinations(basket, 2))
    partners: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for (a, b), n in pairs.items():
        if n >= min_orders:
            partners[a].append((b, n))
            partners[b].append((a, n))
    report = Report("Bought together (co-purchase pairs per master SKU)",
                    ["master sku", "orders", "bought with", "together", "confidence %"])
    for sku in sorted(partners):
        for other, n in sorted(partners[sku], key=lambda p: (-p[1], p[0]))[:top]:
            report.rows.append([sku, holding[sku], other, n, f"{100 * n / holding[sku]:.0f}"])
    report.chart = {"kind": "bar", "x": "master sku", "y": "together", "series": "bought with"}
    return report
