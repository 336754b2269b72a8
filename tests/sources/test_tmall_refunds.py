"""Tmall refunds (after-sales) come in by their own windowed stream and become events on their order.

Against the in-process sandbox (refunds created through its admin API, as a buyer would), SQLite or MariaDB.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import requests
import sqlalchemy as sa

from hub.aftersales import refunds_of
from hub.config import load_settings
from hub.runtime import Hub
from hub.store import schema as t
from hub.store.schema_aftersales import refunds
from tests.conftest import write_sandbox_config
from tests.hub.helpers import create_orders, set_faults


def _hub(tmp_path, sandbox, db_url, engine):
    config = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, streams=["orders", "refunds"])
    return Hub(load_settings(config), engine)


def _wall(ago_s: int = 0) -> str:
    return (datetime.now(ZoneInfo("Asia/Shanghai")) - timedelta(seconds=ago_s)).strftime("%Y-%m-%d %H:%M:%S")


def _refund(sandbox, tid: str, ago_s: int = 30, **body) -> dict:
    """A refund of the order's first line (the sandbox refunds every open line when no ``oid`` is given)."""
    oid = sandbox.app.world.trade(tid).lines[0]["oid"]
    resp = requests.post(f"{sandbox.url}/_sandbox/orders/tmall/{tid}/refund",
                         json={"at": _wall(ago_s), "oid": oid, **body}, timeout=10)
    resp.raise_for_status()
    refund, = resp.json()["refunds"]
    return refund


def _events(engine, *types):
    with engine.connect() as conn:
        return list(conn.execute(sa.select(t.outbox).where(t.outbox.c.event_type.in_(types))
                                 .order_by(t.outbox.c.id)))


def test_a_refund_requested_before_shipment_becomes_one_event_on_its_order_saying_nothing_shipped(
        tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    hub = _hub(tmp_path, sandbox, db_url, engine)
    tid, = create_orders(sandbox.url, count=1, ago_s=120)
    hub.sync(shop="tm-flagship", stream="orders")
    wire = _refund(sandbox, tid, ago_s=60, reason="拍错了")
    report, = hub.sync(shop="tm-flagship", stream="refunds")
    assert report.result.new == 1
    event, = _events(engine, "refund.requested")
    assert event.entity == "refund" and event.payload["refund_id"] == str(wire["refund_id"])
    assert event.payload["order_id"] == tid and event.payload["shipped"] is False
    assert event.payload["type"] == "refund_only" and event.payload["status"] == "REQUESTED"
    with engine.connect() as conn:
        order_hub = conn.execute(sa.select(t.orders.c.hub_id).where(t.orders.c.order_id == tid)).scalar()
        refund, = refunds_of(conn, order_hub)
    assert event.hub_id == order_hub and refund.requested_amount > 0 and refund.refunded_amount == 0
    # the same window read again changes nothing
    again, = hub.sync(shop="tm-flagship", stream="refunds")
    assert again.result.new == again.result.changed == 0 and len(_events(engine, "refund.requested")) == 1


def test_a_refund_that_succeeds_later_is_a_change_with_the_refunded_amount(tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    hub = _hub(tmp_path, sandbox, db_url, engine)
    tid, = create_orders(sandbox.url, count=1, ago_s=120)
    wire = _refund(sandbox, tid, ago_s=90)
    hub.sync(shop="tm-flagship", stream="orders")
    hub.sync(shop="tm-flagship", stream="refunds")
    requests.post(f"{sandbox.url}/_sandbox/refunds/tmall/{wire['refund_id']}",
                  json={"status": "SUCCESS", "at": _wall(30)}, timeout=10).raise_for_status()
    changed, = hub.sync(shop="tm-flagship", stream="refunds")
    assert changed.result.changed == 1
    event, = _events(engine, "refund.changed")
    assert event.payload["status"] == "SUCCESS" and event.payload["version"] == 2
    assert event.payload["refunded_amount"] == event.payload["requested_amount"] > 0
    with engine.connect() as conn:
        row = conn.execute(sa.select(refunds)).one()
    assert row.version == 2 and row.status == "SUCCESS"
    assert int(row.channel_version) > int(wire["refund_version"])  # the channel's own version moved with it


def test_a_refund_read_before_its_order_waits_and_its_event_follows_the_order_acceptance(
        tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    hub = _hub(tmp_path, sandbox, db_url, engine)
    tid, = create_orders(sandbox.url, count=1, ago_s=120)
    _refund(sandbox, tid, ago_s=60)
    first, = hub.sync(shop="tm-flagship", stream="refunds")
    assert first.result.new == 1 and not _events(engine, "refund.requested")
    with engine.connect() as conn:
        assert conn.execute(sa.select(refunds.c.event_pending, refunds.c.hub_id)).one() == (True, None)
    hub.sync(shop="tm-flagship", stream="orders")
    hub.process()
    accepted, = _events(engine, "order.accepted")
    requested, = _events(engine, "refund.requested")
    assert requested.hub_id == accepted.hub_id and requested.id > accepted.id
    hub.process()  # linking is once only
    assert len(_events(engine, "refund.requested")) == 1


def test_a_refund_with_an_unknown_status_is_quarantined_with_its_payload_and_the_rest_land(
        tmp_path, sandbox, db_url, engine):
    from hub.entities import ingest_page

    hub = _hub(tmp_path, sandbox, db_url, engine)
    shop = hub.settings.shop("tmall", "tm-flagship")
    stream = Hub.source_connector("tmall").open_streams(shop)["refunds"]
    good = {"refund_id": "9001", "tid": "1001", "oid": "1001", "status": "WAIT_SELLER_AGREE", "refund_fee": "10.00",
            "has_good_return": False, "created": "2026-11-11 10:00:00", "modified": "2026-11-11 10:00:00",
            "refund_version": 1}
    bad = {**good, "refund_id": "9002", "status": "SOMETHING_NEW"}
    result = ingest_page(engine, hub.source(shop, stream), [good, bad])
    assert (result.new, result.quarantined) == (1, 1)
    with engine.connect() as conn:
        q = conn.execute(sa.select(t.quarantine)).one()
    assert q.entity == "refund" and q.external_id == "9002" and "SOMETHING_NEW" in q.reason
    assert '"SOMETHING_NEW"' in q.payload
