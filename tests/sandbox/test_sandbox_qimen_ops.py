"""The widened Qimen WMS: cancels, multi-parcel and partial shipments, confirm faults, stock book, stock change
reports, returns, and serving the WMS alone at the Qimen gateway path."""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator

import pytest
import requests
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from connectors.qimen_wms.confirms import parse_confirm
from connectors.top_signing import sign, verify
from sandbox.server import running_sandbox
from tests.sandbox.conftest import TIMEOUT_S, wire_time


def answer(response: requests.Response) -> ET.Element:
    assert response.status_code == 200, response.text
    return ET.fromstring(response.content)


def flag_code(response: requests.Response) -> tuple[str | None, str | None]:
    root = answer(response)
    return root.findtext("flag"), root.findtext("code")


def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def multi_line_do(code: str, lines: list[tuple[str, int]], warehouse: str = "WH01", logistics: str = "SF") -> str:
    """A §6.2 deliveryorder.create with one orderLine per (item, planQty)."""
    order_lines = "".join(
        f"<orderLine><orderLineNo>{no}</orderLineNo><sourceOrderCode>T1</sourceOrderCode>"
        f"<subSourceOrderCode>T1-{no}</subSourceOrderCode><itemCode>{item}</itemCode>"
        f"<inventoryType>ZP</inventoryType><planQty>{qty}</planQty></orderLine>"
        for no, (item, qty) in enumerate(lines, start=1)
    )
    return (
        f"<request><deliveryOrder><deliveryOrderCode>{code}</deliveryOrderCode><orderType>JYCK</orderType>"
        f"<warehouseCode>{warehouse}</warehouseCode><logisticsCode>{logistics}</logisticsCode>"
        "<receiverInfo><name>张**</name><mobile>*******1234</mobile><province>浙江省</province><city>杭州市</city>"
        "<detailAddress>文三路**</detailAddress></receiverInfo></deliveryOrder>"
        f"<orderLines>{order_lines}</orderLines></request>"
    )


def cancel_xml(code: str, order_type: str = "JYCK") -> str:
    return (f"<request><warehouseCode>WH01</warehouseCode><ownerCode>C001</ownerCode><orderCode>{code}</orderCode>"
            f"<orderType>{order_type}</orderType><cancelReason>buyer refunded</cancelReason></request>")


def inventory_xml(*criteria: tuple[str, str]) -> str:
    body = "".join(f"<criteria><warehouseCode>{wh}</warehouseCode><ownerCode>C001</ownerCode>"
                   f"<itemCode>{item}</itemCode><inventoryType>ZP</inventoryType></criteria>" for wh, item in criteria)
    return f"<request><criteriaList>{body}</criteriaList></request>"


def return_xml(code: str, lines: list[tuple[str, int]], pre: str = "DO-1", order_type: str = "THRK") -> str:
    order_lines = "".join(
        f"<orderLine><orderLineNo>{no}</orderLineNo><sourceOrderCode>T1</sourceOrderCode><ownerCode>C001</ownerCode>"
        f"<itemCode>{item}</itemCode><inventoryType>ZP</inventoryType><planQty>{qty}</planQty></orderLine>"
        for no, (item, qty) in enumerate(lines, start=1)
    )
    return (f"<request><returnOrder><returnOrderCode>{code}</returnOrderCode><warehouseCode>WH01</warehouseCode>"
            f"<orderType>{order_type}</orderType><preDeliveryOrderCode>{pre}</preDeliveryOrderCode>"
            "<sourcePlatformCode>TM</sourcePlatformCode><logisticsCode>YTO</logisticsCode>"
            "<expressCode>YT0000000001</expressCode><returnReason>尺码不合适</returnReason><buyerNick>t**1</buyerNick>"
            "<senderInfo><name>张**</name><mobile>*******1234</mobile><province>浙江省</province><city>杭州市</city>"
            f"<detailAddress>文三路**</detailAddress></senderInfo></returnOrder><orderLines>{order_lines}</orderLines>"
            "</request>")


def feed(sbx, name: str, after: int = 0, limit: int = 100) -> dict:
    response = requests.get(f"{sbx.url}/qimen/_{name}", params={"after": after, "limit": limit}, timeout=TIMEOUT_S)
    assert response.status_code == 200, response.text
    return response.json()


def stock_of(admin, warehouse: str, item: str) -> dict:
    return admin("GET", "truth")["wms"]["stock"][warehouse][item]


# ------------------------------------------------------------------------------------------------ cancel


@pytest.mark.parametrize("method", ["order.cancel", "taobao.qimen.order.cancel", "deliveryorder.cancel"])
def test_cancel_before_shipping_succeeds_and_releases_the_locked_stock(sbx, qimen, admin, method):
    admin("POST", "faults", json={"wms.auto_ship": False})
    before = stock_of(admin, "WH01", "SKU-001-RED-M")
    assert flag_code(qimen(multi_line_do("DO-1", [("SKU-001-RED-M", 3)]))) == ("success", "0")
    locked = stock_of(admin, "WH01", "SKU-001-RED-M")
    assert (locked["lock_quantity"], locked["quantity"]) == (before["lock_quantity"] + 3, before["quantity"] - 3)

    assert flag_code(qimen(cancel_xml("DO-1"), method=method)) == ("success", "0")
    assert flag_code(qimen(cancel_xml("DO-1"), method=method)) == ("success", "0")  # repeat: still success
    record = admin("GET", "truth")["wms"]["delivery_orders"]["DO-1"]
    assert record["status"] == "CANCELED"
    assert [s["status"] for s in record["status_history"]] == ["ACCEPT", "CANCELED"]
    assert [c["outcome"] for c in record["cancels"]] == ["canceled", "already-canceled"]
    assert record["cancels"][0]["reason"] == "buyer refunded"
    assert stock_of(admin, "WH01", "SKU-001-RED-M") == before
    # A canceled order never ships, and the feed stays empty.
    assert admin("POST", "wms/ship", json={}) == {"shipped": []}
    assert feed(sbx, "confirms")["confirms"] == []


def test_cancel_after_shipping_fails_with_order_already_delivered(sbx, qimen, admin, do_xml):
    qimen(do_xml("DO-1"))  # auto_ship: shipped at once
    reply = qimen(cancel_xml("DO-1"), method="order.cancel")
    assert flag_code(reply) == ("failure", "order-already-delivered")
    record = admin("GET", "truth")["wms"]["delivery_orders"]["DO-1"]
    assert record["status"] == "DELIVERED"
    assert [c["outcome"] for c in record["cancels"]] == ["refused-shipped"]
    # partly shipped counts as shipped too
    admin("POST", "faults", json={"wms.auto_ship": False})
    qimen(multi_line_do("DO-2", [("SKU-001-RED-M", 2)]))
    admin("POST", "wms/ship", json={"codes": ["DO-2"], "partial": True})
    assert flag_code(qimen(cancel_xml("DO-2"), method="order.cancel")) == ("failure", "order-already-delivered")
    assert flag_code(qimen(cancel_xml("NOPE"), method="order.cancel")) == ("failure", "order-not-exist")
    assert flag_code(qimen("<request><warehouseCode>WH01</warehouseCode></request>", method="order.cancel")) == (
        "failure", "missing-parameter")


# ------------------------------------------------------------------------------------------------ shipping variants


def test_multi_parcel_shipment_gives_each_package_its_own_waybill_and_items(sbx, qimen, admin, creds):
    admin("POST", "faults", json={"wms.auto_ship": False})
    qimen(multi_line_do("DO-1", [("SKU-001-RED-M", 2), ("SKU-001-RED-L", 1)], logistics="ZTO"))
    assert admin("POST", "wms/ship", json={"codes": ["DO-1"], "parcels": 3}) == {"shipped": ["DO-1"]}
    [entry] = feed(sbx, "confirms")["confirms"]
    assert verify(entry["params"], creds["qimen_wms"]["app_secret"], body=entry["body"])
    confirm = parse_confirm(entry["body"])  # the hub's own parser reads every package
    assert confirm.confirm_type == 0 and confirm.status == "DELIVERED"
    assert [p.package_code for p in confirm.packages] == ["P1", "P2", "P3"]
    assert len({p.express_code for p in confirm.packages}) == 3
    assert all(p.express_code.startswith("ZTO") and p.logistics_code == "ZTO" for p in confirm.packages)
    assert [p.items for p in confirm.packages] == [[("SKU-001-RED-M", 1)], [("SKU-001-RED-M", 1)],
                                                    [("SKU-001-RED-L", 1)]]
    record = admin("GET", "truth")["wms"]["delivery_orders"]["DO-1"]
    assert [p["express_code"] for p in record["packages"]] == [p.express_code for p in confirm.packages]
    assert record["express_code"] == confirm.packages[0].express_code
    assert [line["shipped_qty"] for line in record["lines"]] == [2, 1]


def test_partial_shipment_sends_an_intermediate_then_a_final_confirm(sbx, qimen, admin):
    admin("POST", "faults", json={"wms.auto_ship": False})
    before = stock_of(admin, "WH01", "SKU-001-RED-M")
    qimen(multi_line_do("DO-1", [("SKU-001-RED-M", 3), ("SKU-001-RED-L", 1)]))
    admin("POST", "wms/ship", json={"codes": ["DO-1"], "partial": True})  # half of 4 units: 2 of line 1
    assert admin("GET", "truth")["wms"]["delivery_orders"]["DO-1"]["status"] == "PARTDELIVERED"
    assert stock_of(admin, "WH01", "SKU-001-RED-M")["on_hand"] == before["on_hand"] - 2
    admin("POST", "wms/ship", json={"codes": ["DO-1"], "parcels": 2})  # the rest, in two parcels

    first, second = feed(sbx, "confirms")["confirms"]
    one, two = parse_confirm(first["body"]), parse_confirm(second["body"])
    assert (one.confirm_type, one.status, two.confirm_type, two.status) == (1, "PARTDELIVERED", 0, "DELIVERED")
    assert one.out_biz_code != two.out_biz_code
    assert [p.package_code for p in one.packages] == ["P1"] and [p.package_code for p in two.packages] == ["P2", "P3"]
    assert one.packages[0].items == [("SKU-001-RED-M", 2)]
    assert [p.items for p in two.packages] == [[("SKU-001-RED-M", 1)], [("SKU-001-RED-L", 1)]]
    lines = [(line.findtext("orderLineNo"), line.findtext("actualQty"))
             for line in ET.fromstring(first["body"]).findall("orderLines/orderLine")]
    assert lines == [("1", "2")]  # actualQty of this shipment only
    record = admin("GET", "truth")["wms"]["delivery_orders"]["DO-1"]
    assert [s["status"] for s in record["status_history"]] == ["ACCEPT", "PARTDELIVERED", "DELIVERED"]
    assert [c["confirm_type"] for c in record["confirms"]] == [1, 0] and record["confirm_seq"] == 2
    after = stock_of(admin, "WH01", "SKU-001-RED-M")
    assert (after["on_hand"], after["lock_quantity"]) == (before["on_hand"] - 3, before["lock_quantity"])


def test_ship_lines_ships_exactly_the_given_units_and_bad_bodies_are_400(sbx, qimen, admin):
    admin("POST", "faults", json={"wms.auto_ship": False})
    qimen(multi_line_do("DO-1", [("SKU-001-RED-M", 1), ("SKU-001-RED-L", 2)]))
    admin("POST", "wms/ship", json={"codes": ["DO-1"], "lines": {"2": 1}})
    [entry] = feed(sbx, "confirms")["confirms"]
    assert parse_confirm(entry["body"]).packages[0].items == [("SKU-001-RED-L", 1)]
    url = f"{sbx.url}/_sandbox/wms/ship"
    for bad in ({"codes": ["DO-1"], "parcels": 0}, {"codes": ["DO-1"], "partial": "yes"},
                {"codes": ["DO-1"], "lines": {"9": 1}}, {"codes": ["DO-1"], "lines": {"2": 5}},
                {"codes": "DO-1"}, {"lines": {"1": 1}}):
        assert requests.post(url, json=bad, timeout=TIMEOUT_S).status_code == 400, bad
    admin("POST", "wms/ship", json={"codes": ["DO-1"], "lines": {"1": 1, "2": 1}})
    assert [c["confirm_type"] for c in admin("GET", "truth")["wms"]["delivery_orders"]["DO-1"]["confirms"]] == [1, 0]
    # one unit left cannot be shipped "partially"
    qimen(multi_line_do("DO-2", [("SKU-001-RED-M", 1)]))
    assert requests.post(url, json={"codes": ["DO-2"], "partial": True}, timeout=TIMEOUT_S).status_code == 400


def test_duplicate_confirm_knob_repeats_the_same_message(sbx, qimen, admin, do_xml):
    admin("POST", "faults", json={"wms.duplicate_confirm": {"calls": 1}})
    qimen(do_xml("DO-1"))
    qimen(do_xml("DO-2"))
    entries = feed(sbx, "confirms")["confirms"]
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert entries[0]["body"] == entries[1]["body"] and entries[0]["params"] == entries[1]["params"]
    assert parse_confirm(entries[2]["body"]).delivery_order_code == "DO-2"
    assert admin("GET", "faults")["wms.duplicate_confirm"]["calls"] == 0
    reported = admin("GET", "truth")["wms"]["reported"]["confirms"]
    assert [r.get("duplicate", False) for r in reported] == [False, True, False]


def test_out_of_order_confirm_lets_the_final_confirm_overtake_the_intermediate_one(sbx, qimen, admin):
    admin("POST", "faults", json={"wms.auto_ship": False, "wms.out_of_order_confirm": True})
    qimen(multi_line_do("DO-1", [("SKU-001-RED-M", 2)]))
    admin("POST", "wms/ship", json={"codes": ["DO-1"], "partial": True})
    assert feed(sbx, "confirms")["confirms"] == []  # held back
    assert len(admin("GET", "truth")["wms"]["held_confirms"]) == 1
    admin("POST", "wms/ship", json={"codes": ["DO-1"]})
    types = [parse_confirm(e["body"]).confirm_type for e in feed(sbx, "confirms")["confirms"]]
    assert types == [0, 1]  # the final arrives first

    # A confirm still held when the knob goes off is released on the next read.
    qimen(multi_line_do("DO-2", [("SKU-001-RED-M", 1)]))
    admin("POST", "wms/ship", json={"codes": ["DO-2"]})
    assert feed(sbx, "confirms")["last_seq"] == 2
    admin("POST", "faults", json={"wms.out_of_order_confirm": False})
    assert feed(sbx, "confirms", after=2)["last_seq"] == 3


def test_auto_ship_default_is_unchanged(sbx, qimen, admin, do_xml):
    assert admin("GET", "faults")["wms.auto_ship"] is True
    qimen(do_xml("DO-1"))
    [entry] = feed(sbx, "confirms")["confirms"]
    confirm = parse_confirm(entry["body"])
    assert (confirm.confirm_type, confirm.out_biz_code, [p.package_code for p in confirm.packages]) == (
        0, "WMS-MSG-000001", ["P1"])


# ------------------------------------------------------------------------------------------------ stock


def test_inventory_query_reports_available_and_locked_stock_per_warehouse(qimen, admin):
    admin("POST", "faults", json={"wms.auto_ship": False})
    seeded = admin("GET", "truth")["wms"]["stock"]
    assert set(seeded) == {"WH01", "WH02"} and len(seeded["WH01"]) == 20
    qimen(multi_line_do("DO-1", [("SKU-001-RED-M", 2)]))
    root = answer(qimen(inventory_xml(("WH01", "SKU-001-RED-M"), ("", "SKU-001-RED-L")), method="inventory.query"))
    assert root.findtext("flag") == "success"
    rows = [{child.tag: child.text or "" for child in item} for item in root.findall("items/item")]
    assert [(r["warehouseCode"], r["itemCode"]) for r in rows] == [
        ("WH01", "SKU-001-RED-M"), ("WH01", "SKU-001-RED-L"), ("WH02", "SKU-001-RED-L")]
    first = seeded["WH01"]["SKU-001-RED-M"]
    assert (int(rows[0]["quantity"]), int(rows[0]["lockQuantity"])) == (first["quantity"] - 2, 2)
    assert rows[0]["inventoryType"] == "ZP" and rows[0]["itemId"].startswith("WMS-IT-")
    assert flag_code(qimen(inventory_xml(("WH09", "SKU-001-RED-M")), method="inventory.query")) == (
        "failure", "invalid-parameter")
    assert flag_code(qimen("<request/>", method="taobao.qimen.inventory.query")) == ("failure", "missing-parameter")


def test_stock_counts_emit_signed_stockchange_reports_with_a_signed_quantity(sbx, admin, creds):
    before = stock_of(admin, "WH01", "SKU-003-GRY-M")
    result = admin("POST", "wms/stock", json={"warehouse": "WH01", "item": "SKU-003-GRY-M", "delta": -2,
                                              "reason": "damaged"})
    assert (result["on_hand"], result["change"]) == (before["on_hand"] - 2, -2)
    admin("POST", "wms/stock", json={"warehouse": "WH01", "item": "SKU-003-GRY-M",
                                     "quantity": before["on_hand"] + 5})
    admin("POST", "wms/stock", json={"warehouse": "WH02", "item": "SKU-003-GRY-M", "delta": 1, "report": False})
    entries = feed(sbx, "stockchanges")["stockchanges"]
    assert len(entries) == 2
    for entry in entries:
        assert entry["params"]["method"] == "stockchange.report"
        assert verify(entry["params"], creds["qimen_wms"]["app_secret"], body=entry["body"])
    items = [ET.fromstring(e["body"]).find("items/item") for e in entries]
    assert [(i.findtext("quantity"), i.findtext("orderType")) for i in items] == [("-2", "QTCK"), ("7", "QTRK")]
    assert items[0].findtext("remark") == "damaged" and items[0].findtext("warehouseCode") == "WH01"
    assert len({i.findtext("outBizCode") for i in items}) == 2
    truth = admin("GET", "truth")["wms"]
    assert [r["quantity"] for r in truth["reported"]["stockchanges"]] == [-2, 7]
    assert truth["stock"]["WH01"]["SKU-003-GRY-M"]["on_hand"] == before["on_hand"] + 5
    url = f"{sbx.url}/_sandbox/wms/stock"
    for bad in ({"warehouse": "WH01", "item": "SKU-003-GRY-M"}, {"warehouse": "WH09", "item": "SKU-003-GRY-M",
                                                                "delta": 1},
                {"warehouse": "WH01", "item": "SKU-003-GRY-M", "delta": -100000}):
        assert requests.post(url, json=bad, timeout=TIMEOUT_S).status_code == 400, bad
    assert requests.post(url, json={"warehouse": "WH01", "item": "NOPE", "delta": 1},
                         timeout=TIMEOUT_S).status_code == 404


def test_stock_report_lag_hides_reports_until_the_lag_has_passed(sbx, qimen, admin):
    admin("POST", "faults", json={"wms.stock_report_lag_s": 0.4})
    admin("POST", "wms/stock", json={"warehouse": "WH01", "item": "SKU-001-RED-M", "delta": 3})
    assert feed(sbx, "stockchanges") == {"stockchanges": [], "last_seq": 0, "has_more": False}
    # inventory.query already sees the change; only the report lags
    level = stock_of(admin, "WH01", "SKU-001-RED-M")
    root = answer(qimen(inventory_xml(("WH01", "SKU-001-RED-M")), method="inventory.query"))
    assert int(root.findtext("items/item/quantity")) == level["quantity"]
    wait_for(lambda: feed(sbx, "stockchanges")["last_seq"] == 1)


# ------------------------------------------------------------------------------------------------ returns


def test_returnorder_create_is_idempotent_and_receiving_emits_a_returnorder_confirm(sbx, qimen, admin, creds):
    first = answer(qimen(return_xml("RO-1", [("SKU-001-RED-M", 2), ("SKU-001-RED-L", 1)]),
                         method="returnorder.create"))
    again = answer(qimen(return_xml("RO-1", [("SKU-001-RED-M", 2)]), method="taobao.qimen.returnorder.create"))
    assert first.findtext("flag") == again.findtext("flag") == "success"
    assert first.findtext("returnOrderId") == again.findtext("returnOrderId") == "WMS-RO-000001"
    record = admin("GET", "truth")["wms"]["returns"]["RO-1"]
    assert (record["received"], record["created"], record["status"]) == (2, 1, "ACCEPT")
    assert record["pre_delivery_order_code"] == "DO-1" and len(record["lines"]) == 2

    before = stock_of(admin, "WH01", "SKU-001-RED-M")
    lines = {"1": 1, "2": {"qty": 1, "inventory_type": "CC"}}
    received = admin("POST", "wms/return/receive", json={"code": "RO-1", "lines": lines})
    assert received == {"received": ["RO-1"]}
    [entry] = feed(sbx, "returns")["returns"]
    assert entry["params"]["method"] == "returnorder.confirm"
    assert verify(entry["params"], creds["qimen_wms"]["app_secret"], body=entry["body"])
    root = ET.fromstring(entry["body"])
    assert root.findtext("returnOrder/returnOrderCode") == "RO-1"
    assert root.findtext("returnOrder/returnOrderId") == "WMS-RO-000001"
    assert root.findtext("returnOrder/outBizCode")
    lines = [(line.findtext("itemCode"), line.findtext("planQty"), line.findtext("actualQty"),
              line.findtext("inventoryType")) for line in root.findall("orderLines/orderLine")]
    assert lines == [("SKU-001-RED-M", "2", "1", "ZP"), ("SKU-001-RED-L", "1", "1", "CC")]
    record = admin("GET", "truth")["wms"]["returns"]["RO-1"]
    assert record["status"] == "FULFILLED" and [line["actual_qty"] for line in record["lines"]] == [1, 1]
    assert stock_of(admin, "WH01", "SKU-001-RED-M")["on_hand"] == before["on_hand"] + 1  # CC stays off the shelf
    assert feed(sbx, "confirms")["confirms"] == []  # returns never enter the hub's confirm feed
    url = f"{sbx.url}/_sandbox/wms/return/receive"
    assert requests.post(url, json={"code": "RO-1"}, timeout=TIMEOUT_S).status_code == 400  # already received
    assert requests.post(url, json={"code": "RO-9"}, timeout=TIMEOUT_S).status_code == 404


def test_returnorder_create_validates_and_an_expected_return_can_be_canceled(qimen, admin):
    assert flag_code(qimen(return_xml("RO-1", [("SKU-001-RED-M", 1)], order_type="JYCK"),
                           method="returnorder.create")) == ("failure", "invalid-parameter")
    assert flag_code(qimen(return_xml("", [("SKU-001-RED-M", 1)]), method="returnorder.create")) == (
        "failure", "missing-parameter")
    qimen(return_xml("RO-2", [("SKU-001-RED-M", 1)]), method="returnorder.create")
    assert flag_code(qimen(cancel_xml("RO-2", order_type="THRK"), method="order.cancel")) == ("success", "0")
    assert admin("GET", "truth")["wms"]["returns"]["RO-2"]["status"] == "CANCELED"


# ------------------------------------------------------------------------------------------------ push, faults


class Receiver:
    """An ERP endpoint recording every WMS callback; refuses stock reports to show the feeds are independent."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict, str]] = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        request = Request(environ)
        params = {k: request.args[k] for k in request.args}
        with self.lock:
            self.received.append((params.get("method", ""), params, request.get_data(as_text=True)))
        flag = "failure" if params.get("method") == "stockchange.report" else "success"
        body = f"<response><flag>{flag}</flag><code>0</code><message/></response>"
        return Response(body, content_type="text/xml")(environ, start_response)

    def methods(self) -> list[str]:
        with self.lock:
            return [method for method, _, _ in self.received]


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: object) -> None:
        pass


@pytest.fixture
def erp() -> Iterator[tuple[Receiver, str]]:
    receiver = Receiver()
    server = make_server("127.0.0.1", 0, receiver, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver, f"http://127.0.0.1:{server.port}/qimen/callback"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def test_every_feed_is_pushed_and_a_refused_feed_does_not_block_the_others(qimen, admin, do_xml, erp):
    receiver, url = erp
    admin("POST", "wms/callback", json={"url": url})
    admin("POST", "wms/stock", json={"warehouse": "WH01", "item": "SKU-001-RED-M", "delta": -1})
    qimen(do_xml("DO-1"))
    qimen(return_xml("RO-1", [("SKU-001-RED-M", 1)]), method="returnorder.create")
    admin("POST", "wms/return/receive", json={"code": "RO-1"})
    wait_for(lambda: {"deliveryorder.confirm", "returnorder.confirm"} <= set(receiver.methods())
             and receiver.methods().count("stockchange.report") >= 2)
    status = admin("GET", "wms/callback")
    assert status["pushed_seq"] == 1 and status["streams"]["returns"]["pushed_seq"] == 1
    assert status["streams"]["stockchanges"]["pushed_seq"] == 0 and status["streams"]["stockchanges"]["failures"] >= 1
    # kinds limits the pushed feeds
    admin("POST", "wms/callback", json={"url": url, "kinds": ["confirms"]})
    assert admin("GET", "wms/callback")["streams"]["stockchanges"]["url"] is None


def test_wms_http_500_knob_answers_an_html_500_without_effect(sbx, qimen, admin, do_xml):
    admin("POST", "faults", json={"wms.http_500": {"calls": 1}})
    reply = qimen(do_xml("DO-1"))
    assert reply.status_code == 500 and "text/html" in reply.headers["Content-Type"]
    assert "DO-1" not in admin("GET", "truth")["wms"]["delivery_orders"]
    assert flag_code(qimen(do_xml("DO-1"))) == ("success", "0")


def test_wms_latency_and_timeout_after_success_apply_to_cancel(qimen, admin):
    admin("POST", "faults", json={"wms.auto_ship": False, "wms.latency_ms": 150,
                                  "wms.timeout_after_success": {"calls": 1, "methods": ["order.cancel"],
                                                                "mode": "drop"}})
    started = time.monotonic()
    qimen(multi_line_do("DO-1", [("SKU-001-RED-M", 1)]))
    assert time.monotonic() - started >= 0.15
    with pytest.raises(requests.ConnectionError):
        qimen(cancel_xml("DO-1"), method="order.cancel")
    assert admin("GET", "truth")["wms"]["delivery_orders"]["DO-1"]["status"] == "CANCELED"  # applied, reply lost
    assert flag_code(qimen(cancel_xml("DO-1"), method="order.cancel")) == ("success", "0")


# ------------------------------------------------------------------------------------------------ standalone


def test_the_wms_served_alone_answers_at_the_qimen_gateway_path():
    with running_sandbox(seed=1, system="qimen_wms") as sbx:
        creds = requests.get(f"{sbx.url}/_sandbox/credentials", timeout=TIMEOUT_S).json()["qimen_wms"]
        assert creds["router_path"] == "/router/qimen/service"
        body = multi_line_do("DO-1", [("SKU-001-RED-M", 1)])
        params = {"method": "taobao.qimen.deliveryorder.create", "app_key": creds["app_key"],
                  "customerId": creds["customer_id"], "format": "xml", "sign_method": "md5",
                  "timestamp": wire_time(), "v": "2.0"}
        params["sign"] = sign(params, creds["app_secret"], "md5", body=body)
        reply = requests.post(sbx.url + creds["router_path"], params=params, data=body.encode(),
                              headers={"Content-Type": "text/xml;charset=utf-8"}, timeout=TIMEOUT_S)
        assert flag_code(reply) == ("success", "0")
        assert requests.post(sbx.url + "/qimen/router", params=params, data=body.encode(),
                             timeout=TIMEOUT_S).status_code == 404
        assert requests.get(sbx.url + "/top/router/rest", timeout=TIMEOUT_S).status_code == 404
        confirms = requests.get(sbx.url + creds["confirms_path"], timeout=TIMEOUT_S).json()["confirms"]
        assert len(confirms) == 1


def test_stock_book_is_deterministic_per_seed():
    with running_sandbox(seed=7) as one, running_sandbox(seed=7) as two, running_sandbox(seed=8) as three:
        assert one.app.truth()["wms"]["stock"] == two.app.truth()["wms"]["stock"]
        assert one.app.truth()["wms"]["stock"] != three.app.truth()["wms"]["stock"]


def test_the_router_signature_rule_matches_the_spec_worked_example():
    # §6.1 worked example: TOP md5 over the sorted query params with the raw body appended.
    params = {"method": "deliveryorder.create", "app_key": "23456789", "customerId": "C001", "format": "xml",
              "sign_method": "md5", "timestamp": "2024-03-01 12:00:00", "v": "2.0"}
    body = "<request><deliveryOrder><deliveryOrderCode>DO001</deliveryOrderCode></deliveryOrder></request>"
    assert sign(params, "qm_secret", "md5", body=body) == "31078346400D6CEA4B3C52556CE01C16"
    assert verify({**params, "sign": "31078346400D6CEA4B3C52556CE01C16"}, "qm_secret", body=body)
