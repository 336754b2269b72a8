"""JD streams: ``orders`` (pop.order.search by modification time), ``refunds`` (after-sales services) and
``reviews`` (buyer comments), each read in the hub's windows.

Orders: JD's advice is time-sliding windows rather than deep paging (§2.5), and deep pages are where the list shifts
under the reader (an order modified while we page moves to the end of an ascending window; at peak the index itself
shifts pages). So a window is read with page 1 only whenever it fits one page: a window reporting more orders than a
page is cut into equal pieces of whole seconds (about 70 % of a page each, by its total), recursively, until every
piece fits. Only a single second holding more than
a page of orders is paged, and its pages are re-read until the distinct orders seen add up to JD's ``orderTotal``.
List answers at peak can lack nodes (``itemInfoList``, ``consigneeInfo``...): such an order is re-read with
``pop.order.get`` and never stored from the degraded copy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.jd.client import JdClient, jd_time
from hub.connector import Page
from hub.errors import RecordError
from hub.logging import get_logger

log = get_logger(__name__)

# §2.5: order_state is required; every state, so a change of state never hides an order from the window.
ORDER_STATES = (
    "WAIT_SELLER_STOCK_OUT", "WAIT_SELLER_DELIVERY", "WAIT_GOODS_RECEIVE_CONFIRM", "FINISHED_L", "TRADE_CANCELED",
    "LOCKED", "PAUSE", "POP_ORDER_PAUSE", "SEND_TO_DISTRIBUTION_CENER", "DISTRIBUTION_CENTER_RECEIVED",
    "RECEIPTS_CONFIRM",
)
# Everything the mapping (mappings/jd.yaml) reads; optional_fields is required and only these come back.
ORDER_FIELDS = (
    "orderId", "venderId", "orderType", "payType", "orderTotalPrice", "orderSellerPrice", "orderPayment",
    "freightPrice", "sellerDiscount", "orderState", "orderStateRemark", "orderRemark", "venderRemark",
    "orderStartTime", "orderEndTime", "paymentConfirmTime", "modified", "consigneeInfo", "itemInfoList",
    "couponDetailList", "waybill", "logisticsId", "pin", "open_id_buyer", "parentOrderId", "balanceUsed",
)
# Nodes a complete order always has; a list record without one is degraded and re-read by id.
REQUIRED_NODES = ("itemInfoList", "consigneeInfo", "couponDetailList", "orderState", "modified", "orderPayment")
# A one-second piece with more orders than a page is paged; its pages are re-read this often to agree with the total.
MAX_PAGE_PASSES = 4
ONE_SECOND = timedelta(seconds=1)
# A crowded window is cut so that each piece should hold this share of a page (orders are not spread evenly).
FILL = 0.7


def missing_nodes(order: Mapping[str, Any]) -> list[str]:
    """What a list record lacks that a complete JD order has (an order without items is re-read as well)."""
    missing = [name for name in REQUIRED_NODES if name not in order]
    if "itemInfoList" not in missing and not order.get("itemInfoList"):
        missing.append("itemInfoList")
    return missing


def _order_id(record: Mapping[str, Any]) -> str | None:
    value = record.get("orderId")
    return str(value) if value not in (None, "") else None


def _whole_seconds(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(microsecond=0)


class OrdersStream:
    name = "orders"
    entity = "order"
    max_window = timedelta(days=30)  # §2.5: start_date..end_date spans at most one month
    history_limit = timedelta(days=90)  # JD's search history limit is UNCONFIRMED: stay within 3 months

    def __init__(self, client: JdClient, page_size: int = 100) -> None:
        self.client = client
        self.page_size = min(page_size, 100)

    def _search(self, start: datetime, end: datetime, page: int) -> dict[str, Any]:
        # JD's windows are inclusive on both ends, whole seconds, GMT+8; ascending by modification time.
        return self.client.call("jingdong.pop.order.search", {
            "start_date": jd_time(start), "end_date": jd_time(end), "order_state": ",".join(ORDER_STATES),
            "optional_fields": ",".join(ORDER_FIELDS), "page": str(page), "page_size": str(self.page_size),
            "dateType": 0, "sortType": 0,
        })

    def read_window(self, start: datetime, end: datetime) -> Iterator[Page]:
        """Pages of complete orders; the last page carries the total JD reported for the pieces read."""
        pending: list[dict[str, Any]] | None = None
        total = 0
        page_no = 0
        for records, piece_total in self._pieces(_whole_seconds(start), _whole_seconds(end)):
            total += piece_total
            if pending is not None:
                page_no += 1
                yield Page(pending, page_no, False, None)
            pending = self.complete(records)
        page_no += 1
        yield Page(pending or [], page_no, True, total)

    def _pieces(self, start: datetime, end: datetime) -> Iterator[tuple[list[dict[str, Any]], int]]:
        """(records, orderTotal) per piece of [start, end], oldest piece first, each read as page 1 if it fits."""
        stack = [(start, end)]
        while stack:
            lo, hi = stack.pop()
            body = self._search(lo, hi, 1)
            total = int(body.get("orderTotal") or 0)
            records = list(body.get("orderInfoList") or [])
            if total <= self.page_size:
                yield records, total
            elif hi - lo >= ONE_SECOND:
                # cut into as many equal pieces as the total suggests (with room for uneven density), so most
                # pieces fit one page at the first try; inclusive pieces [a, b], [b + 1 s, c]... partition the
                # whole seconds of the window
                seconds = int((hi - lo).total_seconds()) + 1
                count = min(seconds, max(2, math.ceil(total / (self.page_size * FILL))))
                bounds = [lo + timedelta(seconds=seconds * i // count) for i in range(count + 1)]
                pieces = [(bounds[i], bounds[i + 1] - ONE_SECOND) for i in range(count)]
                stack.extend(reversed(pieces))  # oldest piece on top: read first
            else:
                yield self._deep_page(lo, hi, records, total), total

    def _deep_page(self, lo: datetime, hi: datetime, first: list[dict[str, Any]], total: int
                   ) -> list[dict[str, Any]]:
        """Page one second that holds more orders than a page, until the distinct orders reach ``total``."""
        seen: dict[str, dict[str, Any]] = {}
        anonymous: list[dict[str, Any]] = []

        def take(records: list[dict[str, Any]]) -> None:
            for record in records:
                oid = _order_id(record)
                if oid is None:
                    if record not in anonymous:
                        anonymous.append(record)
                else:
                    seen[oid] = record

        take(first)
        pages = -(-total // self.page_size)
        for attempt in range(MAX_PAGE_PASSES):
            for page in range(pages, 1 if attempt == 0 else 0, -1):
                body = self._search(lo, hi, page)
                take(list(body.get("orderInfoList") or []))
            if len(seen) + len(anonymous) >= total:
                break
            log.info("a deep-paged second disagrees with its total; reading it again", seen=len(seen) +
                     len(anonymous), reported_total=total, attempt=attempt + 1)
        return list(seen.values()) + anonymous

    def complete(self, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Replace every degraded list record by its ``pop.order.get`` (see ``missing_nodes``); a record without an
        id cannot be re-read and goes on as it is, for the mapping to quarantine."""
        completed = []
        for order in orders:
            missing = missing_nodes(order)
            oid = _order_id(order)
            if missing and oid is not None:
                log.info("degraded list record completed with pop.order.get", order_id=oid, missing=missing)
                try:
                    order = self.fetch_one(oid)
                except RecordError as exc:  # gone since the list was served: the sweep re-reads the window
                    log.warning("degraded order cannot be re-read", order_id=oid, error=exc.to_dict())
                    continue
            completed.append(order)
        return completed

    def fetch_one(self, external_id: str) -> dict[str, Any]:
        body = self.client.call("jingdong.pop.order.get", {"order_id": str(external_id),
                                                            "optional_fields": ",".join(ORDER_FIELDS)})
        return dict(body.get("orderInfo") or {})

    def external_id(self, record: Mapping[str, Any]) -> str | None:
        return _order_id(record)


class RefundsStream:
    """After-sales services (``ServiceInfoProvider.queryServicePage``), filtered by apply time only.

    A status change does not bring an old service back into a recent apply-time window, so each window also re-reads
    the services applied ``afs_follow_up_days`` before it; the version guard makes the repeats no-ops.
    """

    name = "refunds"
    entity = "refund"
    max_window = timedelta(days=30)
    history_limit = timedelta(days=90)
    page_size = 100

    def __init__(self, client: JdClient, follow_up: timedelta, vender_id: str | None = None) -> None:
        self.client = client
        self.follow_up = follow_up
        self.vender_id = vender_id

    def _page(self, start: datetime, end: datetime, page: int) -> dict[str, Any]:
        business: dict[str, Any] = {"pageIndex": page, "pageSize": self.page_size,
                                    "afsApplyTimeBegin": jd_time(start), "afsApplyTimeEnd": jd_time(end)}
        if self.vender_id:
            business["buId"] = self.vender_id
        return dict(self.client.call("jingdong.ServiceInfoProvider.queryServicePage", business).get("data") or {})

    def read_window(self, start: datetime, end: datetime) -> Iterator[Page]:
        begin = _whole_seconds(start - self.follow_up)
        yield from _paged(lambda page: self._page(begin, _whole_seconds(end), page), "serviceExportList",
                          "totalNum", self.page_size, self.external_id)

    def fetch_one(self, external_id: str) -> dict[str, Any]:
        raise RecordError("JD after-sales services are read by window only (no fetch by service id)",
                          channel="jd", entity="refund", external_id=external_id)

    def external_id(self, record: Mapping[str, Any]) -> str | None:
        value = record.get("afsServiceId")
        return str(value) if value not in (None, "") else None


class ReviewsStream:
    """Buyer comments (``PopCommentJsfService.getVenderCommentsForJos``) by creation time, newest first.

    Newest-first paging only ever repeats a comment when a new one arrives meanwhile (the list grows at the front),
    so pages are read forwards and deduplicated by comment id.
    """

    name = "reviews"
    entity = "review"
    max_window = timedelta(days=30)
    history_limit = timedelta(days=90)
    page_size = 50  # the method's maximum

    def __init__(self, client: JdClient) -> None:
        self.client = client

    def _page(self, start: datetime, end: datetime, page: int) -> dict[str, Any]:
        body = self.client.call("jingdong.pop.PopCommentJsfService.getVenderCommentsForJos", {
            "beginTime": jd_time(start), "endTime": jd_time(end), "page": page, "pageSize": self.page_size})
        return {"comments": body.get("comments") or [], "totalItem": body.get("totalItem")}

    def read_window(self, start: datetime, end: datetime) -> Iterator[Page]:
        yield from _paged(lambda page: self._page(_whole_seconds(start), _whole_seconds(end), page), "comments",
                          "totalItem", self.page_size, self.external_id)

    def fetch_one(self, external_id: str) -> dict[str, Any]:
        raise RecordError("JD comments are read by window only (no fetch by comment id)", channel="jd",
                          entity="review", external_id=external_id)

    def external_id(self, record: Mapping[str, Any]) -> str | None:
        value = record.get("commentId")
        return str(value) if value not in (None, "") else None


def _paged(fetch, list_key: str, total_key: str, page_size: int, external_id) -> Iterator[Page]:
    """Forward paging with de-duplication by id; the window total is the one JD reported on the first page."""
    seen: set[str] = set()
    body = fetch(1)
    total = int(body.get(total_key) or 0)
    pages = max(1, -(-total // page_size))
    for page_no in range(1, pages + 1):
        if page_no > 1:
            body = fetch(page_no)
        records = []
        for record in body.get(list_key) or []:
            rid = external_id(record)
            if rid is not None and rid in seen:
                continue
            if rid is not None:
                seen.add(rid)
            records.append(record)
        yield Page(records, page_no, page_no == pages, total)
