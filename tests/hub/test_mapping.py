"""The Tmall mapping turns recorded TOP payloads into valid canonical orders, and bad input into clear errors."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

import mappings
from connectors.tmall.mapping_functions import COMPUTES
from connectors.tmall.streams import unwrap_list
from hub.errors import ConfigurationError, RecordError
from hub.mapping import load_mapping, shanghai_time, yuan_to_fen
from hub.models import Order, OrderStatus

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "tmall"
CONTEXT = {"channel": "tmall", "shop": "tm-flagship"}


@pytest.fixture(scope="module")
def mapper():
    return load_mapping(mappings.path("tmall.yaml"), Order, computes=COMPUTES)


def recorded_trades():
    for path in sorted(FIXTURES.glob("trades_sold_increment_get__*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        yield from unwrap_list(body["trades_sold_increment_get_response"]["trades"], "trade")


def test_every_recorded_trade_maps_to_a_valid_canonical_order(mapper):
    trades = list(recorded_trades())
    assert trades
    for trade in trades:
        order = mapper.to_model(trade, CONTEXT)
        assert order.order_id == trade["tid_str"]


def test_a_paid_trade_maps_money_to_fen_and_times_to_utc(mapper):
    trade = next(recorded_trades())
    order = mapper.to_model(trade, CONTEXT)
    assert order.status is OrderStatus.PAID and order.raw_status == "WAIT_SELLER_SEND_GOODS"
    assert (order.goods_total, order.discount_total, order.shipping_fee, order.paid_total) == (21800, 2000, 1000,
                                                                                                 20800)
    assert order.updated_at == datetime(2024, 2, 29, 16, 31, 2, tzinfo=UTC)  # 00:31:02 GMT+8
    assert order.lines[0].line_total == 21800 and order.lines[0].line_paid == 19800
    assert order.receiver.receiver_ref == "oaid-xyz"
    assert order.payments[0].channel_txn_id == "2024030122001" and order.payments[0].amount == 20800
    assert order.shop_id == "tm-flagship"


def test_an_unknown_status_is_a_record_error_grouped_by_the_missing_table_entry(mapper):
    trade = {**next(recorded_trades()), "status": "TRADE_STATUS_FROM_THE_FUTURE"}
    with pytest.raises(RecordError) as info:
        mapper.to_model(trade, CONTEXT)
    assert info.value.attributes["group_key"] == "unmapped trade_status=TRADE_STATUS_FROM_THE_FUTURE"
    assert "tables.trade_status" in info.value.attributes["how_to_fix"]


def test_a_malformed_amount_is_a_record_error_naming_field_and_path(mapper):
    trade = {**next(recorded_trades()), "payment": "12.3.4"}
    with pytest.raises(RecordError) as info:
        mapper.to_model(trade, CONTEXT)
    assert info.value.attributes["field"] == "paid_total" and info.value.attributes["path"] == "payment"


def test_a_missing_required_field_is_a_record_error(mapper):
    trade = {k: v for k, v in next(recorded_trades()).items() if k not in ("tid", "tid_str")}
    with pytest.raises(RecordError, match="order_id: required value missing"):
        mapper.to_model(trade, CONTEXT)


def test_yuan_to_fen_is_exact_and_refuses_floats_and_fractions_of_a_fen():
    assert yuan_to_fen("200.07") == 20007
    assert yuan_to_fen(Decimal("0.10")) == 10
    with pytest.raises(ValueError):
        yuan_to_fen(200.07)
    with pytest.raises(ValueError):
        yuan_to_fen("1.005")
    with pytest.raises(ValueError):
        yuan_to_fen("NaN")


def test_shanghai_wall_time_becomes_utc():
    assert shanghai_time("2024-03-01 08:00:00") == datetime(2024, 3, 1, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("broken, message", [
    ("  paid_totl: {path: payment, via: yuan_to_fen}\n", "Order has no field 'paid_totl'"),
    ("  paid_total: {path: payment, via: yuan_to_cents}\n", "unknown transform 'yuan_to_cents'"),
    ("  paid_total: {path: payment, map: nowhere}\n", "map table 'nowhere' is not defined"),
    ("  paid_total: {path: payment, colour: red}\n", "Extra inputs"),
])
def test_a_typo_in_a_mapping_file_fails_at_load_not_at_3am(tmp_path, broken, message):
    text = mappings.path("tmall.yaml").read_text(encoding="utf-8")
    text = text.replace("  paid_total: {path: payment, via: yuan_to_fen}\n", broken)
    path = tmp_path / "tmall.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        load_mapping(path, Order, computes=COMPUTES)
