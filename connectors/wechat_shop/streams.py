"""WeChat shop streams: ``orders`` (order/list/get by update time + order/get) and ``refunds`` (after-sales:
getaftersalelist by update time + getaftersaleorder), each read in the hub's windows.

The list APIs return ids only, so every id is read with its detail call: a record is never stored from a partial
list answer. Paging is a keyset ``next_key`` (§3.2), sent back unchanged with the *same* filters (else 606006): an
order created while we page cannot shift a page already read, and an order updated meanwhile gets an update time
after the window and is read by a later window. There is no total count, so ``has_more`` ends the window. Window
bounds are unix seconds, inclusive on both ends; overlapping windows re-read the boundary second, which the version
guard makes harmless.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from connectors.wechat_shop.client import WxClient
from hub.connector import Page
from hub.logging import get_logger

log = get_logger(__name__)
# Key of the id the list served, added to a detail record that lacks its own id (a malformed answer): the mapping
# still quarantines the record for its missing ``order_id``, but the quarantine knows which order it is.
LISTED_ID = "_listed_id"


def _bounds(start: datetime, end: datetime) -> tuple[int, int]:
    return math.floor(start.timestamp()), math.floor(end.timestamp())


def _with_listed_id(record: dict[str, Any], id_key: str, listed: str) -> dict[str, Any]:
    if record.get(id_key) in (None, ""):
        return {**record, LISTED_ID: listed}
    return record


class OrdersStream:
    name = "orders"
    entity = "order"
    max_window = timedelta(days=7)  # order/list/get: a time range spans at most 7 days (else 40097)
    history_limit = timedelta(days=90)  # UNCONFIRMED in the spec; the hub never looks back further than this

    def __init__(self, client: WxClient, page_size: int = 100) -> None:
        self.client = client
        self.page_size = min(max(page_size, 1), 100)

    def read_window(self, start: datetime, end: datetime) -> Iterator[Page]:
        low, high = _bounds(start, end)
        body: dict[str, Any] = {"update_time_range": {"start_time": low, "end_time": high},
                                "page_size": self.page_size}
        page_no = 0
        while True:
            page_no += 1
            answer = self.client.call("/channels/ec/order/list/get", body)
            ids = [str(i) for i in answer.get("order_id_list") or []]
            has_more = bool(answer.get("has_more")) and bool(ids)
            records = [self._detail(order_id) for order_id in dict.fromkeys(ids)]
            yield Page(records, page_no, not has_more, None)
            if not has_more:
                return
            body = {**body, "next_key": str(answer.get("next_key") or "")}

    def _detail(self, order_id: str) -> dict[str, Any]:
        return _with_listed_id(self.fetch_one(order_id), "order_id", order_id)

    def fetch_one(self, external_id: str) -> dict[str, Any]:
        # order_id travels as a string: ids exceed 2**53 and WeChat refuses a number rather than rounding it
        order = self.client.call("/channels/ec/order/get", {"order_id": str(external_id)}).get("order") or {}
        return _with_listed_id(order, "order_id", str(external_id)) if order else order

    def external_id(self, record: Mapping[str, Any]) -> str | None:
        value = record.get("order_id")
        if value in (None, ""):
            value = record.get(LISTED_ID)
        return str(value) if value not in (None, "") else None


class RefundsStream:
    name = "refunds"
    entity = "refund"
    max_window = timedelta(hours=24)  # getaftersalelist: begin/end span at most 24 h
    history_limit = timedelta(days=90)  # UNCONFIRMED in the spec

    def __init__(self, client: WxClient, page_size: int = 100) -> None:
        self.client = client
        self.page_size = min(max(page_size, 1), 100)

    def read_window(self, start: datetime, end: datetime) -> Iterator[Page]:
        low, high = _bounds(start, end)
        body: dict[str, Any] = {"begin_update_time": low, "end_update_time": high, "page_size": self.page_size}
        page_no = 0
        while True:
            page_no += 1
            answer = self.client.call("/channels/ec/aftersale/getaftersalelist", body)
            ids = [str(i) for i in answer.get("after_sale_order_id_list") or []]
            has_more = bool(answer.get("has_more")) and bool(ids)
            records = [_with_listed_id(self.fetch_one(i), "after_sale_order_id", i) for i in dict.fromkeys(ids)]
            yield Page(records, page_no, not has_more, None)
            if not has_more:
                return
            body = {**body, "next_key": str(answer.get("next_key") or "")}

    def fetch_one(self, external_id: str) -> dict[str, Any]:
        return self.client.call("/channels/ec/aftersale/getaftersaleorder",
                                {"after_sale_order_id": str(external_id)}).get("after_sale_order") or {}

    def external_id(self, record: Mapping[str, Any]) -> str | None:
        value = record.get("after_sale_order_id") or record.get(LISTED_ID)
        return str(value) if value not in (None, "") else None
