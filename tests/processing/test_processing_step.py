"""The processing step against the store (SQLite and MariaDB): trades go through the real Tmall mapping and ingest,
are planned once, released as order.released events, and a stale release never reaches a sink."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

import mappings
from connectors.qimen_wms.settings import QimenWmsSettings
from connectors.qimen_wms.sink import QimenWmsSink
from connectors.tmall.mapping_functions import COMPUTES
from hub.connector import Delivery
from hub.dispatch import dispatch_sink
from hub.feedback import ConfirmPackage, ShipConfirm, record_confirm
from hub.ingest import Source, ingest_records, load_order
from hub.mapping import load_mapping
from hub.models import Order
from hub.processing.skus import load_skus
from hub.processing.step import Tables, process
from hub.store import schema as t
from tests.processing.factory import NOW, rules, trade

TID = 3817000000000000101


def source(shop="tm-flagship"):
    mapper = load_mapping(mappings.path("tmall.yaml"), Order, computes=COMPUTES)
    return Source("tmall", shop, mapper, lambda r: str(r.get("tid_str") or r.get("tid")))


def tables(*rule_items, now=NOW, stock=None):
    return Tables(skus=load_skus(mappings.path("skus.yaml")), rules=rules(*rule_items), stock=stock or {}, now=now)


def releases(engine):
    with engine.connect() as conn:
        return [r.payload for r in conn.execute(sa.select(t.outbox).where(t.outbox.c.event_type == "order.released")
                                                .order_by(t.outbox.c.id))]


def plan_row(engine, order_id):
    with engine.connect() as conn:
        return conn.execute(sa.select(t.order_plans).join(t.orders, t.orders.c.hub_id == t.order_plans.c.hub_id)
                            .where(t.orders.c.order_id == str(order_id))).one()


class RecordingSink:
    """A sink that accepts every document (the WMS itself is exercised over HTTP in test_workbench)."""

    name = "fake_wms"
    event_types = ("order.released",)

    def __init__(self):
        self.sent = []

    def idempotency_key(self, order, event):
        return f"{self.name}:{event['payload']['document']['document_code']}:r{event['version']}"

    def deliver(self, order, event):
        self.sent.append(event["payload"]["document"]["document_code"])
        return Delivery(event["payload"]["document"]["document_code"])


def test_each_order_is_planned_once_and_processing_the_outbox_again_releases_nothing_new(engine):
    ingest_records(engine, source(), [trade(TID), trade(TID + 10)])
    first = process(engine, tables())
    assert (first.events, first.published, first.documents) == (2, 2, 2)
    assert [r["document"]["document_code"] for r in releases(engine)] == [f"TMALL-{TID}", f"TMALL-{TID + 10}"]
    assert process(engine, tables()).events == 0
    with engine.begin() as conn:  # forget every claim: the whole outbox is read again
        conn.execute(sa.delete(t.processed_events))
        conn.execute(sa.delete(t.subscriptions))
    again = process(engine, tables())
    assert (again.events, again.changed, again.unchanged, again.documents) == (2, 0, 2, 0)
    assert len(releases(engine)) == 2
    with engine.connect() as conn:
        trail = [r.action for r in conn.execute(sa.select(t.audit_trail.c.action).order_by(t.audit_trail.c.id))]
    assert trail == ["order.accepted", "order.accepted", "plan.released", "plan.released"]


def test_an_event_of_an_older_order_version_is_skipped_and_the_newer_one_is_planned(engine):
    ingest_records(engine, source(), [trade(TID)])
    ingest_records(engine, source(), [trade(TID, modified="2026-11-11 10:05:00", seller_memo="gift wrap")])
    report = process(engine, tables())
    assert (report.skipped, report.events, report.documents) == (1, 1, 1)
    assert plan_row(engine, TID).order_version == 2


def test_a_presale_trade_waits_for_its_final_payment_then_is_released_once(engine):
    deposit = trade(TID, type="step", status="WAIT_BUYER_PAY", step_trade_status="FRONT_PAID_FINAL_NOPAID",
                    line={"status": "WAIT_BUYER_PAY"})
    ingest_records(engine, source(), [deposit])
    process(engine, tables())
    row = plan_row(engine, TID)
    assert row.status == "waiting" and "final payment" in row.plan["decisions"][0]["detail"]
    assert releases(engine) == []
    final = trade(TID, type="step", step_trade_status="FRONT_PAID_FINAL_PAID", modified="2026-11-12 09:00:00")
    ingest_records(engine, source(), [final])
    process(engine, tables())
    assert plan_row(engine, TID).status == "released" and len(releases(engine)) == 1


def test_a_cod_trade_asks_the_warehouse_s_carrier_to_collect_what_the_buyer_owes(engine):
    cod = trade(TID, type="cod", pay_time=None, alipay_no=None)
    del cod["pay_time"], cod["alipay_no"]
    ingest_records(engine, source(), [cod])
    process(engine, tables())
    (released,) = releases(engine)
    assert released["document"]["cod_amount_fen"] == 20800
    settings = QimenWmsSettings(name="wms", url="http://127.0.0.1:9/qimen", app_key="k", app_secret="s",
                                customer_id="C001")
    with engine.connect() as conn:
        order, _version = load_order(conn, conn.execute(sa.select(t.orders.c.hub_id)).scalar())
    header = QimenWmsSink(settings, client=object()).document(order, released["document"])["deliveryOrder"]
    assert (header["totalAmount"], header["arAmount"], header["gotAmount"], header["orderFlag"]) == (
        "208.00", "208.00", "0.00", "COD")


def test_a_trade_refunded_after_release_but_before_dispatch_never_reaches_the_sink(engine):
    ingest_records(engine, source(), [trade(TID)])
    process(engine, tables())
    assert len(releases(engine)) == 1
    ingest_records(engine, source(), [trade(TID, status="TRADE_CLOSED", modified="2026-11-11 10:09:00",
                                            line={"status": "TRADE_CLOSED", "refund_status": "SUCCESS"})])
    process(engine, tables())
    sink = RecordingSink()
    report = dispatch_sink(engine, sink)
    assert sink.sent == [] and report.skipped == 1
    assert plan_row(engine, TID).status == "cancelled"


def test_a_review_delay_is_rechecked_without_a_new_event_once_its_time_has_come(engine):
    delay = {"name": "review-delay", "kind": "delay", "minutes": 15}
    ingest_records(engine, source(), [trade(TID)])  # paid 10:01 Shanghai = 02:01 UTC
    early = NOW.replace(hour=2, minute=5)
    assert process(engine, tables(delay, now=early)).statuses == {"waiting": 1}
    assert process(engine, tables(delay, now=early + timedelta(minutes=5))).rechecked == 0
    later = process(engine, tables(delay, now=early + timedelta(minutes=12)))
    assert (later.rechecked, later.documents) == (1, 1)


def test_orders_of_one_buyer_to_one_address_released_together_share_one_delivery_order(engine):
    merge = {"name": "merge-same-buyer", "kind": "merge", "when": {"channel_in": ["tmall"]}, "within_minutes": 30}
    first = trade(TID)
    second = trade(TID + 10, pay_time="2026-11-11 10:20:00", modified="2026-11-11 10:20:02",
                   line={"outer_sku_id": "SKU-002-BLU-30"})
    elsewhere = trade(TID + 20, oaid="oaid-other")
    ingest_records(engine, source(), [first, second, elsewhere])
    report = process(engine, tables(merge))
    assert (report.published, report.merged, report.documents) == (2, 1, 2)
    merged = next(r["document"] for r in releases(engine) if r["document"]["merged_orders"])
    assert merged["document_code"] == f"TMALL-{TID}" and merged["merged_orders"] == [str(TID + 10)]
    assert [(line["order_id"], line["master_sku"]) for line in merged["lines"]] == [
        (str(TID), "SKU-001-RED-M"), (str(TID + 10), "SKU-002-BLU-30")]
    assert plan_row(engine, TID + 10).merged_into == plan_row(engine, TID).hub_id
    # the warehouse confirms the one document: both orders get their shipment (and their own write-back event)
    outcome = record_confirm(engine, ShipConfirm(sink="wms", document_ref=f"TMALL-{TID}", message_id="m1",
                                                 shipped_at=None, packages=[ConfirmPackage("SF", "SF1", "P1", [])]))
    assert outcome == "recorded"
    with engine.connect() as conn:
        shipped = conn.execute(sa.select(t.orders.c.order_id, t.shipments.c.document)
                               .join(t.orders, t.orders.c.hub_id == t.shipments.c.hub_id)).all()
    assert sorted((o, s["line_refs"]) for o, s in shipped) == [
        (str(TID), [{"line_id": str(TID + 1), "qty": 2}]), (str(TID + 10), [{"line_id": str(TID + 11), "qty": 2}])]


def test_a_change_of_a_merged_order_before_dispatch_regroups_the_merge_and_supersedes_its_document(engine):
    merge = {"name": "merge-same-buyer", "kind": "merge", "within_minutes": 30}
    ingest_records(engine, source(), [trade(TID), trade(TID + 10, line={"outer_sku_id": "SKU-002-BLU-30"})])
    process(engine, tables(merge))
    ingest_records(engine, source(), [trade(TID + 10, status="TRADE_CLOSED", modified="2026-11-11 10:30:00",
                                            line={"status": "TRADE_CLOSED", "outer_sku_id": "SKU-002-BLU-30"})])
    process(engine, tables(merge))
    sink = RecordingSink()
    dispatch_sink(engine, sink)
    assert sink.sent == [f"TMALL-{TID}"]  # the first order alone; the merged document was superseded
    last = releases(engine)[-1]["document"]
    assert last["merged_orders"] == [] and {line["order_id"] for line in last["lines"]} == {str(TID)}


def test_a_plan_that_would_change_what_the_warehouse_picks_after_delivery_is_blocked_for_a_person(engine):
    ingest_records(engine, source(), [trade(TID)])
    process(engine, tables())
    dispatch_sink(engine, RecordingSink())
    route = {"name": "all-from-wh02", "kind": "route", "warehouses": ["WH02"]}
    ingest_records(engine, source(), [trade(TID, seller_memo="x", modified="2026-11-11 11:00:00")])
    process(engine, tables(route))
    row = plan_row(engine, TID)
    assert (row.status, row.group_key) == ("blocked", "changed after delivery")
    with engine.connect() as conn:
        q = conn.execute(sa.select(t.quarantine).where(t.quarantine.c.entity == "order_processing")).one()
    assert q.group_key == "changed after delivery" and "cannot amend it" in q.reason
    # a change that does not touch what is picked (a memo) after delivery sends nothing again
    ingest_records(engine, source(), [trade(TID, seller_memo="y", modified="2026-11-11 11:05:00")])
    assert process(engine, tables()).documents == 0


def test_an_order_whose_planning_fails_unexpectedly_is_quarantined_and_the_others_go_on(engine, monkeypatch):
    import hub.processing.step as step

    real = step.plan_order

    def fragile(order, *args, **kwargs):
        if order.order_id == str(TID):
            raise RuntimeError("a bug in a rule")
        return real(order, *args, **kwargs)

    monkeypatch.setattr(step, "plan_order", fragile)
    ingest_records(engine, source(), [trade(TID), trade(TID + 10)])
    report = process(engine, tables())
    assert (report.failed, report.documents) == (1, 1)
    with engine.connect() as conn:
        row = conn.execute(sa.select(t.quarantine)).one()
    assert (row.external_id, row.group_key) == (str(TID), "processing error RuntimeError")
    monkeypatch.setattr(step, "plan_order", real)  # the fix is deployed: replaying the cause plans it
    step.replan(engine, tables(), [row.attributes["hub_id"]], actor="quarantine-replay")
    assert plan_row(engine, TID).status == "released" and len(releases(engine)) == 2


def test_each_parcel_of_a_multi_parcel_confirm_records_the_channel_lines_its_items_cover(engine):
    two_lines = trade(TID, payment="407.00", total_fee="417.00")
    first = two_lines["orders"]["order"][0]
    second = {**first, "oid": TID + 2, "oid_str": str(TID + 2), "outer_sku_id": "SKU-002-BLU-30", "num": 1,
              "price": "199.00", "total_fee": "199.00", "discount_fee": "0.00", "divide_order_fee": "199.00"}
    two_lines["orders"]["order"].append(second)
    ingest_records(engine, source(), [two_lines])
    process(engine, tables())
    packages = [ConfirmPackage("SF", "SF1", "P1", [("SKU-001-RED-M", 2)]),
                ConfirmPackage("SF", "SF2", "P2", [("SKU-002-BLU-30", 1)])]
    assert record_confirm(engine, ShipConfirm(sink="wms", document_ref=f"TMALL-{TID}", message_id="m1",
                                              shipped_at=None, packages=packages)) == "recorded"
    with engine.connect() as conn:
        shipped = {r.waybill_no: r.document["line_refs"] for r in conn.execute(sa.select(t.shipments))}
    assert shipped == {"SF1": [{"line_id": str(TID + 1), "qty": 2}], "SF2": [{"line_id": str(TID + 2), "qty": 1}]}
