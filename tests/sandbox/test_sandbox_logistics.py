"""The simulated logistics back offices (sandbox/logistics.py): SF Express CSIM, Cainiao LINK e-waybills and
Kuaidi100 tracking (query, subscription, signed pushes), with truth and fault knobs.

Signatures are computed here exactly as a connector would (spec §8), and checked against the spec's worked examples.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from sandbox.logistics import cainiao_digest, kuaidi100_sign, sf_digest
from sandbox.server import running_sandbox

TIMEOUT_S = 5
SF_EXAMPLE = ('{"language":"zh-CN","orderId":"SO20240301001","monthlyCard":"7551234567","expressTypeId":1,'
              '"payMethod":1,"parcelQty":1,"isReturnRoutelabel":1,"cargoDetails":[{"name":"T-shirt","count":1}],'
              '"contactInfoList":[{"contactType":1,"contact":"Sender","mobile":"13800000000","province":"广东省",'
              '"city":"深圳市","county":"南山区","address":"科技园1号"},{"contactType":2,"contact":"Receiver",'
              '"mobile":"13900000000","province":"浙江省","city":"杭州市","county":"西湖区","address":"文三路2号"}]}')


# ----------------------------------------------------------------------------------------------- worked examples


def test_sf_digest_matches_the_spec_worked_example() -> None:
    assert sf_digest(SF_EXAMPLE, "1709265600000", "sf_checkword") == "VhWlsF7+XI4YHy/x9b4joA=="


def test_cainiao_digest_matches_the_spec_worked_example() -> None:
    assert cainiao_digest('{"cpCode":"YTO","sender":{"name":"A"}}', "cn_secret") == "NcBpXrQNPKX4h7wwcqLSYg=="


def test_kuaidi100_signs_match_the_spec_worked_examples() -> None:
    param = '{"com":"yuantong","num":"YT1234567890","resultv2":"4"}'
    assert kuaidi100_sign(param, "kd_key", "CUSTOMER123") == "B63D73480DB2E7637009F397E91F8185"
    assert kuaidi100_sign(param, "mysalt") == "7EA275B5D771461115FB52691F30DDD5"


# ----------------------------------------------------------------------------------------------- SF


@pytest.fixture
def sf(sbx, creds) -> Callable[..., dict]:
    """``sf(service, msg)`` -> (outer answer, decoded apiResultData)."""
    cred = creds["sf"]

    def call(service: str, msg: dict | str, check_word: str | None = None, timeout: float = TIMEOUT_S,
             base: str | None = None, path: str | None = None) -> tuple[dict, dict | None]:
        msg_data = msg if isinstance(msg, str) else json.dumps(msg, ensure_ascii=False, separators=(",", ":"))
        timestamp = str(int(time.time() * 1000))
        form = {"partnerID": cred["partner_id"], "requestID": str(uuid.uuid4()), "serviceCode": service,
                "timestamp": timestamp, "msgData": msg_data,
                "msgDigest": sf_digest(msg_data, timestamp, check_word or cred["check_word"])}
        response = requests.post((base or sbx.url) + (path or cred["service_path"]), data=form, timeout=timeout)
        assert response.status_code == 200, response.text
        answer = response.json()
        return answer, json.loads(answer["apiResultData"]) if answer["apiResultData"] else None

    return call


def sf_order(order_id: str) -> dict:
    msg = json.loads(SF_EXAMPLE)
    msg["orderId"] = order_id
    return msg


def test_sf_create_order_is_idempotent_on_order_id(sf, sbx) -> None:
    answer, result = sf("EXP_RECE_CREATE_ORDER", sf_order("TM-1"))
    assert answer["apiResultCode"] == "A1000" and answer["apiErrorMsg"] == ""
    assert result["success"] is True and result["errorCode"] == "S0000"
    data = result["msgData"]
    waybill = data["waybillNoInfoList"][0]["waybillNo"]
    assert waybill.startswith("SF") and len(waybill) == 15 and data["waybillNoInfoList"][0]["waybillType"] == 1
    assert (data["originCode"], data["destCode"], data["filterResult"]) == ("755", "571", 2)
    _, again = sf("EXP_RECE_CREATE_ORDER", sf_order("TM-1"))
    assert again["msgData"] == data
    _, other = sf("EXP_RECE_CREATE_ORDER", sf_order("TM-2"))
    assert other["msgData"]["waybillNoInfoList"][0]["waybillNo"] != waybill
    truth = sbx.app.truth()["sinks"]["sf"]["waybills"]
    assert truth["TM-1"] == {"received": 2, "created": 1, "waybill_no": waybill, "cancelled": False}
    _, found = sf("EXP_RECE_SEARCH_ORDER_RESP", {"orderId": "TM-1"})
    assert found["msgData"]["waybillNoInfoList"][0]["waybillNo"] == waybill


def test_sf_gateway_and_business_errors(sf) -> None:
    answer, result = sf("EXP_RECE_CREATE_ORDER", sf_order("TM-1"), check_word="wrong")
    assert answer["apiResultCode"] == "A1006" and result is None
    answer, _ = sf("EXP_NOT_A_SERVICE", sf_order("TM-1"))
    assert answer["apiResultCode"] == "A1002"
    bad = sf_order("TM-3")
    bad["contactInfoList"] = bad["contactInfoList"][:1]
    answer, result = sf("EXP_RECE_CREATE_ORDER", bad)
    assert answer["apiResultCode"] == "A1000" and result["success"] is False and result["errorCode"] == "1014"
    _, missing = sf("EXP_RECE_SEARCH_ORDER_RESP", {"orderId": "NOPE"})
    assert missing["success"] is False


def test_sf_routes_follow_tracking_advances_and_cancel_rules(sf, admin) -> None:
    _, result = sf("EXP_RECE_CREATE_ORDER", sf_order("TM-9"))
    waybill = result["msgData"]["waybillNoInfoList"][0]["waybillNo"]
    _, routes = sf("EXP_RECE_SEARCH_ROUTES", {"trackingType": 1, "trackingNumber": [waybill]})
    assert routes["msgData"]["routeResps"] == [{"mailNo": waybill, "routes": []}]
    moved = admin("POST", f"tracking/{waybill}/advance", json={"to": "delivering"})
    assert moved["state"] == "delivering" and len(moved["routes"]) == 3
    _, routes = sf("EXP_RECE_SEARCH_ROUTES", {"trackingType": 2, "trackingNumber": ["TM-9"]})
    assert [r["opCode"] for r in routes["msgData"]["routeResps"][0]["routes"]] == ["50", "30", "44"]
    _, refused = sf("EXP_RECE_UPDATE_ORDER", {"orderId": "TM-9", "dealType": 2})
    assert refused["success"] is False  # collected parcels cannot be cancelled
    _, result = sf("EXP_RECE_CREATE_ORDER", sf_order("TM-10"))
    _, cancelled = sf("EXP_RECE_UPDATE_ORDER", {"orderId": "TM-10", "dealType": 2})
    assert cancelled["success"] is True


def test_sf_fault_knobs(sf, sbx) -> None:
    sbx.app.faults.merge({"sf.http_500": {"calls": 1}, "sf.latency_ms": 200})
    with pytest.raises(AssertionError):
        sf("EXP_RECE_CREATE_ORDER", sf_order("TM-500"))
    started = time.monotonic()
    answer, _ = sf("EXP_RECE_CREATE_ORDER", sf_order("TM-500"))
    assert answer["apiResultCode"] == "A1000" and time.monotonic() - started >= 0.2
    sbx.app.faults.merge({"sf.latency_ms": 0, "sf.timeout_after_success": {
        "calls": 1, "methods": ["EXP_RECE_CREATE_ORDER"], "sleep_s": 3, "mode": "sleep"}})
    with pytest.raises(requests.Timeout):
        sf("EXP_RECE_CREATE_ORDER", sf_order("TM-LOST"), timeout=0.5)
    _, again = sf("EXP_RECE_CREATE_ORDER", sf_order("TM-LOST"))  # the retry gets the first waybill
    truth = sbx.app.truth()["sinks"]["sf"]["waybills"]["TM-LOST"]
    assert (truth["received"], truth["created"]) == (2, 1)
    assert truth["waybill_no"] == again["msgData"]["waybillNoInfoList"][0]["waybillNo"]
    assert truth == sbx.app.truth()["sinks"]["sf"]["waybills"]["TM-LOST"]
    assert sbx.app.truth()["sinks"]["sf"]["waybills"]["TM-500"]["received"] == 1  # the 500 never reached it


def test_sf_standalone_at_the_real_path(sf) -> None:
    with running_sandbox(seed=1, system="sf") as handle:
        creds = requests.get(f"{handle.url}/_sandbox/credentials", timeout=TIMEOUT_S).json()["sf"]
        msg = json.dumps(sf_order("TM-S"), ensure_ascii=False)
        ts = str(int(time.time()))  # seconds, as SF's own demo sends
        form = {"partnerID": creds["partner_id"], "requestID": "r1", "serviceCode": "EXP_RECE_CREATE_ORDER",
                "timestamp": ts, "msgData": msg, "msgDigest": sf_digest(msg, ts, creds["check_word"])}
        answer = requests.post(f"{handle.url}/std/service", data=form, timeout=TIMEOUT_S).json()
        assert json.loads(answer["apiResultData"])["success"] is True
        waybill = json.loads(answer["apiResultData"])["msgData"]["waybillNoInfoList"][0]["waybillNo"]
        moved = requests.post(f"{handle.url}/_sandbox/tracking/{waybill}/advance", json={}, timeout=TIMEOUT_S)
        assert moved.json()["state"] == "collected"


# ----------------------------------------------------------------------------------------------- Cainiao


@pytest.fixture
def cainiao(sbx, creds) -> Callable[..., dict]:
    cred = creds["cainiao"]

    def call(msg_type: str, content: dict, secret: str | None = None, timeout: float = TIMEOUT_S) -> dict:
        text = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
        form = {"msg_type": msg_type, "logistic_provider_id": cred["logistic_provider_id"],
                "logistics_interface": text, "data_digest": cainiao_digest(text, secret or cred["app_secret"])}
        response = requests.post(sbx.url + cred["link_path"], data=form, timeout=timeout)
        assert response.status_code == 200, response.text
        return response.json()

    return call


def waybill_request(cp_code: str = "YTO", *object_ids: str) -> dict:
    address = {"province": "浙江省", "city": "杭州市", "district": "西湖区", "detail": "文三路**"}
    return {"cpCode": cp_code, "sender": {"name": "橙舍仓", "mobile": "13800000000",
                                          "address": {"province": "广东省", "city": "深圳市", "detail": "科技园1号"}},
            "tradeOrderInfoDtos": [{"objectId": oid, "orderInfo": {"orderChannelsType": "TM",
                                                                    "tradeOrderList": ["3817000000000000001"]},
                                    "packageInfo": {"id": "1", "items": [{"name": "T恤", "count": 1}]},
                                    "recipient": {"name": "张**", "mobile": "*******1234", "address": address},
                                    "templateUrl": "http://cloudprint.cainiao.com/template/standard/101"}
                                   for oid in (object_ids or ("OBJ-1",))]}


def test_cainiao_issues_one_waybill_per_object_id(cainiao, sbx) -> None:
    answer = cainiao("TMS_WAYBILL_GET", waybill_request("YTO", "OBJ-1", "OBJ-2"))
    assert answer["success"] is True and answer["errorCode"] is None
    first, second = answer["waybillCloudPrintResponseList"]
    assert first["objectId"] == "OBJ-1" and first["waybillCode"].startswith("YT") and len(first["waybillCode"]) == 15
    assert first["waybillCode"] != second["waybillCode"]
    assert json.loads(first["printData"])["data"]["waybillCode"] == first["waybillCode"]
    again = cainiao("TMS_WAYBILL_GET", waybill_request("YTO", "OBJ-1"))
    assert again["waybillCloudPrintResponseList"][0]["waybillCode"] == first["waybillCode"]
    truth = sbx.app.truth()["sinks"]["cainiao"]["waybills"]
    assert truth["OBJ-1"] == {"received": 2, "created": 1, "cp_code": "YTO", "waybill_code": first["waybillCode"],
                              "cancelled": False}
    assert truth["OBJ-2"]["received"] == 1
    discarded = cainiao("TMS_WAYBILL_DISCARD", {"cpCode": "YTO", "waybillCode": second["waybillCode"]})
    assert discarded["success"] is True and sbx.app.truth()["sinks"]["cainiao"]["waybills"]["OBJ-2"]["cancelled"]


def test_cainiao_errors(cainiao) -> None:
    assert cainiao("TMS_WAYBILL_GET", waybill_request(), secret="wrong")["errorCode"] == "S02"
    assert cainiao("TMS_WAYBILL_GET", waybill_request("NOPE"))["errorCode"] == "B01"
    assert cainiao("TMS_NOTHING", waybill_request())["errorCode"] == "S04"
    broken = waybill_request()
    del broken["tradeOrderInfoDtos"][0]["recipient"]["mobile"]
    assert cainiao("TMS_WAYBILL_GET", broken)["success"] is False


def test_cainiao_fault_knobs(cainiao, sbx, creds) -> None:
    sbx.app.faults.merge({"cainiao.http_500": {"calls": 1}, "cainiao.latency_ms": 200,
                          "cainiao.timeout_after_success": {"calls": 1, "methods": ["TMS_WAYBILL_GET"],
                                                            "sleep_s": 3, "mode": "drop"}})
    with pytest.raises(AssertionError):
        cainiao("TMS_WAYBILL_GET", waybill_request())
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        cainiao("TMS_WAYBILL_GET", waybill_request("ZTO", "OBJ-LOST"))
    assert time.monotonic() - started >= 0.2
    again = cainiao("TMS_WAYBILL_GET", waybill_request("ZTO", "OBJ-LOST"))
    truth = sbx.app.truth()["sinks"]["cainiao"]["waybills"]["OBJ-LOST"]
    assert (truth["received"], truth["created"]) == (2, 1)
    assert truth["waybill_code"] == again["waybillCloudPrintResponseList"][0]["waybillCode"]


def test_cainiao_standalone() -> None:
    with running_sandbox(seed=1, system="cainiao") as handle:
        cred = requests.get(f"{handle.url}/_sandbox/credentials", timeout=TIMEOUT_S).json()["cainiao"]
        text = json.dumps(waybill_request(), ensure_ascii=False)
        form = {"msg_type": "TMS_WAYBILL_GET", "logistic_provider_id": cred["logistic_provider_id"],
                "logistics_interface": text, "data_digest": cainiao_digest(text, cred["app_secret"])}
        answer = requests.post(f"{handle.url}/gateway/link.do", data=form, timeout=TIMEOUT_S).json()
        assert answer["success"] is True


# ----------------------------------------------------------------------------------------------- Kuaidi100


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: object) -> None:
        pass


class Receiver:
    """A tracking callback endpoint: records each push, refuses the first ``failures`` of them."""

    def __init__(self, failures: int = 0) -> None:
        self.received: list[dict[str, str]] = []
        self.failures = failures
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        with self.lock:
            self.received.append({k: request.form[k] for k in request.form})
            ok = len(self.received) > self.failures
        body = {"result": ok, "returnCode": "200" if ok else "500", "message": "成功" if ok else "busy"}
        return Response(json.dumps(body), content_type="application/json")(environ, start_response)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    target = Receiver(failures=1)
    server = make_server("127.0.0.1", 0, target, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield target, f"http://127.0.0.1:{server.port}/kuaidi100/push"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def wait_for(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def kd_query(sbx, cred: dict, com: str, num: str, key: str | None = None) -> dict:
    param = json.dumps({"com": com, "num": num, "resultv2": "4"}, separators=(",", ":"))
    form = {"customer": cred["customer"], "param": param,
            "sign": kuaidi100_sign(param, key or cred["key"], cred["customer"])}
    return requests.post(sbx.url + cred["query_path"], data=form, timeout=TIMEOUT_S).json()


def test_kuaidi100_query_tracks_cainiao_and_wms_waybills(cainiao, sbx, creds, admin, qimen, do_xml) -> None:
    cred = creds["kuaidi100"]
    code = cainiao("TMS_WAYBILL_GET", waybill_request("YTO"))["waybillCloudPrintResponseList"][0]["waybillCode"]
    assert kd_query(sbx, cred, "yuantong", code)["returnCode"] == "500"  # nothing happened yet
    admin("POST", f"tracking/{code}/advance", json={"to": "signed"})
    answer = kd_query(sbx, cred, "yuantong", code)
    assert (answer["message"], answer["status"], answer["state"], answer["ischeck"]) == ("ok", "200", "3", "1")
    assert [e["status"] for e in answer["data"]] == ["签收", "派件", "在途", "揽收"]  # newest first
    assert kd_query(sbx, cred, "zhongtong", code)["returnCode"] == "500"
    assert kd_query(sbx, cred, "yuantong", code, key="wrong")["returnCode"] == "503"
    # Parcels the Qimen WMS shipped are tracked too (auto_ship gives them an SF express code).
    assert qimen(do_xml("DO-1")).status_code == 200
    express = sbx.app.truth()["wms"]["delivery_orders"]["DO-1"]["express_code"]
    admin("POST", f"tracking/{express}/advance", json={"steps": 2})
    assert kd_query(sbx, cred, "shunfeng", express)["state"] == "0"


def test_kuaidi100_subscription_and_signed_pushes_with_retry(sf, sbx, creds, admin, receiver) -> None:
    target, url = receiver
    cred = creds["kuaidi100"]
    _, result = sf("EXP_RECE_CREATE_ORDER", sf_order("TM-P"))
    waybill = result["msgData"]["waybillNoInfoList"][0]["waybillNo"]
    param = json.dumps({"company": "shunfeng", "number": waybill, "key": cred["key"],
                        "parameters": {"callbackurl": url, "salt": "mysalt", "resultv2": "4"}})
    answer = requests.post(sbx.url + cred["subscribe_path"], data={"schema": "json", "param": param},
                           timeout=TIMEOUT_S).json()
    assert answer == {"result": True, "returnCode": "200", "message": "提交成功"}
    duplicate = requests.post(sbx.url + cred["subscribe_path"], data={"schema": "json", "param": param},
                              timeout=TIMEOUT_S).json()
    assert duplicate["returnCode"] == "501"

    admin("POST", f"tracking/{waybill}/advance", json={"to": "in_transit"})
    wait_for(lambda: sum(p["delivered"] for p in sbx.app.truth()["pushes"]["kuaidi100"].values()) == 2)
    assert len(target.received) == 3  # the first attempt was refused and retried with the same body
    assert target.received[0] == target.received[1]
    for form in target.received:
        assert form["sign"] == kuaidi100_sign(form["param"], "mysalt")
    last = json.loads(target.received[-1]["param"])
    assert last["status"] == "polling" and last["lastResult"]["state"] == "0"
    assert [e["status"] for e in last["lastResult"]["data"]] == ["在途", "揽收"]
    pushes = sbx.app.truth()["pushes"]["kuaidi100"]
    assert pushes["1"]["attempts"] == 2 and pushes["2"]["attempts"] == 1


def test_kuaidi100_admin_callback_receives_every_waybill(cainiao, sbx, admin, receiver) -> None:
    target, url = receiver
    target.failures = 0
    status = admin("POST", "kuaidi100/callback", json={"url": url, "salt": "s1"})
    assert status["url"] == url
    code = cainiao("TMS_WAYBILL_GET", waybill_request("STO"))["waybillCloudPrintResponseList"][0]["waybillCode"]
    admin("POST", f"tracking/{code}/advance", json={"to": "signed"})
    wait_for(lambda: len(target.received) == 4)
    final = json.loads(target.received[-1]["param"])
    assert final["status"] == "shutdown" and final["lastResult"]["ischeck"] == "1"
    assert final["lastResult"]["com"] == "shentong"
    assert target.received[-1]["sign"] == kuaidi100_sign(target.received[-1]["param"], "s1")


def test_tracking_admin_off_path_events_and_errors(sbx, sf) -> None:
    answer = requests.post(f"{sbx.url}/_sandbox/tracking/NOPE/advance", json={}, timeout=TIMEOUT_S)
    assert answer.status_code == 404
    _, result = sf("EXP_RECE_CREATE_ORDER", sf_order("TM-OFF"))
    url = f"{sbx.url}/_sandbox/tracking/{result['msgData']['waybillNoInfoList'][0]['waybillNo']}/advance"
    assert requests.post(url, json={"to": "in_transit"}, timeout=TIMEOUT_S).json()["state"] == "in_transit"
    assert requests.post(url, json={"to": "problem"}, timeout=TIMEOUT_S).json()["state"] == "problem"
    # after the problem is solved the parcel continues where it was, it does not start over
    moved = requests.post(url, json={"to": "signed"}, timeout=TIMEOUT_S).json()
    assert [r["state"] for r in moved["routes"]] == ["collected", "in_transit", "problem", "delivering", "signed"]
    assert requests.post(url, json={"to": "delivering"}, timeout=TIMEOUT_S).status_code == 400
    assert requests.post(url, json={"to": "teleported"}, timeout=TIMEOUT_S).status_code == 400


def test_kuaidi100_fault_knobs(cainiao, sbx, creds, admin) -> None:
    cred = creds["kuaidi100"]
    code = cainiao("TMS_WAYBILL_GET", waybill_request("YTO"))["waybillCloudPrintResponseList"][0]["waybillCode"]
    admin("POST", f"tracking/{code}/advance", json={})
    sbx.app.faults.merge({"kuaidi100.http_500": {"calls": 1}, "kuaidi100.latency_ms": 150,
                          "kuaidi100.timeout_after_success": {"calls": 1, "methods": ["query"], "sleep_s": 3}})
    param = json.dumps({"com": "yuantong", "num": code})
    form = {"customer": cred["customer"], "param": param, "sign": kuaidi100_sign(param, cred["key"], cred["customer"])}
    assert requests.post(sbx.url + cred["query_path"], data=form, timeout=TIMEOUT_S).status_code == 500
    with pytest.raises(requests.Timeout):
        requests.post(sbx.url + cred["query_path"], data=form, timeout=0.5)
    started = time.monotonic()
    assert requests.post(sbx.url + cred["query_path"], data=form, timeout=TIMEOUT_S).json()["state"] == "1"
    assert time.monotonic() - started >= 0.15


def test_kuaidi100_standalone() -> None:
    with running_sandbox(seed=1, system="kuaidi100") as handle:
        cred = requests.get(f"{handle.url}/_sandbox/credentials", timeout=TIMEOUT_S).json()["kuaidi100"]
        param = json.dumps({"com": "yuantong", "num": "YT0"})
        form = {"customer": cred["customer"], "param": param,
                "sign": kuaidi100_sign(param, cred["key"], cred["customer"])}
        answer = requests.post(f"{handle.url}/poll/query.do", data=form, timeout=TIMEOUT_S).json()
        assert answer["returnCode"] == "500"
