"""The processing step: an outbox subscriber between ingest and dispatch.

    order.accepted / order.changed --plan (plan.py)--> order_plans (+ audit, + quarantine when blocked)
                                   --publish-------> order.released, one event per fulfilment group (-> sinks)

One ``processed_events`` row per event is the claim (its primary key makes it atomic), written in the *same*
transaction as the plan, the audit row and the quarantine row: processing calls nobody outside the database, so
there is no in-doubt state and a crash simply leaves the event unclaimed for the next run. An event of an older
order version is skipped; the newer event carries the change. The subscription's position moves like a sink's
(hub.dispatch), past handled events old enough to have no uncommitted ids below them.

A plan has a revision that moves only when its content changes (``plan.fingerprint``): re-reading an order, a
seller memo or the channel reporting "shipped" after the hub shipped it changes nothing. Release events carry the
revision as their version, and dispatch skips a document whose revision has been superseded, so a refund, a
mapping fix or an address change between release and dispatch never sends the stale document.

Publishing is a second phase over every released plan whose revision has no events yet, so a crash between the
two phases is picked up by the next run, and orders released together can be merged into one delivery order
(``merge`` rule). Once a warehouse may have a document (dispatched, or in doubt), what it picks is frozen: a
re-plan that would change codes, SKUs or quantities is *blocked* as ``changed after delivery`` for a person, and a
cancellation or hold after delivery is flagged the same way, because a Qimen WMS cannot amend a delivery order
(stop or cancel it there first).

Waiting plans with a time (review delay) are planned again when it has passed, without waiting for an event.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from hub import crypto
from hub.dispatch import POSITION_GRACE, RELEASE_ENTITY
from hub.errors import OrderHubError
from hub.ingest import canonical_json, load_order
from hub.logging import get_logger
from hub.models import Order
from hub.processing.plan import (
    Decision,
    OrderPlan,
    PlanLine,
    Stock,
    fingerprint,
    physical_fingerprint,
    plan_order,
)
from hub.processing.rules import RulesFile
from hub.processing.skus import ChannelSku, SkuTables
from hub.store import schema as t
from hub.store.db import reading
from hub.store.schema import utcnow

log = get_logger(__name__)
SUBSCRIPTION = "processing"
EVENT_TYPES = ("order.accepted", "order.changed")
RELEASED = "order.released"
QUARANTINE_ENTITY = "order_processing"
DELIVERED_STATES = ("done", "in_doubt", "in_flight")  # the warehouse has, or may have, the document
# events sinks turned into documents: order.released, and the order events sinks read before processing existed
DOCUMENT_EVENTS = (RELEASED, *EVENT_TYPES)


@dataclass(frozen=True)
class Tables:
    """Everything a plan depends on besides the order: loaded once per run, identical for every order in it."""

    skus: SkuTables
    rules: RulesFile
    stock: Stock = field(default_factory=dict)
    now: datetime = field(default_factory=utcnow)


@dataclass
class ProcessReport:
    events: int = 0
    skipped: int = 0          # events of superseded order versions
    changed: int = 0          # plans whose content changed (new revision)
    unchanged: int = 0
    rechecked: int = 0        # waiting plans whose time had come
    published: int = 0        # orders whose documents were released to the sinks
    documents: int = 0        # order.released events written
    merged: int = 0           # orders carried by another order's delivery order
    failed: int = 0           # orders whose planning raised an unexpected error (quarantined)
    statuses: Counter = field(default_factory=Counter)  # status of every plan written in this run


def process(engine: Engine, tables: Tables, *, batch: int = 500) -> ProcessReport:
    """Plan every new order event, re-plan waiting orders whose time has come, publish what is released."""
    report = ProcessReport()
    after = 0
    while True:
        events = _pending(engine, batch, after)
        for event in events:
            _handle(engine, tables, event, report)
        if len(events) < batch:
            break
        after = events[-1].id  # forward only: an event that failed stays unclaimed for the next run
    _recheck(engine, tables, report)
    publish(engine, report)
    _advance_position(engine)
    log.info("processing finished", events=report.events, changed=report.changed, published=report.published,
             documents=report.documents, **{f"plans_{k}": v for k, v in report.statuses.items()})
    return report


def replan(engine: Engine, tables: Tables, hub_ids: Iterable[str], *, actor: str,
           approved_by: str | None = None) -> ProcessReport:
    """Plan ``hub_ids`` again with the current tables (after a mapping import, or an approval) and publish."""
    report = ProcessReport()
    for hub_id in hub_ids:
        try:
            with engine.begin() as conn:
                loaded = load_order(conn, hub_id)
                if loaded is None:
                    continue
                order, version = loaded
                _count(report, plan_and_store(conn, tables, hub_id, order, version, actor=actor,
                                              approved_by=approved_by))
        except IntegrityError:
            log.info("order planned concurrently elsewhere", hub_id=hub_id)  # its plan exists either way
    publish(engine, report)
    return report


def _count(report: ProcessReport, outcome: tuple[str, str]) -> None:
    changed, status = outcome
    if changed == "changed":
        report.changed += 1
        report.statuses[status] += 1
    else:
        report.unchanged += 1


def _pending(engine: Engine, limit: int, after: int) -> list[Any]:
    with reading(engine) as conn:
        position = conn.execute(sa.select(t.subscriptions.c.position)
                                .where(t.subscriptions.c.name == SUBSCRIPTION)).scalar() or 0
        position = max(position, after)
        e = t.processed_events
        return list(conn.execute(
            sa.select(t.outbox.c.id, t.outbox.c.hub_id, t.outbox.c.version, t.outbox.c.event_type)
            .where(t.outbox.c.id > position, t.outbox.c.event_type.in_(EVENT_TYPES),
                   ~sa.exists().where(e.c.event_id == t.outbox.c.id))
            .order_by(t.outbox.c.id).limit(limit)))


def _advance_position(engine: Engine) -> None:
    """Everything at or below the position is handled: the next run's query starts above it."""
    now = utcnow()
    with engine.begin() as conn:
        s = t.subscriptions
        position = conn.execute(sa.select(s.c.position).where(s.c.name == SUBSCRIPTION)).scalar()
        start = position or 0
        first_open = conn.execute(sa.select(sa.func.min(t.outbox.c.id)).where(
            t.outbox.c.id > start, t.outbox.c.event_type.in_(EVENT_TYPES),
            ~sa.exists().where(t.processed_events.c.event_id == t.outbox.c.id))).scalar()
        settled = conn.execute(sa.select(sa.func.max(t.outbox.c.id)).where(
            t.outbox.c.id > start, t.outbox.c.created_at < now - POSITION_GRACE)).scalar()
        if settled is None:
            return
        new_position = min(settled, first_open - 1) if first_open is not None else settled
        if new_position <= start:
            return
        if position is None:
            conn.execute(sa.insert(s).values(name=SUBSCRIPTION, position=new_position, updated_at=now))
        else:
            conn.execute(sa.update(s).where(s.c.name == SUBSCRIPTION).values(position=new_position, updated_at=now))


def _handle(engine: Engine, tables: Tables, event: Any, report: ProcessReport) -> None:
    now = utcnow()
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(t.processed_events).values(
                event_id=event.id, hub_id=event.hub_id, order_version=event.version, status="planned",
                processed_at=now))
            loaded = load_order(conn, event.hub_id)
            if loaded is None or event.version < loaded[1]:
                conn.execute(sa.update(t.processed_events).where(t.processed_events.c.event_id == event.id)
                             .values(status="skipped"))
                report.skipped += 1
                return
            order, version = loaded
            _count(report, plan_and_store(conn, tables, event.hub_id, order, version, actor=SUBSCRIPTION))
            report.events += 1
    except IntegrityError:
        # another processor claimed this event (or planned this order) first; the event is handled either way
        log.info("event handled elsewhere", event_id=event.id)
    except OrderHubError:
        raise  # configuration and fatal problems stop the run, as everywhere else
    except Exception as exc:  # noqa: BLE001 - one order's surprise must not stop every other order behind it
        log.exception("planning failed", event_id=event.id, hub_id=event.hub_id)
        try:
            _poisoned(engine, event, exc)
            report.failed += 1
        except IntegrityError:
            pass  # claimed by another processor meanwhile


def _poisoned(engine: Engine, event: Any, exc: Exception) -> None:
    """Claim the event as failed and put the order in the quarantine, grouped by the error's type: `orderhub
    quarantine replay --cause ...` (or `release`) plans it again once the cause is fixed."""
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(sa.insert(t.processed_events).values(event_id=event.id, hub_id=event.hub_id,
                                                          order_version=event.version, status="failed",
                                                          processed_at=now))
        row = conn.execute(sa.select(t.orders.c.channel, t.orders.c.shop, t.orders.c.order_id, t.orders.c.document)
                           .where(t.orders.c.hub_id == event.hub_id)).first()
        if row is None:
            return
        conn.execute(sa.insert(t.quarantine).values(
            channel=row.channel, shop=row.shop, entity=QUARANTINE_ENTITY, external_id=row.order_id,
            error_kind="fatal", reason=f"{type(exc).__name__}: {exc}"[:2000],
            group_key=f"processing error {type(exc).__name__}", attributes={"hub_id": event.hub_id},
            payload=canonical_json(row.document), status="open", attempts=1, created_at=now, updated_at=now))


def _recheck(engine: Engine, tables: Tables, report: ProcessReport) -> None:
    with reading(engine) as conn:
        due = [r.hub_id for r in conn.execute(sa.select(t.order_plans.c.hub_id).where(
            t.order_plans.c.status == "waiting", t.order_plans.c.recheck_at <= tables.now))]
    for hub_id in due:
        with engine.begin() as conn:
            loaded = load_order(conn, hub_id)
            if loaded is not None:
                _count(report, plan_and_store(conn, tables, hub_id, *loaded, actor=f"{SUBSCRIPTION}:recheck"))
                report.rechecked += 1


def imported_skus(engine: Engine) -> list[tuple[ChannelSku, str]]:
    """The SKU mappings operators imported (``orderhub mapping import``), layered over skus.yaml."""
    m = t.sku_mappings
    with reading(engine) as conn:
        rows = list(conn.execute(sa.select(m).order_by(m.c.id)))
    return [(ChannelSku(channel=r.channel, shop=r.shop, master=r.master_sku, **{r.key_kind: r.key_value}),
             f"import {r.source}") for r in rows]


# -- planning and storing one order -------------------------------------------------------------------------------

def delivered(conn: Connection, hub_ids: Iterable[str]) -> bool:
    """Has a sink sent (or possibly sent) a released document of these orders?"""
    ids = [h for h in hub_ids if h]
    if not ids:
        return False
    d = t.dispatches
    return conn.execute(
        sa.select(d.c.id).join(t.outbox, t.outbox.c.id == d.c.event_id)
        .where(d.c.hub_id.in_(ids), d.c.status.in_(DELIVERED_STATES), t.outbox.c.event_type.in_(DOCUMENT_EVENTS))
        .limit(1)).first() is not None


def plan_and_store(conn: Connection, tables: Tables, hub_id: str, order: Order, order_version: int, *, actor: str,
                   approved_by: str | None = None) -> tuple[str, str]:
    """Plan one order and store the result; returns ("changed" | "unchanged", status)."""
    p = t.order_plans
    # FOR UPDATE (MySQL; SQLite's BEGIN IMMEDIATE already serialises writers): two processes planning one order
    # (a release while the step runs) queue instead of both writing revision n+1
    stored = conn.execute(sa.select(p).where(p.c.hub_id == hub_id).with_for_update()).first()
    approver = approved_by or (stored.approved_by if stored else None)
    plan = plan_order(order, tables.skus, tables.rules, now=tables.now, stock=tables.stock, approved_by=approver)
    now = utcnow()

    if stored is not None and plan.status == "closed" and stored.status == "released":
        # shipped through the hub; the channel now says so. The plan that did it stays the record.
        conn.execute(sa.update(p).where(p.c.hub_id == hub_id).values(order_version=order_version))
        return "unchanged", stored.status

    already_sent = False
    if stored is not None and stored.released_fingerprint:
        was_delivered = delivered(conn, [hub_id, stored.merged_into])
        if plan.status == "released" and was_delivered:
            if physical_fingerprint(plan, order.order_id) == stored.released_fingerprint:
                already_sent = True
            else:
                plan = _attention(plan, "blocked", "changed after delivery",
                                  "the warehouse already has this order's delivery order and the new plan would pick "
                                  "different items or warehouses; a Qimen WMS cannot amend it: handle the change in "
                                  "the WMS (the hub does not re-send under the same code)")
        elif plan.status in ("cancelled", "held") and was_delivered:
            plan = _attention(plan, plan.status, f"{plan.status} after delivery",
                              f"{plan.status} after its delivery order reached the warehouse: stop or cancel it in "
                              "the WMS before it ships")

    fp = fingerprint(plan)
    approval = {"approved_by": approved_by, "approved_at": now} if approved_by else {}
    if stored is not None and stored.fingerprint == fp:
        conn.execute(sa.update(p).where(p.c.hub_id == hub_id).values(order_version=order_version, **approval))
        return "unchanged", stored.status

    revision = (stored.revision if stored else 0) + 1
    if already_sent:
        plan.decisions.append(Decision(rule="release", action="already-delivered",
                                       detail="the warehouse has exactly these items already; nothing is re-sent"))
    values = {"revision": revision, "status": plan.status, "order_version": order_version,
              "group_key": plan.group_key, "fingerprint": fp, "plan": plan.model_dump(mode="json"),
              "recheck_at": plan.recheck_at, "planned_at": now, "merged_into": None, **approval}
    if already_sent:
        values["published_revision"] = revision
    if stored is None:
        conn.execute(sa.insert(p).values(hub_id=hub_id, **values))
    else:
        conn.execute(sa.update(p).where(p.c.hub_id == hub_id).values(**values))
        _dissolve_merge(conn, hub_id, stored, now)
    conn.execute(sa.insert(t.audit_trail).values(
        hub_id=hub_id, at=now, action=f"plan.{plan.status}", actor=actor,
        detail={"revision": revision, "order_version": order_version, "group_key": plan.group_key,
                "documents": [g.document_code for g in plan.groups] if plan.status == "released" else [],
                "decisions": [d.model_dump() for d in plan.decisions]}))
    _sync_quarantine(conn, hub_id, order, plan, revision, now)
    return "changed", plan.status


def _attention(plan: OrderPlan, status: str, group_key: str, detail: str) -> OrderPlan:
    decisions = [*plan.decisions, Decision(rule="release", action=group_key.replace(" ", "-"), detail=detail)]
    return plan.model_copy(update={"status": status, "group_key": group_key, "decisions": decisions, "merge": None})


def _dissolve_merge(conn: Connection, hub_id: str, stored: Any, now: datetime) -> None:
    """A member of a merged delivery order changed before it was sent: every order of that merge is published
    again (perhaps merged again), and the revision bump makes the old merged document stale."""
    p = t.order_plans
    primary = stored.merged_into or hub_id
    members = [r.hub_id for r in conn.execute(sa.select(p.c.hub_id).where(p.c.merged_into == primary))]
    if not members and stored.merged_into is None:
        return
    if delivered(conn, [primary]):
        return  # already with the warehouse: the changed-after-delivery guard speaks for the order that changed
    for other in {primary, *members} - {hub_id}:
        conn.execute(sa.update(p).where(p.c.hub_id == other).values(
            revision=p.c.revision + 1, published_revision=None, merged_into=None, planned_at=now))
        conn.execute(sa.insert(t.audit_trail).values(
            hub_id=other, at=now, action="plan.regrouped", actor=SUBSCRIPTION,
            detail={"reason": f"order {hub_id} of the same merged delivery order was planned again"}))


def _sync_quarantine(conn: Connection, hub_id: str, order: Order, plan: OrderPlan, revision: int,
                     now: datetime) -> None:
    """A plan that needs a person (blocked, or cancelled after delivery) has one open quarantine row, grouped by
    what must be fixed, so `orderhub quarantine list` and `status` show it beside ingest's own rows."""
    q = t.quarantine
    open_id = conn.execute(sa.select(q.c.id).where(
        q.c.entity == QUARANTINE_ENTITY, q.c.channel == order.platform, q.c.shop == order.shop_id,
        q.c.external_id == order.order_id, q.c.status == "open")).scalar()
    if plan.group_key is None:
        if open_id is not None:
            conn.execute(sa.update(q).where(q.c.id == open_id).values(status="replayed", updated_at=now))
        return
    reason = "; ".join(d.detail for d in plan.decisions
                       if d.action == "missing" or d.action.endswith("-after-delivery"))
    attrs = {"hub_id": hub_id, "plan_status": plan.status, "plan_revision": revision, "missing": plan.missing}
    values = {"error_kind": plan.status, "reason": reason or plan.group_key, "group_key": plan.group_key,
              "attributes": attrs, "payload": canonical_json(crypto.seal_document(order.model_dump(mode="json"))),
              "updated_at": now}
    if open_id is not None:
        conn.execute(sa.update(q).where(q.c.id == open_id).values(attempts=q.c.attempts + 1, **values))
    else:
        conn.execute(sa.insert(q).values(channel=order.platform, shop=order.shop_id, entity=QUARANTINE_ENTITY,
                                         external_id=order.order_id, status="open", attempts=1, created_at=now,
                                         **values))


# -- publishing released plans --------------------------------------------------------------------------------------

@dataclass
class _Released:
    hub_id: str
    revision: int
    plan: OrderPlan
    channel: str
    shop: str
    order_id: str


def publish(engine: Engine, report: ProcessReport, *, chunk: int = 200) -> None:
    """Write order.released events for every released plan revision that has none yet, merging where allowed."""
    p = t.order_plans
    with reading(engine) as conn:
        rows = list(conn.execute(
            sa.select(p.c.hub_id, p.c.revision, p.c.plan, t.orders.c.channel, t.orders.c.shop, t.orders.c.order_id)
            .join(t.orders, t.orders.c.hub_id == p.c.hub_id)
            .where(p.c.status == "released",
                   sa.or_(p.c.published_revision.is_(None), p.c.published_revision < p.c.revision))
            .order_by(t.orders.c.placed_at, t.orders.c.order_id)))
    released = [_Released(r.hub_id, r.revision, OrderPlan.model_validate(r.plan), r.channel, r.shop, r.order_id)
                for r in rows]
    units = _merge_units(released)
    for start in range(0, len(units), chunk):
        with engine.begin() as conn:
            for primary, members in units[start:start + chunk]:
                _publish_unit(conn, primary, members, report)


def _merge_units(released: list[_Released]) -> list[tuple[_Released, list[_Released]]]:
    """Orders with the same merge key, placed within the rule's window of the first one, travel together."""
    units: list[tuple[_Released, list[_Released]]] = []
    by_key: dict[str, list[_Released]] = {}
    for item in released:
        if item.plan.merge is None:
            units.append((item, []))
        else:
            by_key.setdefault(item.plan.merge.key, []).append(item)
    for items in by_key.values():
        items.sort(key=lambda r: (r.plan.merge.placed_at, r.order_id))
        while items:
            primary, rest = items[0], items[1:]
            window = timedelta(minutes=primary.plan.merge.within_minutes)
            members = [r for r in rest if r.plan.merge.placed_at - primary.plan.merge.placed_at <= window]
            units.append((primary, members))
            items = rest[len(members):]
    return units


def _claim_publication(conn: Connection, item: _Released, merged_into: str | None) -> bool:
    p = t.order_plans
    return conn.execute(sa.update(p).where(
        p.c.hub_id == item.hub_id, p.c.revision == item.revision, p.c.status == "released",
        sa.or_(p.c.published_revision.is_(None), p.c.published_revision < item.revision),
    ).values(published_revision=item.revision, merged_into=merged_into,
             released_fingerprint=physical_fingerprint(item.plan, item.order_id))).rowcount == 1


def _publish_unit(conn: Connection, primary: _Released, members: list[_Released], report: ProcessReport) -> None:
    if not _claim_publication(conn, primary, None):
        return  # planned again meanwhile, or published by another process
    members = [m for m in members if _claim_publication(conn, m, primary.hub_id)]
    now = utcnow()
    groups = [g.model_copy(deep=True) for g in primary.plan.groups]
    if members:
        groups[0].lines.extend(line for m in members for line in m.plan.groups[0].lines)
        groups[0].merged_orders = [m.order_id for m in members]
        rule = primary.plan.merge.rule if primary.plan.merge else "merge"
        for item in (primary, *members):
            conn.execute(sa.insert(t.audit_trail).values(
                hub_id=item.hub_id, at=now, action="plan.merged", actor=SUBSCRIPTION,
                detail={"rule": rule, "document": groups[0].document_code, "revision": item.revision,
                        "orders": [primary.order_id, *groups[0].merged_orders]}))
        report.merged += len(members)
    for group in groups:
        conn.execute(sa.insert(t.outbox).values(
            event_type=RELEASED, entity=RELEASE_ENTITY, hub_id=primary.hub_id, version=primary.revision,
            created_at=now, payload={"channel": primary.channel, "shop": primary.shop, "order_id": primary.order_id,
                                     "plan_revision": primary.revision, "document": group.model_dump(mode="json")}))
        for item in (primary, *members):
            _bind_document(conn, group.document_code, item, group.warehouse,
                           [line for line in group.lines if line.order_id == item.order_id], now)
        report.documents += 1
    report.published += 1


def _bind_document(conn: Connection, code: str, item: _Released, warehouse: str | None, lines: list[PlanLine],
                   now: datetime) -> None:
    """Remember which channel lines a document ships, so the warehouse's confirmation finds every order it
    carries and writes back exactly those lines (bundles and gifts have no channel line of their own)."""
    refs: dict[str, dict[str, Any]] = {}
    for line in lines:
        if line.line_id.startswith("gift:"):  # a rule's gift is no channel line: nothing to write back
            continue
        ref = refs.setdefault(line.line_id, {"line_id": line.line_id, "qty": line.source_qty, "skus": {}})
        # the master SKUs (WMS item codes) this channel line ships as: a multi-parcel confirm is matched on them
        ref["skus"][line.master_sku] = ref["skus"].get(line.master_sku, 0) + line.qty
    d = t.plan_documents
    conn.execute(sa.delete(d).where(d.c.document_code == code, d.c.hub_id == item.hub_id))
    conn.execute(sa.insert(d).values(document_code=code, hub_id=item.hub_id, revision=item.revision,
                                     warehouse=warehouse, created_at=now, line_refs=list(refs.values())))
