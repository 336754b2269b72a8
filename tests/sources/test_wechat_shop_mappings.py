"""The WeChat shop field maps and error classification, without a network: recorded order/get and
getaftersaleorder payloads map to valid canonical records (amounts in fen add up, line ids join refunds to lines),
and each errcode family is the error kind that makes the hub do the right thing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mappings
from connectors.wechat_shop import SOURCE
from connectors.wechat_shop.client import classify
from hub.errors import ConfigurationError, FatalError, RecordError, TransientError
from hub.mapping import load_mapping
from hub.models import Order, Refund

PAYLOADS = Path(mappings.__file__).parent / "cases" / "payloads"
CONTEXT = {"channel": "wechat_shop", "shop": "wx-store"}


def _mapper(file: str, model):
    return load_mapping(Path(mappings.__file__).parent / file, model, transforms=SOURCE.transforms,
                        computes=SOURCE.computes)


def _payload(name: str) -> dict:
    return json.loads((PAYLOADS / name).read_text(encoding="utf-8"))


def test_a_recorded_order_maps_to_lines_whose_paid_amounts_and_freight_add_up_to_what_the_buyer_paid():
    order = _mapper("wechat_shop.yaml", Order).to_model(_payload("wechat_shop_order__multi_line.json"), CONTEXT)
    raw = _payload("wechat_shop_order__multi_line.json")["order_detail"]
    assert order.order_id == "3705115058471208929" and order.status == "PAID" and order.raw_status == "20"
    assert sum(line.line_paid for line in order.lines) + order.shipping_fee == order.paid_total
    assert order.paid_total == raw["price_info"]["order_price"]
    assert order.discount_total == raw["price_info"]["discounted_price"] + raw["price_info"]["finder_discounted_price"]
    assert [line.line_id for line in order.lines] == [f"{order.order_id}-{p['sku_id']}" for p in raw["product_infos"]]
    assert order.receiver.receiver_ref == raw["delivery_info"]["address_info"]["hash_code"]
    assert order.payments[0].channel_txn_id == raw["pay_info"]["transaction_id"]
    assert order.shipped_at is None and order.completed_at is None  # 0 means "not yet"


def test_a_recorded_after_sale_maps_to_a_refund_on_the_line_of_its_order():
    refund_map = _mapper("wechat_shop_refunds.yaml", Refund)
    requested = refund_map.to_model(_payload("wechat_shop_refund__requested.json"), CONTEXT)
    order = _mapper("wechat_shop.yaml", Order).to_model(_payload("wechat_shop_order__refund_requested.json"), CONTEXT)
    assert requested.order_id == order.order_id and requested.line_id in {line.line_id for line in order.lines}
    assert (requested.type, requested.status, requested.refunded_amount) == ("refund_only", "REQUESTED", 0)
    assert next(line for line in order.lines if line.line_id == requested.line_id).refund_status == "REQUESTED"
    done = refund_map.to_model(_payload("wechat_shop_refund__refunded.json"), CONTEXT)
    assert done.status == "SUCCESS" and done.refunded_amount == done.requested_amount > 0


@pytest.mark.parametrize(("errcode", "kind", "attribute"), [
    (42001, ConfigurationError, "token_error"), (40001, ConfigurationError, "token_error"),
    (40013, ConfigurationError, None), (48001, ConfigurationError, None),
    (45011, TransientError, "retry_after"), (45009, TransientError, "quota"), (-1, TransientError, None),
    (100002, RecordError, None), (40097, RecordError, None), (606006, FatalError, None), (47001, FatalError, None),
])
def test_each_errcode_family_is_the_error_kind_the_hub_acts_on(errcode, kind, attribute):
    with pytest.raises(kind) as caught:
        classify("/channels/ec/order/get", 200, {"errcode": errcode, "errmsg": "x"}, shop="wx-store")
    assert caught.value.attributes["errcode"] == errcode and caught.value.attributes["shop"] == "wx-store"
    if attribute:
        assert caught.value.attributes.get(attribute)
    if kind is ConfigurationError:
        assert "wx-store" in caught.value.how_to_fix or "wx-store" in str(caught.value)


def test_an_html_error_page_is_transient_and_a_zero_errcode_is_the_answer():
    with pytest.raises(TransientError):
        classify("/channels/ec/order/get", 500, None)
    assert classify("/channels/ec/order/get", 200, {"errcode": 0, "order": {"order_id": "1"}})["order"]
