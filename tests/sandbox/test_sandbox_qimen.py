"""The simulated Qimen WMS: signed deliveryorder.create, idempotency, faults, shipping and confirm delivery."""

from __future__ import annotations

import re
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
import requests
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from connectors.top_signing import verify


def flag_and_code(response: requests.Response) -> tuple[str | None, str | None]:
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.content)
    return root.findtext("flag"), root.findtext("code")


def wait_for(predicate, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_deliveryorder_create_answers_with_the_wms_id_and_echoes_warehouse_and_carrier(qimen, do_xml):
    reply = qimen(do_xml("DO-1", logistics="YTO"))
    root = ET.fromstring(reply.content)
    assert root.findtext("flag") == "success" and root.findtext("code") == "0"
    assert root.findtext("deliveryOrderId") == "WMS-DO-000001"
    assert (root.findtext("warehouseCode"), root.findtext("logisticsCode")) == ("WH01", "YTO")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", root.findtext("createTime"))


def test_deliveryorder_create_is_idempotent_on_the_delivery_order_code(qimen, do_xml, admin):
    first = ET.fromstring(qimen(do_xml("DO-1")).content)
    second = ET.fromstring(qimen(do_xml("DO-1")).content)
    assert second.findtext("flag") == "success"
    assert second.findtext("deliveryOrderId") == first.findtext("deliveryOrderId")
    record = admin("GET", "truth")["wms"]["delivery_orders"]["DO-1"]
    assert (record["received"], record["created"]) == (2, 1)
    assert record["source_order_codes"] == ["3817000000000000001"]
    assert record["shop_nick"] == "橙舍官方旗舰店"
    assert len(admin("GET", "truth")["wms"]["delivery_orders"]) == 1


def test_the_long_taobao_qimen_method_name_is_accepted(qimen, do_xml):
    assert flag_and_code(qimen(do_xml("DO-1"), method="taobao.qimen.deliveryorder.create")) == ("success", "0")


def test_qimen_rejects_a_wrong_signature_with_sign_check_failure(qimen, do_xml, admin):
    assert flag_and_code(qimen(do_xml("DO-1"), secret="wrong-secret")) == ("failure", "sign-check-failure")
    assert "DO-1" not in admin("GET", "truth")["wms"]["delivery_orders"]


def test_qimen_signature_covers_the_raw_body(sbx, qimen_params, do_xml):
    params = qimen_params(do_xml("DO-1"))
    tampered = do_xml("DO-1").replace("<planQty>2</planQty>", "<planQty>20</planQty>")
    reply = requests.post(sbx.qimen_router_url, params=params, data=tampered.encode(), timeout=5)
    assert flag_and_code(reply) == ("failure", "sign-check-failure")


def test_qimen_rejects_unknown_items_and_missing_codes(qimen, do_xml):
    assert flag_and_code(qimen(do_xml("DO-1", item="SKU-999-NOPE-M"))) == ("failure", "invalid-parameter")
    assert flag_and_code(qimen(do_xml(""))) == ("failure", "missing-parameter")
    assert flag_and_code(qimen("<request><deliveryOrder>")) == ("failure", "invalid-xml")


def test_fail_create_knob_fails_with_system_error_and_a_retry_creates_exactly_once(qimen, do_xml, admin):
    admin("POST", "faults", json={"wms.fail_create": {"calls": 1}})
    assert flag_and_code(qimen(do_xml("DO-1"))) == ("failure", "system-error")
    assert flag_and_code(qimen(do_xml("DO-1"))) == ("success", "0")
    record = admin("GET", "truth")["wms"]["delivery_orders"]["DO-1"]
    assert (record["received"], record["created"]) == (2, 1)


def test_wms_timeout_after_success_creates_the_order_but_withholds_the_reply(qimen, do_xml, admin):
    admin("POST", "faults", json={"wms.timeout_after_success": {"calls": 1, "mode": "drop"}})
    with pytest.raises(requests.ConnectionError):
        qimen(do_xml("DO-1"))
    assert flag_and_code(qimen(do_xml("DO-1"))) == ("success", "0")
    record = admin("GET", "truth")["wms"]["delivery_orders"]["DO-1"]
    assert (record["received"], record["created"]) == (2, 1)


def test_auto_ship_puts_a_confirm_in_the_feed_whose_signature_verifies_with_the_wms_secret(
    sbx, qimen, do_xml, creds, admin
):
    qimen(do_xml("DO-1", tid="3817000000000000001"))
    feed = requests.get(sbx.qimen_confirms_url, params={"after": 0}, timeout=5).json()
    assert feed["last_seq"] == 1
    [confirm] = feed["confirms"]
    params, body = confirm["params"], confirm["body"]
    assert confirm["seq"] == 1
    assert {k: params[k] for k in ("method", "format", "sign_method", "v", "customerId")} == {
        "method": "deliveryorder.confirm", "format": "xml", "sign_method": "md5", "v": "2.0", "customerId": "C001",
    }
    assert verify(params, creds["qimen_wms"]["app_secret"], body=body)
    assert not verify(params, "another-secret", body=body)

    root = ET.fromstring(body)
    header = root.find("deliveryOrder")
    assert header.findtext("deliveryOrderCode") == "DO-1"
    assert header.findtext("deliveryOrderId") == "WMS-DO-000001"
    assert (header.findtext("status"), header.findtext("confirmType")) == ("DELIVERED", "0")
    assert header.findtext("outBizCode")
    package = root.find("packages/package")
    assert package.findtext("logisticsCode") == "SF"
    assert re.fullmatch(r"SF\d{12}", package.findtext("expressCode"))
    items = [(item.findtext("itemCode"), item.findtext("quantity")) for item in package.findall("items/item")]
    assert items == [("SKU-001-RED-M", "2")]
    [line] = root.findall("orderLines/orderLine")
    assert [line.findtext(tag) for tag in ("itemCode", "planQty", "actualQty")] == ["SKU-001-RED-M", "2", "2"]

    record = admin("GET", "truth")["wms"]["delivery_orders"]["DO-1"]
    assert record["status"] == "DELIVERED" and record["express_code"] == package.findtext("expressCode")


def test_with_auto_ship_off_orders_wait_until_shipped_through_the_admin_api(sbx, qimen, do_xml, admin):
    admin("POST", "faults", json={"wms.auto_ship": False})
    qimen(do_xml("DO-1"))
    qimen(do_xml("DO-2", logistics="ZTO"))
    assert requests.get(sbx.qimen_confirms_url, timeout=5).json() == {"confirms": [], "last_seq": 0, "has_more": False}
    assert admin("GET", "truth")["wms"]["delivery_orders"]["DO-1"]["status"] == "ACCEPT"

    assert admin("POST", "wms/ship", json={"codes": ["DO-2"]}) == {"shipped": ["DO-2"]}
    assert admin("POST", "wms/ship", json={}) == {"shipped": ["DO-1"]}
    feed = requests.get(sbx.qimen_confirms_url, params={"after": 0, "limit": 1}, timeout=5).json()
    assert (feed["last_seq"], feed["has_more"]) == (1, True)
    assert "<expressCode>ZTO" in feed["confirms"][0]["body"]
    feed = requests.get(sbx.qimen_confirms_url, params={"after": feed["last_seq"]}, timeout=5).json()
    assert [c["seq"] for c in feed["confirms"]] == [2] and feed["has_more"] is False


def test_confirm_out_biz_codes_are_unique_per_message(sbx, qimen, do_xml):
    for code in ("DO-1", "DO-2", "DO-3"):
        qimen(do_xml(code))
    bodies = [c["body"] for c in requests.get(sbx.qimen_confirms_url, timeout=5).json()["confirms"]]
    out_biz = [ET.fromstring(body).findtext("deliveryOrder/outBizCode") for body in bodies]
    assert len(set(out_biz)) == 3


class ErpReceiver:
    """A tiny ERP endpoint that records confirm pushes and fails the first ``failures`` of them."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[dict, str]] = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        request = Request(environ)
        with self.lock:
            self.received.append(({k: request.args[k] for k in request.args}, request.get_data(as_text=True)))
            flag = "failure" if len(self.received) <= self.failures else "success"
        body = f"<response><flag>{flag}</flag><code>{'0' if flag == 'success' else 'busy'}</code><message/></response>"
        return Response(body, content_type="text/xml")(environ, start_response)


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: object) -> None:
        pass


@pytest.fixture
def erp() -> Iterator[tuple[ErpReceiver, str]]:
    receiver = ErpReceiver(failures=1)
    server = make_server("127.0.0.1", 0, receiver, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver, f"http://127.0.0.1:{server.port}/qimen/confirm"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def test_confirms_are_pushed_to_the_registered_callback_and_retried_until_accepted(qimen, do_xml, admin, creds, erp):
    receiver, url = erp
    status = admin("POST", "wms/callback", json={"url": url})
    assert status["url"] == url and status["pushed_seq"] == 0
    qimen(do_xml("DO-1"))
    wait_for(lambda: admin("GET", "wms/callback")["pushed_seq"] == 1)

    assert len(receiver.received) == 2  # first push answered failure, the retry was accepted
    (params1, body1), (params2, body2) = receiver.received
    assert body1 == body2 and params1 == params2  # a retry resends the same message (same outBizCode)
    assert verify(params2, creds["qimen_wms"]["app_secret"], body=body2)
    status = admin("GET", "wms/callback")
    assert (status["delivered"], status["failures"]) == (1, 1)
