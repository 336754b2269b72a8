"""A database connection that dies in the middle of a page's transaction (MariaDB: the server kills it, as on a
restart or a network cut; SQLite: the connection is closed under the hub). The page's rows and the cursor move live
in one transaction, so both roll back together, and the run writes the page again on a fresh connection
(hub.retry.retry_on_lost_connection): a connection lost once costs the run nothing, and the run ends as a clean
run would. A connection that keeps dying fails the run after a few attempts with a TransientError that says what
happened and how to fix it, with nothing half-written; the next run on the same engine (the dead connections are
replaced) reads the page again: nothing lost, nothing doubled.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import hub.sync as sync_module
from hub.demo import truth_counts
from hub.errors import TransientError
from hub.retry import DB_ATTEMPTS
from hub.store import create_engine_for
from hub.store import schema as t
from tests.hub.helpers import count, create_orders, cursor, set_faults, truth, versions


def _drop(conn, db_url: str) -> None:
    """Kill the connection ``conn`` runs on, from outside when the server can (MariaDB), and every other
    connection to our database with it, as a server restart would."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        conn.connection.dbapi_connection.close()
        return
    victim = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
    killer = create_engine_for(db_url, poolclass=sa.pool.NullPool)
    try:
        with killer.connect() as other:
            mine = other.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
            ids = [r[0] for r in other.exec_driver_sql(
                "SELECT id FROM information_schema.processlist WHERE db = %s AND id <> %s",
                (url.database, mine))]
            assert victim in ids
            for connection_id in ids:
                other.exec_driver_sql(f"KILL {int(connection_id)}")
    finally:
        killer.dispose()


def _dropping_ingest(monkeypatch, db_url: str, drop_on) -> dict:
    """Wrap hub.sync's ``ingest_page`` so that the calls ``drop_on(n)`` picks (1-based) write their page's orders
    and then lose the connection before the cursor move, inside the page's transaction. Returns the call counter
    and the records each call was given."""
    real = sync_module.ingest_page
    calls: dict = {"n": 0, "records": []}

    def ingest(engine_, source, records, **kwargs):
        calls["n"] += 1
        calls["records"].append(list(records))
        if not drop_on(calls["n"]):
            return real(engine_, source, records, **kwargs)
        move = kwargs["in_same_transaction"]

        def drop_then_move(conn):
            _drop(conn, db_url)  # the page's orders are written in this transaction; now the connection dies
            move(conn)

        return real(engine_, source, records, **{**kwargs, "in_same_transaction": drop_then_move})

    monkeypatch.setattr(sync_module, "ingest_page", ingest)
    return calls


def _fifty_orders_in_three_pages(sandbox, hub) -> list[str]:
    """50 paid orders that the sync reads as three pages of one window, last to first: 10, 20, 20."""
    set_faults(sandbox.url, wms__auto_ship=False)
    for shop in hub.settings.shops:
        shop.sync.page_size = 20
    return create_orders(sandbox.url, count=50)


def _windows_with_records(engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(t.sync_windows).where(t.sync_windows.c.records_seen > 0)))


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_a_connection_dropped_once_mid_page_is_retried_within_the_run_which_ends_as_a_clean_run_would(
        sandbox, db_url, engine, hub, monkeypatch):
    tids = _fifty_orders_in_three_pages(sandbox, hub)
    # call 1: the earlier, empty window; 2: first page; 3: second page, dropped; 4: its retry; 5: third page
    calls = _dropping_ingest(monkeypatch, db_url, lambda n: n == 3)
    now = datetime.now(UTC)

    report, *_ = hub.sync(shop="tm-flagship", now=now)  # no error: the lost page was written again

    assert calls["n"] == 5
    assert calls["records"][3] == calls["records"][2] and len(calls["records"][2]) == 20  # the same page again
    assert set(versions(engine)) == set(tids)  # every order in the hub ...
    assert all(version == 1 for version in versions(engine).values())  # ... once, as version 1
    assert report.result.new == len(tids) and report.pages == 4  # the empty window's page and the three
    assert count(engine, t.outbox) == len(tids)  # one order.accepted per order: the dropped attempt left none
    [window] = _windows_with_records(engine)
    assert window.records_seen == len(tids) and window.pages == 3  # the ledger counts the retried page once
    lag = next(s for s in hub.settings.shops if s.shop == "tm-flagship").sync.lag
    assert _as_utc(cursor(engine)) == (now - lag).replace(microsecond=0)  # where a clean run leaves it
    assert _as_utc(window.window_end) == _as_utc(cursor(engine))
    with engine.connect() as conn:
        health = conn.execute(sa.select(t.source_health.c.state).where(t.source_health.c.shop == "tm-flagship")
                              ).scalar()
    assert health == "ok"
    hub.dispatch()
    counts = truth_counts(truth(sandbox.url), engine)
    assert counts["lost"] == 0 and counts["duplicated"] == 0 and counts["wms_delivery_orders"] == len(tids)


def test_a_connection_that_keeps_dropping_fails_the_run_as_transient_with_nothing_half_written_and_the_next_run_resumes(
        sandbox, db_url, engine, hub, monkeypatch):
    tids = _fifty_orders_in_three_pages(sandbox, hub)
    real = sync_module.ingest_page
    calls = _dropping_ingest(monkeypatch, db_url, lambda n: n >= 3)  # the second page's every attempt

    with pytest.raises(TransientError) as failed:
        hub.sync(shop="tm-flagship")

    assert calls["n"] == 2 + DB_ATTEMPTS  # the second page was tried DB_ATTEMPTS times, then the run stopped
    error = failed.value
    assert "database connection was lost" in error.message and "page 2 of window" in error.message
    assert "database server is up" in error.attributes["how_to_fix"]
    assert error.attributes["attempts"] == DB_ATTEMPTS and error.attributes["db_error"]
    assert not isinstance(error.__cause__, sa.exc.StatementError)  # the driver's error, not SQL and parameters
    landed = set(versions(engine))
    assert len(landed) == 10  # the first page read (the last, 10) only: the second page's rows went with its connection
    [window] = _windows_with_records(engine)
    assert window.records_seen == 10 and window.pages == 1
    position = cursor(engine)
    assert position is None or position <= window.window_start  # the cursor did not pass the window
    with engine.connect() as conn:
        health = conn.execute(sa.select(t.source_health).where(t.source_health.c.shop == "tm-flagship")).one()
    assert health.state == "transient" and "database server is up" in health.message  # `orderhub status` shows why

    monkeypatch.setattr(sync_module, "ingest_page", real)
    report, *_ = hub.sync(shop="tm-flagship")  # same engine, same pool: the dead connections are replaced
    assert set(versions(engine)) == set(tids)
    assert report.result.new == len(tids) - len(landed)
    assert count(engine, t.outbox) == len(tids)  # one order.accepted per order, none lost with the page
    hub.dispatch()
    counts = truth_counts(truth(sandbox.url), engine)
    assert counts["lost"] == 0 and counts["duplicated"] == 0 and counts["wms_delivery_orders"] == len(tids)

