"""Pinduoduo streams, both read by update-time windows: ``orders`` (``pdd.order.number.list.increment.get``) and
``refunds`` (``pdd.refund.list.increment.get``, after-sales).

§4: a window spans at most 30 minutes and reaches 3 months back; the lists are newest first, and PDD's advice is to
page **from the last page backwards** so a record updated while we page (it moves to page 1) cannot push another one
past us. The first page gives ``total_count``; pages are then read last to first, and if the distinct records seen
fall short of the total (the list shifted anyway) the window is read again, a few times, before the short count is
reported to the window ledger (the compensation sweep then re-reads it until it agrees).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar

from connectors.pdd.client import PddClient
from hub.connector import Page
from hub.errors import RecordError
from hub.logging import get_logger

log = get_logger(__name__)
MAX_PASSES = 4


class _IncrementStream:
    """One of PDD's ``*.increment.get`` lists read over a window, last page first, until the total is seen."""

    method: ClassVar[str]
    list_key: ClassVar[str]
    id_key: ClassVar[str]
    filters: ClassVar[dict[str, Any]]
    max_window = timedelta(minutes=30)  # §4: end_updated_at - start_updated_at <= 30 min
    history_limit = timedelta(days=90)  # §4: within 3 months

    def __init__(self, client: PddClient, page_size: int = 100) -> None:
        self.client = client
        self.page_size = max(1, min(page_size, 100))

    def external_id(self, record: Mapping[str, Any]) -> str | None:
        value = record.get(self.id_key)
        return str(value) if value not in (None, "") else None

    def _list(self, start: int, end: int, page: int) -> dict[str, Any]:
        return self.client.call(self.method, {"start_updated_at": start, "end_updated_at": end, **self.filters,
                                              "page": page, "page_size": self.page_size})

    def read_window(self, start: datetime, end: datetime) -> Iterator[Page]:
        lo, hi = math.floor(start.timestamp()), math.floor(end.timestamp())  # whole seconds, inclusive both ends
        seen: dict[str, dict[str, Any]] = {}
        anonymous: list[dict[str, Any]] = []  # no id: kept so the ingester quarantines them with their payload

        def take(records: list[dict[str, Any]]) -> None:
            for record in records:
                key = self.external_id(record)
                if key is None:
                    if record not in anonymous:
                        anonymous.append(record)
                else:
                    seen[key] = record

        total = 0
        for attempt in range(MAX_PASSES):
            first = self._list(lo, hi, 1)
            total = int(first.get("total_count") or 0)
            take(list(first.get(self.list_key) or []))
            for page in range(math.ceil(total / self.page_size), 1, -1):
                take(list(self._list(lo, hi, page).get(self.list_key) or []))
            if len(seen) + len(anonymous) >= total:
                break
            log.warning("PDD list shifted while paging; reading the window again", shop=self.client.shop,
                        method=self.method, seen=len(seen) + len(anonymous), total=total, attempt=attempt + 1)
        records = [*seen.values(), *anonymous]
        chunks = [records[i:i + self.page_size] for i in range(0, len(records), self.page_size)] or [[]]
        for number, chunk in enumerate(chunks, start=1):
            yield Page(chunk, number, number == len(chunks), total)


class OrdersStream(_IncrementStream):
    name = "orders"
    entity = "order"
    method = "pdd.order.number.list.increment.get"
    list_key = "order_sn_list"
    id_key = "order_sn"
    # every status: a change of status or of after-sales never hides an order from its window
    filters: ClassVar[dict[str, Any]] = {"order_status": 5, "refund_status": 5, "is_lucky_flag": 0,
                                         "use_has_next": "true"}

    def fetch_one(self, external_id: str) -> dict[str, Any]:
        return self.client.call("pdd.order.information.get", {"order_sn": external_id}).get("order_info") or {}


class RefundsStream(_IncrementStream):
    name = "refunds"
    entity = "refund"
    method = "pdd.refund.list.increment.get"
    list_key = "refund_list"
    id_key = "id"
    filters: ClassVar[dict[str, Any]] = {"after_sales_status": 1, "after_sales_type": 1}  # 1 = all

    def fetch_one(self, external_id: str) -> dict[str, Any]:
        raise RecordError("PDD after-sales are read by window only (no fetch by id in this connector)",
                          channel="pdd", entity="refund", external_id=external_id)
