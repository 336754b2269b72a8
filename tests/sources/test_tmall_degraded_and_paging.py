"""Double 11 faults of TOP's list API: degraded (partial) trades and pages that shift under the reader.

A degraded list record (no ``orders``, no receiver) is completed with ``trade.fullinfo.get`` before it is mapped,
so it is never stored as a complete order; paging from the last page backwards loses nothing when a trade changes
between pages, and the sweep catches what moves.
"""

from __future__ import annotations

import sqlalchemy as sa

from connectors.tmall.streams import missing_nodes
from hub.config import load_settings
from hub.runtime import Hub
from hub.store import schema as t
from tests.conftest import write_sandbox_config
from tests.hub.helpers import create_orders, set_faults, versions
from tests.sources.test_tmall_sweep import assert_nothing_lost_or_duplicated


def _documents(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        return {r.order_id: r.document for r in conn.execute(sa.select(t.orders.c.order_id, t.orders.c.document))}


def test_missing_nodes_names_what_a_degraded_list_record_lacks():
    complete = {"tid": 1, "orders": {"order": [{"oid": 2}]}, "receiver_name": "张**", "receiver_state": "浙江省",
                "receiver_address": "***"}
    assert missing_nodes(complete) == []
    assert missing_nodes({**complete, "orders": {"order": []}}) == ["orders"]
    assert missing_nodes({k: v for k, v in complete.items() if k != "orders"}) == ["orders"]
    assert missing_nodes({k: v for k, v in complete.items() if k != "receiver_address"}) == ["receiver"]


def test_degraded_list_records_are_completed_with_fullinfo_and_stored_complete(tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    reference_cfg = write_sandbox_config(tmp_path / "reference.yaml", sandbox.url, db_url)
    tids = create_orders(sandbox.url, count=40)
    shop = load_settings(reference_cfg).shop("tmall", "tm-flagship")
    stream = Hub.source_connector("tmall").open_streams(shop)["orders"]
    assert not any(missing_nodes(r) for r in stream._page(*_window(), 1, True)["trades"]["trade"])

    set_faults(sandbox.url, top__degraded_list={"calls": 50, "ratio": 0.5, "drop": ["orders", "receiver"]})
    raw_degraded = stream._page(*_window(), 1, True)["trades"]["trade"]
    assert any(missing_nodes(r) for r in raw_degraded)  # the fault is on: some list records are partial

    config = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, page_size=10)
    hub = Hub(load_settings(config), engine)
    report, = hub.sync(shop="tm-flagship")
    assert report.result.new == 40 and report.result.quarantined == 0
    docs = _documents(engine)
    assert set(docs) == set(tids)
    for tid in tids:
        full = stream.fetch_one(tid)
        doc = docs[tid]
        assert len(doc["lines"]) == len(full["orders"]["order"]) >= 1, tid
        assert doc["receiver"] and doc["receiver"]["province"] == full["receiver_state"], tid
    with engine.connect() as conn:  # every archived raw version is a complete trade
        payloads = [r.payload for r in conn.execute(sa.select(t.raw_payloads.c.payload))]
    assert all('"orders"' in p and '"receiver_state"' in p for p in payloads)
    assert_nothing_lost_or_duplicated(sandbox, engine)


def _window():
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC).replace(microsecond=0)
    return now - timedelta(minutes=30), now


def test_paging_last_to_first_loses_nothing_when_trades_change_between_pages_of_a_past_window(
        tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    tids = create_orders(sandbox.url, count=95, ago_s=120)
    # each page served (but the last) sees its first trade flagged right after: it leaves the window (its modified
    # is now, past the window's end) and the older trades move up one place, into pages already read backwards
    set_faults(sandbox.url, top__page_shift={"calls": 20})
    config = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, page_size=10, lag_seconds=30)
    hub = Hub(load_settings(config), engine)
    report, = hub.sync(shop="tm-flagship")
    assert set(versions(engine)) == set(tids)  # the first pass alone has every trade
    assert report.result.new == 95 and report.result.changed == 0
    assert_nothing_lost_or_duplicated(sandbox, engine)


def test_when_pages_shift_in_a_window_reaching_now_the_sweep_catches_what_the_first_pass_missed(
        tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    tids = create_orders(sandbox.url, count=95, ago_s=120)
    # a window reaching now: a flagged trade jumps to the window's head and pushes the others one place down, into
    # the page just read (backwards); the first pass can miss those, the window stays open, the sweep reads it again
    set_faults(sandbox.url, top__page_shift={"calls": 20})
    config = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, page_size=10, settle_seconds=0,
                                  lag_seconds=0)
    hub = Hub(load_settings(config), engine)
    hub.sync(shop="tm-flagship")
    set_faults(sandbox.url, top__page_shift={"calls": 0})
    first, = hub.sweep(shop="tm-flagship")
    assert set(versions(engine)) == set(tids)
    second, = hub.sweep(shop="tm-flagship")
    assert second.result.new == 0 and second.still_open == 0
    with engine.connect() as conn:
        assert not conn.execute(sa.select(t.sync_windows).where(t.sync_windows.c.closed.is_(False))).first()
    assert_nothing_lost_or_duplicated(sandbox, engine)
