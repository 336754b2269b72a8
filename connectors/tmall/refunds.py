"""Tmall ``refunds`` stream: the shop's refunds by modification window with ``taobao.refunds.receive.get``.

Like trades, refunds come newest first, so pages are read from the last to the first (see streams.py for why a
modification during paging then moves records only into pages not read yet). The spec gives this API no window or
look-back limit; windows stay one day like the trades' so a sweep re-reads bounded spans.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from connectors.tmall.client import TopClient, top_time
from connectors.tmall.streams import unwrap_list
from hub.connector import Page

REFUND_FIELDS = ",".join([
    "refund_id", "tid", "oid", "title", "total_fee", "refund_fee", "payment", "status", "order_status",
    "good_status", "has_good_return", "refund_phase", "refund_version", "reason", "desc", "created", "modified",
    "sid", "company_name", "num", "sku", "outer_id", "dispute_type",
])


class RefundsStream:
    name = "refunds"
    entity = "refund"
    max_window = timedelta(days=1)
    history_limit = timedelta(days=90)

    def __init__(self, client: TopClient, page_size: int = 100) -> None:
        self.client = client
        self.page_size = page_size

    def _page(self, start: datetime, end: datetime, page_no: int) -> dict[str, Any]:
        return self.client.call("taobao.refunds.receive.get", fields=REFUND_FIELDS, start_modified=top_time(start),
                                end_modified=top_time(end), page_no=page_no, page_size=self.page_size)

    def read_window(self, start: datetime, end: datetime) -> Iterator[Page]:
        first = self._page(start, end, 1)
        total = int(first.get("total_results") or 0)
        pages = max(1, math.ceil(total / self.page_size))
        if pages == 1:
            yield Page(unwrap_list(first.get("refunds"), "refund"), 1, True, total)
            return
        probe = unwrap_list(first.get("refunds"), "refund")
        for page_no in range(pages, 0, -1):
            records = unwrap_list(self._page(start, end, page_no).get("refunds"), "refund")
            if page_no == 1:  # what the first request served is kept: a refund changed since may have left page 1
                served = {self.external_id(r) for r in records}
                records = records + [r for r in probe if self.external_id(r) not in served]
            yield Page(records, page_no, page_no == 1, total)

    def fetch_one(self, external_id: str) -> dict[str, Any]:
        return self.client.call("taobao.refund.get", fields=REFUND_FIELDS, refund_id=external_id).get("refund") or {}

    def external_id(self, record: Mapping[str, Any]) -> str | None:
        value = record.get("refund_id")
        return str(value) if value not in (None, "") else None
