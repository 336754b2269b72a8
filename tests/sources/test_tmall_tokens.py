"""The seller's session: refreshed with taobao.top.auth.token.refresh when a refresh token is configured (once per
shop, however many callers meet the expiry at once); without one, an expired session is a configuration problem that
names the shop, says how to re-authorise, and shows in `orderhub status`."""

from __future__ import annotations

import threading
import time

import pytest
import requests
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from connectors.tmall import client as top_client
from connectors.tmall.client import TopClient
from hub.cli import app
from hub.config import load_settings
from hub.errors import ConfigurationError
from hub.runtime import Hub
from hub.status import collect
from hub.store import schema as t
from tests.conftest import write_sandbox_config
from tests.hub.helpers import create_orders, set_faults, versions
from tests.sources.test_tmall_sweep import assert_nothing_lost_or_duplicated

runner = CliRunner()


@pytest.fixture(autouse=True)
def _forget_refreshed_sessions():
    top_client._GRANTS.clear()
    yield
    top_client._GRANTS.clear()


def _config(tmp_path, sandbox, db_url, *, with_refresh: bool):
    path = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url)
    if with_refresh:
        creds = {s["shop"]: s for s in requests.get(f"{sandbox.url}/_sandbox/credentials",
                                                   timeout=10).json()["tmall"]["shops"]}
        data = yaml.safe_load(path.read_text())
        for shop in data["shops"]:
            shop["refresh_token"] = {"value": creds[shop["shop"]]["refresh_token"]}
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def _expire(sandbox, shop="tm-flagship"):
    requests.post(f"{sandbox.url}/_sandbox/tmall/sessions/{shop}/expire", json={"in_s": 0},
                  timeout=10).raise_for_status()


def test_an_expired_session_with_a_refresh_token_is_refreshed_and_the_sync_goes_on(tmp_path, sandbox, db_url,
                                                                                  engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    config = _config(tmp_path, sandbox, db_url, with_refresh=True)
    hub = Hub(load_settings(config), engine)
    tids = create_orders(sandbox.url, count=4)
    _expire(sandbox)
    report, = hub.sync(shop="tm-flagship")
    assert report.result.new == 4 and set(versions(engine)) == set(tids)
    grant = top_client._GRANTS[next(iter(top_client._GRANTS))]
    configured = load_settings(config).shop("tmall", "tm-flagship").session.reveal()
    assert grant.access_token != configured and grant.refresh_token
    assert collect(engine)["source_problems"] == []
    assert_nothing_lost_or_duplicated(sandbox, engine)


def test_a_refreshed_session_is_refreshed_again_before_it_expires(tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False, top__session_ttl_s=4)
    config = _config(tmp_path, sandbox, db_url, with_refresh=True)
    hub = Hub(load_settings(config), engine)
    _expire(sandbox)
    hub.sync(shop="tm-flagship")
    (first,) = top_client._GRANTS.values()
    time.sleep(2.2)  # past half of its 4 s life: the next call refreshes first, it never meets "Invalid session"
    calls = []
    real = TopClient.call_once

    def spy(self, method, **kwargs):
        result = real(self, method, **kwargs)
        calls.append(method)
        return result

    TopClient.call_once = spy
    try:
        tids = create_orders(sandbox.url, count=2)
        hub.sync(shop="tm-flagship")
    finally:
        TopClient.call_once = real
    (second,) = top_client._GRANTS.values()
    assert second.access_token != first.access_token
    assert calls[0] == "taobao.top.auth.token.refresh"
    assert set(tids) <= set(versions(engine))


def test_many_callers_meeting_the_expiry_at_once_refresh_only_once(tmp_path, sandbox, db_url):
    config = _config(tmp_path, sandbox, db_url, with_refresh=True)
    shop = load_settings(config).shop("tmall", "tm-flagship")
    _expire(sandbox)
    refreshes, errors = [], []
    real = TopClient.refresh_session

    def counting(self, stale):
        refreshes.append(stale)
        return real(self, stale)

    TopClient.refresh_session = counting
    try:
        def worker():
            try:
                TopClient(shop).call("taobao.trade.fullinfo.get", fields="tid", tid="1")
            except ConfigurationError as exc:
                errors.append(exc)
            except Exception:  # noqa: BLE001 - the trade does not exist: a record error after a good session
                pass

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        TopClient.refresh_session = real
    assert refreshes and not errors  # the single-use refresh token was spent once; the waiters used the new one
    assert len(top_client._GRANTS) == 1


def test_an_expired_session_without_a_refresh_token_names_the_shop_and_shows_in_status(tmp_path, sandbox, db_url,
                                                                                         engine):
    config = _config(tmp_path, sandbox, db_url, with_refresh=False)
    _expire(sandbox)
    result = runner.invoke(app, ["sync", "--shop", "tm-flagship", "--config", str(config)])
    assert result.exit_code == 3
    assert "tm-flagship" in result.output and "re-authorise" in result.output
    status = runner.invoke(app, ["status", "--config", str(config)])
    assert "tmall/tm-flagship/orders" in status.output and "re-authorise" in status.output


def test_a_refused_refresh_token_is_a_configuration_problem_naming_the_shop(tmp_path, sandbox, db_url, engine):
    config = _config(tmp_path, sandbox, db_url, with_refresh=True)
    shop = load_settings(config).shop("tmall", "tm-flagship")
    _expire(sandbox)
    TopClient(shop).call("taobao.tmc.user.permit")  # refreshes: the configured refresh token is now spent
    top_client._GRANTS.clear()  # a new process without the hub's token store, configuration not updated
    with pytest.raises(ConfigurationError) as caught:
        TopClient(shop).call("taobao.tmc.user.permit")
    assert "tm-flagship" in str(caught.value) and "re-authorise" in caught.value.how_to_fix


def test_a_session_refreshed_by_one_process_is_used_by_the_next_instead_of_the_spent_refresh_token(
        tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    config = _config(tmp_path, sandbox, db_url, with_refresh=True)
    create_orders(sandbox.url, count=2)
    _expire(sandbox)
    Hub(load_settings(config), engine).sync(shop="tm-flagship")  # refreshes: the configured refresh token is spent
    top_client._GRANTS.clear()  # what a new process (the next Airflow task) starts with
    tids = create_orders(sandbox.url, count=3, ago_s=10)
    report, = Hub(load_settings(config), engine).sync(shop="tm-flagship")
    assert set(tids) <= set(versions(engine)) and report.result.new == 3
    with engine.connect() as conn:
        stored = conn.execute(sa.select(t.channel_tokens)).one()
    assert stored.connector == "tmall" and stored.refresh_token and "tm-flagship" in stored.account
    assert collect(engine)["source_problems"] == []
