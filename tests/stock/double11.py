"""A simulated Double 11 run against the sandbox: buyers in every Tmall, JD and WeChat shop and at every POS store
draw on one stock pool at a high rate while the hub syncs, pushes stock, releases orders to the WMS, ships, writes
back and intercepts refunds in a loop, and WMS restock reports arrive late.

Used at small scale by tests/stock/test_double11.py and at full scale by bench/stock_latency.py.

**The pool.** ``pool`` units per scarce SKU in the WMS (``WH01``, where the WMS sink ships from) plus
``store_stock`` units on each store's shelf. Stores are a channel too: the policy's pool holds the stores'
warehouses (the POS ``stock_levels`` stream puts a store's shelf into the ledger under the store's code), so a store
sale lowers what the online shops are told. A till has no stock write: a store sells what is physically on its
shelf, so the policy keeps back for the stores (their ``share``) at least what their shelves hold, and the online
shops split the rest.

**The buyers.** The sandbox channels take an order whatever their shelf says (Tmall, JD and WeChat clamp their
quantity at 0 and keep selling: an oversold order is still an order; a till sells into negative stock), so the
buyers here do what a real storefront makes them do: an order is placed only while the shop's shelf shows enough
(checked under the sandbox's lock, as the platform's own stock deduction would be).

**The verdicts**, read from the sandbox's record of truth:

* oversold: units sold per SKU over every channel (the channels' own orders and receipts, less the orders whose
  refund was intercepted before shipment: their units went back to the pool) against what the pool held (initial
  count, store shelves, and the restocks the WMS reported);
* written back: every delivery order the WMS shipped has its channel order shipped on the channel (the channel's
  write-back record: accepted once);
* intercepted: a share of paid online orders gets a refund while its delivery order waits in the WMS (the WMS does
  not ship on its own here: ``wms.auto_ship`` is off and this loop ships what is not to be refunded); each such
  delivery order must end ``CANCELED`` by the hub's cancel, none shipped.

The delay measured is from a stock change (a sale in any shop or store, a WMS restock) to the end of the first push
cycle whose computation included it: the moment every channel has been told (acknowledged) or found already right.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
import yaml

from hub.store import schema as t
from hub.store import schema_stock as st
from hub.store.db import reading

CHANNELS = ("tmall", "jd", "wechat_shop", "pos")
WAREHOUSE = "WH01"  # the sandbox WMS sink's warehouse (sandbox/configuration.py): where online orders ship from
ONLINE = ("tmall", "jd", "wechat_shop")


@dataclass
class Double11Result:
    skus: list[str]
    held: dict[str, int]                 # SKU -> units the pool held (WMS + store shelves + reported restocks)
    sold: dict[str, dict[str, int]]      # SKU -> "channel/shop" -> units sold (intercepted orders excluded)
    told: dict[str, int]                 # "channel/shop" -> stock pushes acknowledged by the channel
    refused: int                         # buyer attempts that found the shelf empty
    orders: dict[str, int]               # channel -> orders placed
    cycles: int
    shipped: dict[str, int] = field(default_factory=dict)       # channel -> orders the WMS shipped
    written_back: dict[str, int] = field(default_factory=dict)  # channel -> of those, shipped on the channel once
    duplicated: int = 0                  # write-backs accepted more than once, delivery orders created twice
    oversold_by_channel: dict[str, int] = field(default_factory=dict)  # units beyond the pool, by who sold them
    refunds: int = 0                     # pre-ship refunds requested
    intercepted: int = 0                 # of those, delivery order canceled and never shipped
    not_intercepted: list[str] = field(default_factory=list)   # "channel/order id (WMS status)" of the others
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

    def sold_by_channel(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for per_shop in self.sold.values():
            for key, units in per_shop.items():
                channel = key.split("/", 1)[0]
                out[channel] = out.get(channel, 0) + units
        return out

    def told_by_channel(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for key, count in self.told.items():
            channel = key.split("/", 1)[0]
            out[channel] = out.get(channel, 0) + count
        return out

    def percentile(self, q: float) -> float:
        if not self.delays_s:
            return 0.0
        ordered = sorted(self.delays_s)
        return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))]


def write_config(path: Path, sandbox_url: str, db_url: str) -> Path:
    """The sandbox's configuration for every selling channel, with fast sync settings: online shops read orders and
    refunds, stores their receipts and shelf stock."""
    from sandbox.configuration import orderhub_config

    data = orderhub_config(sandbox_url, db_url, channels=CHANNELS)
    for shop in data["shops"]:
        shop["streams"] = ["orders", "stock_levels"] if shop["channel"] == "pos" else ["orders", "refunds"]
        shop["sync"].update({"initial_lookback_hours": 1})
        shop["http"] = {"timeout_s": 3, "attempts": 4}
    for sink in data["sinks"]:
        sink["http"] = {"timeout_s": 3, "attempts": 4}
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def write_policy(path: Path, app: Any, skus: list[str], shops: list[tuple[str, str]], *, pool: int,
                 store_stock: int, safety: int = 1, naive: bool = False) -> Path:
    """One exclusive pool over the WMS warehouse and the stores' shelves. The stores are given a share at least as large
    as their shelves' part of the pool (a till sells its shelf whatever it is told); the online shops split the rest
    equally; Tmall and WeChat get deltas, JD a full quantity (its only mode), and ``safety`` units per SKU are told to
    nobody (room for the sales JD takes between the hub's last read and its overwrite). ``naive``: the usual ERP-style
    push instead, as a reference: every shop told the whole pool, full overwrites, no safety stock."""
    stores = [s for c, s in shops if c == "pos"]
    online = [(c, s) for c, s in shops if c != "pos"]
    total = pool + store_stock * len(stores)
    store_share = -(-100 * store_stock // total) if stores else 0  # ceil: never less than the shelf
    online_share = (100 - store_share * len(stores)) // max(1, len(online))
    entries = [{"channel": "pos", "shop": s, "pool": "online", "share": 100 if naive else store_share, "skus": skus}
               for s in stores]
    entries += [{"channel": c, "shop": s, "pool": "online", "share": 100 if naive else online_share, "skus": skus}
                for c, s in online]
    policy = {
        "pools": {"online": {"warehouses": [WAREHOUSE, *stores], "mode": "shared" if naive else "exclusive"}},
        "safety_stock": {"default": 0 if naive else safety},
        "channels": entries,
        "modes": {"tmall": "full", "wechat_shop": "full", "jd": "full"} if naive else
        {"tmall": "delta", "wechat_shop": "delta", "jd": "full"},
        "listings": _listings(app, skus, shops),
    }
    path.write_text(yaml.safe_dump(policy, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def _listings(app: Any, skus: list[str], shops: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """The channels' ids of the scarce SKUs, as an operator copies them from the shops' back offices."""
    by_code = {s.outer_sku_id: s for s in app.world.catalogue}
    out = [{"channel": "tmall", "sku": code, "item_id": str(by_code[code].num_iid), "sku_id": by_code[code].sku_id}
           for code in skus]
    jd = app.channel("jd").state
    for channel, shop in shops:
        if channel == "jd":
            for listing in jd.listings[shop].values():
                if listing.outer_sku_id in skus:
                    out.append({"channel": "jd", "shop": shop, "sku": listing.outer_sku_id, "item_id": listing.ware_id,
                                "sku_id": listing.sku_id})
    wx = app.channel("wechat_shop")
    out += [{"channel": "wechat_shop", "sku": code, "item_id": wx.products[code].product_id,
             "sku_id": wx.products[code].sku_id} for code in skus]
    return out


class _Shelves:
    """What each shop's shelf shows, and placing one order there, through the simulators themselves (the caller holds
    the sandbox's lock, so the check and the sale are one step, as the platform's own stock deduction is)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.by_code = {s.outer_sku_id: s for s in app.world.catalogue}
        self.jd = app.channel("jd")
        self.wx = app.channel("wechat_shop")
        self.pos = app.channel("pos")
        self.jd_ids = {(shop, listing.outer_sku_id): sku_id for shop, listings in self.jd.state.listings.items()
                       for sku_id, listing in listings.items()}

    def shows(self, channel: str, shop: str, code: str) -> int:
        if channel == "tmall":
            sku = self.by_code[code]
            return self.app.world.stock.get((shop, sku.num_iid, sku.sku_id), 0)
        if channel == "jd":
            return self.jd.state.stock[shop].get(self.jd_ids[(shop, code)], 0)
        if channel == "wechat_shop":
            return self.wx.stock[shop].get(code, 0)
        return self.pos.stores[shop].stock.get(code, 0)

    def sell(self, channel: str, shop: str, code: str, num: int) -> str:
        lines = [{"sku": code, "num": num}]
        if channel == "tmall":
            return self.app.create_tmall_orders(shop, 1, lines=lines)[0]
        return self.app.channel(channel).create_orders(shop, 1, None, None, lines)[0]


_REFUND: dict[str, Callable[[str, str], None]] = {
    "tmall": lambda url, oid: _post(f"{url}/_sandbox/orders/tmall/{oid}/refund", {}),
    "jd": lambda url, oid: _post(f"{url}/_sandbox/orders/jd/{oid}/modify", {"refund": True}),
    "wechat_shop": lambda url, oid: _post(f"{url}/_sandbox/orders/wechat_shop/{oid}/modify",
                                          {"aftersale": {"type": "REFUND", "reason": "不想要了"}}),
}


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = requests.post(url, json=body, timeout=10)
    answer.raise_for_status()
    return answer.json()


def run(sandbox, hub, policy_path: Path, *, skus: list[str], pool: int, store_stock: int, rate_per_shop: float,
        duration_s: float, lag_s: float, restocks: int, refund_share: float = 0.1, seed: int = 8,
        settle_max_s: float = 60.0) -> Double11Result:
    app, url = sandbox.app, sandbox.url
    shops = [(s.channel, s.shop) for s in hub.settings.enabled_shops() if s.channel in CHANNELS]
    rng = random.Random(seed)
    # the pool: `pool` units per SKU in WH01, the warehouse the WMS sink ships from, counted into the ledger before
    # the doors open; each store's shelf holds `store_stock` (a till has no stock API to set it: the store's own
    # count, read by the hub)
    for sku in skus:
        _post(f"{url}/_sandbox/wms/stock", {"warehouse": WAREHOUSE, "item": sku, "quantity": pool, "report": False})
    pos = app.channel("pos")
    with app.lock:
        for channel, shop in shops:
            if channel == "pos":
                for sku in skus:
                    pos.stores[shop].stock[sku] = store_stock
    stores = sum(1 for c, _ in shops if c == "pos")
    _post(f"{url}/_sandbox/faults", {"wms.auto_ship": False})
    hub.sync(channel="pos")  # the stores' shelves into the ledger
    hub.stock_count(skus)
    hub.push_stock(resync=True, policy_path=policy_path)
    _post(f"{url}/_sandbox/faults", {"wms.stock_report_lag_s": lag_s})
    held = {sku: pool + store_stock * stores for sku in skus}

    events: list[tuple[float, str, str]] = []   # (time, kind, key): order id or restock outBizCode
    events_lock = threading.Lock()
    channel_of: dict[str, str] = {}              # order id -> channel
    to_refund: set[str] = set()                  # online orders whose buyer asks a refund before shipment
    refused = [0]
    stop = threading.Event()
    shelves = _Shelves(app)

    failures: list[BaseException] = []

    def surfacing(target: Callable[..., None]) -> Callable[..., None]:
        def wrapped(*args: Any) -> None:
            try:
                target(*args)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread after the run
                failures.append(exc)
                stop.set()
        return wrapped

    def buyer(channel: str, shop: str, seed_: int) -> None:
        local = random.Random(seed_)
        interval = 1.0 / rate_per_shop
        next_at = time.monotonic()
        while not stop.is_set():
            code = local.choice(skus)
            num = local.choice((1, 1, 1, 2))
            refund = channel != "pos" and local.random() < refund_share
            with app.lock:
                if shelves.shows(channel, shop, code) >= num:
                    order_id = shelves.sell(channel, shop, code, num)
                    with events_lock:
                        events.append((time.monotonic(), "order", order_id))
                        channel_of[order_id] = channel
                        if refund:
                            to_refund.add(order_id)
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
            answer = requests.post(f"{url}/_sandbox/wms/stock", json={"warehouse": WAREHOUSE, "item": sku,
                                                                      "delta": qty, "reason": "restock"}, timeout=10)
            if answer.status_code == 400:
                # the book is below zero (an oversold reference run shipped more than it held): the WMS takes no
                # report that leaves it there, so nothing came in
                continue
            answer.raise_for_status()
            held[sku] += qty
            with events_lock:
                events.append((time.monotonic(), "restock", answer.json()["report"]["out_biz_code"]))

    refunded: set[str] = set()
    finished = threading.Event()

    def fulfil_once() -> None:
        """Release to the WMS, refund what its buyer wants refunded while it waits there, ship the rest, read the
        confirms, write back."""
        hub.process()
        hub.dispatch("wms", process_first=False)
        with events_lock:
            refunds_wanted = set(to_refund)
        with app.lock:
            waiting = [(code, list(do.truth()["source_order_codes"])) for code, do in app.wms.delivery_orders.items()
                       if do.status == "ACCEPT"]
        ship: list[str] = []
        for code, order_ids in waiting:
            wanted = [o for o in order_ids if o in refunds_wanted]
            if not wanted:
                ship.append(code)
            for order_id in wanted:
                if order_id not in refunded:
                    _REFUND[channel_of[order_id]](url, order_id)
                    with events_lock:
                        refunded.add(order_id)
        if ship:
            _post(f"{url}/_sandbox/wms/ship", {"codes": ship})
        hub.feedback()
        hub.writeback()

    def fulfilment() -> None:
        # its own loop, as the order-flow DAGs run beside the stock push: a push cycle never waits for dispatch
        while not finished.is_set():
            fulfil_once()

    threads = [threading.Thread(target=surfacing(buyer), args=(c, s, seed * 100 + i), daemon=True)
               for i, (c, s) in enumerate(shops)]
    threads.append(threading.Thread(target=surfacing(restocker), daemon=True))
    worker = threading.Thread(target=surfacing(fulfilment), daemon=True)
    started = time.monotonic()
    for thread in [*threads, worker]:
        thread.start()
    delays: list[float] = []
    covered: set[str] = set()
    cycles = pushes = rejected = 0
    settle_from = None
    while True:
        now = time.monotonic()
        if settle_from is None and (now - started >= duration_s or stop.is_set()):
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
            settle_from = now
        # the stock cycle: the channels' orders in, then every shelf told (the shorter this gap, the less a full
        # overwrite forgets)
        hub.sync()
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
        if failures:
            break
        if settle_from is not None and done - settle_from >= max(lag_s, 0) + 1.0:
            with events_lock:
                asked = set(refunded)
            if _settled(url, channel_of, asked) or done - settle_from >= settle_max_s:
                break
    finished.set()
    worker.join(timeout=60)
    if failures:
        raise failures[0]
    return _verdict(app, url, hub, skus, held, refused[0], cycles, delays, covered, events, channel_of, refunded,
                    pushes, rejected, time.monotonic() - started)


def _settled(url: str, channel_of: dict[str, str], refunded: set[str]) -> bool:
    """Every online order has its delivery order, shipped and written back, or (refunded) canceled."""
    truth = requests.get(f"{url}/_sandbox/truth", timeout=30).json()
    states: dict[str, str] = {}
    for do in truth["wms"]["delivery_orders"].values():
        for order_id in do["source_order_codes"]:
            states[str(order_id)] = do["status"]
    for order_id, channel in list(channel_of.items()):
        if channel == "pos":
            continue
        if order_id in refunded:
            if states.get(order_id) != "CANCELED":
                return False
        elif states.get(order_id) != "DELIVERED" or not (truth["writebacks"].get(channel) or {}).get(order_id):
            return False
    return True


def _verdict(app, url, hub, skus, held, refused, cycles, delays, covered, events, channel_of, refunded, pushes,
             rejected, duration_s) -> Double11Result:
    truth = requests.get(f"{url}/_sandbox/truth", timeout=30).json()
    dos = truth["wms"]["delivery_orders"]
    do_of: dict[str, list[dict[str, Any]]] = {}
    for record in dos.values():
        for order_id in record["source_order_codes"]:
            do_of.setdefault(str(order_id), []).append(record)
    intercepted = {o for o in refunded
                   if do_of.get(o) and all(r["status"] == "CANCELED" and not r["packages"] for r in do_of[o])}
    sold: dict[str, dict[str, int]] = {sku: {} for sku in skus}
    placed_at = {key: at for at, kind, key in events if kind == "order"}
    sales: list[tuple[float, str, str, int]] = []   # (placed at, channel, SKU, units)

    def count(channel: str, shop: str, order_id: str, code: str, num: int) -> None:
        if code in sold and order_id not in intercepted:
            key = f"{channel}/{shop}"
            sold[code][key] = sold[code].get(key, 0) + num
            sales.append((placed_at.get(order_id, 0.0), channel, code, num))

    orders = {c: 0 for c in CHANNELS}
    with app.lock:
        for trade in app.world.trades.values():
            orders["tmall"] += 1
            for line in trade.lines:
                count("tmall", trade.shop, str(trade.tid), line["outer_sku_id"], int(line["num"]))
        for order in app.channel("jd").state.orders.values():
            orders["jd"] += 1
            for item in order.data["itemInfoList"]:
                count("jd", order.shop, order.order_id, item["outerSkuId"], int(item["itemTotal"]))
        for order in app.channel("wechat_shop").orders.values():
            orders["wechat_shop"] += 1
            for item in order.data["order_detail"]["product_infos"]:
                count("wechat_shop", order.shop, order.order_id, item["out_sku_id"], int(item["sku_cnt"]))
        for store in app.channel("pos").stores.values():
            for receipt in store.receipts:
                if receipt.data.get("type") == "SALE":
                    orders["pos"] += 1
                    for line in receipt.data["lines"]:
                        count("pos", store.slug, receipt.receipt_no, line["sku"], int(line["qty"]))
    # a unit sold once its SKU's pool was spent is oversold by the channel that sold it (in the order sales happened)
    over_by_channel = {c: 0 for c in CHANNELS}
    running = {sku: 0 for sku in skus}
    for _at, channel, code, num in sorted(sales):
        over_by_channel[channel] += max(0, running[code] + num - max(held[code], running[code]))
        running[code] += num
    shipped = {c: 0 for c in ONLINE}
    written = {c: 0 for c in ONLINE}
    duplicated = sum(1 for r in dos.values() if r["created"] > 1)
    for order_id, channel in channel_of.items():
        if channel == "pos" or not any(r["status"] == "DELIVERED" for r in do_of.get(order_id, ())):
            continue
        shipped[channel] += 1
        accepted = (truth["writebacks"].get(channel) or {}).get(order_id, {}).get("accepted", 0)
        written[channel] += accepted >= 1
        duplicated += accepted > 1
    with reading(hub.engine) as conn:
        told = {f"{r.channel}/{r.shop}": int(r.n) for r in conn.execute(
            sa.select(st.stock_pushes.c.channel, st.stock_pushes.c.shop, sa.func.count().label("n"))
            .where(st.stock_pushes.c.status == "acked")
            .group_by(st.stock_pushes.c.channel, st.stock_pushes.c.shop))}
    return Double11Result(skus=skus, held=held, sold=sold, told=told, refused=refused, orders=orders, cycles=cycles,
                          shipped=shipped, written_back=written, duplicated=duplicated,
                          oversold_by_channel=over_by_channel, refunds=len(refunded),
                          not_intercepted=sorted(f"{channel_of[o]}/{o} ({[r['status'] for r in do_of.get(o, ())]})"
                                                 for o in refunded - intercepted),
                          intercepted=len(intercepted), delays_s=delays,
                          untold=len({key for _, _, key in events} - covered), pushes=pushes, rejected=rejected,
                          duration_s=duration_s)


def _known_changes(engine) -> set[str]:
    """Order ids and stock report ids the hub holds: a change is 'in' a cycle once the hub has it."""
    with reading(engine) as conn:
        orders = set(conn.execute(sa.select(t.orders.c.order_id)).scalars())
        refs = {str(r).split("/", 1)[0] for r in conn.execute(
            sa.select(st.stock_movements.c.ref).where(st.stock_movements.c.ref.is_not(None))).scalars()}
    return orders | refs
