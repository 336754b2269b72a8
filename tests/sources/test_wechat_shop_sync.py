"""The WeChat shop connector end to end against the in-process sandbox: windowed sync of orders by update time with
detail reads, every WeChat fault class switched on, the compensation sweep, fetch by id and the write-back. Every
test ends with 0 lost and 0 duplicated against the sandbox's record of truth. The helpers here are shared by the
other test_wechat_shop_* modules."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import requests
import sqlalchemy as sa
import yaml

from connectors.wechat_shop import client as wx_client
from connectors.wechat_shop import push
from hub.config import load_settings
from hub.demo import truth_counts
from hub.runtime import Hub
from hub.store import schema as t
from tests.hub.helpers import set_faults, truth

SHANGHAI = ZoneInfo("Asia/Shanghai")
CHANNEL = "wechat_shop"


def write_wx_config(path: Path, sandbox_url: str, db_url: str, *, shops=None, shop_extra=None, **sync) -> Path:
    from sandbox.configuration import orderhub_config

    data = orderhub_config(sandbox_url, db_url, channels=(CHANNEL,))
    if shops is not None:
        data["shops"] = [s for s in data["shops"] if s["shop"] in shops]
    for shop in data["shops"]:
        shop["streams"] = ["orders"]
        shop["sync"].update({"initial_lookback_hours": 1, **sync})
        shop["http"] = {"timeout_s": 3, "attempts": 6}
        shop.update(shop_extra or {})
    for sink in data["sinks"]:
        sink["http"] = {"timeout_s": 3, "attempts": 4}
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def wx_hub(tmp_path: Path, sandbox_url: str, db_url: str, engine, **kwargs) -> Hub:
    wx_client.forget_tokens()
    return Hub(load_settings(write_wx_config(tmp_path / "orderhub.yaml", sandbox_url, db_url, **kwargs)), engine)


def create_wx_orders(sandbox_url: str, shop: str = "wx-store", count: int = 1, ago_s: float = 60, **extra
                     ) -> list[str]:
    at = (datetime.now(SHANGHAI) - timedelta(seconds=ago_s)).strftime("%Y-%m-%d %H:%M:%S")
    resp = requests.post(f"{sandbox_url}/_sandbox/orders", json={
        "channel": CHANNEL, "shop": shop, "count": count, "at": at, **extra}, timeout=30)
    resp.raise_for_status()
    return resp.json()["ids"]


def modify_wx_order(sandbox_url: str, order_id: str, **changes) -> dict:
    resp = requests.post(f"{sandbox_url}/_sandbox/orders/{CHANNEL}/{order_id}/modify", json=changes, timeout=10)
    resp.raise_for_status()
    return resp.json()


def wx_counts(sandbox_url: str, engine) -> dict[str, int]:
    return truth_counts(truth(sandbox_url), engine, channels=(CHANNEL,))


def hub_orders(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(t.orders.c.order_id, t.orders.c.version)
                                 .where(t.orders.c.channel == CHANNEL)).all())


def test_a_sync_reads_every_order_of_both_shops_through_several_pages_with_amounts_in_fen(
        tmp_path, sandbox, db_url, engine):
    hub = wx_hub(tmp_path, sandbox.url, db_url, engine, page_size=3)
    store = create_wx_orders(sandbox.url, count=7)
    outlet = create_wx_orders(sandbox.url, shop="wx-outlet", count=2)
    reports = hub.sync()
    assert sum(r.result.new for r in reports) == 9
    assert set(hub_orders(engine)) == set(store + outlet)
    counts = wx_counts(sandbox.url, engine)
    assert counts["lost"] == 0 and counts["duplicated"] == 0 and counts["in_hub"] == 9
    # the mapped amounts add up as WeChat states them: Σ real_price + freight = order_price
    with engine.connect() as conn:
        docs = [r.document for r in conn.execute(sa.select(t.orders.c.document).where(t.orders.c.channel == CHANNEL))]
    for doc in docs:
        assert sum(line["line_paid"] for line in doc["lines"]) + doc["shipping_fee"] == doc["paid_total"]
        assert doc["receiver"]["receiver_ref"] and "*" in doc["receiver"]["phone"]
        assert doc["payments"][0]["method"] == "wechatpay" and doc["payments"][0]["amount"] == doc["paid_total"]
    # a second pass over the same windows changes nothing
    again = hub.sync()
    assert sum(r.result.new + r.result.changed for r in again) == 0


def test_every_wechat_fault_class_at_once_ends_with_nothing_lost_nothing_duplicated_and_the_bad_records_quarantined(
        tmp_path, sandbox, db_url, engine):
    """Index lag, throttling (45011), HTTP 500s, latency, tokens expiring every 3 s, answers lost after success
    (reads and delivery/send), duplicated and shuffled pushes, malformed records: the hub's ordinary steps (push
    intake, sync, sweep, dispatch, feedback, write-back) end with every order once, in the WMS once and shipped back
    to WeChat once."""
    hub = wx_hub(tmp_path, sandbox.url, db_url, engine, page_size=4, settle_seconds=0, lag_seconds=2,
                 window_minutes=10, shop_extra={"push_inbox": str(tmp_path / "wx-inbox.db"),
                                                "http": {"timeout_s": 1.5, "attempts": 6}})
    receiver = push.CallbackReceiver([s for s in hub.settings.shops if s.channel == CHANNEL]).start()
    try:
        requests.post(f"{sandbox.url}/_sandbox/wechat_shop/callback", json={"url": receiver.url},
                      timeout=10).raise_for_status()
        create_wx_orders(sandbox.url, count=10, ago_s=300)
        create_wx_orders(sandbox.url, shop="wx-outlet", count=5, ago_s=300)
        for kind in ("unknown_status", "bad_amount", "missing_order_id"):
            create_wx_orders(sandbox.url, count=1, ago_s=200, malformed=kind)
        set_faults(sandbox.url, wechat_shop__late_index_s=2, wechat_shop__throttle={"calls": 2, "errcode": 45011},
                   wechat_shop__http_500={"calls": 2}, wechat_shop__token_ttl_s=3,
                   wechat_shop__timeout_after_success={"calls": 3, "methods": ["order/list/get", "order/get",
                                                                               "order/delivery/send"],
                                                       "sleep_s": 4},
                   wechat_shop__latency_ms=5, wechat_shop__duplicate_push={"calls": 5},
                   wechat_shop__out_of_order_push=True)
        late = create_wx_orders(sandbox.url, count=4, ago_s=5)  # written while the index lags
        for _ in range(3):
            hub.run_once()  # push intake, sync, sweep, dispatch, feedback, write-back
            time.sleep(1.5)  # the index catches up; tokens (3 s) expire and are refreshed on the way
            hub.sweep()
    finally:
        requests.post(f"{sandbox.url}/_sandbox/wechat_shop/callback", json={"url": None}, timeout=10)
        receiver.stop()
    counts = wx_counts(sandbox.url, engine)
    assert counts["lost"] == 0 and counts["duplicated"] == 0, counts
    assert counts["on_channel"] == 22 and counts["in_hub"] == 19 and set(late) <= set(hub_orders(engine))
    assert counts["wms_delivery_orders"] == 19 and counts["written_back"] == 19
    assert truth(sandbox.url)["pushes"][CHANNEL]  # the callbacks were delivered and taken in as well
    with engine.connect() as conn:
        rows = list(conn.execute(sa.select(t.quarantine).where(t.quarantine.c.status == "open",
                                                               t.quarantine.c.channel == CHANNEL)))
    reasons = sorted(r.reason for r in rows)
    assert len(rows) == 3, reasons
    assert any("'999'" in r and "order_status" in r for r in reasons)
    assert any("paid_total" in r for r in reasons)
    assert any("order_id" in r and "missing" in r for r in reasons)
    assert all(r.external_id for r in rows)  # the malformed records are known by the id the list served
    with engine.connect() as conn:
        health = list(conn.execute(sa.select(t.source_health).where(t.source_health.c.connector == CHANNEL)))
    assert all(h.state == "ok" for h in health), [(h.shop, h.state) for h in health]


def test_an_order_changed_after_its_window_is_read_again_and_stored_once_with_the_new_state(
        tmp_path, sandbox, db_url, engine):
    hub = wx_hub(tmp_path, sandbox.url, db_url, engine, shops=["wx-store"])
    ids = create_wx_orders(sandbox.url, count=3, ago_s=120)
    hub.sync()
    modify_wx_order(sandbox.url, ids[0], merchant_notes="加急", status=30)
    hub.sync()
    assert hub_orders(engine)[ids[0]] == 2 and hub_orders(engine)[ids[1]] == 1
    with engine.connect() as conn:
        doc = conn.execute(sa.select(t.orders.c.document).where(t.orders.c.order_id == ids[0])).scalar_one()
    assert doc["status"] == "SHIPPED" and doc["seller_note"] == "加急"
    counts = wx_counts(sandbox.url, engine)
    assert counts["lost"] == 0 and counts["duplicated"] == 0


def test_fetch_by_id_takes_in_one_order_without_moving_the_cursor(tmp_path, sandbox, db_url, engine):
    hub = wx_hub(tmp_path, sandbox.url, db_url, engine, shops=["wx-store"])
    order_id, = create_wx_orders(sandbox.url, count=1)
    result = hub.sync_order_ids(CHANNEL, "wx-store", [order_id])
    assert result.new == 1 and set(hub_orders(engine)) == {order_id}
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.sync_cursors)).scalar() == 0


def test_the_daily_quota_stops_the_shop_cleanly_and_the_next_run_resumes_without_a_gap(
        tmp_path, sandbox, db_url, engine):
    hub = wx_hub(tmp_path, sandbox.url, db_url, engine, shops=["wx-store"])
    ids = create_wx_orders(sandbox.url, count=3)
    set_faults(sandbox.url, wechat_shop__throttle={"calls": 1, "errcode": 45009})
    report, = hub.sync()
    assert report.stopped and "quota exhausted" in report.stopped and report.result.received == 0
    with engine.connect() as conn:
        health = conn.execute(sa.select(t.source_health).where(t.source_health.c.shop == "wx-store")).one()
    assert health.state == "quota_exhausted" and health.until is not None
    hub.sync()  # after the reset (the knob is spent): from the cursor on, nothing skipped
    assert set(hub_orders(engine)) == set(ids)
    counts = wx_counts(sandbox.url, engine)
    assert counts["lost"] == 0 and counts["duplicated"] == 0
