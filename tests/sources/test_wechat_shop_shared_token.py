"""The WeChat shop token is shared by every process through the hub database (hub/tokens.py): a classic fetch (and
a stable force_refresh) makes the previous token answer 40001 five minutes later, so the next process (the next
Airflow task) uses the stored token instead of fetching one that would knock out the token of a process still
running, and a process that waited for another's fetch takes its token instead of fetching again."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import requests
import sqlalchemy as sa

from connectors.wechat_shop import client as wx_client
from connectors.wechat_shop.client import WxClient
from hub import tokens
from hub.status import collect
from hub.store import schema as t
from tests.hub.helpers import set_faults
from tests.sources.test_wechat_shop_sync import CHANNEL, create_wx_orders, wx_counts, wx_hub


def _count_fetches(monkeypatch) -> list[bool]:
    """The token fetches this process makes (the force flag of each)."""
    fetches: list[bool] = []
    real = WxClient._fetch_token

    def counting(self, *, force):
        fetches.append(force)
        return real(self, force=force)

    monkeypatch.setattr(WxClient, "_fetch_token", counting)
    return fetches


def _stored(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.select(t.channel_tokens)).all()


def test_a_token_fetched_by_one_process_is_used_by_the_next_instead_of_a_fresh_fetch_that_would_supersede_it(
        tmp_path, sandbox, db_url, engine, monkeypatch):
    set_faults(sandbox.url, wms__auto_ship=False)
    fetches = _count_fetches(monkeypatch)
    first = create_wx_orders(sandbox.url, count=2)
    hub = wx_hub(tmp_path, sandbox.url, db_url, engine, shops=["wx-store"], shop_extra={"token_kind": "classic"})
    hub.sync(channel=CHANNEL)
    assert len(fetches) == 1
    token, = [r.access_token for r in _stored(engine)]
    later = create_wx_orders(sandbox.url, count=3, ago_s=10)
    # a new process (the next Airflow task): nothing in memory, the same database
    report, = wx_hub(tmp_path, sandbox.url, db_url, engine, shops=["wx-store"],
                     shop_extra={"token_kind": "classic"}).sync(channel=CHANNEL)
    assert len(fetches) == 1  # no classic fetch: the first process's token was not superseded
    assert report.result.new == 3
    stored, = _stored(engine)
    assert stored.connector == CHANNEL and stored.access_token == token and stored.refresh_token is None
    assert stored.expires_at > datetime.now(UTC) + timedelta(minutes=60) and stored.lifetime_s == 7200
    counts = wx_counts(sandbox.url, engine)
    assert counts["lost"] == 0 and counts["duplicated"] == 0 and counts["in_hub"] == len(first) + len(later)
    assert collect(engine)["source_problems"] == []


def test_a_process_that_waited_for_another_process_s_fetch_uses_its_token_instead_of_fetching_again(
        tmp_path, sandbox, db_url, engine, monkeypatch):
    hub = wx_hub(tmp_path, sandbox.url, db_url, engine, shops=["wx-store"])
    settings = hub.settings.shop(CHANNEL, "wx-store")
    client = WxClient(settings)
    stale = client.token  # fetched and stored: the row another process locks while it fetches
    fetches = _count_fetches(monkeypatch)
    holding = threading.Event()

    def other_process():
        with tokens.current_store().refreshing(CHANNEL, client._account) as slot:
            holding.set()
            time.sleep(1.0)  # this process meets the refused token meanwhile and waits for the row
            body = requests.post(f"{client.base}/cgi-bin/stable_token", json={
                "grant_type": "client_credential", "appid": settings.appid, "secret": settings.secret.reveal(),
                "force_refresh": True}, timeout=10).json()
            lifetime = timedelta(seconds=body["expires_in"])
            slot.save(tokens.Grant(body["access_token"], None, datetime.now(UTC) + lifetime, lifetime))

    thread = threading.Thread(target=other_process)
    thread.start()
    assert holding.wait(10)
    fresh = client.refresh_token(stale)
    thread.join()
    assert fetches == [] and fresh != stale  # took the other process's token, fetched none
    assert client.call("/channels/ec/basics/info/get", method="GET")["info"]["nickname"]
    assert wx_client._TOKENS[client._key].value == fresh == _stored(engine)[0].access_token
