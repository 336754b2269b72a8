"""POS streams: ``orders`` (sale receipts), ``refunds`` (return receipts) and ``stock_levels`` (store stock).

The receipts feed is served in **upload order** and filtered on ``uploaded_at`` (sandbox/docs/pos.md, "Feed
semantics"). Tills work offline, so a receipt's ``sale_time`` can be hours older than its upload; a reader that
windowed on ``sale_time`` would miss every late upload once its cursor had passed the sale. The hub's windows are
therefore read as **upload-time** windows: ``since=start`` positions the feed, the opaque ``next_cursor`` pages
through it (it never expires and is bound to the store), and only receipts with ``start <= uploaded_at <= end``
belong to the window (both ends inclusive, like TOP's: a receipt on a bound is read twice, harmlessly).
``uploaded_at`` is stamped by the middleware as it appends, so it never decreases along the feed and paging stops at
the first receipt uploaded after ``end``. The feed is append-only: nothing moves between pages while we read, so no
page shift is possible, and a window re-read (overlap, sweep) returns the same receipts.

Receipts are immutable; a return is a new receipt of type ``RETURN``. Both streams read the same feed: ``orders``
keeps the sales, ``refunds`` the returns, each with its own cursor.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from connectors.pos.client import PosClient
from hub.connector import Page
from hub.errors import RecordError
from hub.logging import get_logger

log = get_logger(__name__)
SHANGHAI = ZoneInfo("Asia/Shanghai")
RECEIPTS = "receipts"
STOCK = "stock"
_RECEIPT_NO = re.compile(r"^[A-Za-z0-9]+-(\d{8})-\d+$")
# fetch_one scans the feed from the sale's day on; a store uploads a few thousand receipts a day at most
MAX_FETCH_PAGES = 1000


def iso_time(value: Any) -> datetime:
    """'2026-03-01T10:00:00+08:00' -> aware UTC; no offset is store-local time (Asia/Shanghai), as the feed says."""
    moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=SHANGHAI)
    return moment.astimezone(UTC)


def wire_time(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).isoformat(timespec="seconds")


def _uploaded(record: Mapping[str, Any]) -> datetime | None:
    try:
        return iso_time(record["uploaded_at"])
    except (KeyError, TypeError, ValueError):
        return None


class ReceiptsStream:
    """Receipts of one ``type`` (SALE -> orders, RETURN -> refunds) by upload-time windows."""

    max_window = timedelta(days=7)  # the API has no span limit; a week bounds one window's work
    history_limit = timedelta(days=365)  # the middleware keeps the feed; a year back is plenty for a first run

    def __init__(self, client: PosClient, *, name: str = "orders", entity: str = "order", receipt_type: str = "SALE",
                 page_size: int = 100) -> None:
        self.client = client
        self.name = name
        self.entity = entity
        self.receipt_type = receipt_type
        self.page_size = page_size

    def _pages(self, since: datetime) -> Iterator[tuple[dict[str, Any], bool]]:
        """The raw feed from ``since`` on: (body, has_more) per page, following ``next_cursor``."""
        body = self.client.get(RECEIPTS, since=wire_time(since), limit=self.page_size)
        while True:
            has_more = bool(body.get("has_more"))
            yield body, has_more
            if not has_more:
                return
            body = self.client.get(RECEIPTS, cursor=body["next_cursor"], limit=self.page_size)

    def read_window(self, start: datetime, end: datetime) -> Iterator[Page]:
        page_no = 0
        for body, has_more in self._pages(start):
            page_no += 1
            receipts = body.get("receipts") or []
            inside, past_end = [], False
            for record in receipts:
                uploaded = _uploaded(record)
                if uploaded is not None and uploaded > end:
                    past_end = True  # upload order: everything after this was uploaded later still
                    break
                if uploaded is not None and uploaded < start:
                    continue
                if record.get("type") == self.receipt_type:
                    inside.append(record)
            last = past_end or not has_more
            yield Page(inside, page_no, last)
            if last:
                return

    def fetch_one(self, external_id: str) -> dict[str, Any]:
        """A receipt by number. The middleware has no by-id call, but a receipt is never uploaded before its sale and
        its number carries the sale's day, so the feed is scanned from that day on."""
        match = _RECEIPT_NO.match(external_id.strip())
        if not match:
            raise RecordError(f"{external_id!r} is not a POS receipt number (<store code>-<yyyyMMdd>-<n>)",
                              channel="pos", shop=self.client.store, group_key="not a receipt number")
        since = datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=SHANGHAI)
        for pages, (body, _more) in enumerate(self._pages(since), start=1):
            for record in body.get("receipts") or []:
                if record.get("receipt_no") == external_id:
                    return record
            if pages >= MAX_FETCH_PAGES:
                break
        raise RecordError(f"receipt {external_id} is not in the feed of store {self.client.store}",
                          channel="pos", shop=self.client.store, group_key="receipt not found")

    def external_id(self, record: Mapping[str, Any]) -> str | None:
        value = record.get("receipt_no")
        return str(value) if value not in (None, "") else None


class StockStream:
    """Store stock: a snapshot of *now*, one record per SKU, each carrying the snapshot's ``store`` and ``as_of``.

    Stock has no history to window over, so only the window that reaches the present reads the snapshot; older
    windows (a first run's lookback, a sweep's re-scan) are empty by definition and close at once.
    """

    name = "stock_levels"
    entity = "stock_level"
    max_window = timedelta(days=7)
    history_limit = timedelta(days=365)

    def __init__(self, client: PosClient, *, present: timedelta = timedelta(minutes=2)) -> None:
        self.client = client
        self.present = present  # a window ending this close to now (plus the sync lag) is "the present"

    def snapshot(self) -> list[dict[str, Any]]:
        body = self.client.get(STOCK)
        store, as_of = body.get("store") or self.client.store, body.get("as_of")
        return [{**item, "store": store, "as_of": as_of} for item in body.get("items") or []]

    def read_window(self, start: datetime, end: datetime) -> Iterator[Page]:
        if datetime.now(UTC) - end > self.present:
            yield Page([], 1, True)
            return
        yield Page(self.snapshot(), 1, True)

    def fetch_one(self, external_id: str) -> dict[str, Any]:
        for record in self.snapshot():
            if record.get("sku") == external_id:
                return record
        raise RecordError(f"store {self.client.store} has no stock record for {external_id}", channel="pos",
                          shop=self.client.store, group_key="stock record not found")

    def external_id(self, record: Mapping[str, Any]) -> str | None:
        value = record.get("sku")
        return str(value) if value not in (None, "") else None
