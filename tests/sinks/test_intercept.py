"""Intercept: a refund or cancel that reaches the hub before the parcel left cancels the WMS delivery order; one
that comes too late is parked for a person with its reason, never dropped. Against the sandbox's Tmall and WMS."""

from __future__ import annotations

import time

import requests
import sqlalchemy as sa

from connectors.qimen_wms.intercept import FAILED_REASON
from connectors.qimen_wms.sink import QimenWmsSink
from hub.dispatch import dispatch_sink
from hub.status import collect
from hub.store import schema as t
from tests.hub.helpers import create_orders, set_faults, truth


def _refund(sandbox_url: str, tid: str) -> None:
    requests.post(f"{sandbox_url}/_sandbox/orders/tmall/{tid}/refund", json={}, timeout=10).raise_for_status()


def _released(hub, sandbox, n: int) -> list[str]:
    set_faults(sandbox.url, wms__auto_ship=False)
    ids = create_orders(sandbox.url, count=n)
    hub.sync()
    hub.dispatch("wms")
    dos = truth(sandbox.url)["wms"]["delivery_orders"]
    assert sorted(dos) == sorted(f"TMALL-{i}" for i in ids) and all(d["status"] == "ACCEPT" for d in dos.values())
    return ids


def _wms_dispatches(engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(t.dispatches, t.outbox.c.event_type)
                                 .join(t.outbox, t.outbox.c.id == t.dispatches.c.event_id)
                                 .where(t.dispatches.c.sink == "wms").order_by(t.dispatches.c.event_id)))


def test_a_refund_before_shipment_cancels_the_delivery_order_and_a_late_one_is_flagged_for_a_person(hub, sandbox):
    early, late = _released(hub, sandbox, 2)
    # the warehouse ships `late` before the hub hears of it: the refund races the parcel and loses
    requests.post(f"{sandbox.url}/_sandbox/wms/ship", json={"codes": [f"TMALL-{late}"]}, timeout=10
                  ).raise_for_status()
    _refund(sandbox.url, early)
    _refund(sandbox.url, late)
    hub.sync()
    report = hub.dispatch("wms")[0]

    dos = truth(sandbox.url)["wms"]["delivery_orders"]
    assert dos[f"TMALL-{early}"]["status"] == "CANCELED"
    assert [c["outcome"] for c in dos[f"TMALL-{early}"]["cancels"]][0] == "canceled"
    assert dos[f"TMALL-{late}"]["status"] == "DELIVERED"
    assert [c["outcome"] for c in dos[f"TMALL-{late}"]["cancels"]][0] == "refused-shipped"

    rows = _wms_dispatches(hub.engine)
    intercepts = [r for r in rows if r.event_type != "order.released"]
    assert any(r.status == "done" and r.document_ref == f"TMALL-{early}" for r in intercepts)
    flagged = [r for r in intercepts if r.status == "parked" and r.last_error.get("group_key") == FAILED_REASON]
    assert flagged and flagged[0].last_error["message"] == FAILED_REASON
    assert flagged[0].last_error["documents"] == [f"TMALL-{late}"] and flagged[0].last_error["how_to_fix"]
    assert report.parked >= 1 and collect(hub.engine)["parked_by_sink"]["wms"] >= 1


def test_a_cancel_whose_answer_is_lost_is_sent_again_and_cancels_once(hub, sandbox):
    (tid,) = _released(hub, sandbox, 1)
    set_faults(sandbox.url, wms__timeout_after_success={"calls": 1, "methods": ["deliveryorder.cancel"],
                                                       "mode": "drop"})
    _refund(sandbox.url, tid)
    hub.sync()
    hub.dispatch("wms")
    hub.dispatch("wms")  # whatever the first run left in doubt is re-sent: the WMS answers a repeat with success
    do = truth(sandbox.url)["wms"]["delivery_orders"][f"TMALL-{tid}"]
    assert do["status"] == "CANCELED"
    assert [c["outcome"] for c in do["cancels"]].count("canceled") == 1
    assert {r.status for r in _wms_dispatches(hub.engine)} <= {"done", "skipped"}


def test_a_cancelled_order_is_intercepted_and_without_the_hub_database_the_codes_are_derived(hub, sandbox):
    (tid,) = _released(hub, sandbox, 1)
    requests.post(f"{sandbox.url}/_sandbox/orders/tmall/{tid}/modify", json={"status": "TRADE_CLOSED_BY_TAOBAO"},
                  timeout=10).raise_for_status()
    hub.sync()
    bare = QimenWmsSink(hub.settings.sinks[0])  # no engine: TMALL-<tid>, then -1, -2… are asked of the WMS
    assert bare.engine is None and "order.changed" in bare.event_types
    dispatch_sink(hub.engine, bare)
    do = truth(sandbox.url)["wms"]["delivery_orders"][f"TMALL-{tid}"]
    assert do["status"] == "CANCELED"
    done = [r for r in _wms_dispatches(hub.engine) if r.event_type == "order.changed" and r.status == "done"]
    assert [r.document_ref for r in done] == [f"TMALL-{tid}"]


def test_a_refund_read_by_the_refunds_stream_intercepts_through_its_refund_requested_event(hub, sandbox):
    for shop in hub.settings.shops:
        shop.streams = ["orders", "refunds"]
    (tid,) = _released(hub, sandbox, 1)
    _refund(sandbox.url, tid)
    hub.sync()
    hub.dispatch("wms")
    rows = _wms_dispatches(hub.engine)
    by_type = {r.event_type: r for r in rows}
    assert by_type["refund.requested"].status == "done"
    assert by_type["refund.requested"].document_ref == f"TMALL-{tid}"
    do = truth(sandbox.url)["wms"]["delivery_orders"][f"TMALL-{tid}"]
    # both events asked (the order's change and the refund's): the WMS canceled once, the repeat changed nothing
    assert do["status"] == "CANCELED" and [c["outcome"] for c in do["cancels"]].count("canceled") == 1


def test_a_return_with_goods_is_announced_to_the_wms_once_and_its_receipt_is_read_back(hub, sandbox):
    from connectors.qimen_wms.returns import poll_returns

    for shop in hub.settings.shops:
        shop.streams = ["orders", "refunds"]
    set_faults(sandbox.url, wms__auto_ship=True)
    (tid,) = create_orders(sandbox.url, count=1)
    hub.run_once()  # released, shipped by the WMS, written back: the buyer has the parcel
    assert truth(sandbox.url)["writebacks"]["tmall"][tid]["accepted"] == 1
    # one refund per line; only the first line's goods are sent back
    refund = requests.post(f"{sandbox.url}/_sandbox/orders/tmall/{tid}/refund", json={}, timeout=10).json()[
        "refunds"][0]
    time.sleep(1.5)  # the refund is stamped one second after the write-back's change: let "now" pass it
    hub.sync()
    hub.dispatch("wms")  # requested: the seller has not agreed yet, the warehouse expects nothing
    assert truth(sandbox.url)["wms"]["returns"] == {}
    requests.post(f"{sandbox.url}/_sandbox/refunds/tmall/{refund['refund_id']}",
                  json={"status": "WAIT_BUYER_RETURN_GOODS"}, timeout=10).raise_for_status()
    code = f"RT-TMALL-{refund['refund_id']}"
    for _ in range(10):  # stamped a second after the last change: read until the sandbox's "now" passes it
        time.sleep(0.5)
        hub.sync()
        hub.dispatch("wms")
        if code in truth(sandbox.url)["wms"]["returns"]:
            break
    (ro,) = truth(sandbox.url)["wms"]["returns"].values()
    assert ro["created"] == 1 and ro["pre_delivery_order_code"] == f"TMALL-{tid}" and ro["status"] == "ACCEPT"
    assert [(line["item_code"], line["plan_qty"]) for line in ro["lines"]]  # the master SKUs that shipped

    requests.post(f"{sandbox.url}/_sandbox/wms/return/receive", json={"code": code}, timeout=10).raise_for_status()
    feed = hub.settings.sinks[0].confirms.feed_url.replace("_confirms", "_returns")
    ((_seq, receipt, error, _raw),) = poll_returns(hub.settings.sinks[0], feed, 0)
    assert error is None and receipt.return_order_code == code
    assert [(r.item_code, r.received) for r in receipt.lines] == [(r["item_code"], r["plan_qty"]) for r in ro["lines"]]


def test_an_order_closed_after_its_parcel_was_recorded_shipped_raises_no_false_alarm(hub, sandbox):
    set_faults(sandbox.url, wms__auto_ship=True)
    (tid,) = create_orders(sandbox.url, count=1)
    hub.run_once()  # shipped by the WMS and recorded by the hub
    requests.post(f"{sandbox.url}/_sandbox/orders/tmall/{tid}/modify", json={"status": "TRADE_CLOSED"},
                  timeout=10).raise_for_status()
    for _ in range(10):  # stamped a second after the write-back's change: read until the order change shows
        time.sleep(0.5)
        hub.sync()
        if any(r.event_type == "order.changed" for r in _outbox(hub.engine)):
            break
    report = hub.dispatch("wms")[0]
    assert report.parked == 0 and report.skipped == 1
    assert truth(sandbox.url)["wms"]["delivery_orders"][f"TMALL-{tid}"]["cancels"] == []


def _outbox(engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(t.outbox.c.event_type)))
