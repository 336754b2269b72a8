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
