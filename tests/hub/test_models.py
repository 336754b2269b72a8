"""Canonical models refuse what would corrupt money, time or identity."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from hub.models import Order, OrderStatus

NOW = datetime(2026, 11, 11, 0, 0, 1, tzinfo=UTC)


def order(**overrides):
    data = dict(platform="tmall", shop_id="tm-1", order_id="3817000000000000001", status="PAID",
                raw_status="WAIT_SELLER_SEND_GOODS", created_at=NOW, updated_at=NOW, goods_total=19800,
                paid_total=19800, lines=[dict(line_id="1", qty=2, unit_price=9900, line_total=19800, line_paid=19800,
                                              status="PAID", raw_status="WAIT_SELLER_SEND_GOODS")])
    data.update(overrides)
    return Order.model_validate(data)


def test_a_valid_order_keeps_its_raw_status_beside_the_canonical_one():
    o = order()
    assert o.status is OrderStatus.PAID and o.raw_status == "WAIT_SELLER_SEND_GOODS"
    assert o.currency == "CNY"


def test_money_as_a_float_is_refused():
    with pytest.raises(ValidationError):
        order(paid_total=198.0)


def test_naive_datetimes_are_refused():
    with pytest.raises(ValidationError, match="timezone-aware"):
        order(updated_at=datetime(2026, 11, 11))


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="Extra inputs"):
        order(colour="red")


def test_ids_must_be_strings_not_numbers():
    with pytest.raises(ValidationError):
        order(order_id=3817000000000000001)


def test_a_status_outside_the_vocabulary_is_refused():
    with pytest.raises(ValidationError):
        order(status="SOMETHING")


def test_an_order_needs_a_line_and_line_ids_are_unique():
    with pytest.raises(ValidationError):
        order(lines=[])
    line = dict(line_id="1", qty=1, unit_price=1, line_total=1, line_paid=1, status="PAID", raw_status="x")
    with pytest.raises(ValidationError, match="duplicate line"):
        order(lines=[line, line])
