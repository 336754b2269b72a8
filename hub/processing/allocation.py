"""Exact money allocation in integer fen: split an amount over weights so the parts always sum to the amount.

Finance reconciles line by line, so every allocated figure must add up to the order's own totals *to the fen*.
Rounding each share independently loses or invents fen (three lines of 1/3 each); the largest-remainder method
(Hamilton's) floors every share and hands the left-over fen to the largest fractional parts, ties to the earlier
index, so the result is exact, deterministic and as close to proportional as integers allow.

Everything here is pure (ints in, ints out): ``plan.py`` composes it into per-line allocations of the goods amount,
platform and seller discounts, shipping and the paid total; bundle components are split from their line the same
way, so components always sum to the line they came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` fen over ``weights`` proportionally; the parts sum to ``total`` exactly.

    Weights must be non-negative; when they are all zero the split is equal. A negative total (a net upward
    adjustment) is split like its absolute value and negated, so signs never mix within one allocation.
    """
    if not weights:
        if total:
            raise ValueError(f"cannot allocate {total} fen over no weights")
        return []
    if any(w < 0 for w in weights):
        raise ValueError(f"weights must be non-negative, got {list(weights)}")
    if total < 0:
        return [-part for part in largest_remainder(-total, weights)]
    if sum(weights) == 0:
        weights = [1] * len(weights)
    whole = sum(weights)
    parts = [total * w // whole for w in weights]
    remainders = [total * w % whole for w in weights]
    short = total - sum(parts)
    # the `short` largest remainders get one fen each; sorted() is stable, so ties go to the earlier line
    for index in sorted(range(len(weights)), key=lambda i: -remainders[i])[:short]:
        parts[index] += 1
    return parts


@dataclass(frozen=True)
class LineMoney:
    """One line's share of the order's money, in fen. ``paid = goods + shipping`` and ``gross - discount = goods``."""

    gross: int           # list price x qty
    discount: int        # everything taken off the gross: platform + seller (+ manual adjustments, negative)
    platform_discount: int
    seller_discount: int
    goods: int           # what the buyer paid for the goods
    shipping: int        # this line's share of the freight
    paid: int            # goods + shipping: the lines of an order sum to its paid total

    def split(self, weights: Sequence[int]) -> list[LineMoney]:
        """Split this line over components (a bundle's contents); every figure sums back to this line."""
        gross = largest_remainder(self.gross, weights)
        goods = largest_remainder(self.goods, weights)
        shipping = largest_remainder(self.shipping, weights)
        platform = largest_remainder(self.platform_discount, weights)
        out = []
        for g, net, ship, plat in zip(gross, goods, shipping, platform):
            discount = g - net
            out.append(LineMoney(gross=g, discount=discount, platform_discount=plat, seller_discount=discount - plat,
                                 goods=net, shipping=ship, paid=net + ship))
        return out


@dataclass(frozen=True)
class OrderMoney:
    """The order-level figures an allocation must reproduce, and how they were reached."""

    lines: list[LineMoney]
    method: str          # "channel" (the channel's own per-line paid amounts) or "proportional"
    note: str | None = None


def allocate_order(*, paid_total: int, shipping_fee: int, platform_discount: int, line_gross: Sequence[int],
                   line_net: Sequence[int], line_paid: Sequence[int]) -> OrderMoney:
    """Allocate an order's paid total over its lines.

    ``line_gross`` is price x qty, ``line_net`` the gross after the line's own discounts (the proportional weights),
    ``line_paid`` the channel's per-line paid amount (Tmall's ``divide_order_fee``). When the channel's amounts add
    up to the goods part of the paid total they are kept as they are (the platform allocated its coupons itself and
    finance must match the platform's settlement); otherwise the goods amount is re-allocated over ``line_net``.
    Freight is spread over the goods amounts; the platform discount over the gross. The result always satisfies
    ``sum(paid) == paid_total`` and ``sum(shipping) == min(shipping_fee, paid_total)``.
    """
    count = len(line_gross)
    if count == 0 or len(line_net) != count or len(line_paid) != count:
        raise ValueError("allocate_order needs the same, non-zero number of gross, net and paid amounts")
    note = None
    shipping = shipping_fee
    if shipping > paid_total:  # a fully discounted order whose freight was waived on the platform's side
        shipping = max(paid_total, 0)
        note = f"freight {shipping_fee} fen exceeds the paid total {paid_total} fen; allocated {shipping} fen"
    goods_total = paid_total - shipping
    if sum(line_paid) == goods_total and all(p >= 0 for p in line_paid):
        goods, method = list(line_paid), "channel"
    else:
        goods = largest_remainder(goods_total, [max(n, 0) for n in line_net])
        method = "proportional"
        note = (note + "; " if note else "") + (
            f"channel line amounts sum to {sum(line_paid)} fen, the goods paid are {goods_total} fen: "
            "re-allocated over the lines' net amounts")
    freight = largest_remainder(shipping, [max(g, 0) for g in goods])
    platform = largest_remainder(platform_discount, list(line_gross))
    lines = []
    for gross, net, ship, plat in zip(line_gross, goods, freight, platform):
        discount = gross - net
        lines.append(LineMoney(gross=gross, discount=discount, platform_discount=plat,
                               seller_discount=discount - plat, goods=net, shipping=ship, paid=net + ship))
    return OrderMoney(lines, method, note)
