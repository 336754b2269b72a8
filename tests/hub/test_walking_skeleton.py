"""One Tmall order from the marketplace to the warehouse and back, and the invariants along the way.

Every test talks HTTP to the in-process sandbox (TOP gateway + Qimen WMS) and runs on SQLite and MariaDB.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import requests
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

import mappings
from hub.cli import app
from hub.demo import truth_counts
from hub.ingest import ingest_records
from hub.store import schema as t
from tests.conftest import write_sandbox_config
from tests.hub.helpers import count, create_orders, cursor, set_faults, truth, versions

runner = CliRunner()


def test_a_paid_order_reaches_the_wms_and_shipped_plus_waybill_is_written_back(hub, sandbox):
    (tid,) = create_orders(sandbox.url)
    hub.run_once()
    state = truth(sandbox.url)
    (code,) = [c for c, d in state["wms"]["delivery_orders"].items() if tid in d["source_order_codes"]]
    delivery = state["wms"]["delivery_orders"][code]
    assert delivery["created"] == 1 and delivery["status"] == "DELIVERED"
    writeback = state["writebacks"]["tmall"][tid]
    assert writeback["accepted"] == 1 and writeback["out_sid"] == delivery["express_code"]
    assert state["channels"]["tmall"]["tm-flagship"]["orders"][tid]["status"] == "WAIT_BUYER_CONFIRM_GOODS"
    with hub.engine.connect() as conn:
        trail = [r.action for r in conn.execute(sa.select(t.audit_trail.c.action).order_by(t.audit_trail.c.id))]
    # accepted -> planned and released (hub/processing, its decisions in the detail) -> WMS -> shipped -> written back
    assert trail == ["order.accepted", "plan.released", "dispatch.done", "shipment.recorded", "dispatch.done"]
    # the next pull sees the shipped status: a new version, and nothing new downstream
    hub.run_once()
    assert versions(hub.engine)[tid] == 2
    assert truth(sandbox.url)["wms"]["delivery_orders"][code]["created"] == 1
    assert truth(sandbox.url)["writebacks"]["tmall"][tid]["accepted"] == 1


def test_replaying_the_same_window_twice_changes_nothing_in_the_hub_or_the_wms(hub, sandbox):
    set_faults(sandbox.url, wms__auto_ship=False)  # keep the channel still, so only the replay could change things
    create_orders(sandbox.url, count=30)
    create_orders(sandbox.url, shop="tm-outlet", count=12)
    hub.sync()
    hub.dispatch()
    before = (versions(hub.engine), count(hub.engine, t.outbox), count(hub.engine, t.raw_payloads),
              truth(sandbox.url)["wms"])
    with hub.engine.begin() as conn:  # forget how far we read: the next run reads the same windows again
        conn.execute(sa.delete(t.sync_cursors))
    reports = hub.sync()
    hub.dispatch()
    after = (versions(hub.engine), count(hub.engine, t.outbox), count(hub.engine, t.raw_payloads),
             truth(sandbox.url)["wms"])
    assert sum(r.result.unchanged for r in reports) == 42 and sum(r.result.new for r in reports) == 0
    assert after == before
    assert all(d["created"] == 1 and d["received"] == 1 for d in after[3]["delivery_orders"].values())


def test_an_order_modified_after_it_was_read_is_read_again_and_upgraded(hub, sandbox):
    set_faults(sandbox.url, wms__auto_ship=False)
    (tid,) = create_orders(sandbox.url)
    hub.sync()
    requests.post(f"{sandbox.url}/_sandbox/orders/tmall/{tid}/modify", json={"seller_memo": "gift wrap"},
                  timeout=10).raise_for_status()
    report, *_ = hub.sync(shop="tm-flagship")
    assert report.result.changed == 1
    assert versions(hub.engine)[tid] == 2
    (hub_id,) = report.result.hub_ids
    assert hub.order(hub_id).seller_note == "gift wrap"
    with hub.engine.connect() as conn:
        events = [r.event_type for r in conn.execute(sa.select(t.outbox.c.event_type).order_by(t.outbox.c.id))]
    assert events == ["order.accepted", "order.changed"]
    assert count(hub.engine, t.raw_payloads) == 2  # both received versions are archived


def test_an_older_version_arriving_late_is_ignored(hub, sandbox):
    set_faults(sandbox.url, wms__auto_ship=False)
    (tid,) = create_orders(sandbox.url)
    shop = hub.settings.shop("tmall", "tm-flagship")
    stream = hub.source_connector("tmall").open_streams(shop)["orders"]
    old = stream.fetch_one(tid)
    requests.post(f"{sandbox.url}/_sandbox/orders/tmall/{tid}/modify", json={"seller_memo": "new"},
                  timeout=10).raise_for_status()
    hub.sync()
    events_before = count(hub.engine, t.outbox)
    late = ingest_records(hub.engine, hub.source(shop, stream), [old])
    assert (late.unchanged, late.changed, late.new) == (1, 0, 0)
    assert versions(hub.engine)[tid] == 1 and count(hub.engine, t.outbox) == events_before
    with hub.engine.connect() as conn:
        note = conn.execute(sa.select(t.orders.c.document)).scalar()["seller_note"]
    assert note == "new"


def test_a_record_that_fails_mapping_is_quarantined_the_page_lands_and_replay_after_a_fix_brings_it_in(
        tmp_path, sandbox, db_url, engine):
    good = create_orders(sandbox.url, count=5)
    bad = create_orders(sandbox.url, count=2, malformed="unknown_status")
    mapping_dir = tmp_path / "mappings"
    shutil.copytree(mappings.PACKAGED, mapping_dir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    config = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url)
    data = yaml.safe_load(config.read_text())
    data["mappings_dir"] = str(mapping_dir)
    config.write_text(yaml.safe_dump(data))

    result = runner.invoke(app, ["sync", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert set(versions(engine)) == set(good)
    with engine.connect() as conn:
        rows = list(conn.execute(sa.select(t.quarantine)))
    assert sorted(r.external_id for r in rows) == sorted(bad)
    assert all(r.status == "open" and r.error_kind == "record" for r in rows)
    assert all(r.group_key == "unmapped trade_status=TRADE_STATUS_FROM_THE_FUTURE" for r in rows)
    assert all('"TRADE_STATUS_FROM_THE_FUTURE"' in r.payload for r in rows)  # the raw payload is kept

    listing = runner.invoke(app, ["quarantine", "list", "--config", str(config)])
    assert "unmapped trade_status=TRADE_STATUS_FROM_THE_FUTURE" in listing.output
    shown = runner.invoke(app, ["quarantine", "show", str(rows[0].id), "--config", str(config)])
    assert "TRADE_STATUS_FROM_THE_FUTURE" in shown.output and rows[0].external_id in shown.output

    # replay before the fix: still quarantined, nothing duplicated
    runner.invoke(app, ["quarantine", "replay", "--config", str(config)])
    assert count(engine, t.quarantine, t.quarantine.c.status == "open") == 2
    # the fix: the integration engineer maps the new status
    path = mapping_dir / "tmall.yaml"
    path.write_text(path.read_text().replace("    WAIT_SELLER_SEND_GOODS: PAID\n",
                                             "    WAIT_SELLER_SEND_GOODS: PAID\n    TRADE_STATUS_FROM_THE_FUTURE: "
                                             "ON_HOLD\n"))
    replay = runner.invoke(app, ["quarantine", "replay", "--config", str(config)])
    assert replay.exit_code == 0 and "2 record(s) taken in" in replay.output
    assert set(versions(engine)) == set(good) | set(bad)
    assert count(engine, t.quarantine, t.quarantine.c.status == "replayed") == 2


KILLER = textwrap.dedent("""\
    import os, signal, sys
    import hub.sync
    from hub.config import load_settings
    from hub.runtime import Hub

    real_ingest = hub.sync.ingest_page
    calls = {"n": 0}

    def ingest_then_die(engine, source, records, **kwargs):
        calls["n"] += 1
        if calls["n"] == int(sys.argv[2]):
            # the page has been fetched; die before its transaction commits
            os.kill(os.getpid(), signal.SIGKILL)
        return real_ingest(engine, source, records, **kwargs)

    hub.sync.ingest_page = ingest_then_die
    Hub(load_settings(sys.argv[1])).sync(shop="tm-flagship")
    """)


def test_a_kill_between_page_fetch_and_commit_loses_nothing_and_the_cursor_never_passes_the_window(
        tmp_path, sandbox, db_url, engine, hub):
    set_faults(sandbox.url, wms__auto_ship=False)
    tids = create_orders(sandbox.url, count=120)
    config = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, page_size=25)
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, str(script), str(config), "3"], env=env, capture_output=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    landed = set(versions(engine))
    assert 0 < len(landed) < len(tids)  # two pages committed, then the process died
    unfinished = max(_windows(engine), key=lambda w: w.window_start)
    assert unfinished.records_seen == 20  # call 1 was an empty window; page 5 of 5 (the last, 20 records) landed
    position = cursor(engine)  # earlier, empty windows finished; the one being read when killed did not
    assert position is None or position <= unfinished.window_start

    report, = hub.sync(shop="tm-flagship")
    assert set(versions(engine)) == set(tids)
    assert report.result.new == len(tids) - len(landed)
    assert report.cursor is not None and report.cursor <= max(w.window_end for w in _windows(engine))
    counts = truth_counts(truth(sandbox.url), engine)
    assert counts["duplicated"] == 0


def _windows(engine):
    with engine.connect() as conn:
        return list(conn.execute(sa.select(t.sync_windows)))


def test_the_window_ledger_records_bounds_pages_and_counts(tmp_path, sandbox, db_url, engine, hub):
    create_orders(sandbox.url, count=60)
    config = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, page_size=25)
    from hub.config import load_settings
    from hub.runtime import Hub

    Hub(load_settings(config), engine).sync(shop="tm-flagship")
    windows = [w for w in _windows(engine) if w.records_seen]
    assert sum(w.records_seen for w in windows) == 60
    assert any(w.pages == 3 and w.reported_total == 60 for w in windows)
    assert all(not w.closed for w in windows)  # closed only after a delayed re-scan agrees
    assert cursor(engine) == max(w.window_end for w in _windows(engine))


def test_the_demo_path_loses_and_duplicates_nothing_against_the_sandbox_truth(sandbox, tmp_path):
    from rich.console import Console

    from hub.demo import run_demo

    summary = run_demo(sandbox.url, tmp_path, orders_per_shop=40, malformed=2, console=Console(file=open(os.devnull,
                                                                                                           "w")))
    assert summary["lost"] == 0 and summary["duplicated"] == 0
    # 2 shops in each of Tmall, JD, WeChat and POS; a till sale is handed over at the till: no WMS, no write-back
    assert summary["in_hub"] == 320 and summary["quarantined"] == 2
    assert summary["wms_delivery_orders"] == 240 and summary["written_back"] == 240
