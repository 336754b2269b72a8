"""Tmall ``reviews`` stream: buyers' reviews of the shop's items with ``taobao.traderates.get`` (spec §1.7).

``rate_type=get, role=buyer`` reads what buyers wrote. The window is on ``created`` (``start_date``/``end_date``):
a review does not move once written, so plain first-to-last paging is safe here, unlike trades. Limits (§1.6): only
the last 180 days, ``page_no`` <= 200, ``page_size`` <= 150. The buyer's nick is personal data and is not requested.
A TradeRate has no id of its own: the line (``oid``) and its ``created`` second identify one.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from connectors.tmall.client import TopClient, top_time
from connectors.tmall.streams import unwrap_list
from hub.connector import Page

RATE_FIELDS = "tid,oid,num_iid,role,result,created,item_title,item_price,content,reply,valid_score"
MAX_PAGE_SIZE, MAX_PAGE_NO = 150, 200


def review_id(record: Mapping[str, Any], _context: Mapping[str, Any] | None = None) -> str:
    """``<oid>:<yyyyMMddHHmmss>``: stable across reads (the mapping's ``tmall_review_id`` compute)."""
    stamp = "".join(ch for ch in str(record.get("created") or "") if ch.isdigit())
    return f"{record.get('oid') or record.get('tid')}:{stamp}"


REVIEW_COMPUTES = {"tmall_review_id": review_id}


class ReviewsStream:
    name = "reviews"
    entity = "review"
    max_window = timedelta(days=1)
    history_limit = timedelta(days=180)

    def __init__(self, client: TopClient, page_size: int = 100) -> None:
        self.client = client
        self.page_size = min(page_size, MAX_PAGE_SIZE)

    def _page(self, page_no: int, **window: str) -> dict[str, Any]:
        return self.client.call("taobao.traderates.get", fields=RATE_FIELDS, rate_type="get", role="buyer",
                                page_no=page_no, page_size=self.page_size, **window)

    def read_window(self, start: datetime, end: datetime) -> Iterator[Page]:
        window = {"start_date": top_time(start), "end_date": top_time(end)}
        first = self._page(1, **window)
        total = int(first.get("total_results") or 0)
        pages = min(max(1, math.ceil(total / self.page_size)), MAX_PAGE_NO)
        yield Page(unwrap_list(first.get("trade_rates"), "trade_rate"), 1, pages == 1, total)
        for page_no in range(2, pages + 1):
            records = unwrap_list(self._page(page_no, **window).get("trade_rates"), "trade_rate")
            yield Page(records, page_no, page_no == pages, total)

    def fetch_one(self, external_id: str) -> dict[str, Any]:
        oid = external_id.split(":", 1)[0]
        rates = unwrap_list(self._page(1, tid=oid).get("trade_rates"), "trade_rate")
        return next((r for r in rates if review_id(r) == external_id), {})

    def external_id(self, record: Mapping[str, Any]) -> str | None:
        return review_id(record) if record.get("created") else None
