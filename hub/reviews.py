"""Reviews: the ``review`` stream entity's ingester, low-rating alerts and the per-SKU rating summary.

``ingest_reviews`` keeps the promises of ``hub.ingest.ingest_records`` (see hub/entities.py): one transaction per
page with the cursor move inside it, raw payloads archived, bad records quarantined with their reason, a guard so
that an older version never overwrites a newer one, events for what changed.

Each review is stored against its order line and the line's master SKU (from the order's plan; until processing has
planned the order, only the merchant SKU code, and the summary reports under that). Scores: a channel's 1-5 as
given, Tmall's good/neutral/bad as 5/3/1. A score at or below ``LOW_SCORE`` raises an alert once: a
``review.low_rating`` outbox event (hub_id = the order's) with the order, line, SKU and text, and an audit row. A
review read before its order waits (``alert = pending``) and is linked and alerted by the next page ingested or by
``raise_pending_alerts``.
The buyer's nick is not stored, and no review text is ever logged (buyers write phone numbers into reviews).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from hub.errors import RecordError
from hub.ingest import (
    CursorMove,
    IngestResult,
    Source,
    archive_raw,
    close_page,
    content_hash,
    raw_json,
    storable_id,
)
from hub.logging import get_logger
from hub.models import Review
from hub.store import schema as t
from hub.store.db import reading
from hub.store.schema import utcnow
from hub.store.schema_finance import reviews

log = get_logger(__name__)
LOW_SCORE = 2
WORDS = {"good": 5, "neutral": 3, "bad": 1}


def score_of(rating: str) -> int:
    value = str(rating).strip().lower()
    if value in WORDS:
        return WORDS[value]
    if value.isdigit() and 1 <= int(value) <= 5:
        return int(value)
    raise RecordError(f"unknown rating {rating!r}", field="rating", group_key=f"unknown rating={rating}")


def ingest_reviews(engine: Engine, source: Source, records: Iterable[Mapping[str, Any]], *,
                   in_same_transaction: CursorMove | None = None, actor: str = "sync",
                   quarantine_ids: Mapping[int, int] | None = None) -> IngestResult:
    now = utcnow()
    result = IngestResult()
    context = {"channel": source.channel, "shop": source.shop}
    good: dict[str, tuple[Review, int, str]] = {}
    raws: list[dict[str, Any]] = []
    bad: list[tuple[int, str | None, RecordError, str]] = []
    for index, record in enumerate(records):
        result.received += 1
        ext = source.external_id(record) if isinstance(record, Mapping) else None
        raw, unreadable = raw_json(record)  # personal values sealed when a key is configured
        if unreadable is not None:
            bad.append((index, storable_id(ext), unreadable, raw))
            continue
        try:
            review = source.mapper.to_model(record, context)
            score = score_of(review.rating)
        except RecordError as exc:
            bad.append((index, ext, exc, raw))
            continue
        raws.append({"external_id": review.review_id, "raw": raw, "updated_at": review.created_at})
        good[review.review_id] = (review, score, content_hash(raw))

    with engine.begin() as conn:
        archive_raw(conn, source, raws, now)
        stored = {r.review_id: r for r in conn.execute(sa.select(
            reviews.c.review_id, reviews.c.created_at, reviews.c.content_hash).where(
            reviews.c.channel == source.channel, reviews.c.shop == source.shop,
            reviews.c.review_id.in_(list(good))))} if good else {}
        for review_id, (review, score, digest) in good.items():
            old = stored.get(review_id)
            if old is not None:
                if old.content_hash == digest or review.created_at < old.created_at:
                    result.unchanged += 1
                    continue
                # a reply or an appended text: the same review, newer content; the alert state stays as it was
                conn.execute(sa.update(reviews).where(
                    reviews.c.channel == source.channel, reviews.c.shop == source.shop,
                    reviews.c.review_id == review_id).values(
                    content=review.content, reply=review.reply, content_hash=digest, stored_at=now))
                result.changed += 1
                continue
            conn.execute(sa.insert(reviews).values(
                channel=source.channel, shop=source.shop, review_id=review_id, hub_id=None,
                order_id=review.order_id, line_id=review.line_id, platform_item_id=review.platform_item_id,
                rating=str(review.rating)[:16], score=score, content=review.content, reply=review.reply,
                created_at=review.created_at, content_hash=digest,
                alert="pending" if score <= LOW_SCORE else "none", stored_at=now))
            result.new += 1
        _link(conn, now, actor, channel=source.channel, shop=source.shop)
        result.quarantined = close_page(conn, source, bad, now, quarantine_ids, in_same_transaction)
    for _index, ext, exc, _raw in bad:
        log.warning("review quarantined", external_id=ext, error=exc.to_dict())
    return result


def raise_pending_alerts(engine: Engine, actor: str = "reviews") -> int:
    """Link reviews to orders that have arrived since, and raise the alerts that waited for them; reviews linked
    before their order was planned get the plan's master SKU now."""
    with engine.begin() as conn:
        raised = _link(conn, utcnow(), actor)
        provisional = conn.execute(sa.select(reviews.c.channel, reviews.c.shop, reviews.c.review_id,
                                             reviews.c.hub_id, reviews.c.line_id)
                                   .join(t.order_plans, t.order_plans.c.hub_id == reviews.c.hub_id)
                                   .where(reviews.c.master_sku.is_(None), reviews.c.hub_id.is_not(None))).all()
        for r in provisional:
            _merchant, master = _skus(conn, r.hub_id, r.line_id)
            if master:
                conn.execute(sa.update(reviews).where(reviews.c.channel == r.channel, reviews.c.shop == r.shop,
                                                      reviews.c.review_id == r.review_id).values(master_sku=master))
        return raised


def _link(conn: Connection, now: datetime, actor: str, channel: str | None = None, shop: str | None = None) -> int:
    """Reviews without an order: bind them to the order (and its line's SKUs) once it is in the hub."""
    q = sa.select(reviews).where(reviews.c.hub_id.is_(None))
    if channel:
        q = q.where(reviews.c.channel == channel, reviews.c.shop == shop)
    waiting = conn.execute(q).all()
    raised = 0
    for r in waiting:
        hub_id = conn.execute(sa.select(t.bindings.c.hub_id).where(
            t.bindings.c.channel == r.channel, t.bindings.c.shop == r.shop, t.bindings.c.entity == "order",
            t.bindings.c.external_id == r.order_id)).scalar()
        if hub_id is None:
            continue
        merchant_sku, master = _skus(conn, hub_id, r.line_id)
        alert = "raised" if r.alert == "pending" else r.alert
        conn.execute(sa.update(reviews).where(reviews.c.channel == r.channel, reviews.c.shop == r.shop,
                                              reviews.c.review_id == r.review_id)
                     .values(hub_id=hub_id, merchant_sku_code=merchant_sku, master_sku=master, alert=alert))
        if r.alert == "pending":
            payload = {"channel": r.channel, "shop": r.shop, "order_id": r.order_id, "review_id": r.review_id,
                       "line_id": r.line_id, "master_sku": master, "merchant_sku_code": merchant_sku,
                       "score": r.score, "rating": r.rating, "content": r.content,
                       "created_at": r.created_at.isoformat()}
            conn.execute(sa.insert(t.outbox).values(event_type="review.low_rating", entity="review", hub_id=hub_id,
                                                    version=1, payload=payload, created_at=now))
            conn.execute(sa.insert(t.audit_trail).values(
                hub_id=hub_id, at=now, action="review.low_rating", actor=actor,
                detail={"review_id": r.review_id, "line_id": r.line_id, "master_sku": master, "score": r.score}))
            log.warning("low rating", channel=r.channel, shop=r.shop, order_id=r.order_id, review_id=r.review_id,
                        master_sku=master, score=r.score)  # the text stays out of the log: buyers write anything
            raised += 1
    return raised


def _skus(conn: Connection, hub_id: str, line_id: str | None) -> tuple[str | None, str | None]:
    line = conn.execute(sa.select(t.order_lines.c.line_id, t.order_lines.c.merchant_sku_code).where(
        t.order_lines.c.hub_id == hub_id, *([t.order_lines.c.line_id == line_id] if line_id else []))).first()
    merchant = line.merchant_sku_code if line else None
    plan = conn.execute(sa.select(t.order_plans.c.plan).where(t.order_plans.c.hub_id == hub_id)).scalar()
    master = None
    if isinstance(plan, dict):
        for group in plan.get("groups") or []:
            for pl in group.get("lines") or []:
                if line is not None and pl.get("line_id") == line.line_id and not pl.get("is_gift"):
                    master = master or pl.get("master_sku")
    return merchant, master  # no plan yet: None, filled in by raise_pending_alerts once the order is planned


@dataclass(frozen=True)
class SkuRating:
    master_sku: str
    reviews: int
    average: float
    low: int
    distribution: dict[int, int]


def sku_summary(engine: Engine) -> list[SkuRating]:
    """Per master SKU: how many reviews, the average score, how many low ones, and the 1-5 distribution."""
    raise_pending_alerts(engine)
    with reading(engine) as conn:
        rows = conn.execute(sa.select(sa.func.coalesce(reviews.c.master_sku, reviews.c.merchant_sku_code,
                                                       sa.literal("(unlinked)")).label("sku"),
                                      reviews.c.score, sa.func.count().label("n"))
                            .group_by("sku", reviews.c.score)).all()
    by_sku: dict[str, dict[int, int]] = {}
    for sku, score, n in rows:
        by_sku.setdefault(sku, {})[score] = n
    out = []
    for sku, dist in sorted(by_sku.items()):
        total = sum(dist.values())
        out.append(SkuRating(sku, total, round(sum(s * n for s, n in dist.items()) / total, 2),
                             sum(n for s, n in dist.items() if s <= LOW_SCORE),
                             {s: dist.get(s, 0) for s in range(1, 6)}))
    return out
