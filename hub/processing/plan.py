"""The order plan: one pure function from a canonical order (+ SKU tables, rules, a stock snapshot, the time) to
what happens to it next. No I/O, so every rule kind is testable with plain objects and replay can show what the
current tables *would* do without touching anything.

    status gate     cancelled / refunded -> cancelled; shipped on the channel -> closed (nothing to do here)
    money           the paid total allocated over every line to the fen (allocation.py)
    refunds         lines refunded before shipping are left out; all of them -> cancelled
    SKU mapping     each line -> master SKUs (bundles expanded, money split over components); unmapped -> blocked
    rules           gifts, holds (+ the channel's own ON_HOLD), payment / presale / review-delay waits,
                    routing (priority or stock), splits (by warehouse, presale lines), merge eligibility
    groups          one fulfilment group per (warehouse, presale part): one delivery order each,
                    coded <CHANNEL>-<order id>, or <CHANNEL>-<order id>-<n> when there are several

Status precedence: cancelled > closed > blocked > held > waiting > released. Each step appends a Decision naming
the rule (a rule's own name from rules.yaml, or a built-in name such as ``sku-map`` or ``order-status``), which
the processing step writes to the order's audit trail.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from hub.models import Order, OrderLine, OrderStatus, PresaleStage, RefundStatus
from hub.processing.allocation import LineMoney, allocate_order, largest_remainder
from hub.processing.rules import RouteRule, RulesFile
from hub.processing.skus import Missing, Resolved, SkuTables

PlanStatus = Literal["released", "held", "waiting", "blocked", "cancelled", "closed"]
Stock = Mapping[str, Mapping[str, int]]  # warehouse -> master SKU -> available units
SHIPPED_STATUSES = (OrderStatus.SHIPPED, OrderStatus.PARTIALLY_SHIPPED, OrderStatus.DELIVERED, OrderStatus.COMPLETED)


class Decision(BaseModel):
    rule: str
    action: str
    detail: str


class PlanLine(BaseModel):
    """One master SKU line of a delivery order, with its exact share of the order's money (fen)."""

    order_id: str
    line_id: str = Field(description="the channel line it comes from (gift lines: gift:<rule>)")
    source_qty: int = Field(description="quantity of that channel line (for shipment line refs)")
    master_sku: str
    qty: int
    title: str | None = None
    bundle: str | None = None
    is_gift: bool = False
    presale: bool = False
    gross_fen: int = 0
    discount_fen: int = 0
    platform_discount_fen: int = 0
    seller_discount_fen: int = 0
    goods_fen: int = 0
    shipping_fen: int = 0
    allocated_paid_fen: int = 0


class LineAllocation(BaseModel):
    """A channel line's share of the paid total; these sum to the order's paid total exactly."""

    line_id: str
    gross_fen: int
    discount_fen: int
    platform_discount_fen: int
    seller_discount_fen: int
    goods_fen: int
    shipping_fen: int
    allocated_paid_fen: int
    shipped: bool = True


class FulfilmentGroup(BaseModel):
    no: int
    of: int
    document_code: str
    warehouse: str | None = Field(description="None: the sink's default warehouse")
    presale: bool = False
    cod_amount_fen: int = 0
    lines: list[PlanLine]
    merged_orders: list[str] = Field(default_factory=list, description="other orders this document carries")

    @property
    def paid_fen(self) -> int:
        return sum(line.allocated_paid_fen for line in self.lines)


class MergeCandidate(BaseModel):
    rule: str
    key: str
    within_minutes: int
    placed_at: datetime


class OrderPlan(BaseModel):
    status: PlanStatus
    decisions: list[Decision] = Field(default_factory=list)
    groups: list[FulfilmentGroup] = Field(default_factory=list)
    allocation: list[LineAllocation] = Field(default_factory=list)
    allocation_method: str | None = None
    cod_amount_fen: int = 0
    group_key: str | None = Field(None, description="blocked: what must be fixed (groups the quarantine)")
    missing: list[str] = Field(default_factory=list)
    recheck_at: datetime | None = None
    merge: MergeCandidate | None = None

    def rules_fired(self) -> list[str]:
        return [d.rule for d in self.decisions]

    def documents(self) -> dict[str, FulfilmentGroup]:
        return {g.document_code: g for g in self.groups}


def document_code(order: Order, no: int, of: int) -> str:
    """Deterministic, derived from the channel order alone, so a rebuilt hub cannot create a second document."""
    base = f"{order.platform.upper()}-{order.order_id}"
    return base if of == 1 else f"{base}-{no}"


@dataclass
class _Unit:
    """A channel line that ships: its money, its SKU resolution, where it goes."""

    line: OrderLine
    money: LineMoney
    resolved: Resolved
    warehouse: str | None = None
    presale: bool = False

    def need(self) -> Counter:
        return Counter({c.master_sku: c.qty_per_unit * self.line.qty for c in self.resolved.components})


def plan_order(order: Order, skus: SkuTables, rules: RulesFile, *, now: datetime, stock: Stock | None = None,
               approved_by: str | None = None) -> OrderPlan:
    """Decide what happens to ``order``; see the module docstring for the steps and their precedence."""
    decisions: list[Decision] = []

    def decide(rule: str, action: str, detail: str) -> None:
        decisions.append(Decision(rule=rule, action=action, detail=detail))

    status = order.status
    if status in (OrderStatus.CANCELLED, OrderStatus.CLOSED_REFUNDED):
        decide("order-status", "cancel", f"status {status.value}: it never goes to a warehouse")
        return OrderPlan(status="cancelled", decisions=decisions)
    if status in SHIPPED_STATUSES:
        decide("order-status", "close", f"the channel reports {status.value}: nothing left to fulfil")
        return OrderPlan(status="closed", decisions=decisions)

    # -- money: every line, refunded or not, so that the allocation sums to the paid total ----------------------
    money = allocate_order(
        paid_total=order.paid_total, shipping_fee=order.shipping_fee, platform_discount=order.platform_discount,
        line_gross=[line.line_total for line in order.lines],
        line_net=[line.line_total - line.line_discount + line.line_adjust for line in order.lines],
        line_paid=[line.line_paid for line in order.lines])
    if money.note:
        decide("allocation", money.method, money.note)
    allocation = [LineAllocation(line_id=line.line_id, gross_fen=m.gross, discount_fen=m.discount,
                                 platform_discount_fen=m.platform_discount, seller_discount_fen=m.seller_discount,
                                 goods_fen=m.goods, shipping_fen=m.shipping, allocated_paid_fen=m.paid,
                                 shipped=line.refund_status != RefundStatus.SUCCESS.value)
                  for line, m in zip(order.lines, money.lines)]
    base = {"allocation": allocation, "allocation_method": money.method}

    # -- refunds before shipping ---------------------------------------------------------------------------------
    shipping = [(line, m) for line, m, a in zip(order.lines, money.lines, allocation) if a.shipped]
    for a in allocation:
        if not a.shipped:
            decide("refund", "drop-line", f"line {a.line_id} was refunded before shipping: not sent")
    if not shipping:
        decide("refund", "cancel", "every line was refunded before shipping")
        return OrderPlan(status="cancelled", decisions=decisions, **base)

    # -- SKU mapping ---------------------------------------------------------------------------------------------
    units: list[_Unit] = []
    missing: list[Missing] = []
    for line, m in shipping:
        resolved = skus.resolve(order.platform, order.shop_id, line)
        if isinstance(resolved, Missing):
            missing.append(resolved)
            decide("sku-map", "missing", resolved.detail)
            continue
        if resolved.how != "auto":
            parts = ", ".join(f"{c.qty_per_unit} x {c.master_sku}" for c in resolved.components)
            decide("sku-map", resolved.how, f"line {line.line_id} ({line.merchant_sku_code or line.platform_sku_id})"
                                            f" -> {resolved.target}" + (f" = {parts}" if resolved.is_bundle else "")
                                            + f" [{resolved.source}]")
        units.append(_Unit(line, m, resolved))
    masters = {c.master_sku for u in units for c in u.resolved.components}

    # -- gifts ---------------------------------------------------------------------------------------------------
    gifts: list[PlanLine] = []
    for rule in rules.of_kind("gift"):
        matched, why = rule.when.test(order, masters)
        if matched:
            gifts.append(PlanLine(order_id=order.order_id, line_id=f"gift:{rule.name}", source_qty=rule.qty,
                                  master_sku=rule.sku, qty=rule.qty, is_gift=True,
                                  title=getattr(skus.masters.get(rule.sku), "name", None),
                                  presale=skus.is_presale(rule.sku)))
            decide(rule.name, "gift", f"add {rule.qty} x {rule.sku}: {why}")

    # -- holds ---------------------------------------------------------------------------------------------------
    held = False
    for rule in rules.of_kind("hold"):
        matched, why = rule.when.test(order, masters)
        if not matched:
            continue
        if approved_by and rule.overridable:
            decide(rule.name, "hold-approved", f"{rule.reason or why}; released by {approved_by}")
        else:
            held = True
            decide(rule.name, "hold", rule.reason or why)
    if status is OrderStatus.ON_HOLD and not held:
        # the channel itself forbids shipping (Tmall PAID_FORBID_CONSIGN): no rule or approval can override that
        held = True
        decide("order-status", "hold", "the channel forbids shipping (ON_HOLD)")

    # -- waiting: payment, presale final payment, review delay ---------------------------------------------------
    waiting = False
    recheck_at = None
    if order.presale_stage in (PresaleStage.DEPOSIT_UNPAID, PresaleStage.DEPOSIT_PAID):
        waiting = True
        decide("presale", "wait", f"presale order, {order.presale_stage.value}: waits for the final payment")
    elif status is OrderStatus.PENDING_PAYMENT:
        waiting = True
        decide("payment", "wait", "not paid yet")
    for rule in rules.of_kind("delay"):
        matched, why = rule.when.test(order, masters)
        if not matched:
            continue
        due = (order.paid_at or order.created_at) + timedelta(minutes=rule.minutes)
        if now < due:
            waiting, recheck_at = True, due
            decide(rule.name, "delay", f"review until {due.isoformat()} ({rule.minutes} min after payment): {why}")
        break

    # -- routing and splits --------------------------------------------------------------------------------------
    splits = {rule.by for rule in rules.of_kind("split") if rule.when.test(order, masters)[0]}
    split_rules = [r.name for r in rules.of_kind("split") if r.by in splits and r.when.test(order, masters)[0]]
    _route(order, units, gifts, rules, masters, stock or {}, "warehouse" in splits, decide)
    if "presale_line" in splits:
        for unit in units:
            unit.presale = any(skus.is_presale(c.master_sku) for c in unit.resolved.components)
    groups = _groups(order, units, gifts, skus)
    if len(groups) > 1:
        decide(",".join(split_rules) or "split", "split",
               f"{len(groups)} delivery orders: " + "; ".join(
                   f"{g.document_code} -> {g.warehouse or 'default'}{' (presale)' if g.presale else ''}"
                   for g in groups))

    # -- cash on delivery ----------------------------------------------------------------------------------------
    cod = 0
    if order.is_cod:
        cod = max(order.paid_total - sum(p.amount for p in order.payments), 0)
        decide("cod", "collect", f"the carrier collects {cod} fen on delivery")
        for group, share in zip(groups, largest_remainder(cod, [g.paid_fen for g in groups])):
            group.cod_amount_fen = share

    # -- status ------------------------------------------------------------------------------------------------
    if missing:
        keys = list(dict.fromkeys(m.key for m in missing))
        return OrderPlan(status="blocked", decisions=decisions, groups=groups, cod_amount_fen=cod,
                         group_key=missing[0].group_key[:191], missing=keys, **base)
    plan_status: PlanStatus = "held" if held else "waiting" if waiting else "released"
    merge = None
    if plan_status == "released":
        merge = _merge_candidate(order, rules, masters, groups)
    return OrderPlan(status=plan_status, decisions=decisions, groups=groups, cod_amount_fen=cod,
                     recheck_at=recheck_at, merge=merge, **base)


def _covers(available: Mapping[str, int], need: Counter) -> bool:
    return all(available.get(sku, 0) >= qty for sku, qty in need.items())


def _route(order: Order, units: list[_Unit], gifts: list[PlanLine], rules: RulesFile, masters: set[str],
           stock: Stock, may_split: bool, decide) -> None:
    """Set each unit's warehouse. One warehouse for the whole order unless a warehouse split is allowed and no
    single candidate has everything in stock."""
    route: RouteRule | None = None
    why = ""
    for rule in rules.of_kind("route"):
        matched, why = rule.when.test(order, masters)
        if matched:
            route = rule
            break
    if route is None:
        if rules.of_kind("route"):
            decide("route", "default", "no route rule matched: the sink's default warehouse")
        return
    candidates = route.warehouses
    need = sum((u.need() for u in units), Counter()) + Counter({g.master_sku: g.qty for g in gifts})
    chosen = candidates[0]
    if route.by == "stock":
        if not stock:
            decide(route.name, "route", f"{chosen}: no stock snapshot, first by priority; {why}")
        else:
            full = [w for w in candidates if _covers(stock.get(w, {}), need)]
            if full:
                chosen = full[0]
                decide(route.name, "route", f"{chosen} has every item in stock; {why}")
            elif may_split:
                remaining = {w: Counter(stock.get(w, {})) for w in candidates}
                for unit in units:
                    fits = [w for w in candidates if _covers(remaining[w], unit.need())]
                    unit.warehouse = fits[0] if fits else candidates[0]
                    remaining[unit.warehouse] -= unit.need()
                decide(route.name, "route", "no warehouse has every item; per line: " + ", ".join(
                    f"{u.line.line_id} -> {u.warehouse}" for u in units) + f"; {why}")
                return
            else:
                decide(route.name, "route", f"{chosen}: no candidate has every item and splitting is not allowed, "
                                            f"first by priority; {why}")
    else:
        decide(route.name, "route", f"{chosen}: {why}")
    for unit in units:
        unit.warehouse = chosen


def _groups(order: Order, units: list[_Unit], gifts: list[PlanLine], skus: SkuTables) -> list[FulfilmentGroup]:
    keyed: dict[tuple[str | None, bool], list[PlanLine]] = {}
    for unit in units:
        components = unit.resolved.components
        shares = unit.money.split([c.weight for c in components]) if len(components) > 1 else [unit.money]
        bundle = unit.resolved.target if unit.resolved.is_bundle else None
        for component, m in zip(components, shares):
            master = skus.masters.get(component.master_sku)
            keyed.setdefault((unit.warehouse, unit.presale), []).append(PlanLine(
                order_id=order.order_id, line_id=unit.line.line_id, source_qty=unit.line.qty,
                master_sku=component.master_sku, qty=component.qty_per_unit * unit.line.qty,
                title=(master.name if master and master.name else unit.line.title), bundle=bundle,
                is_gift=unit.line.is_gift, presale=skus.is_presale(component.master_sku),
                gross_fen=m.gross, discount_fen=m.discount, platform_discount_fen=m.platform_discount,
                seller_discount_fen=m.seller_discount, goods_fen=m.goods, shipping_fen=m.shipping,
                allocated_paid_fen=m.paid))
    if gifts and keyed:
        # gifts travel with the first parcel (the customer sees them with the goods, not alone)
        keyed[next(iter(keyed))].extend(gifts)
    of = len(keyed)
    return [FulfilmentGroup(no=n, of=of, document_code=document_code(order, n, of), warehouse=warehouse,
                            presale=presale, lines=lines)
            for n, ((warehouse, presale), lines) in enumerate(keyed.items(), start=1)]


def _merge_candidate(order: Order, rules: RulesFile, masters: set[str], groups: list[FulfilmentGroup]
                     ) -> MergeCandidate | None:
    """Orders of one buyer to one address, one parcel each, same warehouse: the processing step may combine them
    into one delivery order when they are released together (see step.publish)."""
    for rule in rules.of_kind("merge"):
        matched, _why = rule.when.test(order, masters)
        if not matched:
            continue
        r = order.receiver
        address = r.receiver_ref or "|".join((r.province or "", r.city or "", r.district or "", r.address or "",
                                              r.name or "", r.phone or ""))
        if len(groups) != 1 or order.is_cod or not order.buyer_ref or not address.strip("|"):
            return None
        digest = hashlib.sha256("\x1f".join((order.platform, order.shop_id, order.buyer_ref, address,
                                             groups[0].warehouse or "")).encode()).hexdigest()[:32]
        return MergeCandidate(rule=rule.name, key=digest, within_minutes=rule.within_minutes,
                              placed_at=order.paid_at or order.created_at)
    return None


# -- fingerprints: what makes a plan "the same" ---------------------------------------------------------------------

def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


def fingerprint(plan: OrderPlan) -> str:
    """Changes whenever anything a sink or an operator would see changes (status, documents, money, wait time)."""
    return _digest({"status": plan.status, "group_key": plan.group_key, "recheck_at": plan.recheck_at,
                    "cod": plan.cod_amount_fen, "groups": [g.model_dump(mode="json") for g in plan.groups]})


def physical_fingerprint(plan: OrderPlan, order_id: str) -> str:
    """What the warehouse picks for this order: codes, warehouses, SKUs and quantities, money left out."""
    return _digest([[g.document_code, g.warehouse,
                     sorted((line.line_id, line.master_sku, line.qty) for line in g.lines if line.order_id == order_id)]
                    for g in plan.groups])
