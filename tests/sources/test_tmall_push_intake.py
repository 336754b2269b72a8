"""TMC push intake: notices re-read with trade.fullinfo.get, ingested, confirmed only after the commit.

Duplicates, out-of-order batches and redeliveries change nothing twice (the version guard); a push never replaces the
windowed pull, so the sweep still runs.
"""

from __future__ import annotations

import time

import pytest
import requests
import sqlalchemy as sa

from hub.store import schema as t
from tests.hub.helpers import count, create_orders, set_faults, truth, versions
from tests.sources.test_tmall_sweep import assert_nothing_lost_or_duplicated


def _tmc(sandbox) -> dict:
    return truth(sandbox.url)["tmc"]["tmall"]


def _modify(sandbox, tid, **changes):
    requests.post(f"{sandbox.url}/_sandbox/orders/tmall/{tid}/modify", json=changes, timeout=10).raise_for_status()


def test_each_shop_is_permitted_once_and_pushed_orders_land_without_a_pull(hub, sandbox, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    first, = hub.intake_pushes()
    assert first.permitted == 2 and first.messages == 0
    assert set(_tmc(sandbox)["permits"]) == {"tm-flagship", "tm-outlet"}
    tids = create_orders(sandbox.url, count=6) + create_orders(sandbox.url, shop="tm-outlet", count=3)
    report, = hub.intake_pushes()
    assert report.permitted == 0  # remembered in the hub
    assert report.result.new == 9 and set(versions(engine)) == set(tids)
    assert report.confirmed == report.messages > 0
    state = _tmc(sandbox)
    assert state["unconfirmed"] == 0 and state["in_flight"] == 0
    with engine.connect() as conn:
        actors = {r.actor for r in conn.execute(sa.select(t.audit_trail.c.actor))}
    assert actors == {"push"}
    assert_nothing_lost_or_duplicated(sandbox, engine)


def test_duplicated_and_shuffled_messages_change_nothing_twice(hub, sandbox, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    hub.intake_pushes()
    set_faults(sandbox.url, top__tmc_out_of_order=True, top__tmc_duplicate={"calls": 5})
    tids = create_orders(sandbox.url, count=12)
    for tid in tids[:4]:
        _modify(sandbox, tid, seller_memo="gift wrap")  # a later change: TradeMemoModified after TradeCreate
    for _ in range(3):
        hub.intake_pushes()
    assert set(versions(engine)) == set(tids)
    assert all(versions(engine)[tid] == 1 for tid in tids)  # each read by id: the newest state, once
    assert count(engine, t.outbox, t.outbox.c.event_type == "order.accepted") == 12
    assert count(engine, t.outbox, t.outbox.c.event_type == "order.changed") == 0
    with engine.connect() as conn:
        notes = {r.order_id: r.document.get("seller_note") for r in
                 conn.execute(sa.select(t.orders.c.order_id, t.orders.c.document))}
    assert all(notes[tid] == "gift wrap" for tid in tids[:4])
    assert _tmc(sandbox)["unconfirmed"] == 0
    assert_nothing_lost_or_duplicated(sandbox, engine)


def test_messages_are_confirmed_only_after_the_commit_so_a_crash_means_a_harmless_redelivery(
        hub, sandbox, engine, monkeypatch):
    from connectors.tmall.push import TmcQueue

    set_faults(sandbox.url, wms__auto_ship=False, top__tmc_redelivery_s=1)
    hub.intake_pushes()
    tids = create_orders(sandbox.url, count=5)

    def crash(self, ids):
        raise RuntimeError("process died before the confirm")

    with monkeypatch.context() as patched:
        patched.setattr(TmcQueue, "confirm", crash)
        with pytest.raises(RuntimeError):
            hub.intake_pushes()
    assert set(versions(engine)) == set(tids)  # committed before the (lost) confirm
    assert _tmc(sandbox)["confirmed"] == 0
    time.sleep(1.2)
    report, = hub.intake_pushes()  # redelivered: read again, nothing new, now confirmed
    assert report.messages > 0 and report.result.new == 0 and report.result.unchanged > 0
    assert _tmc(sandbox)["unconfirmed"] == 0 and _tmc(sandbox)["redelivered"] > 0
    assert count(engine, t.outbox) == 5
    assert_nothing_lost_or_duplicated(sandbox, engine)


def test_a_push_never_replaces_the_pull_an_order_pushed_before_the_permit_is_found_by_the_sync(hub, sandbox,
                                                                                                engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    early = create_orders(sandbox.url, count=2)  # before any permit: TMC never tells
    hub.intake_pushes()
    assert not versions(engine)
    hub.sync()
    assert set(versions(engine)) == set(early)
    assert_nothing_lost_or_duplicated(sandbox, engine)


def test_orderhub_intake_pushes_command(config_path, sandbox, engine):
    from typer.testing import CliRunner

    from hub.cli import app

    runner = CliRunner()
    set_faults(sandbox.url, wms__auto_ship=False)
    first = runner.invoke(app, ["intake-pushes", "--config", str(config_path)])
    assert first.exit_code == 0 and "2 shop(s) permitted" in first.output, first.output
    tids = create_orders(sandbox.url, count=3)
    second = runner.invoke(app, ["intake-pushes", "--config", str(config_path)])
    assert second.exit_code == 0 and "3 new" in second.output, second.output
    assert set(versions(engine)) == set(tids)
    assert_nothing_lost_or_duplicated(sandbox, engine)
