"""Versioned stock pushes to the channels, and what the channels acknowledged.

One push cycle:

    read (one read transaction): ledger version, levels, reservations, what each channel last acknowledged
      -> targets per channel, shop and SKU (ats.py)
      -> only what changed: for each SKU the channel's shelf now is estimated from its last acknowledgement
         (the quantity the channel reported after our last push, minus the units the hub has since seen sold there)
      -> items, each carrying the ledger version it was computed from, written as ``sent`` (stock_pushes +
         stock_channel_state) *before* the channel is called
      -> the channel's pusher (SourceConnector.push_stock) -> one StockAck per item
      -> acknowledgements recorded under a guard: only the newest push of a SKU may update its state, so a late
         answer to an older push never overwrites a newer state (it is kept in the history as ``stale``)

Why deltas: a full overwrite sets the shelf to "what we know" and so forgets the orders the channel took since the
hub last read it; on Double 11 that window is where overselling happens. A delta (Tmall type=2, WeChat diff_type
1/2) moves the shelf by ``target - estimated shelf``, so sales the hub has not seen yet stay subtracted. In an
exclusive pool each shop counts for ``max(target, estimated shelf)`` (``_balance``: a shop being told less may sell
its whole shelf before the decrease lands), so the channels together can never sell more than the pool held -
measured by ``bench/stock_latency.py`` (oversell 0) against a full-overwrite reference. Channels that only take a
full quantity (``modes: {jd: full}``) keep the full-overwrite window; their share should be set with that in mind.

A push with no acknowledged basis (the first one, after an in-doubt answer, or ``resync``) is a full quantity.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from hub.errors import InDoubtError, OrderHubError
from hub.logging import get_logger
from hub.processing.skus import SkuTables
from hub.stock.ats import Availability, Listing, ShopKey, SkuResolver, StockPolicy, availability
from hub.store import schema as t
from hub.store import schema_stock as st
from hub.store.db import reading
from hub.store.schema import utcnow

log = get_logger(__name__)
NOT_SOLD = ("CANCELLED", "CLOSED_REFUNDED")


@dataclass(frozen=True)
class StockPushItem:
    """One SKU of one shop to tell: ``qty`` is the quantity (mode full) or the signed change (mode delta)."""

    push_id: int
    channel: str
    shop: str
    sku: str                     # master SKU or bundle code
    version: int                 # the ledger version it was computed from
    mode: str                    # full | delta
    qty: int
    target: int                  # the quantity the shelf should show after it
    action: str = "set"          # set | delist (target 0, channel supports de-listing) | relist
    item_id: str | None = None   # the channel's ids of the listing (Tmall num_iid / sku_id ...)
    sku_id: str | None = None
    merchant_code: str | None = None


@dataclass(frozen=True)
class StockAck:
    """The channel's answer to one item: accepted or not; the shelf quantity it reports, and its time for it."""

    push_id: int
    accepted: bool
    channel_qty: int | None = None
    channel_at: datetime | None = None
    error: str | None = None
    in_doubt: bool = False


Pusher = Callable[[Any, list[StockPushItem]], list[StockAck]]


@dataclass
class ShopPushReport:
    channel: str
    shop: str
    considered: int = 0
    unchanged: int = 0
    pushed: int = 0
    acked: int = 0
    rejected: int = 0
    in_doubt: int = 0
    stale: int = 0


@dataclass
class StockPushReport:
    version: int = 0
    computed_at: datetime | None = None
    shops: list[ShopPushReport] = field(default_factory=list)
    intake: dict[str, int] = field(default_factory=dict)  # WMS stock change reports read first

    @property
    def pushed(self) -> int:
        return sum(s.pushed for s in self.shops)

    @property
    def acked(self) -> int:
        return sum(s.acked for s in self.shops)

    @property
    def rejected(self) -> int:
        return sum(s.rejected for s in self.shops)


@dataclass(frozen=True)
class _State:
    target: int
    push_id: int
    status: str
    channel_qty: int | None
    channel_at: datetime | None
    listed: bool


def load_states(conn: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str, str], _State]:
    out: dict[tuple[str, str, str], _State] = {}
    for channel, shop in keys:
        rows = conn.execute(sa.select(st.stock_channel_state).where(
            st.stock_channel_state.c.channel == channel, st.stock_channel_state.c.shop == shop))
        for r in rows:
            out[(r.channel, r.shop, r.sku)] = _State(r.target, int(r.push_id), r.status, r.channel_qty, r.channel_at,
                                                     bool(r.listed))
    return out


def sold_since(conn: Connection, resolver: SkuResolver, channel: str, shop: str, since: datetime
               ) -> list[tuple[datetime, str, int]]:
    """(placed_at, listing SKU, units) of the shop's orders placed after ``since``: what left its shelf (channels
    take stock off when an order is placed), cancelled ones excepted."""
    o, ln = t.orders, t.order_lines
    rows = conn.execute(
        sa.select(o.c.placed_at, ln.c.merchant_sku_code, ln.c.platform_sku_id, sa.func.sum(ln.c.qty))
        .join(ln, ln.c.hub_id == o.c.hub_id)
        .where(o.c.channel == channel, o.c.shop == shop, o.c.placed_at > since, o.c.status.not_in(NOT_SOLD))
        .group_by(o.c.placed_at, ln.c.merchant_sku_code, ln.c.platform_sku_id))
    out = []
    for placed_at, merchant, platform_sku, qty in rows:
        found = resolver.components(channel, shop, merchant, platform_sku)
        if found is not None:
            out.append((placed_at, found.target, int(qty)))
    return out


@dataclass
class Plan:
    availability: Availability
    items: dict[tuple[str, str], list[dict[str, Any]]]   # (channel, shop) -> item fields without push_id
    unchanged: dict[tuple[str, str], int]


def plan_pushes(conn: Connection, policy: StockPolicy, skus: SkuTables, shops: Iterable[ShopKey], *,
                resync: bool = False, now: datetime | None = None,
                only_skus: Iterable[str] | None = None) -> Plan:
    """Compute targets and decide, per SKU, whether and how to tell each channel (nothing is written)."""
    now = now or utcnow()
    shops = list(shops)
    avail = availability(conn, policy, skus, shops, now=now)
    states = load_states(conn, avail.targets)
    resolver = SkuResolver(skus)
    wanted = set(only_skus) if only_skus is not None else None
    # pass 1: per shop and SKU, the target and the estimated shelf (None: no acknowledged basis)
    rows: list[dict[str, Any]] = []
    for (channel, shop), targets in avail.targets.items():
        bases = [s.channel_at for (c, sh, _), s in states.items() if c == channel and sh == shop and s.channel_at]
        sales: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
        if bases and not resync:
            for placed_at, sku, qty in sold_since(conn, resolver, channel, shop, min(bases)):
                sales[sku].append((placed_at, qty))
        for sku, target in sorted(targets.items()):
            if wanted is not None and sku not in wanted:
                continue
            state = states.get((channel, shop, sku))
            shelf = None
            # no acknowledged basis, or a push still "sent" (the process stopped before its answer was stored: it
            # may have landed): only a full quantity is safe
            if not (resync or state is None or state.channel_qty is None or state.channel_at is None
                    or state.status == "sent"):
                # strictly after the channel's time: an order in the same second may be in its figure already;
                # leaving it out overestimates the shelf, which only ever tells the channel less
                shelf = state.channel_qty - sum(q for at, q in sales.get(sku, ()) if at > state.channel_at)
            rows.append({"channel": channel, "shop": shop, "sku": sku, "target": target, "shelf": shelf,
                         "state": state})
    _balance(rows, policy, avail)
    # pass 2: what to send
    items: dict[tuple[str, str], list[dict[str, Any]]] = {key: [] for key in avail.targets}
    unchanged: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        channel, shop, sku, target, shelf, state = (row[k] for k in ("channel", "shop", "sku", "target", "shelf",
                                                                     "state"))
        entry = policy.policy_for(channel, shop)
        assert entry is not None
        listing: Listing = avail.listings[(channel, shop)][sku]
        action = "set"
        if entry.delist_at_zero:
            listed = state.listed if state else True
            if target == 0 and listed:
                action = "delist"
            elif target > 0 and not listed:
                action = "relist"
        if shelf is None:
            item_mode, qty, reason = "full", target, "resync" if resync else "new" if state is None else "retry"
        elif policy.mode_for(channel) == "delta":
            item_mode, qty, reason = "delta", target - shelf, "changed"
            if qty == 0 and action == "set":
                unchanged[(channel, shop)] += 1
                continue
        else:
            if target == state.target and state.status == "acked" and action == "set":
                unchanged[(channel, shop)] += 1
                continue
            item_mode, qty, reason = "full", target, "changed"
        items[(channel, shop)].append({
            "channel": channel, "shop": shop, "sku": sku, "version": avail.version, "mode": item_mode, "qty": qty,
            "target": target, "action": action, "reason": reason, "item_id": listing.item_id,
            "sku_id": listing.sku_id, "merchant_code": listing.merchant_code or (sku if sku in skus.masters else None)})
    return Plan(avail, items, dict(unchanged))


def _balance(rows: list[dict[str, Any]], policy: StockPolicy, avail: Availability) -> None:
    """Keep an exclusive pool's promise while shelves move: a shop being told less may still sell all it shows
    until the decrease lands (and the channel clamps a decrease at 0, so what it sold beyond its new target is not
    taken back). So each shop counts for ``max(target, estimated shelf)``, and when that sum passes the pool's
    available the increases of the other shops are cut back (largest first). With it, every unit a shop can still
    sell is covered: units sold unseen are at most its estimated shelf."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        entry = policy.policy_for(row["channel"], row["shop"])
        if entry is not None and policy.pools[entry.pool].mode == "exclusive":
            groups[(entry.pool, row["sku"])].append(row)
    for (pool, sku), group in groups.items():
        budget = max(avail.available[pool].get(sku, 0), 0)
        excess = sum(max(r["target"], r["shelf"] or 0) for r in group) - budget
        for row in sorted(group, key=lambda r: -(r["target"] - (r["shelf"] or 0))):
            if excess <= 0:
                break
            if row["shelf"] is not None and row["target"] > row["shelf"]:
                cut = min(excess, row["target"] - max(row["shelf"], 0))
                row["target"] -= cut
                excess -= cut


def _record_sent(conn: Connection, fields: list[dict[str, Any]], now: datetime) -> list[StockPushItem]:
    items = []
    for f in fields:
        push_id = int(conn.execute(sa.insert(st.stock_pushes).values(
            channel=f["channel"], shop=f["shop"], sku=f["sku"], version=f["version"], mode=f["mode"], qty=f["qty"],
            target=f["target"], action=f["action"], reason=f["reason"], status="sent", created_at=now,
        )).inserted_primary_key[0])
        key = (st.stock_channel_state.c.channel == f["channel"], st.stock_channel_state.c.shop == f["shop"],
               st.stock_channel_state.c.sku == f["sku"])
        values = {"target": f["target"], "pushed_version": f["version"], "pushed_at": now, "push_id": push_id,
                  "status": "sent", "error": None}
        if conn.execute(sa.update(st.stock_channel_state).where(*key).values(**values)).rowcount == 0:
            conn.execute(sa.insert(st.stock_channel_state).values(
                channel=f["channel"], shop=f["shop"], sku=f["sku"], listed=True, **values))
        items.append(StockPushItem(push_id=push_id, **{k: v for k, v in f.items() if k != "reason"}))
    return items


def record_acks(conn: Connection, items: Mapping[int, StockPushItem], acks: Iterable[StockAck], now: datetime,
                delist_at_zero: bool = False) -> dict[str, int]:
    """Store the channel's answers. The state of a SKU takes an answer only if it belongs to the SKU's newest push
    (``push_id`` guard) and is not older than what was acknowledged before (``acked_version`` guard)."""
    counts = {"acked": 0, "rejected": 0, "in_doubt": 0, "stale": 0}
    for ack in acks:
        item = items.get(ack.push_id)
        if item is None:
            continue
        state = st.stock_channel_state
        guard = (state.c.channel == item.channel, state.c.shop == item.shop, state.c.sku == item.sku,
                 state.c.push_id == ack.push_id,
                 sa.or_(state.c.acked_version.is_(None), state.c.acked_version <= item.version))
        if ack.accepted:
            reported = ack.channel_qty if ack.channel_qty is not None else (
                item.target if item.mode == "full" else None)
            values: dict[str, Any] = {"status": "acked", "acked_version": item.version, "acked_at": now,
                                      "channel_qty": reported, "channel_at": ack.channel_at or now, "error": None,
                                      "listed": not (item.action == "delist" or (delist_at_zero and item.target == 0))}
            kind = "acked"
        elif ack.in_doubt:
            # it may or may not have landed: forget the basis, so the next push is a full quantity
            values, kind = {"status": "in_doubt", "channel_qty": None, "channel_at": None, "error": ack.error}, \
                "in_doubt"
        else:
            values, kind = {"status": "rejected", "error": ack.error}, "rejected"
        took = conn.execute(sa.update(state).where(*guard).values(**values)).rowcount
        status = kind if took else "stale"
        counts[status] += 1
        conn.execute(sa.update(st.stock_pushes).where(st.stock_pushes.c.id == ack.push_id).values(
            status=status, channel_qty=ack.channel_qty, error=ack.error, acked_at=now))
    return counts


def run_push(engine: Engine, policy: StockPolicy, skus: SkuTables, shops: Mapping[tuple[str, str], tuple[Any, Pusher]],
             *, resync: bool = False, only_skus: Iterable[str] | None = None) -> StockPushReport:
    """One push cycle for ``shops`` ((channel, shop) -> (shop settings, pusher))."""
    now = utcnow()
    with reading(engine) as conn:
        plan = plan_pushes(conn, policy, skus, [ShopKey(c, s) for c, s in shops], resync=resync, now=now,
                           only_skus=only_skus)
    report = StockPushReport(version=plan.availability.version, computed_at=now)
    for (channel, shop), fields in plan.items.items():
        shop_report = ShopPushReport(channel, shop, considered=len(fields) + plan.unchanged.get((channel, shop), 0),
                                     unchanged=plan.unchanged.get((channel, shop), 0))
        report.shops.append(shop_report)
        if not fields:
            continue
        settings, pusher = shops[(channel, shop)]
        with engine.begin() as conn:
            items = _record_sent(conn, fields, now)
        shop_report.pushed = len(items)
        try:
            acks = pusher(settings, items)
        except InDoubtError as exc:
            acks = [StockAck(i.push_id, False, error=exc.message, in_doubt=True) for i in items]
        except OrderHubError as exc:
            acks = [StockAck(i.push_id, False, error=exc.message) for i in items]
        answered = {a.push_id for a in acks}
        acks = [*acks, *(StockAck(i.push_id, False, error="the channel's pusher gave no answer for it", in_doubt=True)
                         for i in items if i.push_id not in answered)]
        entry = policy.policy_for(channel, shop)
        with engine.begin() as conn:
            counts = record_acks(conn, {i.push_id: i for i in items}, acks, utcnow(),
                                 delist_at_zero=bool(entry and entry.delist_at_zero))
        shop_report.acked, shop_report.rejected = counts["acked"], counts["rejected"]
        shop_report.in_doubt, shop_report.stale = counts["in_doubt"], counts["stale"]
        log.info("stock pushed", channel=channel, shop=shop, version=report.version, pushed=len(items),
                 acked=counts["acked"], rejected=counts["rejected"], in_doubt=counts["in_doubt"])
    return report


# -- status ----------------------------------------------------------------------------------------------------------


def status_rows(conn: Connection, now: datetime | None = None) -> list[dict[str, Any]]:
    """Per SKU and channel: what was pushed, when, from which version, acknowledged or not, and how stale."""
    from hub.stock.ledger import ledger_version

    now = now or utcnow()
    current = ledger_version(conn)
    rows = []
    for r in conn.execute(sa.select(st.stock_channel_state).order_by(
            st.stock_channel_state.c.sku, st.stock_channel_state.c.channel, st.stock_channel_state.c.shop)):
        rows.append({"sku": r.sku, "channel": r.channel, "shop": r.shop, "target": r.target,
                     "pushed_version": int(r.pushed_version), "pushed_at": r.pushed_at, "status": r.status,
                     "acked_version": None if r.acked_version is None else int(r.acked_version),
                     "acked_at": r.acked_at, "channel_qty": r.channel_qty, "listed": bool(r.listed),
                     "versions_behind": current - int(r.acked_version if r.acked_version is not None else 0),
                     "age_s": round((now - (r.acked_at or r.pushed_at)).total_seconds(), 1), "error": r.error})
    return rows
