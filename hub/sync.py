"""Incremental pull of one (connector, shop, stream): bounded windows, cursor committed with the data.

    cursor (or start_from) - overlap  ......  now - lag
    [ window 1 ][ window 2 ][ ... ]   each at most sync.window_minutes and the API's max span

Every window is written to the ledger (bounds, pages, records seen, the platform's total). Each page is ingested in
its own transaction; the page that finishes a window also moves the cursor to the window's end *in that same
transaction*, so a crash between a fetch and its commit leaves the cursor where the data is, and the next run reads
the window again (idempotently, thanks to the version guard). The cursor never passes the window that was read.
Windows stay open in the ledger; the delayed re-scan that closes them is the compensation sweep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from hub.connector import WindowedStream
from hub.ingest import IngestResult, Source, ingest_records
from hub.logging import bind_run, get_logger
from hub.store import schema as t
from hub.store.db import reading
from hub.store.schema import utcnow

log = get_logger(__name__)


@dataclass
class SyncReport:
    connector: str
    shop: str
    stream: str
    windows: int = 0
    pages: int = 0
    result: IngestResult = field(default_factory=IngestResult)
    cursor: datetime | None = None


def _seconds(moment: datetime) -> datetime:
    """Platforms speak whole seconds; windows are whole seconds so bounds survive the round trip."""
    return moment.replace(microsecond=0)


def get_cursor(conn: Connection, connector: str, shop: str, stream: str) -> datetime | None:
    return conn.execute(sa.select(t.sync_cursors.c.position).where(
        t.sync_cursors.c.connector == connector, t.sync_cursors.c.shop == shop, t.sync_cursors.c.stream == stream)
    ).scalar()


def set_cursor(conn: Connection, connector: str, shop: str, stream: str, position: datetime) -> None:
    """Move the cursor forward only: a cursor never moves back, whoever calls this."""
    now = utcnow()
    current = get_cursor(conn, connector, shop, stream)
    if current is None:
        conn.execute(sa.insert(t.sync_cursors).values(connector=connector, shop=shop, stream=stream,
                                                      position=position, updated_at=now))
    elif position > current:
        conn.execute(sa.update(t.sync_cursors).where(
            t.sync_cursors.c.connector == connector, t.sync_cursors.c.shop == shop,
            t.sync_cursors.c.stream == stream, t.sync_cursors.c.position < position,
        ).values(position=position, updated_at=now))


def plan_windows(cursor: datetime | None, *, now: datetime, start_from: datetime | None, lookback: timedelta,
                 window: timedelta, overlap: timedelta, lag: timedelta, max_window: timedelta,
                 history_limit: timedelta) -> list[tuple[datetime, datetime]]:
    """The windows to read now, oldest first. Pure, so its edge cases are unit-tested without a platform."""
    upper = _seconds(now - lag)
    if cursor is None:
        start = start_from or (now - lookback)
    else:
        start = cursor - overlap
    start = _seconds(max(start, now - history_limit + timedelta(minutes=1)))
    span = min(window, max_window)
    windows = []
    while start < upper:
        end = min(start + span, upper)
        windows.append((start, end))
        start = end
    return windows


def sync_stream(engine: Engine, source: Source, stream: WindowedStream, sync_settings: Any, *,
                now: datetime | None = None, run_id: str | None = None) -> SyncReport:
    report = SyncReport(source.channel, source.shop, stream.name)
    now = now or datetime.now(UTC)
    with reading(engine) as conn:
        cursor = get_cursor(conn, source.channel, source.shop, stream.name)
    windows = plan_windows(cursor, now=now, start_from=sync_settings.start_from,
                           lookback=timedelta(hours=sync_settings.initial_lookback_hours),
                           window=sync_settings.window, overlap=sync_settings.overlap, lag=sync_settings.lag,
                           max_window=stream.max_window, history_limit=stream.history_limit)
    with bind_run(run_id=run_id, connector=source.channel, shop=source.shop, stream=stream.name):
        for start, end in windows:
            _read_window(engine, source, stream, start, end, report)
    with reading(engine) as conn:
        report.cursor = get_cursor(conn, source.channel, source.shop, stream.name)
    return report


def _read_window(engine: Engine, source: Source, stream: WindowedStream, start: datetime, end: datetime,
                 report: SyncReport) -> None:
    window_label = f"{start.isoformat()}/{end.isoformat()}"
    with bind_run(window=window_label):
        with engine.begin() as conn:
            window_id = conn.execute(sa.insert(t.sync_windows).values(
                connector=source.channel, shop=source.shop, stream=stream.name, window_start=start, window_end=end,
                pages=0, records_seen=0, scans=1, closed=False, opened_at=utcnow(), scanned_at=utcnow(),
            )).inserted_primary_key[0]
        window_result = IngestResult()
        pages = 0
        for page in stream.read_window(start, end):
            pages += 1

            def bookkeeping(conn: Connection, page=page, pages=pages) -> None:
                conn.execute(sa.update(t.sync_windows).where(t.sync_windows.c.id == window_id).values(
                    pages=pages, records_seen=t.sync_windows.c.records_seen + len(page.records),
                    reported_total=page.reported_total, scanned_at=utcnow()))
                if page.is_last:
                    set_cursor(conn, source.channel, source.shop, stream.name, end)

            window_result.add(ingest_records(engine, source, page.records, in_same_transaction=bookkeeping))
        report.windows += 1
        report.pages += pages
        report.result.add(window_result)
        log.info("window read", pages=pages, received=window_result.received, new=window_result.new,
                 changed=window_result.changed, unchanged=window_result.unchanged,
                 quarantined=window_result.quarantined)


def open_windows(conn: Connection, limit: int = 50) -> list[Any]:
    return list(conn.execute(sa.select(t.sync_windows).where(t.sync_windows.c.closed.is_(False))
                             .order_by(t.sync_windows.c.window_start).limit(limit)))
