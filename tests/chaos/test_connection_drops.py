"""A database connection that dies in the middle of a page's transaction (MariaDB: the server kills it, as on a
restart or a network cut; SQLite: the connection is closed under the hub). The page's rows and the cursor move live
in one transaction, so both roll back together; the failed run reports the error, and the next run on the same
engine (pre-ping replaces the dead connection) reads the page again: nothing lost, nothing doubled.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import hub.sync as sync_module
from hub.demo import truth_counts
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


def test_a_connection_dropped_mid_page_rolls_back_page_and_cursor_together_and_the_next_run_resumes(
        sandbox, db_url, engine, hub, monkeypatch):
    set_faults(sandbox.url, wms__auto_ship=False)
    for shop in hub.settings.shops:
        shop.sync.page_size = 20
    tids = create_orders(sandbox.url, count=50)  # three pages of one window, read last to first: 10, 20, 20
    real = sync_module.ingest_page
    calls = {"n": 0}

    def drop_on_second_page(engine_, source, records, **kwargs):
        calls["n"] += 1
        if calls["n"] != 3:  # call 1: the earlier, empty window; 2: first page; 3: second page
            return real(engine_, source, records, **kwargs)
        move = kwargs["in_same_transaction"]

        def drop_then_move(conn):
            _drop(conn, db_url)  # the page's orders are written in this transaction; now the connection dies
            move(conn)

        return real(engine_, source, records, **{**kwargs, "in_same_transaction": drop_then_move})

    monkeypatch.setattr(sync_module, "ingest_page", drop_on_second_page)
    with pytest.raises(sa.exc.DBAPIError) as failed:
        hub.sync(shop="tm-flagship")
    assert failed.value.connection_invalidated  # seen as a lost connection, not as bad SQL
    landed = set(versions(engine))
    assert len(landed) == 10  # the first page read (the last, 10) only: the second page's rows went with its connection
    with engine.connect() as conn:
        windows = list(conn.execute(sa.select(t.sync_windows).where(t.sync_windows.c.records_seen > 0)))
    assert [w.records_seen for w in windows] == [10] and windows[0].pages == 1
    position = cursor(engine)
    assert position is None or position <= windows[0].window_start  # the cursor did not pass the window

    monkeypatch.setattr(sync_module, "ingest_page", real)
    report, *_ = hub.sync(shop="tm-flagship")  # same engine, same pool: the dead connections are replaced
    assert set(versions(engine)) == set(tids)
    assert report.result.new == len(tids) - len(landed)
    assert count(engine, t.outbox) == len(tids)  # one order.accepted per order, none lost with the page
    hub.dispatch()
    counts = truth_counts(truth(sandbox.url), engine)
    assert counts["lost"] == 0 and counts["duplicated"] == 0 and counts["wms_delivery_orders"] == len(tids)
