"""The JD connector end to end against the in-process sandbox: windowed sync of orders and after-sales with every JD
fault class switched on, the compensation sweep, replay, the cursor, fetch by id and the CLI. Every test ends with 0
lost and 0 duplicated against the sandbox's record of truth. The helpers here are shared by the other test_jd_*
modules."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from connectors.jd import client as jd_client
from hub.cli import app
from hub.config import load_settings
from hub.runtime import Hub
from hub.store import schema as t
from hub.store.schema_aftersales import refunds
from hub.sync import SyncReport, _read_window
from tests.hub.helpers import set_faults

SHANGHAI = ZoneInfo("Asia/Shanghai")


def write_jd_config(path: Path, sandbox_url: str, db_url: str, *, refresh: bool = True, shops=None, shop_extra=None,
                    **sync) -> Path:
    from sandbox.configuration import orderhub_config

    data = orderhub_config(sandbox_url, db_url, channels=("jd",))
    if shops is not None:
        data["shops"] = [s for s in data["shops"] if s["shop"] in shops]
    for shop in data["shops"]:
        shop["sync"].update({"initial_lookback_hours": 1, **sync})
        shop["http"] = {"timeout_s": 3, "attempts": 6}
        if not refresh:
            shop.pop("refresh_token", None)
            shop.pop("token_expires_at", None)
        shop.update(shop_extra or {})
    for sink in data["sinks"]:
        sink["http"] = {"timeout_s": 3, "attempts": 4}
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def wire_time(ago_s: float) -> str:
    return (datetime.now(SHANGHAI) - timedelta(seconds=ago_s)).strftime("%Y-%m-%d %H:%M:%S")


def create_jd_orders(sandbox_url: str, shop: str = "jd-flagship", count: int = 1, ago_s: float = 60, **extra
                     ) -> list[str]:
    resp = requests.post(f"{sandbox_url}/_sandbox/orders", json={
        "channel": "jd", "shop": shop, "count": count, "at": wire_time(ago_s), **extra}, timeout=30)
    resp.raise_for_status()
    return resp.json()["ids"]


def modify_jd_order(sandbox_url: str, order_id: str, **changes) -> dict:
    resp = requests.post(f"{sandbox_url}/_sandbox/orders/jd/{order_id}/modify", json=changes, timeout=30)
    resp.raise_for_status()
    return resp.json()


def jd_truth(sandbox_url: str) -> dict:
    return requests.get(f"{sandbox_url}/_sandbox/truth", timeout=30).json()


def jd_credentials(sandbox_url: str) -> dict:
    return requests.get(f"{sandbox_url}/_sandbox/credentials", timeout=10).json()["jd"]


def assert_jd_nothing_lost_or_duplicated(sandbox_url: str, engine) -> dict:
    """Every JD order of the record of truth is in the hub exactly once, or (malformed) in open quarantine."""
    truth = jd_truth(sandbox_url)["channels"]["jd"]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.orders.c.shop, t.orders.c.order_id).where(t.orders.c.channel == "jd")).all()
        quarantined = conn.execute(sa.select(t.quarantine.c.shop, t.quarantine.c.external_id, t.quarantine.c.reason)
                                   .where(t.quarantine.c.channel == "jd", t.quarantine.c.entity == "order",
                                          t.quarantine.c.status == "open")).all()
    in_hub = [(r.shop, r.order_id) for r in rows]
    assert len(in_hub) == len(set(in_hub)), "an order is in the hub twice"
    q_ids = {(r.shop, r.external_id) for r in quarantined}
    lost, malformed = [], 0
    for shop, data in truth.items():
        for order_id, order in data["orders"].items():
            if order["malformed"]:
                malformed += 1
                assert (shop, order_id) not in set(in_hub), f"malformed {order_id} stored as an order"
                if order["malformed_kind"] == "missing_order_id":
                    assert any(r.shop == shop and r.external_id is None for r in quarantined), order_id
                else:
                    assert (shop, order_id) in q_ids, f"{order['malformed_kind']} order {order_id} not quarantined"
            elif (shop, order_id) not in set(in_hub):
                lost.append(order_id)
    assert not lost, f"lost: {lost}"
    writebacks = jd_truth(sandbox_url)["writebacks"]["jd"]
    assert all(w["accepted"] <= 1 for w in writebacks.values()), writebacks
    return {"in_hub": len(in_hub), "malformed": malformed, "quarantined": len(quarantined)}


def cursors(engine) -> dict[tuple[str, str], datetime]:
    with engine.connect() as conn:
        return {(r.shop, r.stream): r.position for r in conn.execute(
            sa.select(t.sync_cursors).where(t.sync_cursors.c.connector == "jd"))}


def order_versions(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(t.orders.c.order_id, t.orders.c.version)
                                 .where(t.orders.c.channel == "jd")).all())


# -- tests -------------------------------------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture(autouse=True)
def _forget_refreshed_tokens():
    jd_client._GRANTS.clear()
    yield
    jd_client._GRANTS.clear()


def _hub(tmp_path, sandbox, db_url, engine, **kwargs):
    config = write_jd_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, **kwargs)
    return Hub(load_settings(config), engine), config


def _windows(engine, stream="orders"):
    with engine.connect() as conn:
        return list(conn.execute(sa.select(t.sync_windows).where(t.sync_windows.c.connector == "jd",
                                                                 t.sync_windows.c.stream == stream)))


def _assert_forward(before: dict, after: dict) -> None:
    for key, position in before.items():
        assert after[key] >= position, f"cursor {key} moved back: {position} -> {after[key]}"


def test_every_jd_fault_at_once_ends_with_every_order_in_the_hub_exactly_once(tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    # pages of 5: windows are cut in pieces and one crowded second is deep-paged, where the page shift bites
    hub, _ = _hub(tmp_path, sandbox, db_url, engine, page_size=5, settle_seconds=0)
    crowded = create_jd_orders(sandbox.url, count=12, ago_s=300)  # one second, 12 orders: deep paging
    spread = [oid for ago in (280, 250, 200, 150, 120, 90) for oid in create_jd_orders(sandbox.url, count=3,
                                                                                        ago_s=ago)]
    outlet = create_jd_orders(sandbox.url, shop="jd-outlet", count=4, ago_s=100)
    for kind in ("unknown_status", "bad_amount", "missing_order_id", "no_items"):
        create_jd_orders(sandbox.url, count=1, ago_s=80, malformed=kind)
    modify_jd_order(sandbox.url, crowded[0], refund=True)  # an after-sales request locks it (modified now)
    set_faults(sandbox.url, jd__late_index_s=8)
    late = create_jd_orders(sandbox.url, count=3, ago_s=30)  # invisible to search for 8 s (> the retries below)
    visible_at = time.monotonic() + 8.5
    set_faults(sandbox.url, jd__page_shift={"calls": 4, "by": 2}, jd__throttle={"calls": 2},
               jd__http_500={"calls": 1}, jd__degraded_list={"calls": 12},
               jd__timeout_after_success={"calls": 1, "methods": ["jingdong.pop.order.search"], "sleep_s": 4},
               jd__expire_tokens=True)

    first = hub.sync(channel="jd")
    assert {(r.shop, r.stream) for r in first} == {(s, n) for s in ("jd-flagship", "jd-outlet")
                                                   for n in ("orders", "refunds", "reviews")}
    stored = order_versions(engine)
    assert set(crowded + spread + outlet) <= set(stored)  # shifted pages and degraded lists lost nothing
    assert not set(late) & set(stored)  # not indexed yet: only the sweep can find them
    after_sync = cursors(engine)
    assert len(jd_client._GRANTS) == 2  # both shops met an expired token (19) and refreshed it

    time.sleep(max(0.0, visible_at - time.monotonic()))
    swept = hub.sweep(channel="jd")
    assert sum(r.result.new for r in swept if r.stream == "orders") == 3
    assert set(late) <= set(order_versions(engine))
    again = hub.sweep(channel="jd")
    assert sum(r.result.new + r.result.changed for r in again) == 0
    _assert_forward(after_sync, cursors(engine))
    hub.sweep(channel="jd")
    assert all(w.closed for w in _windows(engine)), "every orders window closes once a re-scan agrees"

    counts = assert_jd_nothing_lost_or_duplicated(sandbox.url, engine)
    assert counts["in_hub"] == 12 + 18 + 4 + 3 and counts["malformed"] == 4
    with engine.connect() as conn:
        reasons = dict(conn.execute(sa.select(t.quarantine.c.group_key, t.quarantine.c.reason)
                                    .where(t.quarantine.c.channel == "jd", t.quarantine.c.status == "open")).all())
    assert {"unmapped order_state=ORDER_STATE_FROM_THE_FUTURE", "invalid paid_total", "missing order_id"} <= set(
        reasons)
    assert any("lines" in key for key in reasons), reasons  # the order without items
    with engine.connect() as conn:
        stored_refunds = conn.execute(sa.select(refunds.c.status).where(refunds.c.channel == "jd")).all()
    assert [r.status for r in stored_refunds] == ["REQUESTED"]
    faults = requests.get(f"{sandbox.url}/_sandbox/faults", timeout=10).json()
    # they all fired; a degraded copy stored as it came would have been quarantined without lines
    assert faults["jd.page_shift"]["calls"] == 0 and faults["jd.degraded_list"]["calls"] == 0


def test_replaying_a_window_changes_nothing_and_the_cursor_never_moves_back(tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    hub, _ = _hub(tmp_path, sandbox, db_url, engine, shops=["jd-flagship"], page_size=5)
    ids = create_jd_orders(sandbox.url, count=11, ago_s=120)
    hub.sync(channel="jd", stream="orders")
    before, positions = order_versions(engine), cursors(engine)
    assert set(ids) == set(before) and all(v == 1 for v in before.values())

    window = _windows(engine)[-1]
    settings = load_settings(tmp_path / "orderhub.yaml").shop("jd", "jd-flagship")
    stream = hub.source_connector("jd").open_streams(settings)["orders"]
    report = SyncReport("jd", "jd-flagship", "orders")
    _read_window(engine, hub.source(settings, stream), stream, window.window_start, window.window_end, report)
    assert report.result.new == 0 and report.result.changed == 0 and report.result.unchanged == 11
    assert order_versions(engine) == before

    modify_jd_order(sandbox.url, ids[3], vender_remark="加急")
    hub.sync(channel="jd", stream="orders")
    assert order_versions(engine)[ids[3]] == 2  # the change is a new version, the others untouched
    _assert_forward(positions, cursors(engine))
    assert sum(v for v in order_versions(engine).values()) == 12
    assert_jd_nothing_lost_or_duplicated(sandbox.url, engine)


def test_a_jd_order_is_fetched_by_id_and_orderhub_sync_runs_the_jd_channel(tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    hub, config = _hub(tmp_path, sandbox, db_url, engine)
    ids = create_jd_orders(sandbox.url, count=2, ago_s=7200)  # older than the first lookback: sync won't see it
    result = runner.invoke(app, ["sync", "--config", str(config), "--channel", "jd", "--shop", "jd-flagship",
                                 "--order-id", ids[0]])
    assert result.exit_code == 0, result.output
    assert "1 fetched: 1 new" in result.output and set(order_versions(engine)) == {ids[0]}

    fresh = create_jd_orders(sandbox.url, shop="jd-outlet", count=3)
    result = runner.invoke(app, ["sync", "--config", str(config), "--channel", "jd"])
    assert result.exit_code == 0, result.output
    assert "jd/jd-outlet" in result.output and "jd/jd-flagship" in result.output
    assert set(fresh) | {ids[0]} == set(order_versions(engine))
    missing = runner.invoke(app, ["sync", "--config", str(config), "--channel", "jd", "--shop", "jd-flagship",
                                  "--order-id", "999999999999"])
    assert missing.exit_code != 0 and "not found" in missing.output


def test_a_change_to_an_old_after_sales_service_is_found_by_the_follow_up_reread(tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    hub, _ = _hub(tmp_path, sandbox, db_url, engine, shops=["jd-flagship"])
    order_id, = create_jd_orders(sandbox.url, count=1, ago_s=120)
    service = modify_jd_order(sandbox.url, order_id, refund=True)["service_id"]
    hub.sync(channel="jd")
    with engine.connect() as conn:
        row = conn.execute(sa.select(refunds.c.status, refunds.c.hub_id)
                           .where(refunds.c.refund_id == str(service))).one()
    assert row.status == "REQUESTED" and row.hub_id is not None  # bound to its order
    assert order_versions(engine)[order_id] == 1
    time.sleep(1.1)  # the approval is stamped a second later than the application
    modify_jd_order(sandbox.url, order_id, afs_status=10010)  # applied before the cursor; approved now
    hub.sync(channel="jd")
    with engine.connect() as conn:
        row = conn.execute(sa.select(refunds.c.status, refunds.c.refunded_amount)
                           .where(refunds.c.refund_id == str(service))).one()
    assert row.status == "SUCCESS" and row.refunded_amount > 0
    with engine.connect() as conn:
        status = conn.execute(sa.select(t.orders.c.status).where(t.orders.c.order_id == order_id)).scalar()
    assert status == "CLOSED_REFUNDED"  # the order itself moved to TRADE_CANCELED
    assert_jd_nothing_lost_or_duplicated(sandbox.url, engine)


def test_jd_reviews_are_synced_against_their_order_lines_and_a_bad_one_raises_an_alert(tmp_path, sandbox, db_url,
                                                                                       engine):
    from hub.store.schema_finance import reviews

    set_faults(sandbox.url, wms__auto_ship=False)
    hub, _ = _hub(tmp_path, sandbox, db_url, engine, shops=["jd-flagship"])
    happy, = create_jd_orders(sandbox.url, count=1, ago_s=120, lines=[{"sku": "SKU-001-RED-M", "num": 1}])
    angry, = create_jd_orders(sandbox.url, count=1, ago_s=120, lines=[{"sku": "SKU-005-BLK-F", "num": 2}])
    modify_jd_order(sandbox.url, happy, comment={"score": 5, "content": "很满意"})
    modify_jd_order(sandbox.url, angry, comment={"score": 1, "content": "收到就是坏的"})
    reports = hub.sync(channel="jd")
    assert {r.stream for r in reports} == {"orders", "refunds", "reviews"}
    with engine.connect() as conn:
        rows = {r.order_id: r for r in conn.execute(sa.select(reviews).where(reviews.c.channel == "jd"))}
        events = conn.execute(sa.select(t.outbox.c.event_type).where(t.outbox.c.event_type == "review.low_rating")
                              ).all()
    assert set(rows) == {happy, angry}
    assert rows[angry].line_id == f"{angry}-{rows[angry].platform_item_id}" and rows[angry].score == 1
    assert rows[angry].merchant_sku_code == "SKU-005-BLK-F" and rows[happy].hub_id is not None
    assert len(events) == 1
    truth = jd_truth(sandbox.url)["channels"]["jd"]["jd-flagship"]["comments"]
    assert {(c["order_id"], c["score"]) for c in truth.values()} == {(happy, 5), (angry, 1)}
    again = hub.sync(channel="jd", stream="reviews")
    assert again[0].result.new == 0
    assert_jd_nothing_lost_or_duplicated(sandbox.url, engine)


def test_a_call_quota_code_mapped_by_the_shop_stops_the_sync_cleanly_and_the_next_run_resumes(tmp_path, sandbox,
                                                                                               db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    hub, _ = _hub(tmp_path, sandbox, db_url, engine, shops=["jd-flagship"],
                  shop_extra={"error_codes": {"66": "quota"}})
    ids = create_jd_orders(sandbox.url, count=4)
    set_faults(sandbox.url, jd__throttle={"calls": 1, "code": "66"})
    stopped, = hub.sync(channel="jd", stream="orders")
    assert stopped.stopped and stopped.stopped.startswith("quota exhausted until")
    assert stopped.cursor is None and not order_versions(engine)  # nothing read, nothing skipped
    with engine.connect() as conn:
        health = conn.execute(sa.select(t.source_health.c.state).where(t.source_health.c.stream == "orders")).scalar()
    assert health == "quota_exhausted"
    resumed, = hub.sync(channel="jd", stream="orders")  # after the reset (here: the knob's single call is spent)
    assert resumed.stopped is None and set(order_versions(engine)) == set(ids)
    assert_jd_nothing_lost_or_duplicated(sandbox.url, engine)
