"""JD's access token and write-back against the in-process sandbox: the token is refreshed before it expires and
after an 'invalid access_token' (19), once per shop however many callers meet it; without a refresh token, or when
JD refuses the refresh, the sync stops with a configuration error naming the shop and how to re-authorise, visible in
`orderhub status`. JD's refresh token is single use, so a refreshed grant is stored in the hub database (hub/tokens.py)
and the next process uses it instead of the spent configured one. A shipment reaches JD's record of truth once, even
when the reply is lost."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa
from typer.testing import CliRunner

from connectors.jd import client as jd_client
from connectors.jd.client import JdClient
from connectors.jd.writeback import ship
from hub import tokens
from hub.cli import app
from hub.config import load_settings
from hub.errors import ConfigurationError, RecordError
from hub.models import Shipment
from hub.runtime import Hub
from hub.status import collect
from hub.store import schema as t
from tests.hub.helpers import set_faults
from tests.sources.test_jd_sync import (
    assert_jd_nothing_lost_or_duplicated,
    create_jd_orders,
    jd_credentials,
    jd_truth,
    modify_jd_order,
    order_versions,
    write_jd_config,
)

runner = CliRunner()


@pytest.fixture(autouse=True)
def _forget_refreshed_tokens():
    jd_client._GRANTS.clear()
    yield
    jd_client._GRANTS.clear()


def _settings(config, shop="jd-flagship"):
    return load_settings(config).shop("jd", shop)


def _spy_codes(monkeypatch) -> list[str]:
    """Gateway error codes the client met (classify is the one place that reads them)."""
    seen: list[str] = []
    real = jd_client.classify

    def spy(method, status_code, body, **kwargs):
        if isinstance(body, dict) and "error_response" in body:
            seen.append(str(body["error_response"].get("code")))
        return real(method, status_code, body, **kwargs)

    monkeypatch.setattr(jd_client, "classify", spy)
    return seen


def test_an_expired_token_without_a_refresh_token_stops_the_sync_with_a_configuration_error_in_status(
        tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False, jd__expire_tokens=["jd-flagship"])
    config = write_jd_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, refresh=False)
    hub = Hub(load_settings(config), engine)
    create_jd_orders(sandbox.url, count=2)
    with pytest.raises(ConfigurationError) as caught:
        hub.sync(channel="jd", shop="jd-flagship")
    assert "jd-flagship" in caught.value.message and "re-authorise shop jd-flagship" in caught.value.how_to_fix
    problems = collect(engine)["source_problems"]
    assert [p["source"] for p in problems] == ["jd/jd-flagship/orders"]
    assert problems[0]["state"] == "configuration" and "re-authorise" in problems[0]["how_to_fix"]
    status = runner.invoke(app, ["status", "--config", str(config)])
    assert "jd/jd-flagship/orders" in status.output
    token = _settings(config).access_token.reveal()
    assert token not in status.output and token not in caught.value.message  # a secret never shows
    assert not order_versions(engine)
    hub.sync(channel="jd", shop="jd-outlet")  # the other shop is not affected


def test_jd_refusing_the_refresh_is_a_configuration_error_that_says_to_re_authorise(tmp_path, sandbox, db_url, engine):
    config = write_jd_config(tmp_path / "orderhub.yaml", sandbox.url, db_url,
                             shop_extra={"refresh_token": {"value": "0" * 32}})
    set_faults(sandbox.url, jd__expire_tokens=True)
    with pytest.raises(ConfigurationError) as caught:
        JdClient(_settings(config)).call("jingdong.pop.order.get", {"order_id": "280000000001"})
    assert "refused to refresh" in caught.value.message and "re-authorise shop jd-flagship" in caught.value.how_to_fix


def test_an_expired_token_is_refreshed_once_and_the_sync_goes_on(tmp_path, sandbox, db_url, engine, monkeypatch):
    set_faults(sandbox.url, wms__auto_ship=False)
    config = write_jd_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, shops=["jd-flagship"])
    ids = create_jd_orders(sandbox.url, count=3)
    set_faults(sandbox.url, jd__expire_tokens=True)
    codes = _spy_codes(monkeypatch)
    refreshes = []
    real = JdClient._post_refresh
    monkeypatch.setattr(JdClient, "_post_refresh", lambda self, token: refreshes.append(token) or real(self, token))
    settings = _settings(config)
    stale = settings.access_token.reveal()
    clients = [JdClient(settings) for _ in range(6)]
    barrier = threading.Barrier(len(clients))
    errors = []

    def caller(client):
        barrier.wait()
        try:
            client.call("jingdong.pop.order.get", {"order_id": ids[0], "optional_fields": "orderId"})
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(refreshes) == 1  # single flight: one refresh for six callers
    assert "19" in codes
    fresh = jd_credentials(sandbox.url)["shops"][0]["access_token"]
    assert clients[0].access_token == fresh != stale
    report, = Hub(load_settings(config), engine).sync(channel="jd", stream="orders")
    assert set(order_versions(engine)) == set(ids) and collect(engine)["source_problems"] == []
    assert_jd_nothing_lost_or_duplicated(sandbox.url, engine)


def test_a_token_near_its_end_is_refreshed_before_jd_refuses_it(tmp_path, sandbox, db_url, engine, monkeypatch):
    soon = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
    config = write_jd_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, shops=["jd-flagship"],
                             shop_extra={"token_expires_at": soon})
    codes = _spy_codes(monkeypatch)
    ids = create_jd_orders(sandbox.url, count=2)
    Hub(load_settings(config), engine).sync(channel="jd", stream="orders")
    assert codes == []  # never met a 19: refreshed inside JD's last-24-hours refresh window first
    grant, = jd_client._GRANTS.values()
    assert grant.access_token == jd_credentials(sandbox.url)["shops"][0]["access_token"]
    assert grant.expires_at > datetime.now(UTC) + timedelta(days=300)  # the new token's life: no refresh again
    assert set(order_versions(engine)) == set(ids)


def test_a_shipment_reaches_jd_once_even_when_the_reply_is_lost_and_refusals_carry_jd_s_reason(
        tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    config = write_jd_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, shops=["jd-flagship"])
    hub = Hub(load_settings(config), engine)
    shipped, on_hold = create_jd_orders(sandbox.url, count=2)
    modify_jd_order(sandbox.url, on_hold, refund=True)  # a refund request locks it: JD refuses to ship it
    hub.sync(channel="jd", stream="orders")
    settings = _settings(config)
    orders = {o.order_id: o for o in (hub.order(h) for h in _hub_ids(engine))}

    def shipment(order_id, waybill):
        return Shipment(shipment_id=f"S-{order_id}", order_id=order_id, carrier_code="SF", waybill_no=waybill,
                        shipped_at=datetime.now(UTC), source="wms")

    set_faults(sandbox.url, jd__timeout_after_success={"calls": 1, "methods": ["jingdong.pop.order.shipment"],
                                                        "sleep_s": 4})
    result = ship(settings, orders[shipped], shipment(shipped, "SF1000000001"), hub.carriers["SF"]["jd"])
    assert result.accepted and result.already_done  # the retry after the lost reply met "already shipped" (1002)
    again = ship(settings, orders[shipped], shipment(shipped, "SF1000000001"), "467")
    assert again.accepted and again.already_done
    truth = jd_truth(sandbox.url)["writebacks"]["jd"]
    assert truth[shipped]["accepted"] == 1 and truth[shipped]["waybill"] == "SF1000000001"
    assert truth[shipped]["logistics_id"] == "467"
    with pytest.raises(RecordError) as refused:
        ship(settings, orders[on_hold], shipment(on_hold, "SF1000000002"), "467")
    assert refused.value.attributes["code"] == "1003" and "on hold" in refused.value.message
    assert jd_truth(sandbox.url)["writebacks"]["jd"][on_hold] == {"accepted": 0, "rejected": 1, "waybill": None,
                                                                 "logistics_id": None}


def test_a_jd_order_goes_to_the_warehouse_and_its_waybill_comes_back_to_jd(tmp_path, sandbox, db_url, engine):
    config = write_jd_config(tmp_path / "orderhub.yaml", sandbox.url, db_url)
    hub = Hub(load_settings(config), engine)
    ids = create_jd_orders(sandbox.url, count=3) + create_jd_orders(sandbox.url, shop="jd-outlet", count=2)
    hub.run_once()
    hub.run_once()  # ship confirmations of the auto-shipping WMS are taken in and written back
    truth = jd_truth(sandbox.url)
    writebacks = truth["writebacks"]["jd"]
    assert set(writebacks) == set(ids) and all(w["accepted"] == 1 and w["logistics_id"] for w in writebacks.values())
    assert all(truth["channels"]["jd"][s]["orders"][i]["status"] == "WAIT_GOODS_RECEIVE_CONFIRM"
               for s in ("jd-flagship", "jd-outlet") for i in truth["channels"]["jd"][s]["orders"])
    assert_jd_nothing_lost_or_duplicated(sandbox.url, engine)


def _hub_ids(engine) -> list[str]:
    import sqlalchemy as sa

    from hub.store import schema as t

    with engine.connect() as conn:
        return [r.hub_id for r in conn.execute(sa.select(t.orders.c.hub_id).where(t.orders.c.channel == "jd"))]


def _expire_tokens(sandbox_url: str, shop: str = "jd-flagship") -> None:
    """Expire the tokens the shop holds now. The knob acts when JD next sees it switched on, so it is switched off
    and a JD call (a refused refresh) lets JD see that first."""
    set_faults(sandbox_url, jd__expire_tokens=False)
    requests.post(f"{sandbox_url}/jd/oauth2/refresh_token", data={"refresh_token": "-"}, timeout=10)
    set_faults(sandbox_url, jd__expire_tokens=[shop])


def _refresh_at_jd(settings, refresh_token: str) -> dict:
    """What a person re-authorising the shop, or another process refreshing it, obtains from JD."""
    resp = requests.post(settings.refresh_url, data={
        "app_key": settings.app_key.reveal(), "app_secret": settings.app_secret.reveal(),
        "grant_type": "refresh_token", "refresh_token": refresh_token}, timeout=10)
    body = resp.json()
    assert str(body["code"]) == "0", body
    return body


def _stored_rows(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.select(t.channel_tokens)).all()


def _count_refreshes(monkeypatch) -> list[str]:
    refreshes: list[str] = []
    real = JdClient._post_refresh
    monkeypatch.setattr(JdClient, "_post_refresh", lambda self, token: refreshes.append(token) or real(self, token))
    return refreshes


def test_a_token_refreshed_by_one_process_is_used_by_the_next_instead_of_the_spent_refresh_token(
        tmp_path, sandbox, db_url, engine, monkeypatch):
    set_faults(sandbox.url, wms__auto_ship=False)
    config = write_jd_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, shops=["jd-flagship"])
    first = create_jd_orders(sandbox.url, count=2)
    _expire_tokens(sandbox.url)
    refreshes = _count_refreshes(monkeypatch)
    Hub(load_settings(config), engine).sync(channel="jd", stream="orders")  # the configured refresh token is spent
    assert len(refreshes) == 1 and set(order_versions(engine)) == set(first)
    jd_client._GRANTS.clear()  # what a new process (the next Airflow task) starts with
    later = create_jd_orders(sandbox.url, count=3, ago_s=10)
    report, = Hub(load_settings(config), engine).sync(channel="jd", stream="orders")
    assert len(refreshes) == 1  # the stored grant was used: no second refresh with the spent token
    assert report.result.new == 3 and set(order_versions(engine)) == set(first) | set(later)
    fresh = jd_credentials(sandbox.url)["shops"][0]
    stored, = _stored_rows(engine)
    assert stored.connector == "jd" and "jd-flagship" in stored.account
    assert (stored.access_token, stored.refresh_token) == (fresh["access_token"], fresh["refresh_token"])
    assert stored.expires_at > datetime.now(UTC) + timedelta(days=300) and stored.lifetime_s
    assert collect(engine)["source_problems"] == []
    assert_jd_nothing_lost_or_duplicated(sandbox.url, engine)


def test_a_process_that_waited_for_another_process_s_refresh_uses_its_token_instead_of_refreshing_again(
        tmp_path, sandbox, db_url, engine, monkeypatch):
    config = write_jd_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, shops=["jd-flagship"])
    Hub(load_settings(config), engine)  # installs the hub database as the token store
    settings = _settings(config)
    _expire_tokens(sandbox.url)
    ids = create_jd_orders(sandbox.url, count=1)
    JdClient(settings).call("jingdong.pop.order.get", {"order_id": ids[0], "optional_fields": "orderId"})
    stored, = _stored_rows(engine)  # the shop's row now exists: the one another process locks while refreshing
    jd_client._GRANTS.clear()
    client = JdClient(settings)  # built with the stored grant, which the other process is about to replace
    _expire_tokens(sandbox.url)
    refreshes = _count_refreshes(monkeypatch)
    holding, done = threading.Event(), threading.Event()

    def other_process():
        with tokens.current_store().refreshing("jd", stored.account) as slot:
            holding.set()
            time.sleep(1.0)  # the client meets the 19 meanwhile and waits for the row
            body = _refresh_at_jd(settings, slot.current.refresh_token)
            slot.save(tokens.Grant(body["access_token"], body["refresh_token"], None, None))
        done.set()

    thread = threading.Thread(target=other_process)
    thread.start()
    assert holding.wait(10)
    result = client.call("jingdong.pop.order.get", {"order_id": ids[0], "optional_fields": "orderId"})
    thread.join()
    assert done.is_set() and result and refreshes == []  # the waiter used the other's grant, spent nothing
    assert client.access_token == jd_credentials(sandbox.url)["shops"][0]["access_token"] != stored.access_token


def test_a_shop_re_authorised_after_its_stored_token_died_syncs_with_the_newly_configured_tokens(
        tmp_path, sandbox, db_url, engine, monkeypatch):
    set_faults(sandbox.url, wms__auto_ship=False)
    config = write_jd_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, shops=["jd-flagship"])
    _expire_tokens(sandbox.url)
    Hub(load_settings(config), engine).sync(channel="jd", stream="orders")  # stores a grant
    dead, = _stored_rows(engine)
    # a person re-authorises the shop (the stored tokens die with it) and stores the new ones in the configuration
    renewed = _refresh_at_jd(_settings(config), dead.refresh_token)
    config = write_jd_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, shops=["jd-flagship"], shop_extra={
        "access_token": {"value": renewed["access_token"]}, "refresh_token": {"value": renewed["refresh_token"]}})
    jd_client._GRANTS.clear()
    refreshes = _count_refreshes(monkeypatch)
    ids = create_jd_orders(sandbox.url, count=2, ago_s=10)
    Hub(load_settings(config), engine).sync(channel="jd", stream="orders")
    assert refreshes == [dead.refresh_token, renewed["refresh_token"]]  # the stored one refused, the configured used
    assert set(ids) <= set(order_versions(engine)) and collect(engine)["source_problems"] == []
    stored, = _stored_rows(engine)
    assert stored.access_token == jd_credentials(sandbox.url)["shops"][0]["access_token"] != dead.access_token
