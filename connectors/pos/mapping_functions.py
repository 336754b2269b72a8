"""Named transforms and functions the POS mappings (mappings/pos*.yaml) call by name; pure, dict in, value out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.pos.streams import iso_time
from hub.mapping import yuan_to_fen


def negated_yuan_to_fen(value: Any) -> int:
    """A return receipt's amounts are negative yuan strings ('-79.00'); the refund amount is their opposite."""
    return -yuan_to_fen(value)


def pos_line_paid(line: Mapping[str, Any], _context: Mapping[str, Any]) -> int:
    """What the customer paid for the line: line_total - line_discount (the till's member discount)."""
    return yuan_to_fen(line["line_total"]) - yuan_to_fen(line.get("line_discount") or "0")


def pos_refund_line(receipt: Mapping[str, Any], _context: Mapping[str, Any]) -> str | None:
    """The sale's line a return refers to when it returns exactly one line (``original_line_no``); a return of
    several lines is a whole-receipt refund (no line)."""
    lines = receipt.get("lines") or []
    if len(lines) != 1 or lines[0].get("original_line_no") in (None, ""):
        return None
    return str(lines[0]["original_line_no"])


TRANSFORMS = {"iso_time": iso_time, "negated_yuan_to_fen": negated_yuan_to_fen}
COMPUTES = {"pos_line_paid": pos_line_paid, "pos_refund_line": pos_refund_line}
