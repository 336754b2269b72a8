"""A simulated Double 11 run against the sandbox: buyers on every stock-pushing channel draw on one WMS pool at a
high rate while the hub syncs orders and pushes stock in a loop, and WMS restock reports arrive late.

Used at small scale by tests/stock/test_double11.py and at full scale by bench/stock_latency.py.

The sandbox channels take an order whatever their shelf says (Tmall clamps its quantity at 0 and keeps selling: its
model has no "sold out"), so the buyers here do what a real storefront makes them do: an order is placed only while
the shop's shelf shows enough (checked under the sandbox's lock, as the platform's own stock deduction would be).
Whether the pool was oversold is then a question about what the hub told the shelves, and the answer is read from
the sandbox's record of truth: units sold per SKU over every channel against what the pool held (initial count plus
the restocks the WMS reported).

The delay measured is from a stock change (a sale in any shop, a WMS restock) to the end of the first push cycle
whose computation included it: the moment every channel has been told (acknowledged) or found already right.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
import yaml

from hub.store import schema as t
from hub.store import schema_stock as st
from hub.store.db import reading


@dataclass
class Double11Result:
    skus: list[str]
    held: dict[str, int]                 # SKU -> units the pool held (initial + reported restocks)
    sold: dict[str, dict[str, int]]      # SKU -> shop -> units sold
    refused: int                         # buyer attempts that found the shelf empty
    orders: int
    cycles: int
    delays_s: list[float] = field(default_factory=list)
    untold: int = 0                      # changes no finished cycle covered (must be 0 after the settle)
    pushes: int = 0
    rejected: int = 0
    duration_s: float = 0.0

    @property
    def oversold(self) -> dict[str, int]:
        return {sku: max(0, sum(self.sold.get(sku, {}).values()) - self.held[sku]) for sku in self.skus}

    @property
    def oversell_count(self) -> int:
        return sum(self.oversold.values())

    def percentile(self, q: float) -> float:
        if not self.delays_s:
            return 0.0
        ordered = sorted(self.delays_s)
        return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


def write_policy(path: Path, skus: list[str], shops: list[tuple[str, str]], catalogue: list[Any], *,
                 naive: bool = False) -> Path:
    """An exclusive pool over both warehouses, the shops splitting it equally, deltas, the sandbox's listings.
    ``naive``: the usual ERP-style push instead, as a reference: every shop told all of it, full overwrites."""
    share = 100 if naive else 100 // len(shops)
    by_code = {s.outer_sku_id: s for s in catalogue}
    policy = {
        "pools": {"online": {"warehouses": ["WH01", "WH02"], "mode": "shared" if naive else "exclusive"}},
        "safety_stock": {"default": 0},
        "channels": [{"channel": c, "shop": s, "pool": "online", "share": share, "skus": skus} for c, s in shops],
        "modes": {"tmall": "full" if naive else "delta"},
        "listings": [{"channel": "tmall", "sku": code, "item_id": str(by_code[code].num_iid),
                      "sku_id": by_code[code].sku_id} for code in skus],
    }
    path.write_text(yaml.safe_dump(policy, sort_keys=False), encoding="utf-8")
    return path


def run(sandbox, hub, policy_path: Path, *, skus: list[str], pool: int, rate_per_shop: float, duration_s: float,
        lag_s: float, restocks: int, seed: int = 8) -> Double11Result:
    app, url = sandbox.app, sandbox.url
    shops = [s.shop for s in hub.settings.enabled_shops() if s.channel == "tmall"]
    rng = random.Random(seed)
    # the pool: `pool` units per SKU over the two warehouses, counted into the ledger before the doors open
    for sku in skus:
        for warehouse, qty in (("WH01", pool // 2), ("WH02", pool - pool // 2)):
            requests.post(f"{url}/_sandbox/wms/stock", json={"warehouse": warehouse, "item": sku, "quantity": qty,
                                                             "report": False}, timeout=10).raise_for_status()
    hub.stock_count(skus)
    hub.push_stock(resync=True, policy_path=policy_path)
    requests.post(f"{url}/_sandbox/faults", json={"wms.stock_report_lag_s": lag_s}, timeout=10).raise_for_status()
    held = {sku: pool for sku in skus}

    events: list[tuple[float, str, str]] = []   # (time, kind, key): order tid or restock outBizCode
    events_lock = threading.Lock()
    refused = [0]
    stop = threading.Event()
    world = app.world
    by_code = {s.outer_sku_id: s for s in world.catalogue}

    def buyer(shop: str, seed_: int) -> None:
        local = random.Random(seed_)
        interval = 1.0 / rate_per_shop
        next_at = time.monotonic()
        while not stop.is_set():
            sku = by_code[local.choice(skus)]
            num = local.choice((1, 1, 1, 2))
            with app.lock:
                if world.stock.get((shop, sku.num_iid, sku.sku_id), 0) >= num:
                    tid = app.create_tmall_orders(shop, 1, lines=[{"sku": sku.outer_sku_id, "num": num}])[0]
                    with events_lock:
                        events.append((time.monotonic(), "order", tid))
                else:
                    refused[0] += 1
            next_at += interval
            stop.wait(max(0.0, next_at - time.monotonic()))

    def restocker() -> None:
        for index in range(restocks):
            if stop.wait(duration_s / (restocks + 1)):
                return
            sku = skus[index % len(skus)]
            qty = rng.randint(3, 8)
            answer = requests.post(f"{url}/_sandbox/wms/stock", json={"warehouse": "WH01", "item": sku,
                                                                      "delta": qty, "reason": "restock"}, timeout=10)
            answer.raise_for_status()
            held[sku] += qty
            with events_lock:
                events.append((time.monotonic(), "restock", answer.json()["report"]["out_biz_code"]))

    threads = [threading.Thread(target=buyer, args=(shop, seed * 100 + i), daemon=True) for i, shop in enumerate(shops)]
    threads.append(threading.Thread(target=restocker, daemon=True))
    started = time.monotonic()
    for thread in threads:
        thread.start()
    delays: list[float] = []
    covered: set[str] = set()
    cycles = pushes = rejected = 0
    settle_until = None
    while True:
        now = time.monotonic()
        if settle_until is None and now - started >= duration_s:
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
            settle_until = now + max(lag_s, 0) + 1.0  # let the late reports arrive and one more cycle run
        hub.sync(channel="tmall")
        report = hub.push_stock(policy_path=policy_path)
        done = time.monotonic()
        cycles += 1
        pushes += report.pushed
        rejected += report.rejected
        known = _known_changes(hub.engine)
        with events_lock:
            snapshot = list(events)
        for at, _kind, key in snapshot:
            if key not in covered and key in known:
                covered.add(key)
                delays.append(done - at)
        if settle_until is not None and done >= settle_until:
            break
    sold: dict[str, dict[str, int]] = {sku: {} for sku in skus}
    orders = 0
    with app.lock:
        for trade in world.trades.values():
            for line in trade.lines:
                if line["outer_sku_id"] in sold:
                    per_shop = sold[line["outer_sku_id"]]
                    per_shop[trade.shop] = per_shop.get(trade.shop, 0) + int(line["num"])
            orders += 1
    return Double11Result(skus=skus, held=held, sold=sold, refused=refused[0], orders=orders, cycles=cycles,
                          delays_s=delays, untold=len({key for _, _, key in events} - covered), pushes=pushes,
                          rejected=rejected, duration_s=time.monotonic() - started)


def _known_changes(engine) -> set[str]:
    """Order ids and stock report ids the hub holds: a change is 'in' a cycle once the hub has it."""
    with reading(engine) as conn:
        orders = set(conn.execute(sa.select(t.orders.c.order_id)).scalars())
        refs = {str(r).split("/", 1)[0] for r in conn.execute(
            sa.select(st.stock_movements.c.ref).where(st.stock_movements.c.ref.is_not(None))).scalars()}
    return orders | refs
