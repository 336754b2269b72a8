"""WeChat shop access_token lifecycle and write-back against the sandbox: a token is refreshed before it expires and
after WeChat calls it expired, once per shop however many callers notice (single flight); a token refused right
after a refresh, a wrong AppSecret or AppID are configuration errors that name the shop, say how to fix it and show
in source health. Shipments reach the sandbox's record of truth through delivery/send, once, also when the answer
was lost."""

from __future__ import annotations

import threading
import time

import pytest
import requests
import sqlalchemy as sa

from connectors.wechat_shop import client as wx_client
from connectors.wechat_shop.client import WxClient
from connectors.wechat_shop.writeback import ship
from hub.errors import ConfigurationError, RecordError
from hub.models import Shipment
from hub.store import schema as t
from hub.store.db import reading
from tests.hub.helpers import set_faults, truth
from tests.sources.test_wechat_shop_sync import CHANNEL, create_wx_orders, wx_counts, wx_hub


class CountingSession(requests.Session):
    """A real HTTP session that counts token requests (how many times the shop's token was fetched)."""

    def __init__(self) -> None:
        super().__init__()
        self.token_fetches = 0
        self._guard = threading.Lock()

    def request(self, method, url, *args, **kwargs):
        if "/cgi-bin/" in url:
            with self._guard:
                self.token_fetches += 1
        return super().request(method, url, *args, **kwargs)


def _shop(hub, name: str = "wx-store"):
    return hub.settings.shop(CHANNEL, name)


def _info(client: WxClient) -> dict:
    return client.call("/channels/ec/basics/info/get", method="GET")


def test_a_token_is_refreshed_before_it_expires_and_once_for_many_callers(tmp_path, sandbox, db_url, engine):
    hub = wx_hub(tmp_path, sandbox.url, db_url, engine)
    set_faults(sandbox.url, wechat_shop__token_ttl_s=2)
    http = CountingSession()
    client = WxClient(_shop(hub), http=http)
    assert _info(client)["info"]["nickname"]
    first = wx_client._TOKENS[client._key].value
    time.sleep(1.2)  # within half the token's life of its end: the next call refreshes first, no 42001 on the way
    _info(client)
    assert wx_client._TOKENS[client._key].value != first
    # the first fetch; then a plain fetch, plus force_refresh when it served the same near-expiry token
    assert http.token_fetches in (2, 3)
    # many threads find the same token refused: one refresh among them, the others use its result
    stale = wx_client._TOKENS[client._key].value
    fetched_before = http.token_fetches
    results = []
    threads = [threading.Thread(target=lambda: results.append(client.refresh_token(stale))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 1 and results[0] != stale
    assert http.token_fetches - fetched_before in (1, 2)  # one refresh (a plain fetch, + force_refresh if needed)


def test_a_token_wechat_calls_expired_is_refetched_and_the_call_goes_on(tmp_path, sandbox, db_url, engine):
    hub = wx_hub(tmp_path, sandbox.url, db_url, engine)
    set_faults(sandbox.url, wechat_shop__token_ttl_s=1)
    client = WxClient(_shop(hub))
    _info(client)
    # this process believes the token is good for an hour; WeChat has let it expire (42001)
    wx_client._TOKENS[client._key].expires_at = time.monotonic() + 3600
    wx_client._TOKENS[client._key].lifetime = 7200
    time.sleep(1.1)
    set_faults(sandbox.url, wechat_shop__token_ttl_s=7200)
    stale = wx_client._TOKENS[client._key].value
    assert _info(client)["info"]["nickname"]
    assert wx_client._TOKENS[client._key].value != stale


def test_an_expired_token_that_stays_refused_is_a_configuration_error_naming_the_shop_in_source_health(
        tmp_path, sandbox, db_url, engine):
    hub = wx_hub(tmp_path, sandbox.url, db_url, engine)
    create_wx_orders(sandbox.url, count=2)
    set_faults(sandbox.url, wechat_shop__expire_tokens=["wx-store"])
    with pytest.raises(ConfigurationError) as caught:
        hub.sync(shop="wx-store")
    assert "wx-store" in str(caught.value) and "re-authorise" in caught.value.how_to_fix
    hub.sync(shop="wx-outlet")  # the other shop's token is fine: it goes on
    with reading(engine) as conn:
        health = {r.shop: r for r in conn.execute(sa.select(t.source_health).where(
            t.source_health.c.connector == CHANNEL))}
    bad = health["wx-store"]
    assert bad.state != "ok"
    assert bad.state == "configuration" and health["wx-outlet"].state == "ok"
    assert "wx-store" in bad.message and "42001" in bad.message and "re-authorise" in bad.how_to_fix
    # once WeChat takes the token again, the next run goes on where it stopped
    set_faults(sandbox.url, wechat_shop__expire_tokens=False)
    hub.sync()
    counts = wx_counts(sandbox.url, engine)
    assert counts["lost"] == 0 and counts["duplicated"] == 0 and counts["in_hub"] == 2
    with reading(engine) as conn:
        assert {r.state for r in conn.execute(sa.select(t.source_health))} == {"ok"}


@pytest.mark.parametrize(("field", "value", "errcode"), [("secret", {"value": "0" * 32}, 40001),
                                                          ("appid", "wx0000000000000000", 40013)])
def test_a_wrong_appsecret_or_appid_is_a_configuration_error_that_says_how_to_fix_it(
        tmp_path, sandbox, db_url, engine, field, value, errcode):
    hub = wx_hub(tmp_path, sandbox.url, db_url, engine, shops=["wx-store"], shop_extra={field: value})
    with pytest.raises(ConfigurationError) as caught:
        _info(WxClient(_shop(hub)))
    error = caught.value
    assert error.attributes["errcode"] == errcode and "wx-store" in str(error)
    assert "开发设置" in error.how_to_fix and "0" * 32 not in str(error.to_dict())


def _shipment(order, waybill: str, carrier: str = "SF") -> Shipment:
    from datetime import UTC, datetime

    return Shipment(shipment_id=f"S-{waybill}", order_id=order.order_id, carrier_code=carrier, waybill_no=waybill,
                    shipped_at=datetime.now(UTC), source="wms")


def _stored_order(engine, order_id: str):
    import json

    from hub.models import Order

    with reading(engine) as conn:
        doc = conn.execute(sa.select(t.orders.c.document).where(t.orders.c.order_id == order_id)).scalar_one()
    return Order.model_validate_json(json.dumps(doc))


def test_a_shipment_reaches_the_record_of_truth_once_even_when_the_answer_was_lost(tmp_path, sandbox, db_url, engine):
    hub = wx_hub(tmp_path, sandbox.url, db_url, engine, shops=["wx-store"])
    first, second = create_wx_orders(sandbox.url, count=2)
    hub.sync()
    settings = _shop(hub)
    result = ship(settings, _stored_order(engine, first), _shipment(_stored_order(engine, first), "SF100001"), "SF")
    assert result.accepted and not result.already_done
    again = ship(settings, _stored_order(engine, first), _shipment(_stored_order(engine, first), "SF100001"), "SF")
    assert again.accepted and again.already_done  # WeChat refused the repeat; the order already has this parcel
    # the answer of the first send is lost: the retry meets "already shipped" and reads the parcel back
    set_faults(sandbox.url, wechat_shop__timeout_after_success={"calls": 1, "methods": ["order/delivery/send"],
                                                                "sleep_s": 4})
    lost = ship(settings, _stored_order(engine, second), _shipment(_stored_order(engine, second), "YT200002",
                                                                      "YTO"), "YTO")
    assert lost.accepted and lost.already_done
    writebacks = truth(sandbox.url)["writebacks"][CHANNEL]
    assert writebacks[first]["accepted"] == 1 and writebacks[first]["waybill_id"] == "SF100001"
    assert writebacks[second]["accepted"] == 1 and writebacks[second]["delivery_id"] == "YTO"
    # a parcel WeChat refuses for another reason stays an error of that record
    with pytest.raises(RecordError):
        ship(settings, _stored_order(engine, second), _shipment(_stored_order(engine, second), "XX1"), "NOPE")


def test_the_hubs_own_steps_write_every_wms_shipment_back_to_wechat(tmp_path, sandbox, db_url, engine):
    hub = wx_hub(tmp_path, sandbox.url, db_url, engine)
    create_wx_orders(sandbox.url, count=3)
    create_wx_orders(sandbox.url, shop="wx-outlet", count=2)
    for _ in range(2):
        hub.run_once()
    counts = wx_counts(sandbox.url, engine)
    assert counts["lost"] == 0 and counts["duplicated"] == 0
    assert counts["in_hub"] == 5 and counts["written_back"] == 5
    statuses = {o["status"] for s in truth(sandbox.url)["channels"][CHANNEL].values() for o in s["orders"].values()}
    assert statuses == {30}


def test_the_classic_token_works_too_and_a_newer_one_supersedes_it(tmp_path, sandbox, db_url, engine):
    hub = wx_hub(tmp_path, sandbox.url, db_url, engine, shops=["wx-store"], shop_extra={"token_kind": "classic"})
    ids = create_wx_orders(sandbox.url, count=2)
    hub.sync()
    client = WxClient(_shop(hub))
    old = wx_client._TOKENS[client._key].value
    assert client.refresh_token(old) != old  # each classic fetch issues a new token (the old one has 5 min grace)
    assert _info(client)["info"]["nickname"]
    counts = wx_counts(sandbox.url, engine)
    assert counts["lost"] == 0 and counts["duplicated"] == 0 and counts["in_hub"] == len(ids)
