"""The store POS connector against the sandbox's POS middleware: receipts become completed orders, returns become
refunds, store stock becomes stock levels, and every fault the middleware has (500s, lost answers, bad records, a
refused key) ends with 0 lost and 0 duplicated against the sandbox's record of truth.

The promises shared with every connector (paging, cursor, replay, late uploads...) are in tests/contract/.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests
import sqlalchemy as sa
import yaml

from connectors.pos.client import classify
from connectors.pos.writeback import ship
from hub.config import load_settings
from hub.errors import ConfigurationError, FatalError, RecordError, TransientError
from hub.models import StockLevel
from hub.runtime import Hub
from hub.status import collect
from hub.store import schema as t
from hub.store.schema_aftersales import refunds as refunds_table
from tests.hub.helpers import set_faults, truth

STORES = ("store-sh-001", "store-hz-002")


def _hub(tmp_path, sandbox, db_url, engine, *, streams=("orders", "refunds"), mappings_dir=None,
         **shop_overrides) -> Hub:
    from sandbox.configuration import orderhub_config

    data = orderhub_config(sandbox.url, db_url, channels=("pos",))
    if mappings_dir is not None:
        data["mappings_dir"] = str(mappings_dir)
    for shop in data["shops"]:
        shop["streams"] = list(streams)
        shop["sync"].update({"initial_lookback_hours": 1, "settle_seconds": 0})
        shop["http"] = {"timeout_s": 2, "attempts": 4}
        shop.update(shop_overrides)
    for sink in data["sinks"]:
        sink["http"] = {"timeout_s": 3, "attempts": 4}
    path = tmp_path / "orderhub.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return Hub(load_settings(path), engine)


def _sell(sandbox, store: str, count: int = 1, **extra) -> list[str]:
    at = (datetime.now(UTC) + timedelta(hours=8) - timedelta(seconds=60)).strftime("%Y-%m-%d %H:%M:%S")
    resp = requests.post(f"{sandbox.url}/_sandbox/orders", timeout=30,
                         json={"channel": "pos", "shop": store, "count": count, "at": at, **extra})
    resp.raise_for_status()
    return resp.json()["ids"]


def _return(sandbox, receipt_no: str, **body) -> str:
    resp = requests.post(f"{sandbox.url}/_sandbox/orders/pos/{receipt_no}/modify", json=body, timeout=30)
    resp.raise_for_status()
    return resp.json()["return_receipt_no"]


def _fen(yuan: str) -> int:
    return int(Decimal(yuan) * 100)


def _orders(engine) -> dict[tuple[str, str], int]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.orders.c.shop, t.orders.c.order_id, sa.func.count())
                            .where(t.orders.c.channel == "pos").group_by(t.orders.c.shop, t.orders.c.order_id))
        return {(r[0], r[1]): r[2] for r in rows}


def assert_every_sale_once(sandbox, engine) -> None:
    stores = truth(sandbox.url)["channels"]["pos"]
    with engine.connect() as conn:
        quarantined = {(r.shop, r.external_id) for r in conn.execute(
            sa.select(t.quarantine.c.shop, t.quarantine.c.external_id).where(t.quarantine.c.status == "open"))}
    held = _orders(engine)
    sales = {(store, no) for store, data in stores.items() for no, o in data["orders"].items() if o["type"] == "SALE"}
    lost = {k for k in sales if k not in held and k not in quarantined
            and not stores[k[0]]["orders"][k[1]]["malformed"]}
    assert not lost, f"lost {sorted(lost)}"
    assert all(n == 1 for n in held.values()), "an order is held twice"
    assert set(held) <= sales, "the hub holds a receipt that is not a sale"


def test_a_sync_takes_every_sale_of_both_stores_as_a_completed_order_and_every_return_as_a_refund(
        tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    hub = _hub(tmp_path, sandbox, db_url, engine)
    sales = {store: _sell(sandbox, store, count=4) for store in STORES}
    returned = _return(sandbox, sales["store-sh-001"][0])  # everything on the receipt comes back
    reports = hub.sync()
    assert {(r.shop, r.stream) for r in reports} == {(s, n) for s in STORES for n in ("orders", "refunds")}
    assert_every_sale_once(sandbox, engine)
    wire = truth(sandbox.url)["channels"]["pos"]["store-sh-001"]["orders"]
    order = hub.order(next(iter(_hub_ids(engine, sales["store-sh-001"][1]))))
    assert order.status == "COMPLETED" and order.shipped_at == order.paid_at == order.created_at
    assert order.paid_total == _fen(wire[order.order_id]["paid_amount"]) == sum(p.amount for p in order.payments)
    assert sum(line.line_paid for line in order.lines) == order.paid_total
    assert order.goods_total - order.discount_total == order.paid_total and order.shipping_fee == 0
    with engine.connect() as conn:
        refund = conn.execute(sa.select(refunds_table).where(refunds_table.c.refund_id == returned)).one()
    assert refund.order_id == sales["store-sh-001"][0] and refund.status == "SUCCESS"
    assert refund.type == "return_refund"
    assert refund.refunded_amount == refund.requested_amount == -_fen(wire[returned]["paid_amount"]) > 0
    again = hub.sync()  # receipts are immutable: reading them again changes nothing
    assert sum(r.result.new + r.result.changed for r in again) == 0


def _hub_ids(engine, order_id: str) -> list[str]:
    with engine.connect() as conn:
        return [r.hub_id for r in conn.execute(sa.select(t.orders.c.hub_id).where(t.orders.c.order_id == order_id))]


def test_a_store_sale_is_never_sent_to_the_warehouse(tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    hub = _hub(tmp_path, sandbox, db_url, engine, streams=("orders",))
    _sell(sandbox, "store-sh-001", count=3)
    hub.sync()
    hub.process()
    hub.dispatch(process_first=False)
    assert len(_orders(engine)) == 3
    assert truth(sandbox.url)["wms"]["delivery_orders"] == {}


def test_malformed_receipts_are_quarantined_with_their_reasons_and_the_good_ones_land(tmp_path, sandbox, db_url,
                                                                                     engine):
    hub = _hub(tmp_path, sandbox, db_url, engine, streams=("orders",))
    good = _sell(sandbox, "store-sh-001", count=3)
    for kind in ("bad_amount", "missing_receipt_no", "unknown_payment"):
        _sell(sandbox, "store-sh-001", malformed=kind)
    hub.sync(shop="store-sh-001")
    with engine.connect() as conn:
        rows = list(conn.execute(sa.select(t.quarantine).where(t.quarantine.c.status == "open")))
    assert sorted(r.group_key for r in rows) == ["invalid paid_total", "missing order_id",
                                                 "unmapped payment_method=E_CNY"]
    assert all(r.channel == "pos" and r.shop == "store-sh-001" and r.payload and r.reason for r in rows)
    assert set(good) <= {k[1] for k in _orders(engine)}
    assert_every_sale_once(sandbox, engine)


def test_server_errors_and_lost_answers_are_retried_and_nothing_is_lost_or_doubled(tmp_path, sandbox, db_url,
                                                                                  engine):
    hub = _hub(tmp_path, sandbox, db_url, engine, streams=("orders",), sync={
        "initial_lookback_hours": 1, "settle_seconds": 0, "page_size": 2, "lag_seconds": 0},
        http={"timeout_s": 2, "attempts": 5})  # two 500s and two lost answers in a row: the fifth try gets through
    _sell(sandbox, "store-sh-001", count=5)
    set_faults(sandbox.url, pos__http_500={"calls": 2},
               pos__timeout_after_success={"calls": 2, "methods": ["receipts"], "mode": "drop"})
    report, = hub.sync(shop="store-sh-001")
    assert report.result.new == 5 and report.pages >= 3
    hub.sweep(shop="store-sh-001")
    assert_every_sale_once(sandbox, engine)


def test_a_refused_api_key_is_a_configuration_error_naming_the_store_and_shown_in_status(tmp_path, sandbox, db_url,
                                                                                        engine):
    hub = _hub(tmp_path, sandbox, db_url, engine, streams=("orders",), api_key={"value": "pk_" + "0" * 40})
    _sell(sandbox, "store-sh-001")
    with pytest.raises(ConfigurationError) as caught:
        hub.sync(shop="store-sh-001")
    assert "store-sh-001" in caught.value.message and "api_key" in caught.value.how_to_fix
    assert "pk_" not in str(caught.value)  # the key itself never appears in an error
    problems = collect(engine)["source_problems"]
    assert [p["source"] for p in problems] == ["pos/store-sh-001/orders"] and problems[0]["how_to_fix"]


def test_a_receipt_is_fetched_by_its_number_and_an_unknown_number_is_a_record_error(tmp_path, sandbox, db_url,
                                                                                   engine):
    hub = _hub(tmp_path, sandbox, db_url, engine, streams=("orders",))
    receipt_no, = _sell(sandbox, "store-hz-002")
    _sell(sandbox, "store-hz-002", count=3)
    result = hub.sync_order_ids("pos", "store-hz-002", [receipt_no])
    assert result.new == 1 and set(_orders(engine)) == {("store-hz-002", receipt_no)}
    stream = hub.source_connector("pos").open_streams(hub.settings.shop("pos", "store-hz-002"))["orders"]
    with pytest.raises(RecordError):
        stream.fetch_one("HZ002-20200101-000001")
    with pytest.raises(RecordError):
        stream.fetch_one("not-a-receipt")


def test_store_stock_maps_to_stock_levels_of_the_store_and_a_negative_count_is_kept(tmp_path, sandbox, db_url,
                                                                                    engine):
    hub = _hub(tmp_path, sandbox, db_url, engine, streams=("orders",))
    _sell(sandbox, "store-sh-001", lines=[{"sku": "SKU-001-RED-M", "num": 200}])  # more than the shelf holds
    stream = hub.source_connector("pos").open_streams(hub.settings.shop("pos", "store-sh-001"))["stock_levels"]
    assert stream.entity == "stock_level"
    now = datetime.now(UTC)
    past, = list(stream.read_window(now - timedelta(days=2), now - timedelta(days=1)))
    assert past.records == [] and past.is_last  # stock has no history: only the present window reads it
    page, = list(stream.read_window(now - timedelta(minutes=30), now))
    mapper = hub.mapper("pos", "stock_level")
    levels = [mapper.to_model(r, {"channel": "pos", "shop": "store-sh-001"}) for r in page.records]
    assert all(isinstance(s, StockLevel) and s.warehouse_code == "store-sh-001" for s in levels)
    on_hand = truth(sandbox.url)["channels"]["pos"]["store-sh-001"]["stock"]
    assert {s.merchant_sku_code: s.available for s in levels} == on_hand
    assert on_hand["SKU-001-RED-M"] < 0 and stream.external_id(page.records[0])


def test_the_middleware_answers_are_classified_by_who_must_act():
    with pytest.raises(ConfigurationError):
        classify("receipts", 401, {"error": {"code": "UNAUTHORIZED", "message": "bad key"}}, store="s")
    with pytest.raises(ConfigurationError):
        classify("receipts", 404, {"error": {"code": "STORE_NOT_FOUND", "message": "?"}}, store="s")
    with pytest.raises(TransientError):
        classify("receipts", 500, {"error": {"code": "INTERNAL_ERROR", "message": "db"}}, store="s")
    with pytest.raises(TransientError):
        classify("receipts", 200, None, store="s")
    with pytest.raises(FatalError):
        classify("receipts", 400, {"error": {"code": "INVALID_CURSOR", "message": "?"}}, store="s")
    assert classify("stock", 200, {"items": []}, store="s") == {"items": []}


def test_a_shipment_write_back_is_a_documented_no_op_for_a_till_sale():
    result = ship(None, type("O", (), {"order_id": "SH001-20260301-000001"})(), None, "SF")
    assert result.accepted and result.already_done and "till" in result.detail


def test_with_every_pos_fault_switched_on_nothing_is_lost_or_doubled_and_bad_receipts_wait_in_quarantine(
        tmp_path, sandbox, db_url, engine):
    hub = _hub(tmp_path, sandbox, db_url, engine, sync={
        "initial_lookback_hours": 1, "settle_seconds": 0, "page_size": 3, "lag_seconds": 0},
        http={"timeout_s": 2, "attempts": 6})
    first = {store: _sell(sandbox, store, count=4) for store in STORES}
    hub.sync()  # the cursor is now past everything sold so far
    offline = (datetime.now(UTC) + timedelta(hours=5)).strftime("%Y-%m-%d %H:%M:%S")  # sold 3 h ago (GMT+8 wall)
    late = requests.post(f"{sandbox.url}/_sandbox/orders", timeout=30, json={
        "channel": "pos", "shop": "store-sh-001", "count": 3, "at": offline}).json()["ids"]
    for kind in ("bad_amount", "missing_receipt_no", "unknown_payment"):
        _sell(sandbox, "store-hz-002", malformed=kind)
    returned = [_return(sandbox, first["store-sh-001"][1]), _return(sandbox, first["store-hz-002"][0])]
    _sell(sandbox, "store-hz-002", count=4)
    set_faults(sandbox.url, pos__http_500={"calls": 3},
               pos__timeout_after_success={"calls": 2, "methods": ["receipts"], "mode": "drop"})
    hub.sync()
    hub.sweep()
    hub.sync()  # a second pass over everything: the version guard keeps it idempotent
    assert set(late) <= {k[1] for k in _orders(engine)}  # the offline till's sales, uploaded late, are in
    assert_every_sale_once(sandbox, engine)
    with engine.connect() as conn:
        groups = sorted(r.group_key for r in conn.execute(sa.select(t.quarantine.c.group_key)
                                                          .where(t.quarantine.c.status == "open")))
        refund_ids = {r.refund_id for r in conn.execute(sa.select(refunds_table.c.refund_id))}
    assert groups == ["invalid paid_total", "missing order_id", "unmapped payment_method=E_CNY"]
    assert set(returned) == refund_ids


def test_store_stock_lands_in_the_stock_ledger_per_store_and_a_second_read_changes_nothing(tmp_path, sandbox, db_url,
                                                                                          engine):
    from hub.stock.ledger import levels

    hub = _hub(tmp_path, sandbox, db_url, engine, streams=("stock_levels",))
    _sell(sandbox, "store-hz-002", lines=[{"sku": "SKU-001-RED-M", "num": 150}])  # oversold: negative on hand
    first = hub.sync()
    assert sum(r.result.quarantined for r in first) == 0
    with engine.connect() as conn:
        held = {(lv.warehouse, lv.sku): lv.on_hand for lv in levels(conn)}
    stores = truth(sandbox.url)["channels"]["pos"]
    assert held == {(store, sku): qty for store in STORES for sku, qty in stores[store]["stock"].items()}
    assert held[("store-hz-002", "SKU-001-RED-M")] < 0
    time.sleep(1.1)
    again = hub.sync()
    assert sum(r.result.changed for r in again) == 0 and sum(r.result.received for r in again) == len(held)


def test_a_new_tender_quarantined_today_lands_after_the_mapping_learns_it_and_a_replay(tmp_path, sandbox, db_url,
                                                                                       engine):
    import shutil

    import mappings

    folder = tmp_path / "mappings"
    shutil.copytree(mappings.PACKAGED, folder, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    hub = _hub(tmp_path, sandbox, db_url, engine, streams=("orders",), mappings_dir=folder)
    receipt_no, = _sell(sandbox, "store-sh-001", malformed="unknown_payment")
    hub.sync(shop="store-sh-001")
    assert not _orders(engine)
    pos_map = folder / "pos.yaml"
    pos_map.write_text(pos_map.read_text(encoding="utf-8").replace(
        "    WECHAT_PAY: wechatpay\n", "    WECHAT_PAY: wechatpay\n    E_CNY: ecny\n"), encoding="utf-8")
    assert hub.replay_quarantine(group_key="unmapped payment_method=E_CNY") == {"replayed": 1, "still_bad": 0}
    order = hub.order(_hub_ids(engine, receipt_no)[0])
    assert order.payments[0].method == "ecny" and order.status == "COMPLETED"
