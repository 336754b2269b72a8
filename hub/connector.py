"""The shapes connectors plug into: what the hub asks of a source, a stream and a sink. No channel is named here.

A source connector (``connectors/<channel>/``) provides a ``SourceConnector``: its settings model, its mapping
functions, its streams, and a ``ship`` write-back. A sink connector provides a ``SinkConnector`` whose ``open``
returns a ``Sink`` for one configured target. ``connectors/registry.py`` lists them all, explicitly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from pydantic import BaseModel

from hub.models import Order, Shipment


@dataclass(frozen=True)
class Page:
    """One page of raw records from a windowed read; ``is_last`` marks the page after which the window is done."""

    records: list[dict[str, Any]]
    page_no: int
    is_last: bool
    reported_total: int | None = None


class WindowedStream(Protocol):
    """A stream read by modification-time windows (orders, refunds, reviews)."""

    name: str
    entity: str
    max_window: timedelta
    history_limit: timedelta

    def read_window(self, start: Any, end: Any) -> Iterator[Page]: ...

    def fetch_one(self, external_id: str) -> dict[str, Any]: ...

    def external_id(self, record: Mapping[str, Any]) -> str | None: ...


@dataclass(frozen=True)
class ShipResult:
    accepted: bool
    already_done: bool = False
    detail: str | None = None


@dataclass(frozen=True)
class SourceConnector:
    channel: str
    settings_type: type[BaseModel]
    mapping_file: str  # file name inside the mappings folder: the orders map
    transforms: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    computes: Mapping[str, Callable[[Mapping[str, Any], Mapping[str, Any]], Any]] = field(default_factory=dict)
    open_streams: Callable[[Any], Mapping[str, WindowedStream]] = None  # type: ignore[assignment]
    ship: Callable[[Any, Order, Shipment, str], ShipResult] = None  # type: ignore[assignment]
    # channels that push change notices (TMC...): shops -> queues with ``shops``, ``key``, ``permit(shop)``,
    # ``consume()`` and ``confirm(ids)``; Hub.intake_pushes drives them
    open_push_queues: Callable[[list[Any]], list[Any]] | None = None
    # maps of the other stream entities (hub/entities.py): entity -> file name, e.g. {"refund": "tmall_refunds.yaml"}
    mapping_files: Mapping[str, str] = field(default_factory=dict)
    # available-to-sell pushes (hub/stock): (shop settings, [StockPushItem]) -> [StockAck]; None: the channel has none
    push_stock: Callable[[Any, list[Any]], list[Any]] | None = None


@dataclass(frozen=True)
class Delivery:
    """What a sink reports for one event: the target's document id, or that nothing was needed (and why)."""

    document_ref: str | None
    skipped_reason: str | None = None
    detail: dict[str, Any] | None = None


class Sink(Protocol):
    name: str
    event_types: tuple[str, ...]

    def idempotency_key(self, order: Order, event: Mapping[str, Any]) -> str: ...

    def deliver(self, order: Order, event: Mapping[str, Any]) -> Delivery: ...


class ProbingSink(Sink, Protocol):
    """A sink that can look its document up in the target by the stable document code (hub.dispatch calls
    ``probe`` before re-sending an event in doubt). ``None``: not there (or not finished), send again."""

    def probe(self, order: Order, event: Mapping[str, Any]) -> Delivery | None: ...


@dataclass(frozen=True)
class FeedbackItem:
    """One message a target sent back (a ship confirmation...): its feed position, the parsed result or the
    RecordError that explains why it cannot be taken in, and the raw text for the quarantine."""

    position: int
    confirm: Any | None  # hub.feedback.ShipConfirm
    error: Exception | None
    raw: str


@dataclass(frozen=True)
class SinkConnector:
    kind: str
    settings_type: type[BaseModel]
    open: Callable[[Any], Sink]
    # targets that report back (a WMS's ship confirmations) and can be polled: (settings, after) -> items
    poll_feedback: Callable[[Any, int], list[FeedbackItem]] | None = None
