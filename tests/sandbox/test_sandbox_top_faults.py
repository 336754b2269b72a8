"""TOP faults of a Double 11: pages shifting under a reader, degraded list responses, ISP errors, quotas.

(``top.index_lag_s``, ``top.throttle``, ``top.http_500``, ``top.latency_ms`` and ``top.timeout_after_success`` are
demonstrated in test_sandbox_top_gateway.py / test_sandbox_top_trades.py.)
"""

from __future__ import annotations

from datetime import timedelta

import requests

from sandbox import clock

INCREMENT = "taobao.trades.sold.increment.get"


def ago(**delta: float) -> str:
    return clock.format_wire(clock.now() - timedelta(**delta))


def page(top, page_no: int, page_size: int, **params: object) -> list[dict]:
    body = top(INCREMENT, page_no=page_no, page_size=page_size, **params)["trades_sold_increment_get_response"]
    return body.get("trades", {}).get("trade", [])


def test_page_shift_makes_a_forward_reader_miss_a_trade_that_a_backward_reader_keeps(top, admin):
    tids = set()
    for minute in range(10):
        tids |= set(admin("POST", "orders", json={"shop": "tm-flagship", "count": 1, "at": ago(minutes=30 - minute)}
                          )["ids"])
    window = {"fields": "tid,modified", "start_modified": ago(hours=1), "end_modified": ago(minutes=10)}

    admin("POST", "faults", json={"top.page_shift": {"calls": 1}})
    forward = [trade for n in (1, 2, 3) for trade in page(top, n, 4, **window)]
    seen = {str(trade["tid"]) for trade in forward}
    # the first trade of page 1 was modified out of the window, so page 2 started one trade later: one is lost
    assert len(forward) == 9 and len(seen) == 9 and len(tids - seen) == 1
    assert admin("GET", "faults")["top.page_shift"]["calls"] == 0
    # the lost trade is still in the window; the flagged one now sits in a later window
    missed = (tids - seen).pop()
    assert missed in {str(t["tid"]) for t in page(top, 1, 100, **window)}


def test_page_shift_does_not_fire_on_the_last_page(top, admin):
    admin("POST", "orders", json={"shop": "tm-flagship", "count": 2, "at": ago(minutes=30)})
    admin("POST", "faults", json={"top.page_shift": {"calls": 1}})
    window = {"fields": "tid", "start_modified": ago(hours=1), "end_modified": ago(minutes=10)}
    assert len(page(top, 1, 40, **window)) == 2
    assert admin("GET", "faults")["top.page_shift"]["calls"] == 1


def test_degraded_list_drops_orders_and_receiver_fields_of_some_trades_but_fullinfo_has_them(top, admin):
    tids = admin("POST", "orders", json={"shop": "tm-flagship", "count": 20, "at": ago(minutes=5)})["ids"]
    window = {"fields": "tid,status,receiver_name,receiver_city,orders", "start_modified": ago(hours=1),
              "end_modified": ago()}
    admin("POST", "faults", json={"top.degraded_list": {"calls": 1, "ratio": 0.5}})
    degraded = page(top, 1, 100, **window)
    broken = [t for t in degraded if "orders" not in t]
    assert 0 < len(broken) < 20 and all("receiver_name" not in t and "receiver_city" not in t for t in broken)
    assert all("orders" in t and "receiver_name" in t for t in degraded if t not in broken)
    assert all("status" in t for t in degraded)
    # the knob counted one call: the next list is whole; fullinfo never degrades
    assert all("orders" in t for t in page(top, 1, 100, **window))
    full = top("taobao.trade.fullinfo.get", tid=broken[0]["tid"], fields="tid,orders,receiver_name")
    assert "orders" in full["trade_fullinfo_get_response"]["trade"]
    # the same trades degrade every time (deterministic per tid), and ratio 1 degrades all
    admin("POST", "faults", json={"top.degraded_list": {"calls": 1, "ratio": 1, "drop": ["orders"]}})
    assert all("orders" not in t and "receiver_name" in t for t in page(top, 1, 100, **window))
    assert len(tids) == 20


def test_isp_error_answers_code_15_with_an_isp_sub_code_and_applies_nothing(top, admin):
    [tid] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1})["ids"]
    admin("POST", "faults", json={"top.isp_error": {"calls": 1, "methods": ["taobao.logistics.offline.send"]}})
    assert "trades_sold_increment_get_response" in top(INCREMENT, fields="tid", start_modified=ago(hours=1),
                                                       end_modified=ago())  # other methods are not affected
    error = top("taobao.logistics.offline.send", tid=tid, out_sid="SF1", company_code="SF")["error_response"]
    assert (error["code"], error["msg"]) == (15, "Remote Service Error")
    assert error["sub_code"] == "isp.top-remote-connection-timeout"
    assert admin("GET", "truth")["channels"]["tmall"]["tm-flagship"]["orders"][tid]["status"] == \
        "WAIT_SELLER_SEND_GOODS"
    assert "logistics_offline_send_response" in top("taobao.logistics.offline.send", tid=tid, out_sid="SF1",
                                                    company_code="SF")


def test_isp_error_knob_only_takes_isp_sub_codes(sbx):
    answer = requests.post(f"{sbx.url}/_sandbox/faults", json={"top.isp_error": {"sub_code": "isv.nope"}}, timeout=5)
    assert answer.status_code == 400


def test_daily_quota_answers_code_7_with_the_app_quota_sub_code_until_midnight(top, admin):
    admin("POST", "faults", json={"top.daily_quota": 2})
    window = {"fields": "tid", "start_modified": ago(hours=1), "end_modified": ago()}
    assert "trades_sold_increment_get_response" in top(INCREMENT, **window)
    assert "trades_sold_increment_get_response" in top(INCREMENT, **window)
    error = top(INCREMENT, **window)["error_response"]
    assert (error["code"], error["msg"]) == (7, "App Call Limited")
    assert error["sub_code"] == "accesscontrol.limited-by-app-access-count"
    seconds = int(error["sub_msg"].split("for ")[1].split(" ")[0])
    assert 0 < seconds <= 86400
    admin("POST", "faults", json={"top.daily_quota": 0})
    assert "trades_sold_increment_get_response" in top(INCREMENT, **window)


def test_qps_limit_answers_code_7_with_the_frequency_sub_code(top, admin):
    admin("POST", "faults", json={"top.qps_limit": 3})
    window = {"fields": "tid", "start_modified": ago(hours=1), "end_modified": ago()}
    answers = [top(INCREMENT, **window) for _ in range(6)]
    limited = [a["error_response"] for a in answers if "error_response" in a]
    assert limited and all(e["code"] == 7 and e["sub_code"] == "accesscontrol.limited-by-api-access-count"
                           for e in limited)
