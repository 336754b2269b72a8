"""Builders for processing tests: canonical orders, Tmall-shaped trades, SKU tables and rules from plain data."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.models import Order
from hub.processing.rules import RulesFile
from hub.processing.skus import SkuFile, SkuTables

NOW = datetime(2026, 11, 11, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai

MASTERS = {
    "SKU-001-RED-M": {"name": "T恤 红 M", "list_price_fen": 7900},
    "SKU-002-BLU-30": {"name": "牛仔裤 30", "list_price_fen": 19900},
    "SKU-005-WHT-F": {"name": "袜子", "list_price_fen": 2990},
    "SKU-011-NEW-F": {"name": "新品预售", "presale": True},
}


def skus(**extra: Any) -> SkuTables:
    data = {"masters": MASTERS, **extra}
    return SkuTables(SkuFile.model_validate(data), "test-skus.yaml")


def rules(*items: dict[str, Any], warehouses: tuple[str, ...] = ("WH01", "WH02")) -> RulesFile:
    return RulesFile.model_validate({"warehouses": list(warehouses), "rules": list(items)})


def order(*lines: tuple[str, int, int], paid_total: int | None = None, shipping_fee: int = 0,
          order_id: str = "1001", **fields: Any) -> Order:
    """Lines as (merchant code, qty, unit price fen); the channel's line_paid is the gross unless given in fields."""
    line_dicts = []
    for i, (code, qty, price) in enumerate(lines, start=1):
        line_dicts.append({"line_id": f"{order_id}-{i}", "merchant_sku_code": code, "title": code, "qty": qty,
                           "unit_price": price, "line_total": qty * price, "line_paid": qty * price,
                           "status": "PAID", "raw_status": "WAIT_SELLER_SEND_GOODS"})
    for i, overrides in (fields.pop("line_overrides", None) or {}).items():
        line_dicts[i].update(overrides)
    goods = sum(line["line_paid"] for line in line_dicts)
    data = {
        "platform": "tmall", "shop_id": "tm-flagship", "order_id": order_id, "status": "PAID",
        "raw_status": "WAIT_SELLER_SEND_GOODS", "created_at": NOW - timedelta(hours=1),
        "paid_at": NOW - timedelta(hours=1), "updated_at": NOW - timedelta(hours=1),
        "buyer_ref": "buyer-1", "goods_total": sum(line["line_total"] for line in line_dicts),
        "shipping_fee": shipping_fee, "paid_total": goods + shipping_fee if paid_total is None else paid_total,
        "receiver": {"name": "张**", "phone": "*******1234", "province": "浙江省", "city": "杭州市",
                     "district": "西湖区", "address": "文三路**", "receiver_ref": "oaid-1"},
        "lines": line_dicts,
    }
    for key, value in fields.items():
        if key == "receiver":
            data["receiver"] = {**data["receiver"], **value}
        else:
            data[key] = value
    return Order.model_validate(data, strict=False)


# -- Tmall trades as TOP serves them (for tests that go through the real mapping and ingest) -----------------------

TRADE = {
    "tid": 3817000000000000001, "tid_str": "3817000000000000001", "status": "WAIT_SELLER_SEND_GOODS",
    "type": "fixed", "created": "2026-11-11 10:00:00", "pay_time": "2026-11-11 10:01:00",
    "modified": "2026-11-11 10:01:02", "payment": "208.00", "total_fee": "218.00", "discount_fee": "20.00",
    "adjust_fee": "0.00", "post_fee": "10.00", "buyer_nick": "t**1", "buyer_open_uid": "AAHk5d-EAAeGwJed",
    "receiver_name": "张**", "receiver_mobile": "*******0000", "receiver_state": "浙江省", "receiver_city": "杭州市",
    "receiver_district": "西湖区", "receiver_address": "文三路**", "receiver_zip": "310000", "oaid": "oaid-xyz",
    "alipay_no": "2026111122001",
    "orders": {"order": [{
        "oid": 3817000000000000002, "oid_str": "3817000000000000002", "num_iid": 600000000001,
        "sku_id": "5000000001", "outer_iid": "SPU-001", "outer_sku_id": "SKU-001-RED-M", "title": "T恤",
        "num": 2, "price": "109.00", "total_fee": "198.00", "discount_fee": "20.00", "adjust_fee": "0.00",
        "payment": "208.00", "divide_order_fee": "198.00", "status": "WAIT_SELLER_SEND_GOODS",
        "refund_status": "NO_REFUND"}]},
}


def trade(tid: int, **overrides: Any) -> dict[str, Any]:
    """A one-line paid trade (see TRADE); ``line`` overrides fields of its line."""
    record = copy.deepcopy(TRADE)
    record["tid"], record["tid_str"] = tid, str(tid)
    line = record["orders"]["order"][0]
    line["oid"], line["oid_str"] = tid + 1, str(tid + 1)
    line.update(overrides.pop("line", {}))
    record.update(overrides)
    return record
