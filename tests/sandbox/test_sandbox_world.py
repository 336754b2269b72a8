"""The seeded world behind the simulators: determinism, money consistency, masking, malformed kinds, truth shape."""

from __future__ import annotations

import json
from decimal import Decimal

import requests

from connectors.top_signing import sign
from sandbox import clock
from sandbox.server import running_sandbox

FIXED_AT = "2026-03-01 10:00:00"
FULL_FIELDS = (
    "tid,status,type,seller_nick,buyer_nick,buyer_open_uid,buyer_message,seller_memo,created,pay_time,modified,"
    "total_fee,discount_fee,adjust_fee,post_fee,payment,alipay_no,receiver_name,receiver_mobile,receiver_phone,"
    "receiver_state,receiver_city,receiver_district,receiver_address,receiver_zip,oaid,orders"
)


def fullinfo(url: str, tid: str, fields: str = FULL_FIELDS, shop_index: int = 0) -> dict:
    creds = requests.get(f"{url}/_sandbox/credentials", timeout=5).json()["tmall"]
    params = {
        "method": "taobao.trade.fullinfo.get",
        "app_key": creds["app_key"],
        "session": creds["shops"][shop_index]["session"],
        "timestamp": clock.format_wire(clock.now()),
        "format": "json",
        "v": "2.0",
        "sign_method": "md5",
        "tid": tid,
        "fields": fields,
    }
    params["sign"] = sign(params, creds["app_secret"], "md5")
    return requests.post(f"{url}/top/router/rest", data=params, timeout=5).json()


def first_orders(seed: int) -> tuple[dict, list[dict]]:
    with running_sandbox(seed=seed) as sbx:
        creds = requests.get(f"{sbx.url}/_sandbox/credentials", timeout=5).json()
        ids = requests.post(
            f"{sbx.url}/_sandbox/orders", json={"shop": "tm-flagship", "count": 3, "at": FIXED_AT}, timeout=5
        ).json()["ids"]
        return creds, [fullinfo(sbx.url, tid) for tid in ids]


def without_request_id(body: dict) -> dict:
    return {k: v for k, v in body["trade_fullinfo_get_response"].items() if k != "request_id"}


def test_two_worlds_with_the_same_seed_serve_identical_credentials_and_orders_when_at_is_fixed():
    creds_a, orders_a = first_orders(seed=7)
    creds_b, orders_b = first_orders(seed=7)
    assert creds_a == creds_b
    assert [without_request_id(o) for o in orders_a] == [without_request_id(o) for o in orders_b]


def test_different_seeds_give_different_credentials_and_orders():
    creds_a, orders_a = first_orders(seed=1)
    creds_b, orders_b = first_orders(seed=2)
    assert creds_a["tmall"]["app_secret"] != creds_b["tmall"]["app_secret"]
    assert creds_a["tmall"]["shops"][0]["session"] != creds_b["tmall"]["shops"][0]["session"]
    assert orders_a != orders_b


def test_credentials_list_both_shops_and_the_wms_with_the_documented_shape(creds):
    tmall, wms = creds["tmall"], creds["qimen_wms"]
    assert len(tmall["app_key"]) == 8 and tmall["app_key"].isdigit()
    assert (tmall["sign_method"], tmall["gateway_path"]) == ("md5", "/top/router/rest")
    assert [s["shop"] for s in tmall["shops"]] == ["tm-flagship", "tm-outlet"]
    assert all({"seller_nick", "session", "refresh_token", "expires_at"} <= set(s) for s in tmall["shops"])
    assert (wms["customer_id"], wms["warehouses"], wms["router_path"]) == ("C001", ["WH01", "WH02"], "/qimen/router")


def test_trade_money_fields_add_up(sbx, admin):
    ids = admin("POST", "orders", json={"shop": "tm-flagship", "count": 30, "at": FIXED_AT})["ids"]
    for tid in ids:
        trade = fullinfo(sbx.url, tid)["trade_fullinfo_get_response"]["trade"]
        money = {k: Decimal(trade[k]) for k in ("total_fee", "discount_fee", "post_fee", "payment")}
        assert all(trade[k] == f"{money[k]:.2f}" for k in money)  # strings with exactly two decimals
        assert money["post_fee"] in (Decimal("0.00"), Decimal("10.00"))
        lines = trade["orders"]["order"]
        assert 1 <= len(lines) <= 3 and all(1 <= line["num"] <= 3 for line in lines)
        assert money["total_fee"] == sum(Decimal(line["price"]) * line["num"] for line in lines)
        assert money["payment"] == money["total_fee"] - money["discount_fee"] + money["post_fee"]
        assert sum(Decimal(line["divide_order_fee"]) for line in lines) == money["payment"] - money["post_fee"]
        for line in lines:
            assert Decimal(line["total_fee"]) == Decimal(line["price"]) * line["num"] - Decimal(line["discount_fee"])
            assert line["adjust_fee"] == "0.00"
        if len(lines) == 1:
            assert lines[0]["payment"] == trade["payment"]


def test_buyer_data_is_masked_and_the_plain_phone_is_never_served(sbx, admin):
    ids = admin("POST", "orders", json={"shop": "tm-flagship", "count": 10})["ids"]
    for tid in ids:
        raw = json.dumps(fullinfo(sbx.url, tid), ensure_ascii=False)
        trade = sbx.app.world.trades[int(tid)]
        assert trade.buyer.phone not in raw and trade.buyer.address not in raw and trade.buyer.name not in raw
        served = json.loads(raw)["trade_fullinfo_get_response"]["trade"]
        assert served["receiver_mobile"] == "*******" + trade.buyer.phone[-4:]
        assert served["receiver_name"] == trade.buyer.name[0] + "**"
        assert served["buyer_nick"][1:3] == "**" and "seller_memo" not in served


def test_malformed_kinds_are_served_broken_and_marked_in_truth(sbx, admin):
    kinds = {}
    for kind in ("unknown_status", "bad_amount", "missing_tid"):
        [tid] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1, "malformed": kind})["ids"]
        kinds[kind] = fullinfo(sbx.url, tid)["trade_fullinfo_get_response"]["trade"]
        assert admin("GET", "truth")["channels"]["tmall"]["tm-flagship"]["orders"][tid]["malformed"] is True
    assert kinds["unknown_status"]["status"] == "TRADE_STATUS_FROM_THE_FUTURE"
    assert kinds["bad_amount"]["payment"] == "12.3.4"
    assert "tid" not in kinds["missing_tid"] and "tid_str" not in kinds["missing_tid"]
    [good] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1})["ids"]
    assert admin("GET", "truth")["channels"]["tmall"]["tm-flagship"]["orders"][good]["malformed"] is False


def test_truth_has_the_documented_shape(sbx, admin, qimen, do_xml, top_params):
    [tid] = admin("POST", "orders", json={"shop": "tm-outlet", "count": 1})["ids"]
    qimen(do_xml("DO-1", tid=tid))
    params = top_params("taobao.logistics.offline.send", shop="tm-outlet", tid=tid, out_sid="SF1", company_code="SF")
    requests.post(sbx.top_gateway_url, data=params, timeout=5)

    truth = admin("GET", "truth")
    assert {"channels", "wms", "writebacks"} <= set(truth)  # other systems add their own keys (stock_told, sinks...)
    assert set(truth["channels"]["tmall"]) == {"tm-flagship", "tm-outlet"}
    order = truth["channels"]["tmall"]["tm-outlet"]["orders"][tid]
    assert {"status", "modified", "malformed"} <= set(order)
    assert order["status"] == "WAIT_BUYER_CONFIRM_GOODS"
    record = truth["wms"]["delivery_orders"]["DO-1"]
    assert {"received", "created", "delivery_order_id", "source_order_codes", "shop_nick", "status", "express_code",
            "logistics_code"} <= set(record)
    assert record["source_order_codes"] == [tid]
    assert truth["writebacks"]["tmall"][tid] == {"accepted": 1, "rejected": 0, "out_sid": "SF1", "company_code": "SF"}


def test_admin_api_rejects_bad_input_with_400_or_404(sbx):
    url = f"{sbx.url}/_sandbox"
    for bad in (
        {"shop": "tm-nowhere"},
        {"shop": "tm-flagship", "at": "2026-03-01T10:00"},
        {"shop": "tm-flagship", "malformed": "weird"},
        {"shop": "tm-flagship", "count": 0},
        {"channel": "jd", "shop": "x"},
    ):
        assert requests.post(f"{url}/orders", json=bad, timeout=5).status_code == 400, bad
    assert requests.post(f"{url}/orders/tmall/123/modify", json={}, timeout=5).status_code == 404
    assert requests.post(f"{url}/wms/ship", json={"codes": ["NOPE"]}, timeout=5).status_code == 404
    assert requests.post(f"{url}/wms/callback", json={"url": "ftp://x"}, timeout=5).status_code == 400
    assert requests.get(f"{url}/nothing-here", timeout=5).status_code == 404


def test_reset_returns_to_a_fresh_world_with_default_knobs(sbx, admin):
    first = admin("POST", "orders", json={"shop": "tm-flagship", "count": 2, "at": FIXED_AT})["ids"]
    admin("POST", "faults", json={"top.latency_ms": 5})
    admin("POST", "reset")
    assert admin("GET", "truth")["channels"]["tmall"]["tm-flagship"]["orders"] == {}
    assert admin("GET", "faults")["top.latency_ms"] == 0
    assert admin("POST", "orders", json={"shop": "tm-flagship", "count": 2, "at": FIXED_AT})["ids"] == first


def test_orders_can_be_created_with_chosen_lines_including_a_sku_the_catalogue_does_not_know():
    import requests

    from sandbox.server import running_sandbox

    with running_sandbox(seed=3) as sbx:
        body = {"channel": "tmall", "shop": "tm-flagship", "count": 2,
                "lines": [{"sku": "SKU-001-RED-M", "num": 2}, {"sku": "6901234567890", "num": 1}]}
        ids = requests.post(f"{sbx.url}/_sandbox/orders", json=body, timeout=10).json()["ids"]
        assert len(ids) == 2
        trade = sbx.app.world.trade(ids[0])
        codes = [(line["outer_sku_id"], line["num"]) for line in trade.lines]
        assert codes == [("SKU-001-RED-M", 2), ("6901234567890", 1)]
        bad = requests.post(f"{sbx.url}/_sandbox/orders", json={**body, "lines": [{"num": 1}]}, timeout=10)
        assert bad.status_code == 400
