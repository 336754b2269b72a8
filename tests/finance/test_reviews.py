"""Tmall buyer reviews through ``taobao.traderates.get`` into the hub: stored per order line and master SKU, a low
rating raises one ``review.low_rating`` event with the order, SKU and text, and a per-SKU summary."""

from __future__ import annotations

import requests
import sqlalchemy as sa

from hub.config import load_settings
from hub.reviews import raise_pending_alerts, sku_summary
from hub.runtime import Hub
from hub.store import schema as t
from hub.store.schema_finance import reviews
from tests.conftest import write_sandbox_config
from tests.hub.helpers import count, create_orders


def _rate(url: str, tid: str, result: str, content: str) -> list[dict]:
    resp = requests.post(f"{url}/_sandbox/orders/tmall/{tid}/rate", json={"result": result, "content": content},
                         timeout=30)
    resp.raise_for_status()
    return resp.json()["rates"]


def _hub(tmp_path, sandbox, db_url, engine, streams):
    path = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, streams=streams)
    return Hub(load_settings(path), engine)


def test_a_bad_review_is_stored_per_line_and_sku_and_raises_one_alert_with_order_sku_and_text(tmp_path, sandbox,
                                                                                              db_url, engine):
    hub = _hub(tmp_path, sandbox, db_url, engine, ["orders", "reviews"])
    good_tid, bad_tid = create_orders(sandbox.url, count=2)
    good_rates = _rate(sandbox.url, good_tid, "good", "很好")
    bad_rates = _rate(sandbox.url, bad_tid, "bad", "质量太差, 掉色")
    hub.sync()
    hub.process()
    raise_pending_alerts(engine)  # the plan's master SKUs reach the reviews linked before it
    with engine.connect() as conn:
        stored = {r.review_id: r for r in conn.execute(sa.select(reviews))}
        events = conn.execute(sa.select(t.outbox.c.payload, t.outbox.c.hub_id)
                              .where(t.outbox.c.event_type == "review.low_rating")).all()
        lines = {(r.hub_id, r.line_id): r.merchant_sku_code for r in conn.execute(sa.select(t.order_lines))}
    assert len(stored) == len(good_rates) + len(bad_rates)
    for review in stored.values():
        assert review.hub_id is not None and lines[(review.hub_id, review.line_id)] == review.merchant_sku_code
        assert review.master_sku == review.merchant_sku_code  # the sandbox's codes auto-match their master SKU
    assert sorted(e.payload["line_id"] for e in events) == sorted(str(r["oid"]) for r in bad_rates)
    assert {e.payload["order_id"] for e in events} == {bad_tid}
    assert all(e.payload["content"] == "质量太差, 掉色" and e.payload["score"] == 1 and e.payload["merchant_sku_code"]
               for e in events)
    # read again: nothing new, no second alert
    with engine.begin() as conn:
        conn.execute(sa.delete(t.sync_cursors))
    hub.sync()
    assert count(engine, t.outbox, t.outbox.c.event_type == "review.low_rating") == len(bad_rates)
    summary = {s.master_sku: s for s in sku_summary(engine)}
    assert sum(s.reviews for s in summary.values()) == len(stored)
    assert sum(s.low for s in summary.values()) == len(bad_rates)
    assert all(s.distribution[5] + s.distribution[1] == s.reviews for s in summary.values())


def test_a_low_rating_read_before_its_order_alerts_once_the_order_arrives(tmp_path, sandbox, db_url, engine):
    (tid,) = create_orders(sandbox.url)
    rates = _rate(sandbox.url, tid, "bad", "没收到货")
    _hub(tmp_path, sandbox, db_url, engine, ["reviews"]).sync()
    with engine.connect() as conn:
        assert {r.alert for r in conn.execute(sa.select(reviews))} == {"pending"}
    assert count(engine, t.outbox, t.outbox.c.event_type == "review.low_rating") == 0
    _hub(tmp_path, sandbox, db_url, engine, ["orders"]).sync()
    assert raise_pending_alerts(engine) == len(rates)
    assert raise_pending_alerts(engine) == 0
    assert count(engine, t.outbox, t.outbox.c.event_type == "review.low_rating") == len(rates)


def test_a_review_with_an_unknown_rating_is_quarantined_and_the_rest_of_the_page_lands(engine):
    import mappings
    from connectors.tmall.reviews import REVIEW_COMPUTES, review_id
    from hub.ingest import Source
    from hub.mapping import load_mapping
    from hub.models import Review
    from hub.reviews import ingest_reviews

    mapper = load_mapping(mappings.path("tmall_reviews.yaml"), Review, computes=REVIEW_COMPUTES)
    source = Source("tmall", "tm-flagship", mapper, review_id, entity="review")
    good = {"tid": 1, "oid": 2, "num_iid": 3, "role": "buyer", "result": "neutral", "created": "2026-11-24 10:00:00",
            "content": "一般"}
    odd = {**good, "oid": 4, "result": "superb"}
    result = ingest_reviews(engine, source, [good, odd])
    assert (result.new, result.quarantined) == (1, 1)
    with engine.connect() as conn:
        (row,) = conn.execute(sa.select(t.quarantine)).all()
        (stored,) = conn.execute(sa.select(reviews)).all()
    assert row.entity == "review" and row.group_key == "unknown rating=superb" and '"superb"' in row.payload
    assert stored.score == 3 and stored.alert == "none" and stored.review_id == "2:20261124100000"
    again = ingest_reviews(engine, source, [good])
    assert (again.new, again.unchanged) == (0, 1)
