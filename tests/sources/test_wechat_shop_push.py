"""WeChat shop callbacks: the sandbox POSTs signed (and AES-encrypted) events to the hub's receiver, which verifies
them and keeps them in the durable inbox; Hub.intake_pushes re-reads each named order by id and confirms the notices
only after the commit. Forged requests are refused and recorded, never ingested. Duplicated and shuffled deliveries
change nothing twice; polling stays the safety net."""

from __future__ import annotations

import json
import time

import pytest
import requests
import sqlalchemy as sa

from connectors.wechat_shop import push
from hub.store import schema as t
from tests.hub.helpers import set_faults, truth
from tests.sources.test_wechat_shop_sync import (
    CHANNEL,
    create_wx_orders,
    hub_orders,
    modify_wx_order,
    wx_counts,
    wx_hub,
)


def _wx_shops(hub) -> list:
    return [s for s in hub.settings.shops if s.channel == CHANNEL]


def _push_to(sandbox, url: str | None, **extra) -> dict:
    resp = requests.post(f"{sandbox.url}/_sandbox/wechat_shop/callback", json={"url": url, **extra}, timeout=30)
    resp.raise_for_status()
    return resp.json()


def _wait_delivered(sandbox, timeout_s: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = requests.get(f"{sandbox.url}/_sandbox/wechat_shop/callback", timeout=10).json()
        if not any(target["pending"] for target in state["targets"].values()):
            return state
        time.sleep(0.05)
    raise AssertionError(f"pushes still pending: {state}")


@pytest.fixture
def pushed(tmp_path, sandbox, db_url, engine):
    """A hub whose WeChat shops share one inbox, a running receiver, and the sandbox pushing to it (safe mode,
    after the console's URL check)."""
    hub = wx_hub(tmp_path, sandbox.url, db_url, engine, shop_extra={"push_inbox": str(tmp_path / "wx-inbox.db")})
    with push.CallbackReceiver(_wx_shops(hub)) as receiver:
        _push_to(sandbox, receiver.url, verify=True)
        yield hub, receiver
        _push_to(sandbox, None)


def test_a_signed_encrypted_callback_brings_the_order_in_without_waiting_for_the_poll(pushed, sandbox, engine):
    hub, receiver = pushed
    store = create_wx_orders(sandbox.url, count=3)
    outlet = create_wx_orders(sandbox.url, shop="wx-outlet", count=2)
    _wait_delivered(sandbox)
    report, = hub.intake_pushes()
    assert report.messages == 10  # order_new + order_pay per order, each names its order
    assert report.result.new == 5 and set(hub_orders(engine)) == set(store + outlet)
    assert report.confirmed == report.messages
    with engine.connect() as conn:
        actors = {r.actor for r in conn.execute(sa.select(t.audit_trail.c.actor))}
        windows = conn.execute(sa.select(sa.func.count()).select_from(t.sync_windows)).scalar()
    assert actors == {"push"} and windows == 0  # no pull ran
    assert receiver.handler._inboxes and all(i.counts()["open"] == 0 for i in receiver.handler._inboxes.values())
    again, = hub.intake_pushes()
    assert again.messages == 0  # confirmed notices are not handed out again
    # a change pushed later (shipped by the merchant elsewhere) moves the stored order on
    modify_wx_order(sandbox.url, store[0], status=30)
    _wait_delivered(sandbox)
    later, = hub.intake_pushes()
    assert later.result.changed == 1 and hub_orders(engine)[store[0]] == 2
    # polling stays the safety net and finds nothing missing
    hub.sync()
    counts = wx_counts(sandbox.url, engine)
    assert counts["lost"] == 0 and counts["duplicated"] == 0 and counts["in_hub"] == 5


def test_duplicated_and_shuffled_pushes_are_one_notice_and_change_nothing_twice(pushed, sandbox, engine):
    hub, receiver = pushed
    set_faults(sandbox.url, wechat_shop__duplicate_push={"calls": 6}, wechat_shop__out_of_order_push=True)
    ids = create_wx_orders(sandbox.url, count=6)
    _wait_delivered(sandbox)
    pushes = truth(sandbox.url)["pushes"][CHANNEL]
    assert sum(p["delivered"] for p in pushes.values()) == 12 + 6  # the receiver got 6 duplicates
    inbox = next(iter(receiver.handler._inboxes.values()))
    assert inbox.counts()["notices"] == 12 and inbox.counts()["deliveries"] == 18
    hub.intake_pushes()
    hub.intake_pushes()
    assert set(hub_orders(engine)) == set(ids) and all(v == 1 for v in hub_orders(engine).values())
    with engine.connect() as conn:
        accepted = conn.execute(sa.select(sa.func.count()).select_from(t.outbox)
                                .where(t.outbox.c.event_type == "order.accepted")).scalar()
    assert accepted == 6


def test_an_after_sale_event_makes_the_intake_read_its_order_and_its_refund_without_waiting_for_the_poll(
        pushed, sandbox, engine):
    hub, _ = pushed
    order_id, = create_wx_orders(sandbox.url, count=1, ago_s=120)
    _wait_delivered(sandbox)
    hub.intake_pushes()
    modify_wx_order(sandbox.url, order_id, aftersale={"type": "REFUND", "count": 1})
    _wait_delivered(sandbox)
    report, = hub.intake_pushes()
    assert report.result.changed == 1 and hub_orders(engine)[order_id] == 2
    with engine.connect() as conn:
        doc = conn.execute(sa.select(t.orders.c.document).where(t.orders.c.order_id == order_id)).scalar_one()
    assert any(line["refund_status"] == "REQUESTED" for line in doc["lines"])
    from hub.store.schema_aftersales import refunds

    with engine.connect() as conn:
        refund = conn.execute(sa.select(refunds.c.order_id, refunds.c.status, refunds.c.hub_id)).one()
        event = conn.execute(sa.select(t.outbox.c.hub_id).where(t.outbox.c.event_type == "refund.requested")).one()
    assert refund.order_id == order_id and refund.status == "REQUESTED" and event.hub_id == refund.hub_id


def _post(receiver, params: dict, body: bytes) -> requests.Response:
    return requests.post(receiver.url, params=params, data=body, timeout=10,
                         headers={"Content-Type": "application/json"})


def test_forged_callbacks_are_refused_recorded_and_never_ingested(pushed, sandbox, engine):
    hub, receiver = pushed
    shop = _wx_shops(hub)[0]
    token, key = shop.callback_token.reveal(), shop.encoding_aes_key.reveal()
    order_id, = create_wx_orders(sandbox.url, count=1)
    _wait_delivered(sandbox)
    inbox = next(iter(receiver.handler._inboxes.values()))
    inbox.confirm([n.message_id for n in inbox.pending([shop.shop])])  # only the forged ones below are in question
    message = json.dumps({"ToUserName": shop.username, "FromUserName": "o-attacker", "CreateTime": 1,
                          "MsgType": "event", "Event": "channels_ec_order_pay",
                          "order_info": {"order_id": int(order_id)}})
    ts, nonce = str(int(time.time())), "12345678"

    def safe(encrypted: str, *, tok: str = token) -> tuple[dict, bytes]:
        params = {"signature": push.signature(tok, ts, nonce), "timestamp": ts, "nonce": nonce,
                  "encrypt_type": "aes", "msg_signature": push.signature(tok, ts, nonce, encrypted)}
        return params, json.dumps({"ToUserName": shop.username, "Encrypt": encrypted}).encode()

    good = push.encrypt(key, shop.appid, message, b"0123456789abcdef")
    forged = [
        safe(good, tok="not-the-token"),  # signed with another token
        ({**safe(good)[0], "msg_signature": "0" * 40}, safe(good)[1]),  # msg_signature does not cover the body
        safe(push.encrypt(key, "wx0000000000000000", message, b"0123456789abcdef")),  # another app's ciphertext
        safe(push.encrypt("A" * 43, shop.appid, message, b"0123456789abcdef")),  # another EncodingAESKey
        ({"signature": push.signature(token, ts, nonce), "timestamp": ts, "nonce": nonce},
         message.encode()),  # plain mode, which the shop does not accept
        ({}, message.encode()),  # unsigned
    ]
    replies = [_post(receiver, params, body) for params, body in forged]
    assert [r.status_code for r in replies] == [403] * len(forged)
    assert all(r.text != "success" for r in replies)
    refused = inbox.refused_rows()
    assert len(refused) == len(forged)
    assert [r["reason"].split(" ")[0] for r in refused] == [
        "signature", "msg_signature", "decrypted", "bad", "plain-mode", "signature,"]
    assert inbox.pending([shop.shop]) == []
    report, = hub.intake_pushes()
    assert report.messages == 0 and hub_orders(engine) == {}
    # the genuine request is accepted by the same receiver
    params, body = safe(good)
    assert _post(receiver, params, body).text == "success"
    report, = hub.intake_pushes()
    assert report.result.new == 1 and set(hub_orders(engine)) == {order_id}


def test_the_callback_crypto_reproduces_the_specs_worked_example():
    token, key, appid = "mytoken", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx1234567890abcdef"
    ts, nonce = "1709265600", "n0nce123"
    msg = ('{"ToUserName":"gh_abc","FromUserName":"OPENID","CreateTime":1709265600,"MsgType":"event",'
           '"Event":"channels_ec_order_new","order_info":{"order_id":"3705115058471208928"}}')
    assert push.signature(token, ts, nonce) == "7e415d303d3bdc3ea11ae64891e4915985127758"
    encrypted = push.encrypt(key, appid, msg, b"0123456789abcdef")
    assert len(encrypted) == 300 and encrypted.startswith("Q3stYC6hdFzMh9T8HCvyDGp5KiSuOSU9Q16aQtCeF3otGi6d")
    assert push.signature(token, ts, nonce, encrypted) == "f0b7830d7529b7d2e5a259d1fd6009c705ad5864"
    assert push.decrypt(key, encrypted) == (msg, appid)
    with pytest.raises(push.CallbackRefused):
        push.decrypt(key, encrypted[:-8] + "AAAAAAA=")


def test_a_notice_not_confirmed_before_a_crash_is_handed_out_again_and_a_plain_push_needs_the_shops_consent(
        tmp_path):
    from connectors.wechat_shop.settings import WechatShopSettings

    def settings(**extra) -> WechatShopSettings:
        return WechatShopSettings(shop="wx-a", appid="wx1234567890abcdef", secret={"value": "s" * 32},
                                  username="gh_abc", callback_token={"value": "mytoken"},
                                  encoding_aes_key={"value": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"},
                                  push_inbox=tmp_path / "inbox.db", **extra)

    shop = settings()
    message = json.dumps({"ToUserName": "gh_abc", "FromUserName": "o1", "CreateTime": 1, "MsgType": "event",
                          "Event": "channels_ec_order_new", "order_info": {"order_id": 3705115058471208928}})
    ts, nonce = "1709265600", "n0nce123"
    encrypted = push.encrypt("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", shop.appid, message, b"0" * 16)
    query = {"signature": push.signature("mytoken", ts, nonce), "timestamp": ts, "nonce": nonce,
             "encrypt_type": "aes", "msg_signature": push.signature("mytoken", ts, nonce, encrypted)}
    body = json.dumps({"ToUserName": "gh_abc", "Encrypt": encrypted}).encode()
    assert push.CallbackHandler([shop]).handle("POST", query, body) == (200, "success")
    assert push.CallbackHandler([shop]).handle("POST", query, body) == (200, "success")  # redelivered: one row
    first, = push.open_queues([shop])
    notice, = first.consume()
    assert (notice.shop, notice.external_id, notice.topic) == ("wx-a", "3705115058471208928", "channels_ec_order_new")
    # the intake dies before confirming: a new process hands the same notice out again, until it is confirmed
    second, = push.open_queues([shop])
    assert [n.message_id for n in second.consume()] == [notice.message_id]
    second.confirm([notice.message_id])
    assert push.open_queues([shop])[0].consume() == []
    # plain mode (signature only, JSON body): refused unless the shop allows it
    plain = {"signature": push.signature("mytoken", ts, nonce), "timestamp": ts, "nonce": nonce}
    assert push.CallbackHandler([shop]).handle("POST", plain, message.encode())[0] == 403
    assert push.CallbackHandler([settings(allow_plain_callbacks=True)]).handle(
        "POST", plain, message.encode()) == (200, "success")
    assert first.inbox.counts() == {"notices": 2, "open": 1, "deliveries": 3, "refused": 1}


def test_the_receiver_and_wechatpy_the_reference_implementation_understand_each_other():
    import re

    from wechatpy.crypto import WeChatCrypto

    token, key, appid = "mytoken", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx1234567890abcdef"
    message = '{"ToUserName":"gh_abc","Event":"channels_ec_order_pay","order_info":{"order_id":3705115058471208928}}'
    reference = WeChatCrypto(token, key, appid)
    xml = reference.encrypt_message(message, "n0nce123", "1709265600")
    fields = {name: re.search(rf"<{name}><!\[CDATA\[(.*?)\]\]></{name}>|<{name}>(.*?)</{name}>", xml)
              for name in ("Encrypt", "MsgSignature", "TimeStamp", "Nonce")}
    value = {name: match.group(1) or match.group(2) for name, match in fields.items()}
    assert push.signature(token, value["TimeStamp"], value["Nonce"], value["Encrypt"]) == value["MsgSignature"]
    assert push.decrypt(key, value["Encrypt"]) == (message, appid)
    ours = push.encrypt(key, appid, message, b"0123456789abcdef")
    assert reference.decrypt_message({"Encrypt": ours}, push.signature(token, "1709265600", "n0nce123", ours),
                                     "1709265600", "n0nce123") == message
