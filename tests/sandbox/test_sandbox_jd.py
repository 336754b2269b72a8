"""The simulated JD JOS gateway (sandbox/jd.py): signing, tokens, envelopes, orders, write-backs and fault knobs.

Every call goes over HTTP to an in-process sandbox and is signed the way a connector would sign it (spec §2.2), so
the tests exercise the wire: query/form transport, ``360buy_param_json`` as exact JSON text, the ``_responce``
envelopes and JD's string error codes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
import requests

from sandbox import clock
from sandbox.app import SandboxApp
from sandbox.jd import parse_timestamp, sign
from sandbox.server import running_sandbox

TIMEOUT_S = 5
SEARCH = "jingdong.pop.order.search"
GET = "jingdong.pop.order.get"
SHIP = "jingdong.pop.order.shipment"
FIELDS = "orderId,orderState,modified,orderStartTime,payType,paymentConfirmTime,itemInfoList,consigneeInfo"


def ago(**delta: float) -> str:
    return clock.format_wire(clock.now() - timedelta(**delta))


def jd_params(creds: dict, method: str, biz: dict | None = None, shop: str = "jd-flagship",
              token: str | None = None, timestamp: str | None = None) -> dict:
    jd = creds["jd"]
    params = {
        "method": method,
        "app_key": jd["app_key"],
        "access_token": token or next(s["access_token"] for s in jd["shops"] if s["shop"] == shop),
        "timestamp": timestamp or clock.format_wire(clock.now()),
        "v": "2.0",
        "360buy_param_json": json.dumps(biz or {}, ensure_ascii=False, separators=(",", ":")),
    }
    params["sign"] = sign(params, jd["app_secret"])
    return params


@pytest.fixture
def jd_url(sbx) -> str:
    return f"{sbx.url}/jd/routerjson"


@pytest.fixture
def jd(jd_url: str, creds: dict) -> Callable[..., dict]:
    """``jd(method, {biz}, shop=...)``: signed form POST; returns the decoded body (HTTP 200 asserted)."""

    def call(method: str, biz: dict | None = None, shop: str = "jd-flagship", token: str | None = None,
             timeout: float = TIMEOUT_S) -> dict:
        response = requests.post(jd_url, data=jd_params(creds, method, biz, shop, token), timeout=timeout)
        assert response.status_code == 200, response.text
        return response.json()

    return call


@pytest.fixture
def jd_sys(sbx):
    return sbx.app.systems["jd"]


def make_orders(jd_sys, count: int = 1, shop: str = "jd-flagship", at: str | None = None, **kw) -> list[str]:
    return jd_sys.create_orders(shop, count, clock.parse_wire(at) if at else None, kw.get("malformed"),
                                kw.get("lines"))


def search(jd, states: str = "WAIT_SELLER_STOCK_OUT", start: str | None = None, end: str | None = None,
           shop: str = "jd-flagship", **extra: object) -> dict:
    biz: dict = {"order_state": states, "optional_fields": FIELDS, "page": "1", "page_size": "100", "dateType": 0,
                 "start_date": ago(hours=2) if start is None else start,
                 "end_date": ago(seconds=-5) if end is None else end}
    biz.update(extra)
    biz = {k: v for k, v in biz.items() if v is not None}
    return jd(SEARCH, biz, shop=shop)["jingdong_pop_order_search_responce"]


def ids_of(result: dict) -> list[str]:
    return [o["orderId"] for o in result["searchorderinfo_result"]["orderInfoList"]]


# ------------------------------------------------------------------------------------------------ signing


def test_sign_reproduces_the_spec_worked_example():
    params = {
        "360buy_param_json": '{"start_date":"2024-03-01 00:00:00","end_date":"2024-03-01 01:00:00",'
                             '"order_state":"WAIT_SELLER_STOCK_OUT","optional_fields":"orderId,orderState,itemInfoList",'
                             '"page":"1","page_size":"100","dateType":0}',
        "method": "jingdong.pop.order.search",
        "app_key": "JDAPPKEY",
        "access_token": "jd_token_abc",
        "timestamp": "2024-03-01 12:00:00",
        "v": "2.0",
    }
    assert sign(params, "jd_secret") == "6BBE2D0A496241E557E1A1D7A3B014A6"
    # empty values are skipped (.NET SDK), so an empty optional param does not change the signature
    assert sign({**params, "format": ""}, "jd_secret") == "6BBE2D0A496241E557E1A1D7A3B014A6"


def test_timestamps_in_the_official_and_both_sdk_formats_parse_to_the_same_instant():
    plain = parse_timestamp("2024-03-01 12:00:00")
    assert parse_timestamp("2024-03-01 12:00:00.000+0800") == plain
    assert parse_timestamp("2024-03-01 04:00:00.000+0000") == plain
    with pytest.raises(ValueError):
        parse_timestamp("2024-03-01T12:00:00")


@pytest.mark.parametrize("stamp_format", ["plain", "dotnet", "python_utc"])
def test_gateway_accepts_each_timestamp_format(jd_url, creds, stamp_format):
    now = clock.now()
    stamp = {
        "plain": clock.format_wire(now),
        "dotnet": now.strftime("%Y-%m-%d %H:%M:%S.123+0800"),
        # the Python SDK sends local time with its offset; a UTC machine sends "+0000"
        "python_utc": now.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.000%z"),
    }[stamp_format]
    params = jd_params(creds, GET, {"order_id": "1"}, timestamp=stamp)
    body = requests.post(jd_url, data=params, timeout=TIMEOUT_S).json()
    assert "jingdong_pop_order_get_responce" in body, body


def test_gateway_takes_a_get_query_and_a_post_with_everything_in_the_query(jd_url, creds):
    params = jd_params(creds, GET, {"order_id": "1"})
    assert "jingdong_pop_order_get_responce" in requests.get(jd_url, params=params, timeout=TIMEOUT_S).json()
    assert "jingdong_pop_order_get_responce" in requests.post(jd_url, params=params, timeout=TIMEOUT_S).json()


def test_wrong_or_tampered_signature_is_code_12(jd_url, creds):
    params = jd_params(creds, GET, {"order_id": "1"})
    bad = {**params, "sign": sign(params, "not-the-secret")}
    error = requests.post(jd_url, data=bad, timeout=TIMEOUT_S).json()["error_response"]
    assert error == {"code": "12", "zh_desc": "无效签名", "en_desc": "Invalid signature"}
    tampered = {**params, "360buy_param_json": '{"order_id": "1"}'}  # same JSON, different text
    assert requests.post(jd_url, data=tampered, timeout=TIMEOUT_S).json()["error_response"]["code"] == "12"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"method": None}, "11"),
        ({"method": "jingdong.no.such.api"}, "15"),
        ({"app_key": None}, "11"),
        ({"app_key": "NOTANAPPKEY"}, "14"),
        ({"timestamp": None}, "11"),
        ({"timestamp": "2024/03/01 12:00:00"}, "13"),
        ({"timestamp": "skew"}, "13"),
        ({"sign": None}, "11"),
        ({"access_token": None}, "18"),
        ({"access_token": "0" * 32}, "19"),
        ({"v": "1.0"}, "16"),
        ({"360buy_param_json": "{not json"}, "20"),
        ({"360buy_param_json": "[1]"}, "20"),
    ],
)
def test_system_parameter_errors_use_string_codes_in_error_response(jd_url, creds, change, code):
    params = jd_params(creds, GET, {"order_id": "1"})
    for key, value in change.items():
        if value is None:
            params.pop(key)
        elif value == "skew":
            params[key] = clock.format_wire(clock.now() - timedelta(minutes=11))
        else:
            params[key] = value
    if "sign" in params:
        params.pop("sign")
        params["sign"] = sign(params, creds["jd"]["app_secret"])
    body = requests.post(jd_url, data=params, timeout=TIMEOUT_S).json()
    assert set(body) == {"error_response"}
    assert body["error_response"]["code"] == code
    assert set(body["error_response"]) == {"code", "zh_desc", "en_desc"}


# ------------------------------------------------------------------------------------------------ tokens


def test_expired_token_knob_answers_19_and_a_refresh_recovers(sbx, jd, creds, admin):
    assert "jingdong_pop_order_get_responce" in jd(GET, {"order_id": "1"})
    admin("POST", "faults", json={"jd.expire_tokens": ["jd-flagship"]})
    error = jd(GET, {"order_id": "1"})["error_response"]
    assert error["code"] == "19" and error["zh_desc"] == "无效access_token"
    assert "jingdong_pop_order_get_responce" in jd(GET, {"order_id": "1"}, shop="jd-outlet")  # other shop fine

    flagship = creds["jd"]["shops"][0]
    refreshed = requests.post(f"{sbx.url}/jd/oauth2/refresh_token", params={
        "app_key": creds["jd"]["app_key"], "app_secret": creds["jd"]["app_secret"], "grant_type": "refresh_token",
        "refresh_token": flagship["refresh_token"]}, timeout=TIMEOUT_S).json()
    assert refreshed["code"] == 0 and refreshed["access_token"] != flagship["access_token"]
    assert refreshed["expires_in"] > 0 and {"refresh_token", "scope", "xid"} <= set(refreshed)
    # the knob is still on: the new token works, the old one is dead for good
    assert "jingdong_pop_order_get_responce" in jd(GET, {"order_id": "1"}, token=refreshed["access_token"])
    admin("POST", "faults", json={"jd.expire_tokens": False})
    assert jd(GET, {"order_id": "1"})["error_response"]["code"] == "19"
    assert admin("GET", "credentials")["jd"]["shops"][0]["access_token"] == refreshed["access_token"]
    # the old refresh token was replaced too
    again = requests.post(f"{sbx.url}/jd/oauth2/refresh_token", data={
        "app_key": creds["jd"]["app_key"], "app_secret": creds["jd"]["app_secret"], "grant_type": "refresh_token",
        "refresh_token": flagship["refresh_token"]}, timeout=TIMEOUT_S).json()
    assert again["code"] != 0


def test_expire_tokens_true_expires_every_shop_and_switching_off_restores(jd, admin):
    admin("POST", "faults", json={"jd.expire_tokens": True})
    assert jd(GET, {"order_id": "1"})["error_response"]["code"] == "19"
    assert jd(GET, {"order_id": "1"}, shop="jd-outlet")["error_response"]["code"] == "19"
    admin("POST", "faults", json={"jd.expire_tokens": False})
    assert "jingdong_pop_order_get_responce" in jd(GET, {"order_id": "1"})


# ------------------------------------------------------------------------------------------------ order search


def test_search_returns_the_shops_paid_orders_ascending_by_modified(jd, jd_sys):
    older = make_orders(jd_sys, 2, at=ago(minutes=30))
    newer = make_orders(jd_sys, 1, at=ago(minutes=10))
    make_orders(jd_sys, 1, shop="jd-outlet", at=ago(minutes=10))
    result = search(jd)
    assert result["code"] == "0"
    inner = result["searchorderinfo_result"]
    assert inner["apiResult"]["success"] is True and inner["orderTotal"] == 3
    assert ids_of(result) == older + newer
    order = inner["orderInfoList"][0]
    assert set(order) == set(FIELDS.split(","))
    assert order["orderState"] == "WAIT_SELLER_STOCK_OUT" and order["payType"] == "4"
    assert isinstance(order["orderId"], str) and isinstance(order["itemInfoList"][0]["itemTotal"], str)
    consignee = order["consigneeInfo"]
    assert consignee["fullname"].endswith("**") and "****" in consignee["mobile"]
    assert consignee["fullAddress"].endswith("****")
    assert ids_of(search(jd, sortType=1)) == list(reversed(older + newer))


def test_search_windows_by_modified_or_created_inclusive(jd, jd_sys):
    at = ago(minutes=30)
    (order_id,) = make_orders(jd_sys, 1, at=at)
    created = jd_sys.state.orders[order_id].data["orderStartTime"]
    assert ids_of(search(jd, start=at, end=at)) == [order_id]  # inclusive on both ends
    assert ids_of(search(jd, start=created, end=created)) == []  # dateType 0: by modified
    assert ids_of(search(jd, start=created, end=created, dateType=1)) == [order_id]
    assert ids_of(search(jd, start=ago(minutes=20))) == []


def test_modification_moves_an_order_into_a_later_window(jd, jd_sys, admin):
    (order_id,) = make_orders(jd_sys, 1, at=ago(minutes=30))
    window_end = ago(minutes=1)
    admin("POST", f"orders/jd/{order_id}/modify", json={"vender_remark": "加急"})
    assert ids_of(search(jd, start=ago(minutes=40), end=window_end)) == []
    assert ids_of(search(jd, start=window_end)) == [order_id]


def test_search_paging_and_page_size_limit(jd, jd_sys):
    made = make_orders(jd_sys, 5, at=ago(minutes=5))
    pages = [ids_of(search(jd, page=str(p), page_size=2)) for p in (1, 2, 3, 4)]
    assert pages == [made[0:2], made[2:4], made[4:5], []]
    bad = search(jd, page_size="101")["searchorderinfo_result"]
    assert bad["apiResult"]["success"] is False and bad["orderInfoList"] == []


def test_modifying_an_order_while_paging_shifts_the_next_page(jd, jd_sys, admin):
    made = make_orders(jd_sys, 5, at=ago(minutes=5))
    assert ids_of(search(jd, page="1", page_size=2)) == made[0:2]
    admin("POST", f"orders/jd/{made[0]}/modify", json={"vender_remark": "改地址"})
    # ascending by modified: the changed order moved to the end and everything slid one place forward, so a reader
    # that keeps paging the same window never sees made[2] (why JD recommends sliding windows over deep paging)
    assert ids_of(search(jd, page="2", page_size=2)) == made[3:5]
    assert ids_of(search(jd, page="3", page_size=2)) == [made[0]]


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"optional_fields": ""}, "optional_fields"),
        ({"order_state": ""}, "order_state"),
        ({"order_state": "1"}, "order_state"),
        ({"start_date": "2024-03-01T00:00:00"}, "start_date"),
        ({"start_date": None}, "go together"),
        ({"start_date": "__old"}, "one month"),
    ],
)
def test_search_parameter_errors_come_inside_a_code_0_envelope(jd, extra, why):
    if extra.get("start_date") == "__old":
        extra = {"start_date": ago(days=31)}
    result = search(jd, **extra)
    assert result["code"] == "0"  # the gateway says OK; only apiResult tells the truth
    api = result["searchorderinfo_result"]["apiResult"]
    assert api["success"] is False and why in api["englishErrCode"] and api["chineseErrCode"]


def test_search_without_dates_is_allowed_only_for_wait_seller_stock_out(jd, jd_sys):
    (order_id,) = make_orders(jd_sys, 1, at=ago(days=3))
    assert ids_of(search(jd, start="", end="")) == [order_id]
    failed = search(jd, states="WAIT_SELLER_STOCK_OUT,LOCKED", start="", end="")
    assert failed["searchorderinfo_result"]["apiResult"]["success"] is False


def test_order_get_returns_the_full_order_and_hides_other_shops(jd, jd_sys):
    (order_id,) = make_orders(jd_sys, 1)
    (other,) = make_orders(jd_sys, 1, shop="jd-outlet")
    detail = jd(GET, {"order_id": order_id, "optional_fields": "orderId,orderPayment,couponDetailList"})
    info = detail["jingdong_pop_order_get_responce"]["orderDetailInfo"]
    assert info["apiResult"]["success"] is True
    assert set(info["orderInfo"]) == {"orderId", "orderPayment", "couponDetailList"}
    full = jd(GET, {"order_id": order_id})["jingdong_pop_order_get_responce"]["orderDetailInfo"]["orderInfo"]
    assert Decimal(full["orderSellerPrice"]) == Decimal(full["orderTotalPrice"]) - Decimal(full["sellerDiscount"])
    assert Decimal(full["orderPayment"]) == Decimal(full["orderSellerPrice"]) + Decimal(full["freightPrice"])
    coupons = sum((Decimal(c["couponPrice"]) for c in full["couponDetailList"]), Decimal("0"))
    assert coupons == Decimal(full["sellerDiscount"])
    missing = jd(GET, {"order_id": other})["jingdong_pop_order_get_responce"]["orderDetailInfo"]
    assert missing["apiResult"]["success"] is False and "orderInfo" not in missing


# ------------------------------------------------------------------------------------------------ shipment


def test_shipment_moves_the_order_on_and_a_second_one_is_rejected_and_counted(jd, jd_sys, admin):
    (order_id,) = make_orders(jd_sys, 1)
    ok = jd(SHIP, {"orderId": order_id, "logiCoprId": "467", "logiNo": "SF1234567890"})
    assert ok["jingdong_pop_order_shipment_responce"]["sopjosshipment_result"]["success"] is True
    info = jd(GET, {"order_id": order_id})["jingdong_pop_order_get_responce"]["orderDetailInfo"]["orderInfo"]
    assert (info["orderState"], info["waybill"], info["logisticsId"]) == (
        "WAIT_GOODS_RECEIVE_CONFIRM", "SF1234567890", "467")
    again = jd(SHIP, {"orderId": order_id, "logiCoprId": "467", "logiNo": "SF999"})
    result = again["jingdong_pop_order_shipment_responce"]
    assert result["code"] == "0" and result["sopjosshipment_result"]["success"] is False
    assert result["sopjosshipment_result"]["error_code"] == "1002"
    truth = admin("GET", "truth")
    assert truth["writebacks"]["jd"][order_id] == {"accepted": 1, "rejected": 1, "waybill": "SF1234567890",
                                                  "logistics_id": "467"}
    assert truth["channels"]["jd"]["jd-flagship"]["orders"][order_id]["status"] == "WAIT_GOODS_RECEIVE_CONFIRM"


@pytest.mark.parametrize(
    ("status", "biz", "error_code"),
    [
        ("LOCKED", {"logiCoprId": "467", "logiNo": "SF1"}, "1003"),
        ("PAUSE", {"logiCoprId": "467", "logiNo": "SF1"}, "1003"),
        ("TRADE_CANCELED", {"logiCoprId": "467", "logiNo": "SF1"}, "1004"),
        (None, {"logiCoprId": "99999", "logiNo": "SF1"}, "1005"),
        (None, {"logiCoprId": "467"}, "1006"),
    ],
)
def test_shipment_refusals(jd, jd_sys, admin, status, biz, error_code):
    (order_id,) = make_orders(jd_sys, 1)
    if status:
        admin("POST", f"orders/jd/{order_id}/modify", json={"status": status})
    result = jd(SHIP, {"orderId": order_id, **biz})["jingdong_pop_order_shipment_responce"]["sopjosshipment_result"]
    assert (result["success"], result["error_code"]) == (False, error_code)
    assert admin("GET", "truth")["writebacks"]["jd"][order_id]["rejected"] == 1


# ------------------------------------------------------------------------------------------------ stock, skus


def test_stock_write_is_recorded_in_truth_and_visible_in_the_sku_list(jd, admin):
    skus = jd("jingdong.sku.read.searchSkuList", {"page": 1, "page_size": 100})
    rows = skus["jingdong_sku_read_searchSkuList_responce"]["page"]["data"]
    assert len(rows) == 20 and rows[0]["outerId"] == "SKU-001-RED-M"
    sku_id = rows[0]["skuId"]
    ok = jd("jingdong.stock.write.updateSkuStock", {"skuId": sku_id, "stockNum": 7})
    assert ok["jingdong_stock_write_updateSkuStock_responce"] == {"code": "0", "success": True}
    jd("jingdong.stock.write.updateSkuStock", {"skuId": sku_id, "stockNum": "3"})
    told = admin("GET", "truth")["stock_told"]["jd"]["jd-flagship"][sku_id]
    assert [(t["qty"], t["mode"], t["outer_sku_id"]) for t in told] == [(7, "full", "SKU-001-RED-M"),
                                                                        (3, "full", "SKU-001-RED-M")]
    rows = jd("jingdong.sku.read.searchSkuList", {"page_size": 1})["jingdong_sku_read_searchSkuList_responce"]
    assert rows["page"]["data"][0]["stockNum"] == 3
    # JD skuIds belong to one vendor: the outlet shop cannot write the flagship's SKU
    refused = jd("jingdong.stock.write.updateSkuStock", {"skuId": sku_id, "stockNum": 1}, shop="jd-outlet")
    assert refused["jingdong_stock_write_updateSkuStock_responce"]["success"] is False


# ------------------------------------------------------------------------------------------------ after-sales


def afs(jd, **biz: object) -> dict:
    body = jd("jingdong.ServiceInfoProvider.queryServicePage", {"buId": "10001", "pageIndex": 1, "pageSize": 50,
                                                                 **biz})
    return body["jingdong_ServiceInfoProvider_queryServicePage_responce"]["resultExport"]


def test_refund_before_shipping_locks_then_cancels_the_order(jd, jd_sys, admin):
    (order_id,) = make_orders(jd_sys, 1)
    opened = admin("POST", f"orders/jd/{order_id}/modify", json={"refund": True})
    assert opened["state"] == "LOCKED"
    data = afs(jd)["data"]
    assert data["totalNum"] == 1
    service = data["serviceExportList"][0]
    assert (service["orderId"], service["afsServiceStatus"], service["customerExpect"]) == (order_id, 10001, 50)
    shipped = jd(SHIP, {"orderId": order_id, "logiCoprId": "467", "logiNo": "SF1"})
    assert shipped["jingdong_pop_order_shipment_responce"]["sopjosshipment_result"]["success"] is False
    done = admin("POST", f"orders/jd/{order_id}/modify", json={"afs_status": 10010})
    assert done["state"] == "TRADE_CANCELED"
    assert afs(jd)["data"]["serviceExportList"][0]["afsServiceStatus"] == 10010
    truth = admin("GET", "truth")["channels"]["jd"]["jd-flagship"]
    assert truth["orders"][order_id]["status"] == "TRADE_CANCELED"
    assert truth["after_sales"][str(service["afsServiceId"])]["status"] == 10010


def test_refused_refund_unlocks_and_refund_after_shipping_is_a_return(jd, jd_sys, admin):
    first, second = make_orders(jd_sys, 2)
    admin("POST", f"orders/jd/{first}/modify", json={"refund": True})
    assert admin("POST", f"orders/jd/{first}/modify", json={"afs_status": 10004})["state"] == "WAIT_SELLER_STOCK_OUT"
    jd(SHIP, {"orderId": second, "logiCoprId": "1499", "logiNo": "ZTO1"})
    ret = admin("POST", f"orders/jd/{second}/modify", json={"refund": {"num": 1}})
    assert ret["state"] == "WAIT_GOODS_RECEIVE_CONFIRM"
    services = afs(jd, afsApplyTimeBegin=ago(minutes=5), afsApplyTimeEnd=ago(seconds=-5))["data"]
    last = services["serviceExportList"][-1]
    assert (last["orderId"], last["customerExpect"], last["wareNum"]) == (second, 10, 1)
    assert afs(jd, afsApplyTimeEnd=ago(minutes=5))["data"]["totalNum"] == 0
    assert afs(jd, buId="99999")["success"] is False


# ------------------------------------------------------------------------------------------------ reviews


def test_comments_are_listed_and_a_reply_is_recorded(jd, jd_sys, admin):
    (order_id,) = make_orders(jd_sys, 1, lines=[{"sku": "SKU-002-BLU-30", "num": 1}])
    made = admin("POST", f"orders/jd/{order_id}/modify", json={"comment": {"score": 2, "content": "物流太慢"}})
    (comment_id,) = made["comment_ids"]
    method = "jingdong.pop.PopCommentJsfService.getVenderCommentsForJos"
    listed = jd(method, {"orderIds": order_id, "page": 1, "pageSize": 10})
    root = listed["jingdong_pop_PopCommentJsfService_getVenderCommentsForJos_responce"]
    assert root["totalItem"] == 1
    comment = root["comments"][0]
    assert (comment["commentId"], comment["score"], comment["content"], comment["isVenderReply"]) == (
        comment_id, 2, "物流太慢", False)
    reply = jd("jingdong.club.pop.commentreply.save", {"commentId": comment_id, "content": "抱歉，已催促快递"})
    assert reply["jingdong_club_pop_commentreply_save_responce"]["success"] is True
    replied = jd(method, {"isVenderReply": "1"})["jingdong_pop_PopCommentJsfService_getVenderCommentsForJos_responce"]
    assert replied["comments"][0]["replyCount"] == 1
    assert admin("GET", "truth")["channels"]["jd"]["jd-flagship"]["comments"][comment_id]["replies"] == 1


# ------------------------------------------------------------------------------------------------ data


def test_same_seed_gives_the_same_orders_and_credentials():
    at = clock.parse_wire("2026-03-01 10:00:00")
    first, second = SandboxApp(seed=5), SandboxApp(seed=5)
    try:
        ids = [app.systems["jd"].create_orders("jd-outlet", 3, at, None, None) for app in (first, second)]
        assert ids[0] == ids[1]
        data = [[app.systems["jd"].state.orders[i].data for i in ids[0]] for app in (first, second)]
        assert data[0] == data[1]
        assert first.credentials()["jd"] == second.credentials()["jd"]
        assert SandboxApp(seed=6).credentials()["jd"]["app_secret"] != first.credentials()["jd"]["app_secret"]
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("kind", ["unknown_status", "bad_amount", "missing_order_id", "no_items"])
def test_malformed_orders_are_served_and_marked_in_truth(jd, sbx, admin, kind):
    (order_id,) = admin("POST", "orders", json={"channel": "jd", "shop": "jd-flagship", "malformed": kind})["ids"]
    orders = search(jd, optional_fields="orderId,orderState,orderPayment,itemInfoList")
    (order,) = orders["searchorderinfo_result"]["orderInfoList"]
    expected = {"unknown_status": ("orderState", "ORDER_STATE_FROM_THE_FUTURE"), "bad_amount": ("orderPayment",
                "12.3.4"), "no_items": ("itemInfoList", [])}
    if kind == "missing_order_id":
        assert "orderId" not in order
    else:
        key, value = expected[kind]
        assert order[key] == value
    truth = admin("GET", "truth")["channels"]["jd"]["jd-flagship"]["orders"][order_id]
    assert truth["malformed"] is True and truth["malformed_kind"] == kind


def test_admin_api_creates_jd_orders_with_lines_and_rejects_bad_input(sbx, admin):
    ids = admin("POST", "orders", json={"channel": "jd", "shop": "jd-outlet", "count": 2, "at": ago(minutes=1),
                                        "lines": [{"sku": "SKU-001-RED-M", "num": 2}, {"sku": "NEW-CODE", "num": 1}]})
    order = sbx.app.systems["jd"].state.orders[ids["ids"][0]]
    items = order.data["itemInfoList"]
    assert [(i["outerSkuId"], i["itemTotal"]) for i in items] == [("SKU-001-RED-M", "2"), ("NEW-CODE", "1")]
    assert order.data["venderId"] == "10002"
    for body in ({"channel": "jd", "shop": "nope"}, {"channel": "jd", "malformed": "weird"}):
        assert requests.post(f"{sbx.url}/_sandbox/orders", json=body, timeout=TIMEOUT_S).status_code == 400
    bad = requests.post(f"{sbx.url}/_sandbox/orders/jd/{ids['ids'][0]}/modify", json={"status": "SHIPPED"},
                        timeout=TIMEOUT_S)
    assert bad.status_code == 400
    assert requests.post(f"{sbx.url}/_sandbox/orders/jd/1/modify", json={}, timeout=TIMEOUT_S).status_code == 404


def test_cod_ratio_makes_cash_on_delivery_orders(jd, jd_sys, admin):
    admin("POST", "faults", json={"jd.cod_ratio": 1})
    (order_id,) = make_orders(jd_sys, 1)
    info = jd(GET, {"order_id": order_id})["jingdong_pop_order_get_responce"]["orderDetailInfo"]["orderInfo"]
    assert (info["payType"], info["paymentConfirmTime"], info["orderState"]) == ("1", "", "WAIT_SELLER_STOCK_OUT")


# ------------------------------------------------------------------------------------------------ fault knobs


def test_bad_knob_values_are_refused(sbx):
    for body in ({"jd.throttle": {"code": 90}}, {"jd.page_shift": {"by": "1"}}, {"jd.cod_ratio": 2},
                 {"jd.expire_tokens": "yes"}, {"jd.degraded_list": {"drop": "itemInfoList"}}):
        assert requests.post(f"{sbx.url}/_sandbox/faults", json=body, timeout=TIMEOUT_S).status_code == 400


def test_latency_knob_delays_every_call(jd, admin):
    admin("POST", "faults", json={"jd.latency_ms": 300})
    started = time.monotonic()
    jd(GET, {"order_id": "1"})
    assert time.monotonic() - started >= 0.3


def test_http_500_knob_answers_an_html_500_then_recovers(jd_url, creds, admin):
    admin("POST", "faults", json={"jd.http_500": {"calls": 1}})
    broken = requests.post(jd_url, data=jd_params(creds, GET, {"order_id": "1"}), timeout=TIMEOUT_S)
    assert broken.status_code == 500 and "text/html" in broken.headers["Content-Type"]
    fine = requests.post(jd_url, data=jd_params(creds, GET, {"order_id": "1"}), timeout=TIMEOUT_S)
    assert fine.status_code == 200
    assert admin("GET", "faults")["jd.http_500"]["calls"] == 0


def test_throttle_knob_answers_a_distinct_code_and_may_use_66(jd, admin):
    admin("POST", "faults", json={"jd.throttle": {"calls": 1}})
    assert jd(GET, {"order_id": "1"})["error_response"]["code"] == "90"
    assert "jingdong_pop_order_get_responce" in jd(GET, {"order_id": "1"})
    admin("POST", "faults", json={"jd.throttle": {"calls": 1, "code": "66"}})
    assert jd(GET, {"order_id": "1"})["error_response"]["code"] == "66"


def test_timeout_after_success_applies_the_shipment_and_loses_the_reply(jd, jd_sys, admin):
    (order_id,) = make_orders(jd_sys, 1)
    admin("POST", "faults", json={"jd.timeout_after_success": {"calls": 1, "methods": [SHIP], "sleep_s": 2}})
    assert "jingdong_pop_order_get_responce" in jd(GET, {"order_id": order_id})  # other methods unaffected
    with pytest.raises(requests.exceptions.ReadTimeout):
        jd(SHIP, {"orderId": order_id, "logiCoprId": "467", "logiNo": "SF1"}, timeout=0.5)
    assert admin("GET", "truth")["writebacks"]["jd"][order_id]["accepted"] == 1
    # the retry a connector would make is refused as a repeat, and counted
    retry = jd(SHIP, {"orderId": order_id, "logiCoprId": "467", "logiNo": "SF1"})
    assert retry["jingdong_pop_order_shipment_responce"]["sopjosshipment_result"]["error_code"] == "1002"


def test_timeout_after_success_drop_mode_closes_the_connection(jd, jd_sys, admin):
    (order_id,) = make_orders(jd_sys, 1)
    admin("POST", "faults", json={"jd.timeout_after_success": {"calls": 1, "mode": "drop"}})
    with pytest.raises(requests.exceptions.ConnectionError):
        jd(SHIP, {"orderId": order_id, "logiCoprId": "467", "logiNo": "SF1"})
    assert admin("GET", "truth")["writebacks"]["jd"][order_id]["accepted"] == 1


def test_late_index_hides_new_orders_from_search_but_not_from_get(jd, jd_sys, admin):
    admin("POST", "faults", json={"jd.late_index_s": 0.6})
    (order_id,) = make_orders(jd_sys, 1)
    assert ids_of(search(jd)) == []
    info = jd(GET, {"order_id": order_id})["jingdong_pop_order_get_responce"]["orderDetailInfo"]
    assert info["apiResult"]["success"] is True
    time.sleep(0.7)
    assert ids_of(search(jd)) == [order_id]


def test_page_shift_skips_or_repeats_records_between_pages(jd, jd_sys, admin):
    made = make_orders(jd_sys, 6, at=ago(minutes=5))
    admin("POST", "faults", json={"jd.page_shift": {"calls": 1, "by": 1}})
    assert ids_of(search(jd, page="1", page_size=2)) == made[0:2]  # page 1 never shifts and uses no call
    assert ids_of(search(jd, page="2", page_size=2)) == made[3:5]  # made[2] was never seen: lost
    admin("POST", "faults", json={"jd.page_shift": {"calls": 1, "by": -1}})
    assert ids_of(search(jd, page="2", page_size=2)) == made[1:3]  # made[1] again: duplicate
    assert ids_of(search(jd, page="2", page_size=2)) == made[2:4]


def test_degraded_list_drops_nodes_from_search_only(jd, jd_sys, admin):
    (order_id,) = make_orders(jd_sys, 1)
    admin("POST", "faults", json={"jd.degraded_list": {"calls": 1}})
    (degraded,) = search(jd)["searchorderinfo_result"]["orderInfoList"]
    assert "itemInfoList" not in degraded and degraded["orderId"] == order_id
    info = jd(GET, {"order_id": order_id})["jingdong_pop_order_get_responce"]["orderDetailInfo"]["orderInfo"]
    assert info["itemInfoList"]
    (whole,) = search(jd)["searchorderinfo_result"]["orderInfoList"]
    assert whole["itemInfoList"]


# ------------------------------------------------------------------------------------------------ standalone


def test_standalone_serves_the_real_paths_only():
    with running_sandbox(seed=1, system="jd") as handle:
        creds = requests.get(f"{handle.url}/_sandbox/credentials", timeout=TIMEOUT_S).json()
        (order_id,) = requests.post(f"{handle.url}/_sandbox/orders", json={"channel": "jd"},
                                    timeout=TIMEOUT_S).json()["ids"]
        body = requests.post(f"{handle.url}/routerjson", data=jd_params(creds, GET, {"order_id": order_id}),
                             timeout=TIMEOUT_S).json()
        assert body["jingdong_pop_order_get_responce"]["orderDetailInfo"]["orderInfo"]["orderId"] == order_id
        assert requests.post(f"{handle.url}/jd/routerjson", timeout=TIMEOUT_S).status_code == 404
        assert requests.post(f"{handle.url}/top/router/rest", timeout=TIMEOUT_S).status_code == 404
        shop = creds["jd"]["shops"][1]
        refreshed = requests.get(f"{handle.url}/oauth2/refresh_token", params={
            "app_key": creds["jd"]["app_key"], "app_secret": creds["jd"]["app_secret"],
            "grant_type": "refresh_token", "refresh_token": shop["refresh_token"]}, timeout=TIMEOUT_S).json()
        assert refreshed["code"] == 0


def test_official_jd_sdk_talks_to_the_standalone_server():
    jd_sdk = pytest.importorskip("jd")
    from jd.api.base import RestApi

    class PopOrderSearchRequest(RestApi):
        # The SDK ships no class for this method; its documented pattern is a RestApi subclass per method.
        def __init__(self, domain: str, port: int) -> None:
            RestApi.__init__(self, domain, port)
            self.start_date = None
            self.end_date = None
            self.order_state = None
            self.optional_fields = None
            self.page = None
            self.page_size = None

        def getapiname(self) -> str:
            return "jingdong.pop.order.search"

    with running_sandbox(seed=1, system="jd") as handle:
        creds = requests.get(f"{handle.url}/_sandbox/credentials", timeout=TIMEOUT_S).json()["jd"]
        made = handle.app.systems["jd"].create_orders("jd-flagship", 3, clock.now() - timedelta(minutes=1), None,
                                                      None)
        request = PopOrderSearchRequest("127.0.0.1", handle.port)
        request.set_app_info(jd_sdk.appinfo(creds["app_key"], creds["app_secret"]))
        request.start_date = ago(minutes=10)
        request.end_date = ago(seconds=-5)
        request.order_state = "WAIT_SELLER_STOCK_OUT"
        request.optional_fields = "orderId,orderState"
        request.page = "1"
        request.page_size = "2"
        body = request.getResponse(access_token=creds["shops"][0]["access_token"], timeout=TIMEOUT_S)
        result = body["jingdong_pop_order_search_responce"]["searchorderinfo_result"]
        assert result["orderTotal"] == 3
        assert [o["orderId"] for o in result["orderInfoList"]] == made[:2]
        # the SDK surfaces gateway errors as the same error_response
        expired = request.getResponse(access_token="0" * 32, timeout=TIMEOUT_S)
        assert expired["error_response"]["code"] == "19"
