"""Logistics waybill sink against the sandbox's SF and Cainiao: the shops the hub ships itself get one waybill per
document, however many answers are lost, and the waybill is written back to the channel like a WMS shipment."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import yaml

from connectors.logistics.client import cainiao_digest, sf_digest
from hub.store import schema as t
from tests.hub.helpers import create_orders, set_faults, truth

SF_EXAMPLE = ('{"language":"zh-CN","orderId":"SO20240301001","monthlyCard":"7551234567","expressTypeId":1,'
              '"payMethod":1,"parcelQty":1,"isReturnRoutelabel":1,"cargoDetails":[{"name":"T-shirt","count":1}],'
              '"contactInfoList":[{"contactType":1,"contact":"Sender","mobile":"13800000000","province":"广东省",'
              '"city":"深圳市","county":"南山区","address":"科技园1号"},{"contactType":2,"contact":"Receiver",'
              '"mobile":"13900000000","province":"浙江省","city":"杭州市","county":"西湖区","address":"文三路2号"}]}')


@pytest.fixture
def waybill_hub(tmp_path, sandbox, db_url, engine):
    from hub.config import load_settings
    from hub.runtime import Hub
    from sandbox.configuration import orderhub_config

    def make(provider: str, attempts: int = 4):
        data = orderhub_config(sandbox.url, db_url, logistics=provider)
        for shop in data["shops"]:
            shop["sync"].update({"initial_lookback_hours": 1})
            shop["http"] = {"timeout_s": 3, "attempts": 4}
        for sink in data["sinks"]:
            sink["http"] = {"timeout_s": 3, "attempts": attempts}
        path = tmp_path / f"orderhub-{provider}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return Hub(load_settings(path), engine)

    return make


def _shipments(engine) -> dict[str, tuple[str, str]]:
    with engine.connect() as conn:
        return {r.order_id: (r.carrier_code, r.waybill_no) for r in conn.execute(
            sa.select(t.orders.c.order_id, t.shipments.c.carrier_code, t.shipments.c.waybill_no)
            .join(t.orders, t.orders.c.hub_id == t.shipments.c.hub_id))}


def test_the_digests_reproduce_the_worked_examples_of_the_spec():
    assert sf_digest(SF_EXAMPLE, "1709265600000", "sf_checkword") == "VhWlsF7+XI4YHy/x9b4joA=="
    assert cainiao_digest('{"cpCode":"YTO","sender":{"name":"A"}}', "cn_secret") == "NcBpXrQNPKX4h7wwcqLSYg=="


def test_sf_books_one_waybill_per_document_despite_lost_answers_and_the_channel_gets_it(waybill_hub, sandbox):
    hub = waybill_hub("sf")
    set_faults(sandbox.url, wms__auto_ship=False, sf__timeout_after_success={
        "calls": 3, "methods": ["EXP_RECE_CREATE_ORDER"], "mode": "drop"})
    ids = create_orders(sandbox.url, shop="tm-outlet", count=3)
    (wms_tid,) = create_orders(sandbox.url, shop="tm-flagship", count=1)
    hub.sync()
    reports = {r.sink: r for r in hub.dispatch()}
    assert reports["waybills"].done == 3 and reports["waybills"].skipped == 1  # the flagship is the WMS's

    booked = truth(sandbox.url)["sinks"]["sf"]["waybills"]
    assert sorted(booked) == sorted(f"TMALL-{tid}" for tid in ids)
    # three answers lost (each re-sent under the same orderId), still one waybill per document
    assert all(w["created"] == 1 for w in booked.values()) and sum(w["received"] for w in booked.values()) == 6
    shipments = _shipments(hub.engine)
    assert {tid: shipments[tid] for tid in ids} == {tid: ("SF", booked[f"TMALL-{tid}"]["waybill_no"]) for tid in ids}
    assert list(truth(sandbox.url)["wms"]["delivery_orders"]) == [f"TMALL-{wms_tid}"]

    assert hub.writeback().done == 3
    writebacks = truth(sandbox.url)["writebacks"]["tmall"]
    assert {tid: writebacks[tid]["out_sid"] for tid in ids} == {tid: shipments[tid][1] for tid in ids}

    # replaying the whole outbox from position zero books nothing new and records no second shipment
    with hub.engine.begin() as conn:
        conn.execute(sa.delete(t.dispatches).where(t.dispatches.c.sink == "waybills"))
        conn.execute(sa.delete(t.subscriptions).where(t.subscriptions.c.name == "waybills"))
    hub.dispatch("waybills")
    again = truth(sandbox.url)["sinks"]["sf"]["waybills"]
    assert all(w["created"] == 1 for w in again.values()) and len(again) == 3
    assert _shipments(hub.engine) == shipments


def test_an_sf_booking_in_doubt_is_found_by_probe_and_recorded(waybill_hub, sandbox):
    hub = waybill_hub("sf", attempts=1)  # no request retry: the doubt reaches dispatch
    set_faults(sandbox.url, wms__auto_ship=False, sf__timeout_after_success={
        "calls": 1, "methods": ["EXP_RECE_CREATE_ORDER"], "mode": "drop"})
    (tid,) = create_orders(sandbox.url, shop="tm-outlet", count=1)
    hub.sync()
    assert hub.dispatch("waybills")[0].in_doubt == 1 and _shipments(hub.engine) == {}
    assert hub.dispatch("waybills")[0].done == 1
    (booked,) = truth(sandbox.url)["sinks"]["sf"]["waybills"].values()
    assert booked["received"] == 1 and booked["created"] == 1  # found by the probe, never sent again
    assert _shipments(hub.engine) == {tid: ("SF", booked["waybill_no"])}


def test_cainiao_re_sends_a_booking_in_doubt_and_gets_the_same_waybill(waybill_hub, sandbox):
    hub = waybill_hub("cainiao", attempts=1)
    set_faults(sandbox.url, wms__auto_ship=False, cainiao__timeout_after_success={
        "calls": 2, "methods": ["TMS_WAYBILL_GET"], "mode": "drop"})
    ids = create_orders(sandbox.url, shop="tm-outlet", count=2)
    hub.sync()
    assert hub.dispatch("waybills")[0].in_doubt == 2
    assert hub.dispatch("waybills")[0].done == 2
    booked = truth(sandbox.url)["sinks"]["cainiao"]["waybills"]
    assert all(w["received"] == 2 and w["created"] == 1 and w["cp_code"] == "YTO" for w in booked.values())
    assert _shipments(hub.engine) == {tid: ("YTO", booked[f"TMALL-{tid}"]["waybill_code"]) for tid in ids}
