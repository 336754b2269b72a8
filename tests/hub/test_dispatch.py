"""Exactly one delivery order per order in the WMS, whatever is lost on the way or replayed."""

from __future__ import annotations

import sqlalchemy as sa

from hub.dispatch import replay_parked
from hub.store import schema as t
from tests.hub.helpers import count, create_orders, set_faults, truth


def _delivery_orders(sandbox_url):
    return truth(sandbox_url)["wms"]["delivery_orders"]


def test_a_response_lost_after_the_wms_created_the_document_leaves_exactly_one_document(hub, sandbox):
    set_faults(sandbox.url, wms__auto_ship=False,
               wms__timeout_after_success={"calls": 3, "methods": ["deliveryorder.create"], "mode": "drop"})
    create_orders(sandbox.url, count=3)
    hub.sync()
    first = hub.dispatch()[0]
    # each call took effect, then the answer was lost; the retries re-sent the same deliveryOrderCode
    dos = _delivery_orders(sandbox.url)
    assert len(dos) == 3 and all(d["created"] == 1 for d in dos.values())
    assert first.done + first.in_doubt == 3
    hub.dispatch()
    with hub.engine.connect() as conn:
        statuses = [r.status for r in conn.execute(sa.select(t.dispatches.c.status))]
    assert statuses == ["done"] * 3
    assert all(d["created"] == 1 for d in _delivery_orders(sandbox.url).values())


def test_replaying_the_whole_outbox_from_position_zero_creates_nothing_new(hub, sandbox):
    create_orders(sandbox.url, count=10)
    hub.run_once()
    before = {code: d["created"] for code, d in _delivery_orders(sandbox.url).items()}
    writebacks_before = {tid: w["accepted"] for tid, w in truth(sandbox.url)["writebacks"]["tmall"].items()}
    with hub.engine.begin() as conn:  # forget every dispatch: the outbox is read again from the start
        conn.execute(sa.delete(t.dispatches))
        conn.execute(sa.delete(t.subscriptions).where(t.subscriptions.c.name != "feed:wms"))
    hub.dispatch()
    hub.writeback()
    assert {code: d["created"] for code, d in _delivery_orders(sandbox.url).items()} == before
    assert {tid: w["accepted"] for tid, w in truth(sandbox.url)["writebacks"]["tmall"].items()} == writebacks_before
    assert len(before) == 10


def test_a_refused_document_is_parked_with_its_reason_without_blocking_the_others(hub, sandbox):
    set_faults(sandbox.url, wms__auto_ship=False, wms__fail_create={"calls": 5})  # outlasts 4 attempts: parked
    create_orders(sandbox.url, count=4)
    hub.sync()
    report = hub.dispatch()[0]
    assert report.parked == 1 and report.done == 3
    with hub.engine.connect() as conn:
        parked = conn.execute(sa.select(t.dispatches).where(t.dispatches.c.status == "parked")).one()
    assert parked.last_error["kind"] in ("transient", "record") and parked.last_error["message"]
    assert replay_parked(hub.engine, "wms") == 1
    again = hub.dispatch()[0]
    assert again.done == 1 and count(hub.engine, t.dispatches, t.dispatches.c.status == "done") == 4
    assert len(_delivery_orders(sandbox.url)) == 4
