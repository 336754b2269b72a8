"""Available-to-sell per channel and shop: on hand - reserved - safety stock, then the channel's policy.

The policy file ``mappings/stock.yaml`` (closed vocabulary, unknown keys refused with their line)::

    pools:                                   # which warehouses sell together
      online: {warehouses: [WH01, WH02], mode: exclusive}   # exclusive: the shares below must sum to <= 100
      store-sh: {warehouses: [STORE-SH01], mode: shared}    # shared: every channel sees its share of all of it
    default_pool: online                     # where orders of a channel/shop without a policy reserve from
    safety_stock: {default: 0, skus: {SKU-004-BLK-M: 5}}    # units kept back per pool and SKU
    channels:                                # one entry per channel and shop ("*" = every shop of the channel)
      - {channel: tmall, shop: tm-flagship, pool: online, share: 50, cap: 300, minimum: 2, delist_at_zero: true}
    modes: {tmall: delta, jd: full}          # what each channel's stock API can do (full overwrite / delta)
    listings:                                # channel ids of a SKU, when the hub has not seen it in an order yet
      - {channel: tmall, shop: "*", sku: SKU-001-RED-M, item_id: "600000000001", sku_id: "5000000001"}

For one pool and SKU: ``available = sum(on hand of the pool's warehouses) - reserved - safety`` where *reserved*
is every paid order not yet shipped, in every channel whose policy draws on the pool (platform SKUs mapped to master
SKUs by hub/processing/skus.py, bundles expanded into components), plus orders shipped after the pool's oldest
count (the warehouse's report does not show them yet). A bundle's available is ``min(component available // qty)``.
A channel is told ``floor(available * share / 100)``, raised to ``minimum`` (never above available), lowered to
``cap``. With an exclusive pool the shares sum to at most 100, so the channels together are never told more than
the pool holds: that, and the pushes of push.py that rebase on what the channel acknowledged, is the no-oversell
guarantee.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.engine import Connection

from hub.config import ConfigError, ConfigProblem, _line_of, _loc, read_yaml_with_lines
from hub.processing.skus import Resolved, SkuTables
from hub.stock.ledger import Level
from hub.store import schema as t

ANY = "*"
RESERVING = ("PAID", "PARTIALLY_SHIPPED", "ON_HOLD")
LINE_DONE = ("SHIPPED", "DELIVERED", "COMPLETED", "CANCELLED", "CLOSED_REFUNDED")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pool(_Strict):
    warehouses: list[str] = Field(min_length=1)
    mode: Literal["exclusive", "shared"] = "exclusive"


class Safety(_Strict):
    default: int = Field(0, ge=0)
    skus: dict[str, int] = Field(default_factory=dict)

    def for_sku(self, sku: str) -> int:
        return self.skus.get(sku, self.default)


class ChannelPolicy(_Strict):
    channel: str
    shop: str = ANY
    pool: str
    share: float = Field(100, ge=0, le=100, description="percent of the pool's available this shop is told")
    cap: int | None = Field(None, ge=0, description="never told more than this")
    minimum: int = Field(0, ge=0, description="told at least this while the pool has it")
    delist_at_zero: bool = False
    skus: list[str] | None = Field(None, description="only these master SKUs (default: every listed one)")


class Listing(_Strict):
    channel: str
    shop: str = ANY
    sku: str = Field(description="master SKU or bundle code")
    item_id: str | None = None
    sku_id: str | None = None
    merchant_code: str | None = None


class StockPolicy(_Strict):
    version: int = 1
    pools: dict[str, Pool] = Field(min_length=1)
    default_pool: str | None = None
    safety_stock: Safety = Field(default_factory=Safety)
    channels: list[ChannelPolicy] = Field(default_factory=list)
    modes: dict[str, Literal["full", "delta"]] = Field(default_factory=dict)
    listings: list[Listing] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> StockPolicy:
        for entry in self.channels:
            if entry.pool not in self.pools:
                raise ValueError(f"channel {entry.channel}/{entry.shop} draws on unknown pool {entry.pool!r}")
        if self.default_pool is not None and self.default_pool not in self.pools:
            raise ValueError(f"default_pool {self.default_pool!r} is not a pool")
        for name, pool in self.pools.items():
            if pool.mode == "exclusive":
                total = sum(c.share for c in self.channels if c.pool == name)
                if total > 100:
                    raise ValueError(f"pool {name} is exclusive but its channels' shares sum to {total} (> 100): "
                                     f"together they would be told more than the pool holds")
        return self

    @property
    def fallback_pool(self) -> str:
        return self.default_pool or next(iter(self.pools))

    def policy_for(self, channel: str, shop: str) -> ChannelPolicy | None:
        exact = [c for c in self.channels if c.channel == channel and c.shop == shop]
        return exact[0] if exact else next((c for c in self.channels if c.channel == channel and c.shop == ANY), None)

    def mode_for(self, channel: str) -> str:
        return self.modes.get(channel, "full")


def load_policy(path: Path) -> StockPolicy:
    """The policy file; ConfigError (exit 3) lists every problem with its line."""
    data, node = read_yaml_with_lines(path, "stock policy", "copy mappings/stock.yaml into mappings_dir")
    try:
        return StockPolicy.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(str(path), [ConfigProblem(where=_loc(e["loc"]) or "(file)", line=_line_of(node, e["loc"]),
                                                    message=e["msg"],
                                                    how_to_fix="keys are documented in hub/stock/ats.py")
                                      for e in exc.errors()]) from exc


@dataclass(frozen=True)
class _Line:
    """The fields of an order line SkuTables.resolve reads (order_lines has no item id; it needs none)."""

    line_id: str
    merchant_sku_code: str | None
    platform_sku_id: str | None
    platform_item_id: str | None = None


@dataclass(frozen=True)
class ShopKey:
    channel: str
    shop: str


@dataclass
class Availability:
    """One computation: what each pool has, what each channel and shop should be told, and from which version."""

    version: int
    computed_at: datetime
    on_hand: dict[str, dict[str, int]]            # pool -> sku -> on hand
    reserved: dict[str, dict[str, int]]           # pool -> sku -> reserved
    available: dict[str, dict[str, int]]          # pool -> sku -> available (after safety; bundles included)
    targets: dict[tuple[str, str], dict[str, int]]  # (channel, shop) -> sku -> what to tell
    listings: dict[tuple[str, str], dict[str, Listing]] = field(default_factory=dict)
    unmapped: dict[str, int] = field(default_factory=dict)  # reserved units whose SKU is not mapped (blocked orders)


class SkuResolver:
    """Caches order line -> master SKU components for one computation (lines repeat the same few SKUs)."""

    def __init__(self, skus: SkuTables) -> None:
        self.skus = skus
        self._cache: dict[tuple[str, str, str | None, str | None], Resolved | None] = {}

    def components(self, channel: str, shop: str, merchant: str | None, platform_sku: str | None
                   ) -> Resolved | None:
        key = (channel, shop, merchant, platform_sku)
        if key not in self._cache:
            found = self.skus.resolve(channel, shop, _Line("-", merchant, platform_sku))  # type: ignore[arg-type]
            self._cache[key] = found if isinstance(found, Resolved) else None
        return self._cache[key]


def reserved_units(conn: Connection, policy: StockPolicy, resolver: SkuResolver,
                   shipped_since: datetime | None) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """pool -> master SKU -> units of paid, unshipped lines (and of lines shipped after ``shipped_since``)."""
    reserved: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    unmapped: dict[str, int] = defaultdict(int)
    o, ln = t.orders, t.order_lines
    query = (sa.select(o.c.channel, o.c.shop, ln.c.merchant_sku_code, ln.c.platform_sku_id,
                       sa.func.sum(ln.c.qty))
             .join(ln, ln.c.hub_id == o.c.hub_id)
             .where(o.c.status.in_(RESERVING), ln.c.status.not_in(LINE_DONE))
             .group_by(o.c.channel, o.c.shop, ln.c.merchant_sku_code, ln.c.platform_sku_id))
    rows = list(conn.execute(query))
    if shipped_since is not None:
        # shipped after the warehouse's count: the count still holds these units, so they still count as taken
        late = (sa.select(o.c.channel, o.c.shop, ln.c.merchant_sku_code, ln.c.platform_sku_id, sa.func.sum(ln.c.qty))
                .join(ln, ln.c.hub_id == o.c.hub_id)
                .where(o.c.hub_id.in_(sa.select(t.shipments.c.hub_id).where(t.shipments.c.shipped_at > shipped_since)),
                       ln.c.status.in_(("SHIPPED", "DELIVERED", "COMPLETED")))
                .group_by(o.c.channel, o.c.shop, ln.c.merchant_sku_code, ln.c.platform_sku_id))
        rows.extend(conn.execute(late))
    for channel, shop, merchant, platform_sku, qty in rows:
        entry = policy.policy_for(channel, shop)
        pool = entry.pool if entry else policy.fallback_pool
        found = resolver.components(channel, shop, merchant, platform_sku)
        if found is None:
            unmapped[merchant or f"{channel}:{platform_sku}"] += int(qty)
            continue
        for component in found.components:
            reserved[pool][component.master_sku] += int(qty) * component.qty_per_unit
    return reserved, unmapped


def learned_listings(conn: Connection, resolver: SkuResolver) -> dict[tuple[str, str], dict[str, Listing]]:
    """Channel ids of every SKU the hub has seen sold: (channel, shop) -> master SKU or bundle -> listing."""
    o, ln = t.orders, t.order_lines
    rows = conn.execute(
        sa.select(o.c.channel, o.c.shop, ln.c.merchant_sku_code, ln.c.platform_sku_id, sa.func.min(o.c.hub_id))
        .join(ln, ln.c.hub_id == o.c.hub_id)
        .group_by(o.c.channel, o.c.shop, ln.c.merchant_sku_code, ln.c.platform_sku_id))
    wanted: dict[str, list[tuple[str, str, str | None, str | None, str]]] = defaultdict(list)
    for channel, shop, merchant, platform_sku, hub_id in rows:
        found = resolver.components(channel, shop, merchant, platform_sku)
        if found is not None:
            wanted[hub_id].append((channel, shop, merchant, platform_sku, found.target))
    out: dict[tuple[str, str], dict[str, Listing]] = defaultdict(dict)
    if not wanted:
        return out
    ids = list(wanted)
    for start in range(0, len(ids), 200):
        docs = conn.execute(sa.select(o.c.hub_id, o.c.document).where(o.c.hub_id.in_(ids[start:start + 200])))
        for hub_id, document in docs:
            lines = (document or {}).get("lines") or []
            for channel, shop, merchant, platform_sku, target in wanted[hub_id]:
                line = next((x for x in lines if x.get("merchant_sku_code") == merchant
                             and x.get("platform_sku_id") == platform_sku), {})
                out[(channel, shop)][target] = Listing(channel=channel, shop=shop, sku=target,
                                                       item_id=line.get("platform_item_id"), sku_id=platform_sku,
                                                       merchant_code=merchant)
    return out


def compute(levels: Iterable[Level], reserved: Mapping[str, Mapping[str, int]], policy: StockPolicy,
            skus: SkuTables, shops: Iterable[ShopKey], listings: Mapping[tuple[str, str], Mapping[str, Listing]],
            *, version: int, now: datetime, unmapped: Mapping[str, int] | None = None) -> Availability:
    """Pure: levels + reservations + policy -> what every channel and shop should be told."""
    warehouse_pools: dict[str, list[str]] = defaultdict(list)
    for name, pool in policy.pools.items():
        for warehouse in pool.warehouses:
            warehouse_pools[warehouse].append(name)
    on_hand: dict[str, dict[str, int]] = {name: defaultdict(int) for name in policy.pools}
    for level in levels:
        for name in warehouse_pools.get(level.warehouse, ()):
            on_hand[name][level.sku] += level.on_hand
    available: dict[str, dict[str, int]] = {}
    for name in policy.pools:
        skus_here = set(on_hand[name]) | set(reserved.get(name, {}))
        avail = {sku: on_hand[name].get(sku, 0) - reserved.get(name, {}).get(sku, 0) - policy.safety_stock.for_sku(sku)
                 for sku in skus_here}
        for code in skus.bundles:
            parts = skus.components(code) or ()
            if parts:
                avail[code] = min(max(avail.get(p.master_sku, 0), 0) // p.qty_per_unit for p in parts)
        available[name] = avail
    targets: dict[tuple[str, str], dict[str, int]] = {}
    merged: dict[tuple[str, str], dict[str, Listing]] = {}
    for shop in shops:
        key = (shop.channel, shop.shop)
        entry = policy.policy_for(shop.channel, shop.shop)
        if entry is None:
            continue
        shop_listings = dict(listings.get(key, {}))
        for listing in policy.listings:
            if listing.channel == shop.channel and listing.shop in (shop.shop, ANY):
                shop_listings.setdefault(listing.sku, listing.model_copy(update={"shop": shop.shop}))
        # a SKU the ledger has never counted is left alone: telling the channel 0 would de-list it for want of a
        # report, not for want of stock
        counted = on_hand[entry.pool]
        wanted = [s for s in shop_listings if (entry.skus is None or s in entry.skus) and (
            s in counted or (s in skus.bundles and all(p.master_sku in counted for p in skus.components(s) or ())))]
        merged[key] = {s: shop_listings[s] for s in wanted}
        targets[key] = {sku: tell(available[entry.pool].get(sku, 0), entry) for sku in wanted}
    return Availability(version=version, computed_at=now, on_hand={k: dict(v) for k, v in on_hand.items()},
                        reserved={k: dict(v) for k, v in reserved.items()}, available=available, targets=targets,
                        listings=merged, unmapped=dict(unmapped or {}))


def tell(available: int, entry: ChannelPolicy) -> int:
    """One channel's quantity from the pool's available: share, then minimum, then cap; never negative."""
    base = max(available, 0)
    qty = int(base * entry.share // 100)
    if qty < entry.minimum:
        qty = min(entry.minimum, base)
    if entry.cap is not None:
        qty = min(qty, entry.cap)
    return qty


def availability(conn: Connection, policy: StockPolicy, skus: SkuTables, shops: Iterable[ShopKey], *,
                 now: datetime) -> Availability:
    """Read the ledger and the orders (one read transaction) and compute every channel's quantities."""
    from hub.stock.ledger import ledger_version, levels

    version = ledger_version(conn)
    current = levels(conn)
    resolver = SkuResolver(skus)
    oldest = min((lv.as_of for lv in current), default=None)
    reserved, unmapped = reserved_units(conn, policy, resolver, oldest)
    listings = learned_listings(conn, resolver)
    return compute(current, reserved, policy, skus, list(shops), listings, version=version, now=now,
                   unmapped=unmapped)


def pool_stock_for_routing(conn: Connection) -> dict[str, dict[str, int]]:
    """warehouse -> master SKU -> units free to pick (on hand - locked), the shape hub.processing's ``by: stock``
    routing reads (``Tables.stock``)."""
    from hub.stock.ledger import levels

    out: dict[str, dict[str, int]] = defaultdict(dict)
    for level in levels(conn):
        out[level.warehouse][level.sku] = level.on_hand - level.locked
    return dict(out)


def describe(availability: Availability) -> list[dict[str, Any]]:
    """Rows for a table: channel, shop, SKU, the pool's figures and what the channel is told."""
    rows = []
    for (channel, shop), per_sku in sorted(availability.targets.items()):
        for sku, qty in sorted(per_sku.items()):
            rows.append({"channel": channel, "shop": shop, "sku": sku, "qty": qty})
    return rows
