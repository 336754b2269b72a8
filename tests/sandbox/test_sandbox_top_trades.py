"""The simulated TOP trade and logistics methods: windows, order, paging, field selection, fullinfo, offline.send."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta

import requests

from sandbox import clock

INCREMENT = "taobao.trades.sold.increment.get"
FULLINFO = "taobao.trade.fullinfo.get"
SEND = "taobao.logistics.offline.send"


def at(**delta: float) -> str:
    """A wire time relative to now (positive = in the past)."""
    return clock.format_wire(clock.now() - timedelta(**delta))


def increment_response(top, **params) -> dict:
    body = top(INCREMENT, **params)
    assert "trades_sold_increment_get_response" in body, body
    return body["trades_sold_increment_get_response"]


def trades_of(response: dict) -> list[dict]:
    return response.get("trades", {}).get("trade", [])


def fullinfo_trade(top, tid: str, fields: str) -> dict:
    body = top(FULLINFO, tid=tid, fields=fields)
    assert "trade_fullinfo_get_response" in body, body
    return body["trade_fullinfo_get_response"]["trade"]


def create(admin, count: int = 1, shop: str = "tm-flagship", **extra) -> list[str]:
    return admin("POST", "orders", json={"shop": shop, "count": count, **extra})["ids"]


def test_increment_get_rejects_a_window_longer_than_one_day_with_code_41(top):
    too_long = {"start_modified": at(days=2), "end_modified": at(hours=23, seconds=59)}
    error = top(INCREMENT, fields="tid", **too_long)["error_response"]
    assert error["code"] == 41 and error["msg"] == "Invalid Arguments"
    assert error["sub_code"].startswith("isv.invalid-parameter")
    # exactly one day is still allowed
    assert "error_response" not in top(INCREMENT, fields="tid", start_modified=at(days=2), end_modified=at(days=1))


def test_increment_get_rejects_a_start_older_than_three_months_with_code_41(top):
    too_old = {"start_modified": at(days=100), "end_modified": at(days=99, hours=23)}
    error = top(INCREMENT, fields="tid", **too_old)["error_response"]
    assert error["code"] == 41


def test_increment_get_requires_fields_and_both_window_ends_with_code_40(top):
    assert top(INCREMENT, start_modified=at(hours=1), end_modified=at())["error_response"]["code"] == 40
    assert top(INCREMENT, fields="tid", end_modified=at())["error_response"]["code"] == 40
    assert top(INCREMENT, fields="tid", start_modified=at(hours=1))["error_response"]["code"] == 40
    assert top(INCREMENT, fields="tid", start_modified="yesterday", end_modified=at())["error_response"]["code"] == 41


def test_increment_get_returns_trades_newest_modified_first_with_ties_by_tid_descending(top, admin):
    older = admin("POST", "orders", json={"shop": "tm-flagship", "count": 2, "at": at(minutes=30)})["ids"]
    newer = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1, "at": at(minutes=10)})["ids"]
    response = increment_response(top, fields="tid,modified", start_modified=at(hours=1), end_modified=at())
    assert [t["tid_str"] for t in trades_of(response)] == [newer[0], older[1], older[0]]


def test_increment_get_window_is_inclusive_at_both_ends_to_the_second(top, admin):
    base = clock.now()
    start, end = base - timedelta(minutes=20), base - timedelta(minutes=10)
    second = timedelta(seconds=1)
    ids = {}
    for name, moment in (("start", start), ("end", end), ("before", start - second), ("after", end + second)):
        [ids[name]] = create(admin, at=clock.format_wire(moment))
    window = {"start_modified": clock.format_wire(start), "end_modified": clock.format_wire(end)}
    response = increment_response(top, fields="tid", **window)
    assert sorted(t["tid_str"] for t in trades_of(response)) == sorted([ids["start"], ids["end"]])
    assert response["total_results"] == 2


def test_increment_get_pages_report_total_results_or_has_next(top, admin):
    ids = admin("POST", "orders", json={"shop": "tm-flagship", "count": 5, "at": at(minutes=5)})["ids"]
    window = {"fields": "tid", "start_modified": at(hours=1), "end_modified": at()}

    first = increment_response(top, page_no=1, page_size=2, **window)
    assert first["total_results"] == 5 and "has_next" not in first
    pages = [increment_response(top, page_no=page, page_size=2, **window) for page in (1, 2, 3)]
    seen = [trade["tid_str"] for page in pages for trade in trades_of(page)]
    assert seen == sorted(ids, key=int, reverse=True)

    with_next = [increment_response(top, page_no=p, page_size=2, use_has_next="true", **window) for p in (1, 2, 3)]
    assert [page["has_next"] for page in with_next] == [True, True, False]
    assert all("total_results" not in page for page in with_next)

    assert top(INCREMENT, page_size=101, **window)["error_response"]["code"] == 41
    assert top(INCREMENT, page_size=0, **window)["error_response"]["code"] == 41


def test_increment_get_empty_result_has_no_trades_key(top):
    response = increment_response(top, fields="tid", start_modified=at(hours=1), end_modified=at())
    assert response["total_results"] == 0
    assert "trades" not in response


def test_increment_get_returns_only_the_requested_fields_and_full_lines_for_orders(top, admin):
    admin("POST", "orders", json={"shop": "tm-flagship", "count": 1, "at": at(minutes=5)})
    window = {"start_modified": at(hours=1), "end_modified": at()}

    [trade] = trades_of(increment_response(top, fields="tid,status,payment", **window))
    assert set(trade) == {"tid", "tid_str", "status", "payment"}

    [trade] = trades_of(increment_response(top, fields="tid,orders", **window))
    line = trade["orders"]["order"][0]
    assert {"oid", "oid_str", "num_iid", "sku_id", "outer_iid", "outer_sku_id", "num", "price", "payment",
            "divide_order_fee", "status"} <= set(line)

    [trade] = trades_of(increment_response(top, fields="tid,orders.oid,orders.num", **window))
    assert all(set(line) == {"oid", "oid_str", "num"} for line in trade["orders"]["order"])


def test_increment_get_only_returns_the_trades_of_the_session_shop(top, admin):
    mine = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1, "at": at(minutes=5)})["ids"]
    theirs = admin("POST", "orders", json={"shop": "tm-outlet", "count": 1, "at": at(minutes=5)})["ids"]
    window = {"fields": "tid", "start_modified": at(hours=1), "end_modified": at()}
    assert [t["tid_str"] for t in trades_of(increment_response(top, shop="tm-flagship", **window))] == mine
    assert [t["tid_str"] for t in trades_of(increment_response(top, shop="tm-outlet", **window))] == theirs


def test_increment_get_filters_by_status(top, admin):
    [paid, closed] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 2, "at": at(minutes=5)})["ids"]
    admin("POST", f"orders/tmall/{closed}/modify", json={"status": "TRADE_CLOSED", "at": at(minutes=4)})
    window = {"fields": "tid", "start_modified": at(hours=1), "end_modified": at()}
    paid_only = increment_response(top, status="WAIT_SELLER_SEND_GOODS", **window)
    assert [t["tid_str"] for t in trades_of(paid_only)] == [paid]
    assert [t["tid_str"] for t in trades_of(increment_response(top, status="ALL_CLOSED", **window))] == [closed]


def test_trade_ids_above_2_53_are_served_as_exact_json_integers_and_strings(sbx, top_params, admin):
    [tid] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1, "at": at(minutes=5)})["ids"]
    assert int(tid) > 2**53
    raw = requests.post(sbx.top_gateway_url, data=top_params(FULLINFO, tid=tid, fields="tid,orders"), timeout=5).text
    assert f'"tid": {tid}' in raw  # the exact digits, not a rounded double
    trade = json.loads(raw)["trade_fullinfo_get_response"]["trade"]
    assert trade["tid"] == int(tid) and trade["tid_str"] == tid
    line = trade["orders"]["order"][0]
    assert line["oid"] > 2**53 and line["oid_str"] == str(line["oid"])


def test_fullinfo_returns_the_trade_of_the_session_shop(top, admin):
    [tid] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1, "at": at(minutes=5)})["ids"]
    trade = fullinfo_trade(top, tid, "tid,status,type,created,pay_time,modified,orders")
    assert trade["status"] == "WAIT_SELLER_SEND_GOODS" and trade["type"] == "fixed"
    assert trade["created"] == trade["pay_time"] == trade["modified"] == at(minutes=5)


def test_fullinfo_of_an_unknown_or_foreign_tid_is_code_15_trade_not_exist(top, admin):
    [foreign] = admin("POST", "orders", json={"shop": "tm-outlet", "count": 1})["ids"]
    for tid in ("3817999999999999999", foreign):
        error = top(FULLINFO, tid=tid, fields="tid")["error_response"]
        assert (error["code"], error["sub_code"]) == (15, "isv.trade-not-exist")


def test_oaid_is_only_returned_together_with_the_receiver_fields(top, admin):
    [tid] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1})["ids"]
    alone = top(FULLINFO, tid=tid, fields="tid,oaid")["trade_fullinfo_get_response"]["trade"]
    assert "oaid" not in alone
    fields = "tid,oaid,receiver_name,receiver_address,created,receiver_mobile,receiver_phone"
    full = top(FULLINFO, tid=tid, fields=fields)["trade_fullinfo_get_response"]["trade"]
    assert full["oaid"]
    assert re.fullmatch(r"\*{7}\d{4}", full["receiver_mobile"]) and full["receiver_name"].endswith("**")


def test_offline_send_ships_the_trade_and_a_second_send_is_rejected_and_counted(top, admin):
    [tid] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1, "at": at(minutes=5)})["ids"]
    ok = top(SEND, tid=tid, out_sid="SF100000000001", company_code="SF")
    assert set(ok) == {"logistics_offline_send_response"}
    assert ok["logistics_offline_send_response"]["shipping"] == {"is_success": True}

    trade = fullinfo_trade(top, tid, "tid,status,modified,consign_time,orders")
    assert trade["status"] == "WAIT_BUYER_CONFIRM_GOODS"
    assert trade["modified"] > at(minutes=5) and trade["consign_time"] == trade["modified"]
    for line in trade["orders"]["order"]:
        assert line["status"] == "WAIT_BUYER_CONFIRM_GOODS"
        assert line["invoice_no"] == "SF100000000001" and line["logistics_company"] == "顺丰速运"

    error = top(SEND, tid=tid, out_sid="SF100000000001", company_code="SF")["error_response"]
    assert (error["code"], error["sub_code"]) == (15, "isv.logistics-offline-service-error")
    assert "already consigned" in error["sub_msg"]
    assert admin("GET", "truth")["writebacks"]["tmall"][tid] == {
        "accepted": 1, "rejected": 1, "out_sid": "SF100000000001", "company_code": "SF",
    }


def test_offline_send_with_an_unknown_company_code_is_rejected_and_counted(top, admin):
    [tid] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1})["ids"]
    error = top(SEND, tid=tid, out_sid="X1", company_code="SHUNFENG")["error_response"]
    assert error["code"] == 15 and error["sub_code"].startswith("isv.")
    assert admin("GET", "truth")["writebacks"]["tmall"][tid]["rejected"] == 1


def test_split_offline_send_marks_the_trade_partly_consigned_until_every_line_ships(top, admin):
    tid = None
    while tid is None:  # find a multi-line trade (the generator makes 1-3 lines)
        [candidate] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1})["ids"]
        lines = fullinfo_trade(top, candidate, "orders.oid")["orders"]["order"]
        if len(lines) > 1:
            tid, oids = candidate, [line["oid_str"] for line in lines]
    top(SEND, tid=tid, out_sid="YT100", company_code="YTO", is_split=1, sub_tid=oids[0])
    assert fullinfo_trade(top, tid, "status")["status"] == "SELLER_CONSIGNED_PART"
    top(SEND, tid=tid, out_sid="YT101", company_code="YTO", is_split=1, sub_tid=",".join(oids[1:]))
    assert fullinfo_trade(top, tid, "status")["status"] == "WAIT_BUYER_CONFIRM_GOODS"


def test_modify_moves_modified_forward_by_at_least_one_second(admin):
    stamp = at(minutes=5)
    [tid] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1, "at": stamp})["ids"]
    earlier = at(minutes=30)  # a modification can never move modified backwards
    changed = admin("POST", f"orders/tmall/{tid}/modify", json={"seller_memo": "加急", "at": earlier})
    assert changed["modified"] == clock.format_wire(clock.parse_wire(stamp) + timedelta(seconds=1))
    later = at(minutes=1)
    assert admin("POST", f"orders/tmall/{tid}/modify", json={"at": later})["modified"] == later


def test_a_modified_trade_moves_into_the_window_of_its_new_modified_time(top, admin):
    [tid] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1, "at": at(minutes=50)})["ids"]
    change = {"seller_memo": "改地址", "receiver_city": "宁波市", "at": at(minutes=5)}
    admin("POST", f"orders/tmall/{tid}/modify", json=change)
    old_window = increment_response(top, fields="tid", start_modified=at(hours=1), end_modified=at(minutes=40))
    new_window = increment_response(
        top, fields="tid,seller_memo,receiver_city", start_modified=at(minutes=10), end_modified=at()
    )
    assert "trades" not in old_window
    [trade] = trades_of(new_window)
    assert (trade["seller_memo"], trade["receiver_city"]) == ("改地址", "宁波市")


def test_index_lag_hides_fresh_writes_from_the_search_but_not_from_fullinfo(top, admin):
    admin("POST", "faults", json={"top.index_lag_s": 0.4})
    [tid] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1, "at": at(minutes=5)})["ids"]
    window = {"fields": "tid", "start_modified": at(hours=1), "end_modified": at()}
    assert increment_response(top, **window)["total_results"] == 0
    assert "trade_fullinfo_get_response" in top(FULLINFO, tid=tid, fields="tid")
    time.sleep(0.5)
    assert increment_response(top, **window)["total_results"] == 1
