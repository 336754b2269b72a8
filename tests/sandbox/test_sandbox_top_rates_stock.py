"""Simulated Tmall reviews (taobao.traderates.get) and stock pushes (item.quantity.update, skus.quantity.update)."""

from __future__ import annotations

from datetime import timedelta

import requests

from sandbox import clock

RATES = "taobao.traderates.get"
RATE_FIELDS = "tid,oid,num_iid,role,nick,result,created,rated_nick,item_title,item_price,content,valid_score"
SKU = {"outer_sku_id": "SKU-001-RED-M", "num_iid": 600000000001, "sku_id": "5000000001"}
OTHER = {"outer_sku_id": "SKU-001-RED-L", "sku_id": "5000000002"}


def ago(**delta: float) -> str:
    return clock.format_wire(clock.now() - timedelta(**delta))


def finished_trades(admin, count: int) -> list[str]:
    tids = admin("POST", "orders", json={"shop": "tm-flagship", "count": count})["ids"]
    for tid in tids:
        admin("POST", f"orders/tmall/{tid}/modify", json={"status": "TRADE_FINISHED"})
    return tids


def rates(top, **params: object) -> dict:
    body = top(RATES, **{"fields": RATE_FIELDS, "rate_type": "get", "role": "buyer", **params})
    assert "traderates_get_response" in body, body
    return body["traderates_get_response"]


def test_finished_trades_get_deterministic_buyer_reviews_and_seller_replies(sbx, top, admin):
    tids = finished_trades(admin, 12)
    got = rates(top, page_size=150)
    reviews = got["trade_rates"]["trade_rate"]
    assert {str(r["tid"]) for r in reviews} == set(tids)
    assert all(r["role"] == "buyer" and r["rated_nick"] == "橙舍官方旗舰店" for r in reviews)
    assert {r["result"] for r in reviews} <= {"good", "neutral", "bad"}
    given = top(RATES, fields="tid,role,result", rate_type="give", role="seller")["traderates_get_response"]
    assert given["total_results"] == got["total_results"]
    # same seed, same calls -> the same reviews (only the wall-clock dates may differ)
    admin("POST", "reset", json={})
    finished_trades(admin, 12)
    again = rates(top, page_size=150)["trade_rates"]["trade_rate"]

    def essence(found: list[dict]) -> set[tuple]:
        return {(r["tid"], r["oid"], r["result"], r["content"]) for r in found}

    assert essence(again) == essence(reviews)


def test_admin_plants_a_bad_review_that_the_result_filter_finds(top, admin):
    [tid] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1,
                                          "lines": [{"sku": "SKU-003-GRY-M", "num": 1}]})["ids"]
    [review] = admin("POST", f"orders/tmall/{tid}/rate", json={"content": "质量太差"})["rates"]
    assert review["result"] == "bad" and review["content"] == "质量太差"
    bad = rates(top, result="bad")
    assert bad["total_results"] == 1 and str(bad["trade_rates"]["trade_rate"][0]["tid"]) == tid
    assert rates(top, tid=tid)["total_results"] == 1
    assert rates(top, num_iid=600000000003)["total_results"] == 1
    assert rates(top, result="good")["total_results"] == 0


def test_traderates_get_pages_and_checks_the_180_day_window(top, admin):
    finished_trades(admin, 5)
    total = rates(top)["total_results"]
    first = rates(top, page_size=2, use_has_next="true")
    assert first["has_next"] is True and "total_results" not in first
    pages = [rates(top, page_size=2, page_no=n)["trade_rates"]["trade_rate"] for n in range(1, (total + 1) // 2 + 1)]
    assert sum(len(page) for page in pages) == total
    for bad in ({"start_date": ago(days=181)}, {"page_size": 151}, {"page_no": 201}, {"rate_type": "take"},
                {"start_date": ago(), "end_date": ago(days=1)}):
        params = {"fields": "tid", "rate_type": "get", "role": "buyer", **bad}
        assert top(RATES, **params)["error_response"]["code"] == 41, bad
    assert top(RATES, fields="tid", role="buyer")["error_response"]["code"] == 40


def stock(admin, shop: str = "tm-flagship") -> dict:
    return admin("GET", "tmall/stock")[shop]


def test_item_quantity_update_sets_full_and_delta_quantities_and_the_truth_records_each_push(top, admin):
    body = top("taobao.item.quantity.update", num_iid=SKU["num_iid"], sku_id=SKU["sku_id"], quantity=30)
    item = body["item_quantity_update_response"]["item"]
    assert item["num_iid"] == SKU["num_iid"]
    assert item["skus"]["sku"][0]["quantity"] == 30 and item["skus"]["sku"][0]["outer_id"] == SKU["outer_sku_id"]
    assert stock(admin)[SKU["outer_sku_id"]] == 30
    top("taobao.item.quantity.update", num_iid=SKU["num_iid"], outer_id=SKU["outer_sku_id"], quantity=-5, type=2)
    assert stock(admin)[SKU["outer_sku_id"]] == 25
    # a delta below zero is refused by item.quantity.update (spec §1.7: result >= 0)
    error = top("taobao.item.quantity.update", num_iid=SKU["num_iid"], sku_id=SKU["sku_id"], quantity=-26, type=2)
    assert error["error_response"]["code"] == 41
    told = admin("GET", "truth")["stock_told"]["tmall"]["tm-flagship"][SKU["outer_sku_id"]]
    assert [(t["qty"], t["mode"], t["result"]) for t in told] == [(30, "full", 30), (-5, "delta", 25),
                                                                  (-26, "delta", None)]
    assert all(len(t["at"]) == 19 for t in told)
    assert "tm-outlet" not in admin("GET", "truth")["stock_told"]["tmall"] or not admin(
        "GET", "truth")["stock_told"]["tmall"]["tm-outlet"]  # shops keep their own quantities and records
    for bad, code in (({"num_iid": 1, "sku_id": "1", "quantity": 1}, 15),
                      ({"num_iid": SKU["num_iid"], "sku_id": "1", "quantity": 1}, 15),
                      ({"num_iid": SKU["num_iid"], "quantity": 1}, 40),
                      ({"num_iid": SKU["num_iid"], "sku_id": SKU["sku_id"], "quantity": 1, "type": 3}, 41)):
        assert top("taobao.item.quantity.update", **bad)["error_response"]["code"] == code, bad


def test_skus_quantity_update_takes_up_to_20_pairs_and_clamps_a_negative_delta(top, admin):
    pairs = f"{SKU['sku_id']}:7;{OTHER['sku_id']}:9"
    item = top("taobao.skus.quantity.update", num_iid=SKU["num_iid"], skuid_quantities=pairs
               )["skus_quantity_update_response"]["item"]
    assert item["num"] == 16 and len(item["skus"]["sku"]) == 2
    top("taobao.skus.quantity.update", num_iid=SKU["num_iid"], outerid_quantities=f"{OTHER['outer_sku_id']}:-50",
        type=2)
    levels = stock(admin)
    assert (levels[SKU["outer_sku_id"]], levels[OTHER["outer_sku_id"]]) == (7, 0)
    too_many = ";".join(f"{SKU['sku_id']}:{n}" for n in range(21))
    assert top("taobao.skus.quantity.update", num_iid=SKU["num_iid"], skuid_quantities=too_many
               )["error_response"]["code"] == 41
    assert top("taobao.skus.quantity.update", num_iid=SKU["num_iid"])["error_response"]["code"] == 40
    assert top("taobao.skus.quantity.update", num_iid=SKU["num_iid"], skuid_quantities="x"
               )["error_response"]["code"] == 41
    assert top("taobao.skus.quantity.update", num_iid=SKU["num_iid"], skuid_quantities="123:1"
               )["error_response"]["sub_code"] == "isv.sku-not-exist"
    told = admin("GET", "truth")["stock_told"]["tmall"]["tm-flagship"][OTHER["outer_sku_id"]]
    assert [(t["qty"], t["mode"], t["result"]) for t in told] == [(9, "full", 9), (-50, "delta", 0)]


def test_a_new_order_takes_its_quantity_off_the_shelf(sbx, admin):
    before = stock(admin)[SKU["outer_sku_id"]]
    admin("POST", "orders", json={"shop": "tm-flagship", "count": 1, "lines": [{"sku": SKU["outer_sku_id"],
                                                                                "num": 3}]})
    assert stock(admin)[SKU["outer_sku_id"]] == before - 3
    assert requests.get(f"{sbx.url}/_sandbox/tmall/stock", timeout=5).json()["tm-outlet"]
