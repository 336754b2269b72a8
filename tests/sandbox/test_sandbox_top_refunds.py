"""Simulated Tmall refunds: lifecycle through the admin API, taobao.refunds.receive.get and taobao.refund.get."""

from __future__ import annotations

from datetime import timedelta

import requests

from sandbox import clock

RECEIVE = "taobao.refunds.receive.get"
REFUND_FIELDS = ("refund_id,tid,oid,status,order_status,good_status,refund_fee,payment,total_fee,has_good_return,"
                 "refund_phase,refund_version,modified,created,sid,company_name,reason,title")


def ago(**delta: float) -> str:
    return clock.format_wire(clock.now() - timedelta(**delta))


def trade(top, tid: str) -> dict:
    return top("taobao.trade.fullinfo.get", tid=tid, fields="tid,status,modified,end_time,orders")[
        "trade_fullinfo_get_response"]["trade"]


def refund_get(top, refund_id: str) -> dict:
    return top("taobao.refund.get", refund_id=refund_id, fields=REFUND_FIELDS)["refund_get_response"]["refund"]


def one_line_trade(admin, shop: str = "tm-flagship", **extra: object) -> str:
    return admin("POST", "orders", json={"shop": shop, "count": 1, "lines": [{"sku": "SKU-001-RED-M", "num": 2}],
                                         **extra})["ids"][0]


def test_a_full_refund_before_shipping_closes_the_line_and_the_trade(top, admin):
    tid = one_line_trade(admin)
    before = trade(top, tid)
    [refund] = admin("POST", f"orders/tmall/{tid}/refund", json={})["refunds"]
    assert refund["status"] == "WAIT_SELLER_AGREE" and refund["refund_phase"] == "onsale"
    assert refund["has_good_return"] is False and refund["good_status"] == "BUYER_NOT_RECEIVED"
    line = before["orders"]["order"][0]
    assert refund["refund_fee"] == line["divide_order_fee"] and refund["oid"] == line["oid"]

    during = trade(top, tid)
    assert during["status"] == "WAIT_SELLER_SEND_GOODS" and during["modified"] > before["modified"]
    assert during["orders"]["order"][0]["refund_status"] == "WAIT_SELLER_AGREE"
    assert during["orders"]["order"][0]["refund_id"] == refund["refund_id"]

    done = admin("POST", f"refunds/tmall/{refund['refund_id']}", json={"status": "SUCCESS"})
    assert done["status"] == "SUCCESS" and done["refund_version"] > refund["refund_version"]
    after = trade(top, tid)
    assert after["status"] == "TRADE_CLOSED" and "end_time" in after
    assert after["orders"]["order"][0]["status"] == "TRADE_CLOSED"
    assert after["orders"]["order"][0]["refund_status"] == "SUCCESS"
    assert refund_get(top, refund["refund_id"])["payment"] == "0.00"


def test_refunding_the_unshipped_rest_of_a_partly_shipped_trade_leaves_it_shipped(top, admin):
    tid = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1, "lines": [
        {"sku": "SKU-001-RED-M", "num": 1}, {"sku": "SKU-002-RED-L", "num": 1}]})["ids"][0]
    first, second = (line["oid"] for line in trade(top, tid)["orders"]["order"])
    shipped = top("taobao.logistics.offline.send", tid=tid, out_sid="SF1", company_code="SF", is_split=1,
                  sub_tid=first)
    assert "logistics_offline_send_response" in shipped
    assert trade(top, tid)["status"] == "SELLER_CONSIGNED_PART"
    [refund] = admin("POST", f"orders/tmall/{tid}/refund", json={"oid": second, "status": "SUCCESS"})["refunds"]
    assert refund["status"] == "SUCCESS"
    after = trade(top, tid)
    assert after["status"] == "WAIT_BUYER_CONFIRM_GOODS"
    assert [line["status"] for line in after["orders"]["order"]] == ["WAIT_BUYER_CONFIRM_GOODS", "TRADE_CLOSED"]


def test_a_return_after_shipping_walks_the_return_states_with_a_growing_refund_version(top, admin):
    tid = one_line_trade(admin)
    top("taobao.logistics.offline.send", tid=tid, out_sid="SF2", company_code="SF")
    admin("POST", f"orders/tmall/{tid}/modify", json={"status": "TRADE_FINISHED"})
    [refund] = admin("POST", f"orders/tmall/{tid}/refund", json={"amount": "10.00", "reason": "尺码拍错"})["refunds"]
    assert refund["refund_phase"] == "aftersale" and refund["has_good_return"] is True
    assert refund["refund_fee"] == "10.00" and refund["good_status"] == "BUYER_RECEIVED"
    versions = [refund["refund_version"]]
    rid = refund["refund_id"]
    for status in ("WAIT_BUYER_RETURN_GOODS", "WAIT_SELLER_CONFIRM_GOODS", "SUCCESS"):
        versions.append(admin("POST", f"refunds/tmall/{rid}", json={"status": status, "company_code": "YTO"}
                              if status == "WAIT_SELLER_CONFIRM_GOODS" else {"status": status})["refund_version"])
    assert versions == sorted(versions) and len(set(versions)) == 4
    final = refund_get(top, rid)
    assert final["good_status"] == "BUYER_RETURNED_GOODS" and final["sid"].startswith("RT")
    assert final["company_name"] == "圆通速递" and final["payment"] != "0.00"
    # a partial refund keeps the trade finished and the line open
    assert trade(top, tid)["status"] == "TRADE_FINISHED"


def test_refund_state_machine_and_input_are_checked_by_the_admin_api(sbx, admin):
    url = f"{sbx.url}/_sandbox"
    tid = one_line_trade(admin)
    [refund] = admin("POST", f"orders/tmall/{tid}/refund", json={})["refunds"]
    rid = refund["refund_id"]
    # no return without shipping; a second open refund on the line is refused; unknown ids are 404
    assert requests.post(f"{url}/refunds/tmall/{rid}", json={"status": "WAIT_BUYER_RETURN_GOODS"},
                         timeout=5).status_code == 400
    assert requests.post(f"{url}/orders/tmall/{tid}/refund", json={}, timeout=5).status_code == 400
    assert requests.post(f"{url}/refunds/tmall/999", json={"status": "SUCCESS"}, timeout=5).status_code == 404
    assert requests.post(f"{url}/orders/tmall/{tid}/refund", json={"oid": 1}, timeout=5).status_code == 404
    admin("POST", f"refunds/tmall/{rid}", json={"status": "CLOSED"})
    assert requests.post(f"{url}/refunds/tmall/{rid}", json={"status": "SUCCESS"}, timeout=5).status_code == 400
    # after the buyer closed it, a new refund may start; amounts above the line are refused
    assert requests.post(f"{url}/orders/tmall/{tid}/refund", json={"amount": "99999.00"}, timeout=5
                         ).status_code == 400
    assert admin("POST", f"orders/tmall/{tid}/refund", json={"amount": "1.00"})["refunds"][0]["refund_fee"] == "1.00"


def test_refunds_receive_get_pages_a_modified_window_newest_first(top, admin):
    tids = [one_line_trade(admin, at=ago(minutes=55)) for _ in range(5)]
    for number, tid in enumerate(tids):
        admin("POST", f"orders/tmall/{tid}/refund", json={"at": ago(minutes=50 - number)})
    admin("POST", f"orders/tmall/{one_line_trade(admin, 'tm-outlet')}/refund", json={})

    window = {"fields": "refund_id,tid,modified,status", "start_modified": ago(hours=1), "end_modified": ago()}
    body = top(RECEIVE, page_size=2, **window)["refunds_receive_get_response"]
    assert body["total_results"] == 5  # the other shop's refund is not visible
    page1 = body["refunds"]["refund"]
    assert [r["tid"] for r in page1] == [int(tids[4]), int(tids[3])]
    assert set(page1[0]) == {"refund_id", "tid", "modified", "status"}
    last = top(RECEIVE, page_size=2, page_no=3, use_has_next="true", **window)["refunds_receive_get_response"]
    assert last["has_next"] is False and "total_results" not in last and len(last["refunds"]["refund"]) == 1
    more = top(RECEIVE, page_size=2, use_has_next="true", **window)["refunds_receive_get_response"]
    assert more["has_next"] is True
    empty = top(RECEIVE, page_no=9, **window)["refunds_receive_get_response"]
    assert "refunds" not in empty
    narrow = top(RECEIVE, fields="tid", start_modified=ago(minutes=47, seconds=30), end_modified=ago(minutes=45),
                 status="WAIT_SELLER_AGREE")["refunds_receive_get_response"]
    assert narrow["total_results"] == 2
    assert top(RECEIVE, status="SUCCESS", **window)["refunds_receive_get_response"]["total_results"] == 0
    assert top(RECEIVE, start_modified=ago(), end_modified=ago(hours=1), fields="tid")["error_response"]["code"] == 41
    assert top(RECEIVE, page_size=101, **window)["error_response"]["code"] == 41


def test_refund_get_hides_other_shops_refunds_and_needs_its_parameters(top, admin):
    tid = one_line_trade(admin, "tm-outlet")
    [refund] = admin("POST", f"orders/tmall/{tid}/refund", json={})["refunds"]
    error = top("taobao.refund.get", refund_id=refund["refund_id"], fields="refund_id")["error_response"]
    assert (error["code"], error["sub_code"]) == (15, "isv.refund-not-exist")
    assert top("taobao.refund.get", fields="refund_id")["error_response"]["code"] == 40
    mine = top("taobao.refund.get", shop="tm-outlet", refund_id=refund["refund_id"], fields="refund_id,refund_fee")
    assert mine["refund_get_response"]["refund"] == {"refund_id": refund["refund_id"],
                                                     "refund_fee": refund["refund_fee"]}


def test_refunds_are_in_the_truth_with_their_version(admin):
    tid = one_line_trade(admin)
    [refund] = admin("POST", f"orders/tmall/{tid}/refund", json={"status": "SUCCESS"})["refunds"]
    truth = admin("GET", "truth")["channels"]["tmall"]["tm-flagship"]
    record = truth["refunds"][refund["refund_id"]]
    assert record["status"] == "SUCCESS" and record["tid"] == tid and record["refund_version"] >= refund[
        "refund_version"]
    assert truth["orders"][tid]["status"] == "TRADE_CLOSED"
