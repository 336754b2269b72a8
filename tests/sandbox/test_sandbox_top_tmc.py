"""Simulated TMC HTTP pull (spec §1.10 mode 1): permit, consume, confirm, redelivery, duplicates, disorder."""

from __future__ import annotations

import json
import time

CONSUME = "taobao.tmc.messages.consume"
CONFIRM = "taobao.tmc.messages.confirm"


def permit(top, shop: str = "tm-flagship", **params: object) -> None:
    body = top("taobao.tmc.user.permit", shop=shop, **params)
    assert body["tmc_user_permit_response"]["is_success"] is True, body


def consume(top, quantity: int = 100) -> list[dict]:
    body = top(CONSUME, shop=None, quantity=quantity)["tmc_messages_consume_response"]
    return body.get("messages", {}).get("tmc_message", [])


def confirm(top, messages: list[dict]) -> None:
    ids = ",".join(str(m["id"]) for m in messages)
    assert top(CONFIRM, shop=None, s_message_ids=ids)["tmc_messages_confirm_response"]["is_success"] is True


def test_messages_flow_only_after_permit_and_carry_the_trade_as_a_json_string(top, admin, creds):
    admin("POST", "orders", json={"shop": "tm-flagship", "count": 1})
    assert consume(top) == []  # nothing before the seller permitted the app
    permit(top)
    [tid] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1,
                                          "lines": [{"sku": "SKU-001-RED-M", "num": 1}]})["ids"]
    admin("POST", "orders", json={"shop": "tm-outlet", "count": 1})  # not permitted: no messages
    top("taobao.logistics.offline.send", tid=tid, out_sid="SF9", company_code="SF")
    admin("POST", f"orders/tmall/{tid}/refund", json={})

    messages = consume(top)
    assert [m["topic"] for m in messages] == ["taobao_trade_TradeCreate", "taobao_trade_TradeBuyerPay",
                                              "taobao_trade_TradeSellerShip", "taobao_refund_RefundCreated"]
    first = messages[0]
    assert {"id", "topic", "pub_time", "pub_app_key", "user_id", "user_nick", "content"} <= set(first)
    assert first["pub_app_key"] == creds["tmall"]["app_key"] and first["user_nick"] == "橙舍官方旗舰店"
    content = json.loads(first["content"])
    assert str(content["tid"]) == tid and content["status"] == "WAIT_SELLER_SEND_GOODS"
    assert {"oid", "buyer_nick", "seller_nick", "payment", "type"} <= set(content)
    refund = json.loads(messages[-1]["content"])
    assert {"refund_id", "tid", "oid", "refund_fee", "refund_phase", "refund_version", "modified"} <= set(refund)
    confirm(top, messages)
    assert consume(top) == []
    tmc = admin("GET", "truth")["tmc"]["tmall"]
    assert tmc["published"] == 4 and tmc["unconfirmed"] == 0


def test_unconfirmed_messages_come_back_after_the_redelivery_timeout(top, admin):
    admin("POST", "faults", json={"top.tmc_redelivery_s": 0.5})
    permit(top, topics="taobao_trade_TradeBuyerPay")
    admin("POST", "orders", json={"shop": "tm-flagship", "count": 3})
    first = consume(top)
    assert len(first) == 3 and {m["topic"] for m in first} == {"taobao_trade_TradeBuyerPay"}
    assert consume(top) == []  # in flight, not yet due
    confirm(top, first[:1])
    time.sleep(0.6)
    again = consume(top)
    assert [m["id"] for m in again] == [m["id"] for m in first[1:]]  # at least once: same ids, same content
    assert again[0]["content"] == first[1]["content"]
    # f_message_ids hands a message back at once
    top(CONFIRM, shop=None, f_message_ids=str(again[0]["id"]), s_message_ids=str(again[1]["id"]))
    assert [m["id"] for m in consume(top)] == [again[0]["id"]]


def test_duplicate_knob_delivers_a_message_again_even_after_it_was_confirmed(top, admin):
    permit(top, topics="taobao_trade_TradeCreate")
    admin("POST", "orders", json={"shop": "tm-flagship", "count": 2})
    admin("POST", "faults", json={"top.tmc_duplicate": {"calls": 1}})
    first = consume(top)
    confirm(top, first)
    second = consume(top)
    assert [m["id"] for m in second] == [first[0]["id"]]
    assert admin("GET", "faults")["top.tmc_duplicate"]["calls"] == 0


def test_out_of_order_knob_shuffles_each_batch(top, admin):
    permit(top)
    admin("POST", "orders", json={"shop": "tm-flagship", "count": 10})
    admin("POST", "faults", json={"top.tmc_out_of_order": True})
    batch = consume(top)
    ids = [m["id"] for m in batch]
    assert len(ids) == 20 and len(set(ids)) == 20 and ids != sorted(ids)


def test_consume_quantity_is_10_to_200_and_confirm_takes_at_most_200_ids(top):
    assert top(CONSUME, shop=None, quantity=9)["error_response"]["code"] == 41
    assert top(CONSUME, shop=None, quantity=201)["error_response"]["code"] == 41
    assert top(CONFIRM, shop=None)["error_response"]["code"] == 40
    too_many = ",".join(str(n) for n in range(201))
    assert top(CONFIRM, shop=None, s_message_ids=too_many)["error_response"]["code"] == 41
    assert top("taobao.tmc.user.permit", topics="taobao_no_Such")["error_response"]["code"] == 41


def test_consume_respects_the_quantity_and_cancel_stops_new_messages(top, admin):
    permit(top)
    admin("POST", "orders", json={"shop": "tm-flagship", "count": 8})
    assert len(consume(top, quantity=10)) == 10
    assert len(consume(top, quantity=10)) == 6
    top("taobao.tmc.user.cancel", shop=None, nick="橙舍官方旗舰店")
    admin("POST", "orders", json={"shop": "tm-flagship", "count": 1})
    assert consume(top) == []
