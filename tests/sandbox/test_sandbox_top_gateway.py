"""The simulated TOP gateway's transport rules: signatures, system-parameter errors, envelopes and fault knobs."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import requests

from connectors.top_signing import sign
from sandbox import clock

INCREMENT = "taobao.trades.sold.increment.get"


def ago(**delta: float) -> str:
    return clock.format_wire(clock.now() - timedelta(**delta))


def window_params() -> dict:
    return {"fields": "tid,status", "start_modified": ago(hours=1), "end_modified": ago()}


@pytest.mark.parametrize("sign_method", ["md5", "hmac", "hmac-sha256"])
def test_gateway_accepts_md5_hmac_and_hmac_sha256_signatures(top, sign_method):
    body = top(INCREMENT, sign_method=sign_method, **window_params())
    assert "trades_sold_increment_get_response" in body, body


def test_gateway_accepts_a_get_with_every_parameter_in_the_query_string(sbx, top_params):
    params = top_params(INCREMENT, **window_params())
    body = requests.get(sbx.top_gateway_url, params=params, timeout=5).json()
    assert body["trades_sold_increment_get_response"]["total_results"] == 0


def test_gateway_verifies_params_split_between_query_string_and_form_body(sbx, top_params):
    params = top_params(INCREMENT, **window_params())
    system = {k: params.pop(k) for k in ("method", "app_key", "timestamp", "sign", "sign_method", "v", "format")}
    body = requests.post(sbx.top_gateway_url, params=system, data=params, timeout=5).json()
    assert "trades_sold_increment_get_response" in body, body


def test_gateway_rejects_a_wrong_signature_with_code_25(sbx, top_params):
    params = top_params(INCREMENT, **window_params())
    params["sign"] = sign(params, "not-the-secret", "md5")
    response = requests.post(sbx.top_gateway_url, data=params, timeout=5)
    assert response.status_code == 200  # TOP reports errors inside a 200 body
    error = response.json()["error_response"]
    assert set(error) == {"code", "msg", "sub_code", "sub_msg", "request_id"}
    assert (error["code"], error["msg"], error["sub_code"]) == (25, "Invalid Signature", "isv.invalid-signature")


def test_gateway_rejects_a_parameter_changed_after_signing_with_code_25(sbx, top_params):
    params = top_params(INCREMENT, **window_params())
    params["fields"] = "tid,status,payment"
    assert requests.post(sbx.top_gateway_url, data=params, timeout=5).json()["error_response"]["code"] == 25


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"method": None}, 21),
        ({"method": "taobao.no.such.api"}, 22),
        ({"app_key": None}, 28),
        ({"app_key": "00000000"}, 29),
        ({"timestamp": None}, 30),
        ({"timestamp": "2024-03-01T12:00:00"}, 31),
        ({"timestamp": clock.format_wire(clock.now() - timedelta(minutes=11))}, 31),
        ({"session": None}, 26),
        ({"session": "6100unknown"}, 27),
        ({"v": None}, 32),
        ({"v": "two"}, 33),
        ({"v": "1.0"}, 34),
        ({"format": "xml"}, 23),
    ],
)
def test_gateway_reports_system_parameter_errors_with_the_spec_codes(sbx, creds, change, code):
    params = {
        "method": INCREMENT,
        "app_key": creds["tmall"]["app_key"],
        "session": creds["tmall"]["shops"][0]["session"],
        "timestamp": clock.format_wire(clock.now()),
        "format": "json",
        "v": "2.0",
        "sign_method": "md5",
        **window_params(),
    }
    for key, value in change.items():
        if value is None:
            params.pop(key)
        else:
            params[key] = value
    params["sign"] = sign(params, creds["tmall"]["app_secret"], "md5")
    error = requests.post(sbx.top_gateway_url, data=params, timeout=5).json()["error_response"]
    assert error["code"] == code, error
    assert error["request_id"]


def test_gateway_answers_24_when_the_sign_is_missing(sbx, top_params):
    params = top_params(INCREMENT, **window_params())
    del params["sign"]
    assert requests.post(sbx.top_gateway_url, data=params, timeout=5).json()["error_response"]["code"] == 24


def test_an_unknown_session_is_checked_only_after_the_signature(sbx, top_params):
    params = top_params(INCREMENT, **window_params())
    params["session"] = "6100tampered"  # changes the signed content: the signature error wins
    assert requests.post(sbx.top_gateway_url, data=params, timeout=5).json()["error_response"]["code"] == 25


def test_expired_sessions_answer_27_invalid_sessionkey_until_the_knob_is_cleared(top, admin):
    admin("POST", "faults", json={"top.expire_sessions": True})
    error = top(INCREMENT, **window_params())["error_response"]
    assert (error["code"], error["msg"], error["sub_code"]) == (27, "Invalid session", "invalid-sessionkey")

    admin("POST", "faults", json={"top.expire_sessions": ["tm-outlet"]})
    assert "error_response" not in top(INCREMENT, shop="tm-flagship", **window_params())
    assert top(INCREMENT, shop="tm-outlet", **window_params())["error_response"]["code"] == 27


def test_throttle_answers_code_7_with_the_ban_seconds_then_recovers(top, admin):
    admin("POST", "faults", json={"top.throttle": {"calls": 2, "ban_seconds": 42}})
    for _ in range(2):
        error = top(INCREMENT, **window_params())["error_response"]
        assert error["code"] == 7
        assert error["msg"] == "App Call Limited"
        assert error["sub_code"] == "accesscontrol.limited-by-api-access-count"
        assert error["sub_msg"] == "This ban will last for 42 more seconds"
    assert "trades_sold_increment_get_response" in top(INCREMENT, **window_params())
    assert admin("GET", "faults")["top.throttle"]["calls"] == 0


def test_http_500_knob_fails_the_next_calls_with_an_html_page(sbx, top_params, admin):
    admin("POST", "faults", json={"top.http_500": {"calls": 1}})
    failed = requests.post(sbx.top_gateway_url, data=top_params(INCREMENT, **window_params()), timeout=5)
    assert failed.status_code == 500
    assert failed.headers["Content-Type"].startswith("text/html")
    ok = requests.post(sbx.top_gateway_url, data=top_params(INCREMENT, **window_params()), timeout=5)
    assert ok.status_code == 200


def test_latency_knob_delays_every_gateway_call(top, admin):
    admin("POST", "faults", json={"top.latency_ms": 150})
    started = time.monotonic()
    top(INCREMENT, **window_params())
    assert time.monotonic() - started >= 0.15


def test_simplified_json_drops_the_response_root_and_the_list_wrappers(top, admin):
    admin("POST", "orders", json={"shop": "tm-flagship", "count": 1})
    window = {"start_modified": ago(hours=1), "end_modified": ago(seconds=-5)}
    body = top(INCREMENT, simplify="true", fields="tid,orders", **window)
    assert set(body) == {"total_results", "trades", "request_id"}
    assert isinstance(body["trades"], list) and isinstance(body["trades"][0]["orders"], list)


def test_faults_endpoint_validates_knobs_and_reset_restores_the_defaults(sbx, admin):
    bad = requests.post(f"{sbx.url}/_sandbox/faults", json={"top.throtle": {"calls": 1}}, timeout=5)
    assert bad.status_code == 400 and "unknown fault knob" in bad.json()["error"]
    bad = requests.post(f"{sbx.url}/_sandbox/faults", json={"top.throttle": {"calls": -1}}, timeout=5)
    assert bad.status_code == 400

    knobs = admin("POST", "faults", json={"top.throttle": {"calls": 3}, "wms.auto_ship": False})
    assert knobs["top.throttle"] == {
        "calls": 3, "ban_seconds": 60, "sub_code": "accesscontrol.limited-by-api-access-count"
    }
    assert knobs["wms.auto_ship"] is False
    knobs = admin("POST", "faults", json={"reset": True})
    assert knobs["top.throttle"]["calls"] == 0 and knobs["wms.auto_ship"] is True


def test_timeout_after_success_applies_the_effect_then_withholds_the_reply(sbx, top_params, admin):
    [tid] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1})["ids"]
    admin(
        "POST",
        "faults",
        json={"top.timeout_after_success": {"calls": 1, "methods": ["taobao.logistics.offline.send"], "sleep_s": 3}},
    )
    params = top_params("taobao.logistics.offline.send", tid=tid, out_sid="SF000000000001", company_code="SF")
    with pytest.raises(requests.Timeout):
        requests.post(sbx.top_gateway_url, data=params, timeout=0.5)
    truth = admin("GET", "truth")
    assert truth["channels"]["tmall"]["tm-flagship"]["orders"][tid]["status"] == "WAIT_BUYER_CONFIRM_GOODS"
    assert truth["writebacks"]["tmall"][tid]["accepted"] == 1


def test_timeout_after_success_in_drop_mode_closes_the_connection_without_a_reply(sbx, top_params, admin):
    [tid] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1})["ids"]
    admin("POST", "faults", json={"top.timeout_after_success": {"calls": 1, "mode": "drop"}})
    params = top_params("taobao.logistics.offline.send", tid=tid, out_sid="SF000000000001", company_code="SF")
    with pytest.raises(requests.ConnectionError):
        requests.post(sbx.top_gateway_url, data=params, timeout=5)
    assert admin("GET", "truth")["writebacks"]["tmall"][tid]["accepted"] == 1


def test_logistics_companies_get_lists_the_carriers_without_a_session(top):
    body = top("taobao.logistics.companies.get", shop=None)
    companies = body["logistics_companies_get_response"]["logistics_companies"]["logistics_company"]
    assert {"SF", "YTO", "ZTO", "STO", "YUNDA", "EMS", "POST", "ZJS", "JD", "OTHER"} == {c["code"] for c in companies}
