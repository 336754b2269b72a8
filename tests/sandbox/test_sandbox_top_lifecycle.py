"""Trade lifecycle shapes of the simulated Tmall shop: presale (step), COD, PAID_FORBID_CONSIGN, closed, mixed."""

from __future__ import annotations

import requests

FIELDS = "tid,type,status,step_trade_status,step_paid_fee,payment,pay_time,end_time,modified,orders.status"


def fullinfo(top, tid: str) -> dict:
    return top("taobao.trade.fullinfo.get", tid=tid, fields=FIELDS)["trade_fullinfo_get_response"]["trade"]


def create(admin, kind: str, count: int = 1) -> list[str]:
    return admin("POST", "orders", json={"shop": "tm-flagship", "count": count, "kind": kind})["ids"]


def ship(top, tid: str) -> dict:
    return top("taobao.logistics.offline.send", tid=tid, out_sid="SF123", company_code="SF")


def test_a_presale_trade_waits_for_its_balance_then_becomes_shippable(top, admin, sbx):
    [tid] = create(admin, "presale")
    trade = fullinfo(top, tid)
    assert (trade["type"], trade["status"], trade["step_trade_status"]) == ("step", "WAIT_BUYER_PAY",
                                                                              "FRONT_PAID_FINAL_NOPAID")
    assert "pay_time" not in trade and float(trade["step_paid_fee"]) < float(trade["payment"])
    assert ship(top, tid)["error_response"]["sub_code"] == "isv.logistics-offline-service-error"

    paid = admin("POST", f"orders/tmall/{tid}/final_payment", json={})
    assert paid["step_trade_status"] == "FRONT_PAID_FINAL_PAID"
    trade = fullinfo(top, tid)
    assert trade["status"] == "WAIT_SELLER_SEND_GOODS" and trade["step_paid_fee"] == trade["payment"]
    assert "pay_time" in trade and {line["status"] for line in trade["orders"]["order"]} == {"WAIT_SELLER_SEND_GOODS"}
    assert "logistics_offline_send_response" in ship(top, tid)
    again = requests.post(f"{sbx.url}/_sandbox/orders/tmall/{tid}/final_payment", json={}, timeout=5)
    assert again.status_code == 400


def test_a_cod_trade_ships_unpaid_and_is_signed_for_on_delivery(top, admin):
    [tid] = create(admin, "cod")
    trade = fullinfo(top, tid)
    assert (trade["type"], trade["status"]) == ("cod", "WAIT_SELLER_SEND_GOODS") and "pay_time" not in trade
    ship(top, tid)
    admin("POST", f"orders/tmall/{tid}/modify", json={"status": "TRADE_BUYER_SIGNED"})
    assert fullinfo(top, tid)["status"] == "TRADE_BUYER_SIGNED"
    # the default type filter of the list methods includes cod
    listed = top("taobao.trades.sold.get", fields="tid", type="cod")["trades_sold_get_response"]
    assert listed["total_results"] == 1


def test_paid_forbid_consign_refuses_shipping_until_released(top, admin):
    [tid] = create(admin, "forbid_consign")
    assert fullinfo(top, tid)["status"] == "PAID_FORBID_CONSIGN"
    assert ship(top, tid)["error_response"]["code"] == 15
    admin("POST", f"orders/tmall/{tid}/modify", json={"status": "WAIT_SELLER_SEND_GOODS"})
    assert "logistics_offline_send_response" in ship(top, tid)


def test_a_closed_trade_was_never_paid_and_cannot_ship(top, admin):
    [tid] = create(admin, "closed")
    trade = fullinfo(top, tid)
    assert trade["status"] == "TRADE_CLOSED_BY_TAOBAO" and "end_time" in trade and "pay_time" not in trade
    assert ship(top, tid)["error_response"]["code"] == 15


def test_a_split_shipment_leaves_the_trade_consigned_in_part(top, admin):
    [tid] = admin("POST", "orders", json={"shop": "tm-flagship", "count": 1, "lines": [
        {"sku": "SKU-001-RED-M", "num": 1}, {"sku": "SKU-004-BLK-M", "num": 1}]})["ids"]
    oids = [line["oid"] for line in top("taobao.trade.fullinfo.get", tid=tid, fields="orders.oid")[
        "trade_fullinfo_get_response"]["trade"]["orders"]["order"]]
    top("taobao.logistics.offline.send", tid=tid, out_sid="SF1", company_code="SF", is_split=1, sub_tid=oids[0])
    assert fullinfo(top, tid)["status"] == "SELLER_CONSIGNED_PART"
    top("taobao.logistics.offline.send", tid=tid, out_sid="SF2", company_code="SF", is_split=1, sub_tid=oids[1])
    assert fullinfo(top, tid)["status"] == "WAIT_BUYER_CONFIRM_GOODS"


def test_mixed_orders_are_a_deterministic_mix_of_every_kind(sbx, top, admin):
    def mix() -> list[tuple[str, str]]:
        tids = create(admin, "mixed", 60)
        return [(fullinfo(top, tid)["type"], fullinfo(top, tid)["status"]) for tid in tids]

    first = mix()
    assert {status for _, status in first} >= {"WAIT_SELLER_SEND_GOODS", "WAIT_BUYER_PAY"}
    assert len({status for _, status in first}) >= 4 and {kind for kind, _ in first} >= {"fixed", "step"}
    admin("POST", "reset", json={})
    assert mix() == first
    assert requests.post(f"{sbx.url}/_sandbox/orders", json={"shop": "tm-flagship", "kind": "odd"},
                         timeout=5).status_code == 400
