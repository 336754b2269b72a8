"""The simulated Pinduoduo gateway (sandbox/pdd.py): signing, window rule, paging, tokens, envelopes and fault knobs.

Every call goes over HTTP to an in-process sandbox, signed the way a connector signs it (spec §4), so the tests
exercise the wire: flat form parameters, unix-second timestamps, ``*_response`` roots and ``error_response``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
import requests

from sandbox import clock
from sandbox.pdd import sign

TIMEOUT_S = 5
LIST = "pdd.order.number.list.increment.get"


@pytest.fixture
def pdd(sbx, creds) -> Callable[..., dict]:
    """``pdd(type, shop=..., token=..., **business)``: a signed form POST; returns the decoded body."""

    def call(method: str, shop: str = "pdd-flagship", token: str | None = None, timestamp: int | None = None,
             timeout: float = TIMEOUT_S, **business) -> dict:
        app = creds["pdd"]
        params = {"type": method, "client_id": app["client_id"], "data_type": "JSON", "version": "V1",
                  "timestamp": str(timestamp or int(time.time())), **{k: str(v) for k, v in business.items()}}
        if method != "pdd.pop.auth.token.refresh":
            params["access_token"] = token or next(s["access_token"] for s in app["shops"] if s["shop"] == shop)
        params["sign"] = sign(params, app["client_secret"])
        resp = requests.post(f"{sbx.url}/pdd/api/router", data=params, timeout=timeout)
        assert resp.status_code == 200
        return resp.json()

    return call


def create(sbx, count: int, ago_s: int = 60, **extra) -> list[str]:
    at = clock.format_wire(clock.now() - timedelta(seconds=ago_s))
    resp = requests.post(f"{sbx.url}/_sandbox/orders", timeout=TIMEOUT_S,
                         json={"channel": "pdd", "shop": "pdd-flagship", "count": count, "at": at, **extra})
    assert resp.status_code == 200, resp.text
    return resp.json()["ids"]


def window(**extra) -> dict:
    now = int(time.time())
    return {"start_updated_at": now - 1500, "end_updated_at": now, "order_status": 5, "refund_status": 5, **extra}


def faults(sbx, knobs: dict) -> None:
    requests.post(f"{sbx.url}/_sandbox/faults", json=knobs, timeout=TIMEOUT_S).raise_for_status()


def test_the_signature_reproduces_the_worked_example_of_the_spec():
    params = {"type": LIST, "client_id": "pdd_client", "access_token": "pdd_token", "timestamp": "1709265600",
              "data_type": "JSON", "version": "V1", "start_updated_at": "1709263800", "end_updated_at": "1709265600",
              "order_status": "5", "refund_status": "5", "is_lucky_flag": "0", "page": "1", "page_size": "100",
              "use_has_next": "true"}
    assert sign(params, "pdd_secret") == "97A5307740E69E5F521D85B1F09A3A29"


def test_a_wrong_signature_a_stale_timestamp_and_an_unknown_type_are_refused(sbx, creds, pdd):
    params = {"type": LIST, "client_id": creds["pdd"]["client_id"], "timestamp": str(int(time.time())),
              "access_token": creds["pdd"]["shops"][0]["access_token"], "data_type": "JSON", "sign": "00"}
    body = requests.post(f"{sbx.url}/pdd/api/router", data=params, timeout=TIMEOUT_S).json()
    assert body["error_response"]["error_code"] == 10017
    assert pdd(LIST, timestamp=int(time.time()) - 3600, **window())["error_response"]["error_code"] == 10018
    assert pdd("pdd.no.such.api")["error_response"]["error_code"] == 10001


def test_a_window_longer_than_thirty_minutes_is_refused_and_thirty_minutes_is_accepted(pdd):
    now = int(time.time())
    too_long = pdd(LIST, start_updated_at=now - 1801, end_updated_at=now, order_status=5, refund_status=5)
    assert too_long["error_response"]["error_code"] == 10000
    assert "30 minutes" in too_long["error_response"]["sub_msg"]
    exact = pdd(LIST, start_updated_at=now - 1800, end_updated_at=now, order_status=5, refund_status=5)
    assert exact["order_sn_increment_get_response"]["total_count"] == 0
    backwards = pdd(LIST, start_updated_at=now, end_updated_at=now - 1, order_status=5, refund_status=5)
    assert backwards["error_response"]["error_code"] == 10000


def test_the_list_is_newest_first_and_pages_cover_every_order_once(sbx, pdd):
    ids = create(sbx, 3, ago_s=120) + create(sbx, 2, ago_s=60)
    pages = [pdd(LIST, page=n, page_size=2, **window())["order_sn_increment_get_response"] for n in (1, 2, 3)]
    assert [p["total_count"] for p in pages] == [5, 5, 5]
    assert [p["has_next"] for p in pages] == [True, True, False]
    seen = [o["order_sn"] for p in pages for o in p["order_sn_list"]]
    assert sorted(seen) == sorted(ids)
    stamps = [o["updated_at"] for p in pages for o in p["order_sn_list"]]
    assert stamps == sorted(stamps, reverse=True)
    order = pages[0]["order_sn_list"][0]
    assert isinstance(order["pay_amount"], float) and order["receiver_name"].startswith("~")
    assert round(order["goods_amount"] - order["discount_amount"] + order["postage"], 2) == order["pay_amount"]


def test_the_page_shift_knob_skips_a_record_on_a_later_page(sbx, pdd):
    ids = create(sbx, 5)
    faults(sbx, {"pdd.page_shift": {"calls": 1, "by": 1}})
    first = pdd(LIST, page=1, page_size=2, **window())["order_sn_increment_get_response"]["order_sn_list"]
    rest = [o for n in (2, 3) for o in pdd(LIST, page=n, page_size=2, **window())
            ["order_sn_increment_get_response"]["order_sn_list"]]
    assert len({o["order_sn"] for o in first + rest}) == len(ids) - 1


def test_late_indexing_hides_orders_from_the_list_but_not_from_the_detail(sbx, pdd):
    faults(sbx, {"pdd.late_index_s": 1.5})
    sn, = create(sbx, 1)
    assert pdd(LIST, **window())["order_sn_increment_get_response"]["total_count"] == 0
    assert pdd("pdd.order.information.get", order_sn=sn)["order_info_get_response"]["order_info"]["order_sn"] == sn
    time.sleep(1.6)
    assert pdd(LIST, **window())["order_sn_increment_get_response"]["total_count"] == 1


def test_throttling_answers_70031_with_the_ban_length_then_serves_again(sbx, pdd):
    faults(sbx, {"pdd.throttle": {"calls": 1, "ban_seconds": 3}})
    err = pdd(LIST, **window())["error_response"]
    assert err["error_code"] == 70031 and "3 more seconds" in err["sub_msg"]
    assert "order_sn_increment_get_response" in pdd(LIST, **window())


def test_expired_tokens_answer_10019_and_a_refreshed_token_works(sbx, creds, pdd):
    faults(sbx, {"pdd.expire_tokens": True})
    assert pdd(LIST, **window())["error_response"]["error_code"] == 10019
    shop = creds["pdd"]["shops"][0]
    grant = pdd("pdd.pop.auth.token.refresh", refresh_token=shop["refresh_token"])["pop_auth_token_refresh_response"]
    assert grant["access_token"] != shop["access_token"] and grant["owner_id"] == shop["owner_id"]
    assert "order_sn_increment_get_response" in pdd(LIST, token=grant["access_token"], **window())
    assert pdd(LIST, **window())["error_response"]["error_code"] == 10019  # the old token died with the refresh


def test_a_timeout_after_success_loses_the_reply_of_the_named_method_only(sbx, pdd):
    sn, = create(sbx, 1)
    faults(sbx, {"pdd.timeout_after_success": {"calls": 1, "methods": ["pdd.order.information.get"],
                                               "sleep_s": 2, "mode": "sleep"}})
    assert pdd(LIST, **window())["order_sn_increment_get_response"]["total_count"] == 1
    with pytest.raises(requests.Timeout):
        pdd("pdd.order.information.get", order_sn=sn, timeout=0.5)


def test_malformed_orders_are_served_broken_and_marked_in_the_truth(sbx, pdd):
    bad_amount, = create(sbx, 1, malformed="bad_amount")
    no_sn, = create(sbx, 1, malformed="missing_order_sn")
    listed = pdd(LIST, **window())["order_sn_increment_get_response"]["order_sn_list"]
    assert {o.get("order_sn") for o in listed} == {bad_amount, None}
    assert next(o for o in listed if o.get("order_sn") == bad_amount)["pay_amount"] == "12.3.4"
    truth = requests.get(f"{sbx.url}/_sandbox/truth", timeout=TIMEOUT_S).json()["channels"]["pdd"]["pdd-flagship"]
    assert truth["orders"][no_sn]["malformed_kind"] == "missing_order_sn"


def test_modify_moves_the_order_and_a_refund_is_listed(sbx, pdd):
    sn, = create(sbx, 1, ago_s=120)
    resp = requests.post(f"{sbx.url}/_sandbox/orders/pdd/{sn}/modify", timeout=TIMEOUT_S,
                         json={"order_status": 2, "refund": {"amount": "10.00", "status": 10}})
    assert resp.status_code == 200, resp.text
    order = pdd("pdd.order.information.get", order_sn=sn)["order_info_get_response"]["order_info"]
    assert order["order_status"] == 2 and order["refund_status"] == 4 and order["receiver_name"] == ""
    refunds = pdd("pdd.refund.list.increment.get", **window())["refund_increment_get_response"]
    assert refunds["total_count"] == 1 and refunds["refund_list"][0]["refund_amount"] == 1000
    assert pdd(LIST, order_status=1, refund_status=5, start_updated_at=window()["start_updated_at"],
               end_updated_at=window()["end_updated_at"])["order_sn_increment_get_response"]["total_count"] == 0


def test_served_alone_the_router_is_at_the_real_path_and_takes_a_json_body():
    from sandbox.server import running_sandbox

    with running_sandbox(seed=1, system="pdd") as alone:
        app = requests.get(f"{alone.url}/_sandbox/credentials", timeout=TIMEOUT_S).json()["pdd"]
        body = {"type": LIST, "client_id": app["client_id"], "access_token": app["shops"][0]["access_token"],
                "timestamp": str(int(time.time())), "data_type": "JSON", "version": "V1",
                **{k: str(v) for k, v in window().items()}}
        body["sign"] = sign(body, app["client_secret"])
        answer = requests.post(f"{alone.url}/api/router", json=body, timeout=TIMEOUT_S).json()
    assert answer["order_sn_increment_get_response"]["total_count"] == 0
