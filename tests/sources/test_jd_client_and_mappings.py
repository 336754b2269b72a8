"""JD's wire rules as pure functions (signing, the error table, business failures inside a code-"0" envelope) and
the JD mapping files: recorded orders, after-sales services and comments map into valid canonical models, and the
reviews stream pages through every comment of the sandbox exactly once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import mappings
from connectors.jd.client import JdClient, classify, sign
from connectors.jd.settings import JdShopSettings
from connectors.jd.streams import OrdersStream, ReviewsStream, missing_nodes
from hub.config import load_settings
from hub.errors import ConfigurationError, FatalError, RecordError, TransientError
from hub.models import Order, Refund, Review
from hub.runtime import Hub
from tests.sources.test_jd_sync import create_jd_orders, jd_truth, modify_jd_order, write_jd_config

PAYLOADS = Path(mappings.__file__).parent / "cases" / "payloads"
SEARCH = "jingdong.pop.order.search"


def _payload(name: str) -> dict:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def test_the_signature_reproduces_the_spec_s_worked_example():
    params = {
        "360buy_param_json": '{"start_date":"2024-03-01 00:00:00","end_date":"2024-03-01 01:00:00","order_state":'
                             '"WAIT_SELLER_STOCK_OUT","optional_fields":"orderId,orderState,itemInfoList","page":"1",'
                             '"page_size":"100","dateType":0}',
        "method": SEARCH, "app_key": "JDAPPKEY", "access_token": "jd_token_abc", "timestamp": "2024-03-01 12:00:00",
        "v": "2.0", "format": "",
    }
    assert sign(params, "jd_secret") == "6BBE2D0A496241E557E1A1D7A3B014A6"  # empty values are skipped


def _error(code: str) -> dict:
    return {"error_response": {"code": code, "zh_desc": "x", "en_desc": "y"}}


def test_gateway_codes_are_classified_by_a_table_a_shop_can_override():
    with pytest.raises(ConfigurationError) as token:
        classify(SEARCH, 200, _error("19"), shop="jd-flagship")
    assert token.value.attributes["token"] and "re-authorise shop jd-flagship" in token.value.how_to_fix
    with pytest.raises(TransientError) as throttled:
        classify(SEARCH, 200, _error("90"), throttle_wait_s=7)
    assert throttled.value.retry_after == 7
    with pytest.raises(ConfigurationError):
        classify(SEARCH, 200, _error("12"))
    with pytest.raises(FatalError):
        classify(SEARCH, 200, _error("20"))
    with pytest.raises(TransientError):
        classify(SEARCH, 200, _error("4711"))  # unknown: retried, then the run stops with the code
    with pytest.raises(TransientError) as overridden:
        classify(SEARCH, 200, _error("4711"), error_kinds={"4711": "throttled"}, throttle_wait_s=3)
    assert overridden.value.retry_after == 3
    with pytest.raises(TransientError):
        classify(SEARCH, 500, None)
    with pytest.raises(TransientError):
        classify(SEARCH, 200, {"something_else_responce": {"code": "0"}})


def test_a_business_failure_inside_a_code_0_envelope_is_never_taken_for_a_success():
    not_found = {"jingdong_pop_order_get_responce": {"code": "0", "orderDetailInfo": {"apiResult": {
        "success": False, "chineseErrCode": "订单不存在", "englishErrCode": "order 1 not found", "numberCode": 10200}}}}
    with pytest.raises(RecordError):
        classify("jingdong.pop.order.get", 200, not_found)
    bad_param = {"jingdong_pop_order_search_responce": {"code": "0", "searchorderinfo_result": {"apiResult": {
        "success": False, "englishErrCode": "window longer than one month", "numberCode": 10100}}}}
    with pytest.raises(FatalError):
        classify(SEARCH, 200, bad_param)
    refused = {"jingdong_pop_order_shipment_responce": {"code": "0", "sopjosshipment_result": {
        "success": False, "chinese_err_code": "订单已出库，不能重复出库", "english_err_code": "already shipped",
        "error_code": "1002"}}}
    with pytest.raises(RecordError) as shipment:
        classify("jingdong.pop.order.shipment", 200, refused)
    assert shipment.value.attributes["code"] == "1002"
    ok = {"jingdong_pop_order_search_responce": {"code": "0", "searchorderinfo_result": {
        "apiResult": {"success": True}, "orderTotal": 1, "orderInfoList": [{"orderId": "1"}]}}}
    assert classify(SEARCH, 200, ok)["orderTotal"] == 1


def test_a_degraded_list_record_is_recognised_by_its_missing_nodes():
    order = _payload("jd_order__paid.json")
    assert missing_nodes(order) == []
    assert missing_nodes({k: v for k, v in order.items() if k != "itemInfoList"}) == ["itemInfoList"]
    assert missing_nodes({k: v for k, v in order.items() if k != "consigneeInfo"}) == ["consigneeInfo"]


def _hub(tmp_path, db_url, engine, sandbox_url=None) -> Hub:
    if sandbox_url is None:
        path = tmp_path / "orderhub.yaml"
        path.write_text(f"database_url: {db_url}\nshops: []\nsinks: []\n", encoding="utf-8")
        return Hub(load_settings(path), engine)
    return Hub(load_settings(write_jd_config(tmp_path / "orderhub.yaml", sandbox_url, db_url)), engine)


def test_recorded_jd_orders_map_to_canonical_orders_with_lines_discounts_and_payments(tmp_path, db_url, engine):
    mapper = _hub(tmp_path, db_url, engine).mapper("jd")
    context = {"channel": "jd", "shop": "jd-flagship"}
    paid = mapper.to_model(_payload("jd_order__paid.json"), context)
    assert isinstance(paid, Order) and paid.status == "PAID" and paid.paid_total == 15300
    assert paid.goods_total == 15800 and paid.seller_discount == 500 and not paid.is_cod
    line, = paid.lines
    assert line.line_id == "280000000001-100000000001" and line.merchant_sku_code == "SKU-001-RED-M"
    assert (line.qty, line.unit_price, line.line_total, line.line_discount, line.line_paid) == (2, 7900, 15800, 500,
                                                                                               15300)
    assert paid.payments[0].amount == 15300 and paid.payments[0].paid_at.tzinfo is not None
    assert paid.receiver.phone == "139****6615"  # masked as JD serves it
    cod = mapper.to_model(_payload("jd_order__cod.json"), context)
    assert cod.is_cod and cod.payments == [] and cod.paid_at is None
    shipped = mapper.to_model(_payload("jd_order__shipped.json"), context)
    assert shipped.status == "SHIPPED" and all(line.status == "SHIPPED" for line in shipped.lines)
    assert mapper.to_model(_payload("jd_order__refund_requested.json"), context).status == "ON_HOLD"
    with pytest.raises(RecordError) as bad:
        mapper.to_model(_payload("jd_order__unknown_status.json"), context)
    assert bad.value.attributes["group_key"] == "unmapped order_state=ORDER_STATE_FROM_THE_FUTURE"


def test_jd_after_sales_services_map_to_refunds(tmp_path, db_url, engine):
    mapper = _hub(tmp_path, db_url, engine).mapper("jd", "refund")
    context = {"channel": "jd", "shop": "jd-flagship"}
    approved = mapper.to_model(_payload("jd_refund__before_shipping_approved.json"), context)
    assert isinstance(approved, Refund) and approved.status == "SUCCESS" and approved.type == "refund_only"
    assert approved.refunded_amount == approved.requested_amount > 0 and approved.raw_status == "10010"
    raw = _payload("jd_refund__before_shipping_approved.json")
    assert approved.line_id == f"{raw['orderId']}-{raw['skuId']}"  # the same key as the order's line
    returned = mapper.to_model(_payload("jd_refund__return_requested.json"), context)
    assert returned.status == "REQUESTED" and returned.type == "return_refund" and returned.refunded_amount == 0
    with pytest.raises(RecordError) as unknown:
        mapper.to_model({**_payload("jd_refund__return_requested.json"), "afsServiceStatus": 10099}, context)
    assert unknown.value.attributes["group_key"] == "unmapped afs_status=10099"


def test_jd_comments_map_to_reviews_with_the_seller_s_reply(tmp_path, db_url, engine):
    review = _hub(tmp_path, db_url, engine).mapper("jd", "review").to_model(
        _payload("jd_review__replied.json"), {"channel": "jd", "shop": "jd-flagship"})
    assert isinstance(review, Review) and review.rating == "4" and review.reply == "感谢您的评价"
    assert review.line_id == f"{review.order_id}-{review.platform_item_id}"


def test_the_reviews_stream_pages_through_every_comment_once(tmp_path, sandbox, db_url, engine):
    hub = _hub(tmp_path, db_url, engine, sandbox.url)
    ids = create_jd_orders(sandbox.url, count=55, ago_s=120, lines=[{"sku": "SKU-001-RED-M", "num": 1}])
    for order_id in ids:
        modify_jd_order(sandbox.url, order_id, comment=True)
    settings = hub.settings.shop("jd", "jd-flagship")
    assert isinstance(settings, JdShopSettings)
    stream = hub.source_connector("jd").open_streams(settings)["reviews"]
    assert isinstance(stream, ReviewsStream)
    now = datetime.now(UTC)
    pages = list(stream.read_window(now - timedelta(minutes=30), now))
    assert [p.page_no for p in pages] == [1, 2] and pages[-1].is_last and pages[-1].reported_total == 55
    mapper = hub.mapper("jd", "review")
    reviews = [mapper.to_model(r, {"channel": "jd", "shop": "jd-flagship"}) for p in pages for r in p.records]
    truth = jd_truth(sandbox.url)["channels"]["jd"]["jd-flagship"]["comments"]
    assert sorted(r.review_id for r in reviews) == sorted(truth)
    assert {r.order_id for r in reviews} == set(ids)


def test_a_window_larger_than_a_page_is_read_in_pieces_of_one_page(tmp_path, sandbox, db_url, engine, monkeypatch):
    hub = _hub(tmp_path, db_url, engine, sandbox.url)
    ids = [i for ago in range(300, 60, -20) for i in create_jd_orders(sandbox.url, count=2, ago_s=ago)]
    stream = OrdersStream(JdClient(hub.settings.shop("jd", "jd-flagship")), page_size=5)
    pages_asked = []
    real = stream._search
    monkeypatch.setattr(stream, "_search", lambda lo, hi, page: pages_asked.append(page) or real(lo, hi, page))
    now = datetime.now(UTC)
    pages = list(stream.read_window(now - timedelta(minutes=10), now))
    assert sorted(r["orderId"] for p in pages for r in p.records) == sorted(ids)
    assert set(pages_asked) == {1}  # never a deep page: nothing for a shifting list to skip
    assert pages[-1].reported_total == len(ids) and [p.is_last for p in pages].count(True) == 1
