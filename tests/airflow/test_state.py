"""The business state the OrderHub page shows and the watch DAG alerts on, read from the hub's tables."""

from __future__ import annotations

from orderhub_airflow import state
from orderhub_airflow.web import render
from tests.hub.helpers import create_orders, set_faults


def test_backlog_parked_and_sla_breaches_follow_the_orders_from_paid_to_the_wms(hub, sandbox):
    set_faults(sandbox.url, wms__auto_ship=False)
    late = create_orders(sandbox.url, count=3, ago_s=50 * 60)
    create_orders(sandbox.url, count=1, ago_s=5 * 60)  # paid 5 min ago: within a 30 min SLA
    hub.sync()
    hub.process()
    before = state.business_state(hub.engine, hub.settings, sla_minutes=30)
    assert {b["order_id"] for b in before["sla_breaches"]} == set(late)
    assert all(b["waiting_minutes"] >= 49 for b in before["sla_breaches"])
    wms = {s["sink"]: s for s in before["sinks"]}["wms"]
    assert (wms["backlog"], wms["done"], wms["parked"]) == (4, 0, 0)
    assert before["unclosed_windows"][0]["shop"] == "tmall/tm-flagship"

    hub.dispatch()
    after = state.business_state(hub.engine, hub.settings, sla_minutes=30)
    assert after["sla_breaches"] == []
    wms = {s["sink"]: s for s in after["sinks"]}["wms"]
    assert (wms["backlog"], wms["done"]) == (0, 4)
    page = render(before)
    assert "Orders breaching the paid → WMS SLA (30 min)" in page and late[0] in page


def test_the_last_stock_push_per_channel_shows_what_each_shop_was_told_and_what_it_acknowledged(hub, sandbox):
    assert state.last_stock_push(hub.engine) == []
    hub.stock_count(["SKU-001-RED-M", "SKU-001-RED-L"])
    hub.push_stock()
    rows = {r["channel"]: r for r in state.last_stock_push(hub.engine)}
    assert set(rows) == {"tmall/tm-flagship", "tmall/tm-outlet"}
    for row in rows.values():
        assert row["skus"] == 2 and row["pushes"] >= 2 and row["unacknowledged"] == 0 and row["rejected"] == 0
        assert row["acked_version"] == row["version"] and row["last_push"] is not None
    page = render(state.business_state(hub.engine, hub.settings, sla_minutes=30))
    assert "Last stock push per channel" in page and "tmall/tm-outlet" in page
