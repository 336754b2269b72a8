"""Incremental pull of one (connector, shop, stream): bounded windows, cursor committed with the data.

    cursor (or start_from) - overlap  ......  now - lag
    [ window 1 ][ window 2 ][ ... ]   each at most sync.window_minutes and the API's max span

Every window is written to the ledger (bounds, pages, records seen, the platform's total). Each page is ingested in
its own transaction; the page that finishes a window also moves the cursor to the window's end *in that same
transaction*, so a crash between a fetch and its commit leaves the cursor where the data is, and the next run reads
the window again (idempotently, thanks to the version guard). The cursor never passes the window that was read.
Windows stay open in the ledger; the delayed re-scan that closes them is the compensation sweep.

A page's transaction whose database connection is lost (a server restart, a KILL, a network cut) is written again
within the run (``hub.retry.retry_on_lost_connection``): it rolled back whole, rows and cursor together, so it is
safe to repeat; if its COMMIT had landed after all, the repeat is a no-op under the version guard, and the ledger's
bookkeeping sets values instead of adding to them so it cannot count a page twice. Only when the connection keeps
failing does the run stop, with a TransientError; the next run then resumes from the cursor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from hub.connector import WindowedStream
from hub.entities import ingest_page
from hub.errors import ConfigurationError, TransientError
from hub.ingest import IngestResult, Source
from hub.logging import bind_run, get_logger
from hub.retry import retry_on_lost_connection
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
    stopped: str | None = None  # why the run stopped before the last window (quota exhausted until ...)


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
        try:
            for start, end in windows:
                _read_window(engine, source, stream, start, end, report)
        except TransientError as exc:
            if not exc.attributes.get("quota"):
                record_health(engine, source.channel, source.shop, stream.name, "transient", str(exc))
                raise
            # the platform's daily call quota is used up: stop here, cleanly. The cursor stays with the last window
            # that finished (the unfinished one is read again next time); the next run after the reset goes on.
            until = utcnow() + timedelta(seconds=float(exc.retry_after or 0))
            report.stopped = f"quota exhausted until {until.isoformat(timespec='seconds')}"
            record_health(engine, source.channel, source.shop, stream.name, "quota_exhausted", exc.message,
                          how_to_fix="nothing: the next run after the reset resumes from the cursor", until=until)
            log.warning("sync stopped: daily call quota exhausted", until=until.isoformat(), error=exc.to_dict())
        except ConfigurationError as exc:
            record_health(engine, source.channel, source.shop, stream.name, "configuration", exc.message,
                          how_to_fix=exc.how_to_fix)
            raise
        else:
            record_health(engine, source.channel, source.shop, stream.name, "ok", None)
    with reading(engine) as conn:
        report.cursor = get_cursor(conn, source.channel, source.shop, stream.name)
    return report


def record_health(engine: Engine, connector: str, shop: str, stream: str, state: str, message: str | None, *,
                  how_to_fix: str | None = None, until: datetime | None = None) -> None:
    """Remember what this source met last (``orderhub status`` shows every state that is not ok)."""
    key = (t.source_health.c.connector == connector, t.source_health.c.shop == shop,
           t.source_health.c.stream == stream)
    with engine.begin() as conn:
        conn.execute(sa.delete(t.source_health).where(*key))
        conn.execute(sa.insert(t.source_health).values(
            connector=connector, shop=shop, stream=stream, state=state, message=message, how_to_fix=how_to_fix,
            until=until, updated_at=utcnow()))


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
        seen = 0  # records of this window's pages committed so far
        for page in stream.read_window(start, end):
            pages += 1
            # one list for every attempt: a retry must write the same records, not what is left of an iterator
            records = list(page.records)
            seen_after = seen + len(records)

            def bookkeeping(conn: Connection, page=page, pages=pages, seen=seen_after) -> None:
                # absolute values, not increments: a repeat of a page whose commit did land leaves them right
                conn.execute(sa.update(t.sync_windows).where(t.sync_windows.c.id == window_id).values(
                    pages=pages, records_seen=seen, reported_total=page.reported_total, scanned_at=utcnow()))
                if page.is_last:
                    set_cursor(conn, source.channel, source.shop, stream.name, end)

            def write_page(records=records, bookkeeping=bookkeeping) -> IngestResult:
                return ingest_page(engine, source, records, in_same_transaction=bookkeeping)

            window_result.add(retry_on_lost_connection(write_page, engine=engine,
                                                       what=f"page {pages} of window {window_label}"))
            seen = seen_after
        report.windows += 1
        report.pages += pages
        report.result.add(window_result)
        log.info("window read", pages=pages, received=window_result.received, new=window_result.new,
                 changed=window_result.changed, unchanged=window_result.unchanged,
                 quarantined=window_result.quarantined)


def open_windows(conn: Connection, limit: int = 50) -> list[Any]:
    return list(conn.execute(sa.select(t.sync_windows).where(t.sync_windows.c.closed.is_(False))
                             .order_by(t.sync_windows.c.window_start).limit(limit)))


# -- compensation sweep (补单) ---------------------------------------------------------------------------------------

@dataclass
class SweepReport:
    """What one sweep of one (connector, shop, stream) did: windows re-read, closed, left open, what it found."""

    connector: str
    shop: str
    stream: str
    rescanned: int = 0
    closed: int = 0
    still_open: int = 0
    result: IngestResult = field(default_factory=IngestResult)
    stopped: str | None = None


def settled_windows(conn: Connection, connector: str, shop: str, stream: str, settled_before: datetime,
                    limit: int) -> list[Any]:
    return list(conn.execute(sa.select(t.sync_windows).where(
        t.sync_windows.c.connector == connector, t.sync_windows.c.shop == shop, t.sync_windows.c.stream == stream,
        t.sync_windows.c.closed.is_(False), t.sync_windows.c.window_end <= settled_before,
    ).order_by(t.sync_windows.c.window_start, t.sync_windows.c.id).limit(limit)))


def sweep_stream(engine: Engine, source: Source, stream: WindowedStream, sync_settings: Any, *,
                 now: datetime | None = None, run_id: str | None = None, limit: int = 500) -> SweepReport:
    """Re-read every open window whose end is older than ``sync.settle_seconds`` and close those that agree.

    The first pass of a window can miss what the platform indexed late (TOP's search index lags its writes) or what
    moved under the pager. The re-scan reads the whole window again through the same ingest path (the version guard
    makes that idempotent) and records itself in the ledger (scans + 1, records seen, the platform's total). The
    window closes only when the re-scan found nothing new or changed and saw as many records as the platform
    reported; otherwise it stays open and the next sweep reads it again. The cursor is not touched: a sweep reads
    behind it.
    """
    report = SweepReport(source.channel, source.shop, stream.name)
    now = now or datetime.now(UTC)
    with reading(engine) as conn:
        windows = settled_windows(conn, source.channel, source.shop, stream.name, now - sync_settings.settle, limit)
    with bind_run(run_id=run_id, connector=source.channel, shop=source.shop, stream=stream.name, step="sweep"):
        try:
            for window in windows:
                _rescan_window(engine, source, stream, window, report)
        except TransientError as exc:
            if not exc.attributes.get("quota"):
                raise
            until = utcnow() + timedelta(seconds=float(exc.retry_after or 0))
            report.stopped = f"quota exhausted until {until.isoformat(timespec='seconds')}"
            record_health(engine, source.channel, source.shop, stream.name, "quota_exhausted", exc.message,
                          how_to_fix="nothing: the next sweep after the reset goes on", until=until)
            log.warning("sweep stopped: daily call quota exhausted", until=until.isoformat())
    return report


def _rescan_window(engine: Engine, source: Source, stream: WindowedStream, window: Any, report: SweepReport) -> None:
    start, end = window.window_start, window.window_end
    with bind_run(window=f"{start.isoformat()}/{end.isoformat()}"):
        found = IngestResult()
        pages = 0
        ids: set[Any] = set()  # distinct records: a reader may serve one record twice (re-read first page)
        total: int | None = None
        for page in stream.read_window(start, end):
            pages += 1
            # one list, read twice below and once more per retry: an iterator would be used up by the first pass
            records = list(page.records)
            ids.update(stream.external_id(r) or ("no id", len(ids)) for r in records)
            total = page.reported_total

            def write_page(records=records) -> IngestResult:
                return ingest_page(engine, source, records, actor="sweep")

            # the page's own transaction, repeated when its connection is lost (idempotent: version guard)
            found.add(retry_on_lost_connection(write_page, engine=engine,
                                               what=f"re-scanned page {pages} of window {start.isoformat()}/"
                                                    f"{end.isoformat()}"))
        seen = len(ids)
        agrees = found.new == 0 and found.changed == 0 and (total is None or seen == total)
        with engine.begin() as conn:
            conn.execute(sa.update(t.sync_windows).where(t.sync_windows.c.id == window.id).values(
                scans=t.sync_windows.c.scans + 1, pages=pages, records_seen=seen, reported_total=total,
                scanned_at=utcnow(), closed=agrees, closed_at=utcnow() if agrees else None))
        report.rescanned += 1
        report.closed += agrees
        report.still_open += not agrees
        report.result.add(found)
        log.info("window re-scanned", scans=window.scans + 1, seen=seen, reported_total=total, new=found.new,
                 changed=found.changed, closed=agrees)
