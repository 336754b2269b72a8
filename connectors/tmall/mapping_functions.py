"""Named functions the Tmall mapping (mappings/tmall.yaml) may call by name; pure, dict in, value out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.mapping import shanghai_time, yuan_to_fen


def tmall_line_total(line: Mapping[str, Any], _context: Mapping[str, Any]) -> int:
    """price x num in fen (TOP's own line total_fee already nets adjust and discount)."""
    return yuan_to_fen(line["price"]) * int(line["num"])


def tmall_payments(trade: Mapping[str, Any], _context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One Alipay payment per paid trade; unpaid trades have none."""
    if not trade.get("pay_time"):
        return []
    txn = trade.get("alipay_no") or None
    return [{
        "payment_id": str(txn or trade.get("tid_str") or trade.get("tid")),
        "method": "alipay",
        "channel_txn_id": txn,
        "amount": yuan_to_fen(trade["payment"]),
        "currency": "CNY",
        "paid_at": shanghai_time(trade["pay_time"]),
    }]


def tmall_is_cod(trade: Mapping[str, Any], _context: Mapping[str, Any]) -> bool:
    """Trade type ``cod`` (货到付款): nothing is paid online, the carrier collects ``payment`` on delivery."""
    return str(trade.get("type") or "") == "cod"


def tmall_refund_type(refund: Mapping[str, Any], _context: Mapping[str, Any]) -> str:
    """Goods to come back (``has_good_return``) make it a return-and-refund; otherwise money only."""
    value = refund.get("has_good_return")
    returns = value is True or str(value).lower() == "true"
    return "return_refund" if returns else "refund_only"


def tmall_refunded_amount(refund: Mapping[str, Any], _context: Mapping[str, Any]) -> int:
    """``refund_fee`` has left the merchant only when the refund succeeded; before that nothing is refunded."""
    return yuan_to_fen(refund["refund_fee"]) if refund.get("status") == "SUCCESS" else 0


COMPUTES = {
    "tmall_refund_type": tmall_refund_type,
    "tmall_refunded_amount": tmall_refunded_amount,
    "tmall_line_total": tmall_line_total,
    "tmall_payments": tmall_payments,
    "tmall_is_cod": tmall_is_cod,
}
