"""Money allocation is exact to the fen: lines sum to the paid total, components to their line, over any order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.processing.allocation import LineMoney, allocate_order, largest_remainder
from hub.processing.plan import plan_order
from tests.processing.factory import NOW, order, rules, skus

fen = st.integers(min_value=0, max_value=2_000_000)


def test_largest_remainder_gives_left_over_fen_to_the_largest_remainders_and_ties_to_the_earlier_line():
    assert largest_remainder(100, [1, 1, 1]) == [34, 33, 33]
    assert largest_remainder(10, [3, 3, 4]) == [3, 3, 4]
    assert largest_remainder(1, [0, 0]) == [1, 0]          # all-zero weights: an equal split
    assert largest_remainder(-100, [1, 1, 1]) == [-34, -33, -33]
    assert largest_remainder(0, []) == []


@given(total=st.integers(min_value=-10**9, max_value=10**9),
       weights=st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=12))
def test_largest_remainder_always_sums_exactly_and_stays_within_one_fen_of_proportional(total, weights):
    parts = largest_remainder(total, weights)
    assert sum(parts) == total
    whole = sum(weights) or len(weights)
    for part, weight in zip(parts, weights if sum(weights) else [1] * len(weights)):
        assert abs(part * whole - total * weight) < whole  # |part - exact share| < 1 fen


@st.composite
def orders_money(draw):
    """Lines with item discounts, a shop coupon, freight and a platform discount; sometimes the channel's own
    per-line amounts do not add up (then the goods amount is re-allocated)."""
    count = draw(st.integers(min_value=1, max_value=8))
    gross = [draw(st.integers(min_value=0, max_value=500_000)) for _ in range(count)]
    item_discounts = [draw(st.integers(min_value=0, max_value=g)) for g in gross]
    net = [g - d for g, d in zip(gross, item_discounts)]
    coupon = draw(st.integers(min_value=0, max_value=sum(net)))
    shipping = draw(st.integers(min_value=0, max_value=5_000))
    paid_total = sum(net) - coupon + shipping
    consistent = draw(st.booleans())
    line_paid = largest_remainder(sum(net) - coupon, net) if consistent else [draw(fen) for _ in range(count)]
    platform = draw(st.integers(min_value=0, max_value=sum(item_discounts) + coupon))
    return {"paid_total": paid_total, "shipping_fee": shipping, "platform_discount": platform, "line_gross": gross,
            "line_net": net, "line_paid": line_paid}


@settings(max_examples=300, deadline=None)
@given(money=orders_money(), weights=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=4))
def test_allocated_lines_sum_to_the_paid_total_and_components_sum_to_their_line(money, weights):
    result = allocate_order(**money)
    lines = result.lines
    assert sum(m.paid for m in lines) == money["paid_total"]
    assert sum(m.shipping for m in lines) == min(money["shipping_fee"], money["paid_total"])
    assert sum(m.platform_discount for m in lines) == money["platform_discount"]
    assert all(m.paid >= 0 and m.goods >= 0 and m.shipping >= 0 for m in lines)
    for m, gross in zip(lines, money["line_gross"]):
        assert m.gross == gross and m.goods == m.gross - m.discount and m.paid == m.goods + m.shipping
        assert m.seller_discount == m.discount - m.platform_discount
        parts = m.split(weights)  # a bundle line over its components
        for name in ("gross", "discount", "platform_discount", "seller_discount", "goods", "shipping", "paid"):
            assert sum(getattr(p, name) for p in parts) == getattr(m, name)
        assert all(p.paid == p.goods + p.shipping for p in parts)
    if result.method == "channel":
        assert [m.goods for m in lines] == money["line_paid"]


def test_the_channel_s_own_line_amounts_are_kept_when_they_add_up():
    result = allocate_order(paid_total=20800, shipping_fee=1000, platform_discount=0, line_gross=[21800],
                            line_net=[19800], line_paid=[19800])
    assert result.method == "channel"
    assert result.lines == [LineMoney(gross=21800, discount=2000, platform_discount=0, seller_discount=2000,
                                      goods=19800, shipping=1000, paid=20800)]


@settings(max_examples=150, deadline=None)
@given(lines=st.lists(st.tuples(st.sampled_from(["SKU-001-RED-M", "SKU-002-BLU-30", "GIFTSET", "SKU-005-WHT-F"]),
                                st.integers(min_value=1, max_value=5), st.integers(min_value=1, max_value=99_999)),
                      min_size=1, max_size=6),
       coupon=st.integers(min_value=0, max_value=5000), shipping=st.integers(min_value=0, max_value=2000))
def test_every_released_plan_of_a_generated_order_sums_to_its_paid_total_to_the_fen(lines, coupon, shipping):
    tables = skus(bundles={"GIFTSET": {"components": [{"sku": "SKU-001-RED-M", "qty": 1},
                                                      {"sku": "SKU-005-WHT-F", "qty": 3}]}})
    goods = sum(qty * price for _code, qty, price in lines)
    coupon = min(coupon, goods)
    channel_paid = largest_remainder(goods - coupon, [qty * price for _code, qty, price in lines])
    o = order(*lines, shipping_fee=shipping, paid_total=goods - coupon + shipping, discount_total=coupon,
              line_overrides={i: {"line_paid": p} for i, p in enumerate(channel_paid)})
    plan = plan_order(o, tables, rules(), now=NOW)
    assert plan.status == "released"
    shipped = [line for g in plan.groups for line in g.lines]
    assert sum(line.allocated_paid_fen for line in shipped) == o.paid_total
    assert sum(line.shipping_fen for line in shipped) == shipping
    assert sum(a.allocated_paid_fen for a in plan.allocation) == o.paid_total
    for a in plan.allocation:  # bundle components add up to the channel line they came from
        assert sum(line.allocated_paid_fen for line in shipped if line.line_id == a.line_id) == a.allocated_paid_fen
