"""Outbox dispatch: each sink reads domain events from the outbox (never channel tables) and delivers them.

One ``dispatches`` row per (sink, event) is both the claim and the record of the attempt:

    (no row) --claim--> in_flight --ok--> done | skipped
                           |--timeout / lost answer--> in_doubt --(next run: probe, else re-send)--> done
                           '--retries exhausted / refused--> parked (reason kept; `orderhub dispatch --replay`)

The unique (sink, event_id) constraint makes the claim atomic, so two dispatchers never send the same event. An
``in_flight`` row older than ``claim_timeout`` belonged to a dispatcher that died mid-call: it is in doubt too.
Events of one order stay in order: while an earlier event of the same order is parked for a sink, the later ones
park behind it. An event whose order has since moved to a newer version is skipped as superseded; the newer
event carries the change. An ``order.released`` document (hub/processing) is skipped the same way when its plan
revision has been superseded or the plan is no longer released (refunded, held, re-routed). Idempotency keys are
per (sink, order, version) and every sink also writes a stable document code the target de-duplicates on, so
re-sending an in-doubt event cannot create a second document.

Probe before retry: a sink may also offer ``probe(order, event) -> Delivery | None``, a read in the target by the
stable document code. An event taken over in doubt (an ``in_doubt`` row, a stale ``in_flight`` claim, a parked event
put back by ``replay_parked``) is probed first when the sink can: found -> ``done`` with the document found (audit
``found_by: probe``), not found -> sent again. Targets that refuse a repeated number (Kingdee's MsgCode 11) or
keep no unique key at all (Tryton's ``sale.reference``) need this; a target that answers a repeat with the same
document (a Qimen WMS) can do without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from hub.connector import Sink
from hub.errors import ConfigurationError, InDoubtError, OrderHubError, RecordError, TransientError
from hub.ingest import load_order
from hub.logging import bind_run, get_logger
from hub.store import schema as t
from hub.store.db import reading
from hub.store.schema import utcnow

log = get_logger(__name__)
CLAIM_TIMEOUT = timedelta(minutes=10)
POSITION_GRACE = timedelta(minutes=5)  # longer than any ingest transaction: ids below may still be committing
RELEASE_ENTITY = "order_plan"  # order.released events (hub.processing): versioned by plan revision, not order version


@dataclass
class DispatchReport:
    sink: str
    done: int = 0
    skipped: int = 0
    parked: int = 0
    in_doubt: int = 0

    @property
    def handled(self) -> int:
        return self.done + self.skipped + self.parked + self.in_doubt


def _position(conn, name: str) -> int:
    pos = conn.execute(sa.select(t.subscriptions.c.position).where(t.subscriptions.c.name == name)).scalar()
    return int(pos or 0)


def _pending(engine: Engine, sink: Sink, limit: int, exclude: frozenset[int] = frozenset()) -> list[Any]:
    now = utcnow()
    with reading(engine) as conn:
        position = _position(conn, sink.name)
        d = t.dispatches
        unclaimed = (
            sa.select(t.outbox)
            .where(t.outbox.c.id > position, t.outbox.c.event_type.in_(sink.event_types),
                   ~sa.exists().where(d.c.sink == sink.name, d.c.event_id == t.outbox.c.id))
            .order_by(t.outbox.c.id).limit(limit)
        )
        doubtful = (
            sa.select(t.outbox)
            .join(d, sa.and_(d.c.event_id == t.outbox.c.id, d.c.sink == sink.name))
            .where(sa.or_(d.c.status == "in_doubt",
                          sa.and_(d.c.status == "in_flight", d.c.updated_at < now - CLAIM_TIMEOUT)))
            .order_by(t.outbox.c.id).limit(limit)
        )
        if exclude:
            doubtful = doubtful.where(t.outbox.c.id.notin_(sorted(exclude)))
        rows = {r.id: r for r in conn.execute(doubtful)}
        rows.update({r.id: r for r in conn.execute(unclaimed)})
    return [rows[k] for k in sorted(rows)][:limit]


NEW, IN_DOUBT = "new", "in_doubt"  # how a claim was won: a fresh row, or taken over from an event in doubt


def _claim(engine: Engine, sink: Sink, event: Any, key: str) -> str | None:
    """Insert the in_flight row (NEW) or take over an in-doubt or stale one (IN_DOUBT); None when another
    dispatcher holds it or it is settled."""
    now = utcnow()
    with engine.begin() as conn:
        d = t.dispatches
        existing = conn.execute(sa.select(d.c.id, d.c.status, d.c.updated_at).where(
            d.c.sink == sink.name, d.c.event_id == event.id)).first()
        if existing is None:
            try:
                conn.execute(sa.insert(d).values(
                    sink=sink.name, event_id=event.id, idempotency_key=key, hub_id=event.hub_id,
                    entity_version=event.version, status="in_flight", attempts=1, created_at=now, updated_at=now))
            except IntegrityError:
                return None
            return NEW
        stale = existing.status == "in_flight" and existing.updated_at < now - CLAIM_TIMEOUT
        if existing.status != "in_doubt" and not stale:
            return None
        taken = conn.execute(sa.update(d).where(d.c.id == existing.id, d.c.status == existing.status,
                                                d.c.updated_at == existing.updated_at)
                             .values(status="in_flight", attempts=d.c.attempts + 1, updated_at=now)).rowcount
        return IN_DOUBT if taken == 1 else None


def _finish(engine: Engine, sink: Sink, event: Any, status: str, *, document_ref: str | None = None,
            error: dict[str, Any] | None = None, audit: dict[str, Any] | None = None) -> None:
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(sa.update(t.dispatches).where(t.dispatches.c.sink == sink.name,
                                                   t.dispatches.c.event_id == event.id)
                     .values(status=status, document_ref=document_ref, last_error=error, updated_at=now))
        if document_ref and status == "done":
            # bind the target's document to the order, so feedback from the target finds its way back
            exists = conn.execute(sa.select(t.bindings.c.hub_id).where(
                t.bindings.c.channel == sink.name, t.bindings.c.shop == "-",
                t.bindings.c.entity == "document", t.bindings.c.external_id == document_ref)).first()
            if exists is None:
                conn.execute(sa.insert(t.bindings).values(channel=sink.name, shop="-", entity="document",
                                                          external_id=document_ref, hub_id=event.hub_id,
                                                          created_at=now))
        conn.execute(sa.insert(t.audit_trail).values(
            hub_id=event.hub_id, at=now, action=f"dispatch.{status}", actor=sink.name,
            detail={"event_id": event.id, "event_type": event.event_type, "version": event.version,
                    "document_ref": document_ref, **(audit or {}), **({"error": error} if error else {})}))


def _blocked_by_parked(engine: Engine, sink: Sink, event: Any) -> int | None:
    with reading(engine) as conn:
        return conn.execute(sa.select(sa.func.min(t.dispatches.c.event_id)).where(
            t.dispatches.c.sink == sink.name, t.dispatches.c.hub_id == event.hub_id,
            t.dispatches.c.status == "parked", t.dispatches.c.event_id < event.id)).scalar()


def _stale_release(engine: Engine, event: Any) -> str | None:
    """A released document is sent only while its plan revision is the order's current one and still released:
    a re-plan (refund, new mapping, changed address, a merge dissolved) supersedes the documents of older ones."""
    with reading(engine) as conn:
        row = conn.execute(sa.select(t.order_plans.c.revision, t.order_plans.c.status)
                           .where(t.order_plans.c.hub_id == event.hub_id)).first()
    if row is None:
        return "no plan for this order"
    if event.version < row.revision:
        return f"superseded by plan revision {row.revision}"
    if row.status != "released":
        return f"the plan is now {row.status}"
    return None


def dispatch_sink(engine: Engine, sink: Sink, *, batch: int = 500, max_batches: int | None = None) -> DispatchReport:
    """Deliver every pending event to one sink; returns what happened. ConfigurationError stops the run.

    An event that ends in doubt is not taken again in the same run (the sink's client has already retried it under
    the retry policy): a target that stays unreachable ends the run instead of spinning on it."""
    report = DispatchReport(sink.name)
    batches = 0
    doubted: set[int] = set()  # left in doubt by this run: the next run probes or re-sends them, not this one
    with bind_run(sink=sink.name):
        while True:
            events = _pending(engine, sink, batch, frozenset(doubted))
            if not events:
                break
            progressed = False
            for event in events:
                before = report.in_doubt
                progressed |= _dispatch_one(engine, sink, event, report)
                if report.in_doubt > before:
                    doubted.add(event.id)
            batches += 1
            if not progressed or (max_batches and batches >= max_batches):
                break
        _advance_position(engine, sink)
    log.info("dispatch finished", done=report.done, skipped=report.skipped, parked=report.parked,
             in_doubt=report.in_doubt)
    return report


def _dispatch_one(engine: Engine, sink: Sink, event: Any, report: DispatchReport) -> bool:
    with reading(engine) as conn:
        loaded = load_order(conn, event.hub_id)
    if loaded is None:
        raise ConfigurationError(f"outbox event {event.id} points at unknown order {event.hub_id}")
    order, current_version = loaded
    key = sink.idempotency_key(order, {"version": event.version, "event_type": event.event_type,
                                       "payload": event.payload})
    claim = _claim(engine, sink, event, key)
    if claim is None:
        return False
    blocker = _blocked_by_parked(engine, sink, event)
    if blocker is not None:
        _finish(engine, sink, event, "parked", error={"kind": "ordering", "message":
                                                      f"waiting behind parked event {blocker} of the same order"})
        report.parked += 1
        return True
    event_data = {"version": event.version, "event_type": event.event_type, "payload": event.payload,
                  "idempotency_key": key}
    probe = getattr(sink, "probe", None)
    if claim == IN_DOUBT and probe is not None:
        # before any superseded/stale check: a document the target already has must be recorded, not forgotten
        try:
            found = probe(order, event_data)
        except ConfigurationError as exc:
            _finish(engine, sink, event, "parked", error=exc.to_dict())
            raise
        except TransientError as exc:  # cannot tell yet: stays in doubt, probed again next run
            _finish(engine, sink, event, "in_doubt", error={**exc.to_dict(), "during": "probe"})
            report.in_doubt += 1
            return True
        except RecordError as exc:
            _finish(engine, sink, event, "parked", error={**exc.to_dict(), "during": "probe"})
            report.parked += 1
            return True
        if found is not None and found.document_ref:
            _finish(engine, sink, event, "done", document_ref=found.document_ref,
                    audit={"idempotency_key": key, "found_by": "probe", **(found.detail or {})})
            report.done += 1
            log.info("in-doubt event found by probe", event_id=event.id, document_ref=found.document_ref)
            return True
    if event.entity == "order" and event.version < current_version:
        _finish(engine, sink, event, "skipped", audit={"reason": f"superseded by version {current_version}"})
        report.skipped += 1
        return True
    if event.entity == RELEASE_ENTITY:
        stale = _stale_release(engine, event)
        if stale:
            _finish(engine, sink, event, "skipped", audit={"reason": stale})
            report.skipped += 1
            return True
    try:
        # no retry layer here: the sink's client already retries under the one policy (hub.retry)
        delivery = sink.deliver(order, event_data)
    except ConfigurationError as exc:
        _finish(engine, sink, event, "parked", error=exc.to_dict())
        raise
    except InDoubtError as exc:
        _finish(engine, sink, event, "in_doubt", error=exc.to_dict())
        report.in_doubt += 1
        return True
    except (TransientError, RecordError) as exc:
        _finish(engine, sink, event, "parked", error=exc.to_dict())
        report.parked += 1
        log.warning("event parked", event_id=event.id, error=exc.to_dict())
        return True
    except OrderHubError:
        raise
    if delivery.skipped_reason:
        _finish(engine, sink, event, "skipped", audit={"reason": delivery.skipped_reason})
        report.skipped += 1
    else:
        _finish(engine, sink, event, "done", document_ref=delivery.document_ref,
                audit={"idempotency_key": key, **(delivery.detail or {})})
        report.done += 1
    return True


def _advance_position(engine: Engine, sink: Sink) -> None:
    """Move the subscription's position past events that are all handled and old enough to have no gaps below."""
    now = utcnow()
    with engine.begin() as conn:
        position = _position(conn, sink.name)
        d = t.dispatches
        first_open = conn.execute(
            sa.select(sa.func.min(t.outbox.c.id)).where(
                t.outbox.c.id > position, t.outbox.c.event_type.in_(sink.event_types),
                ~sa.exists().where(d.c.sink == sink.name, d.c.event_id == t.outbox.c.id,
                                   d.c.status.in_(("done", "skipped", "parked"))))
        ).scalar()
        settled = conn.execute(sa.select(sa.func.max(t.outbox.c.id)).where(
            t.outbox.c.id > position, t.outbox.c.created_at < now - POSITION_GRACE)).scalar()
        if settled is None:
            return
        new_position = min(settled, first_open - 1) if first_open is not None else settled
        if new_position <= position:
            return
        if conn.execute(sa.select(t.subscriptions.c.name).where(t.subscriptions.c.name == sink.name)).first():
            conn.execute(sa.update(t.subscriptions).where(t.subscriptions.c.name == sink.name)
                         .values(position=new_position, updated_at=now))
        else:
            conn.execute(sa.insert(t.subscriptions).values(name=sink.name, position=new_position, updated_at=now))


def replay_parked(engine: Engine, sink_name: str, event_ids: list[int] | None = None) -> int:
    """Put parked events back in line (after the cause is fixed): they become in doubt, so the next run re-sends
    them through the same idempotent path."""
    with engine.begin() as conn:
        q = sa.update(t.dispatches).where(t.dispatches.c.sink == sink_name, t.dispatches.c.status == "parked")
        if event_ids:
            q = q.where(t.dispatches.c.event_id.in_(event_ids))
        return conn.execute(q.values(status="in_doubt", updated_at=utcnow())).rowcount
