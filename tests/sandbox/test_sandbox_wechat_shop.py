"""The simulated WeChat Channels shop (spec §3): tokens, order paging, delivery, stock, after-sales, signed pushes."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from sandbox import wechat_shop
from sandbox.server import SandboxHandle, running_sandbox
from sandbox.wechat_shop import decrypt_message, encrypt_message, signature

TIMEOUT_S = 5
SPEC_TOKEN, SPEC_AES_KEY, SPEC_APPID = "mytoken", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx1234567890abcdef"
SPEC_MSG = ('{"ToUserName":"gh_abc","FromUserName":"OPENID","CreateTime":1709265600,"MsgType":"event",'
            '"Event":"channels_ec_order_new","order_info":{"order_id":"3705115058471208928"}}')


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


class Wx:
    """A minimal WeChat Channels client against the sandbox (base = shared-port prefix or "" standalone)."""

    def __init__(self, sbx: SandboxHandle, base: str = "/wechat", shop: str = "wx-store") -> None:
        self.sbx, self.root = sbx, sbx.url + base
        creds = requests.get(f"{sbx.url}/_sandbox/credentials", timeout=TIMEOUT_S).json()["wechat_shop"]
        self.shop = next(s for s in creds["shops"] if s["shop"] == shop)
        self.token = self.fetch_token()["access_token"]

    def fetch_token(self, secret: str | None = None, appid: str | None = None) -> dict:
        params = {"grant_type": "client_credential", "appid": appid or self.shop["appid"],
                  "secret": secret or self.shop["secret"]}
        return requests.get(f"{self.root}/cgi-bin/token", params=params, timeout=TIMEOUT_S).json()

    def stable_token(self, force: bool = False) -> dict:
        body = {"grant_type": "client_credential", "appid": self.shop["appid"], "secret": self.shop["secret"],
                "force_refresh": force}
        return requests.post(f"{self.root}/cgi-bin/stable_token", json=body, timeout=TIMEOUT_S).json()

    def raw(self, path: str, body: object = None, token: str | None = None, timeout: float = TIMEOUT_S,
            method: str = "POST") -> requests.Response:
        params = {"access_token": self.token if token is None else token}
        return requests.request(method, f"{self.root}/channels/ec/{path}", params=params, json=body,
                                timeout=timeout)

    def __call__(self, path: str, body: object = None, token: str | None = None) -> dict:
        reply = self.raw(path, {} if body is None else body, token)
        assert reply.status_code == 200, reply.text
        return reply.json()


@pytest.fixture
def sbx() -> Iterator[SandboxHandle]:
    with running_sandbox(seed=1) as handle:
        yield handle


@pytest.fixture
def wx(sbx: SandboxHandle) -> Wx:
    return Wx(sbx)


def admin(sbx: SandboxHandle, verb: str, path: str, **kwargs: object) -> dict:
    reply = requests.request(verb, f"{sbx.url}/_sandbox/{path}", timeout=TIMEOUT_S, **kwargs)
    assert reply.status_code == 200, reply.text
    return reply.json()


def create(sbx: SandboxHandle, count: int = 1, **extra: object) -> list[str]:
    return admin(sbx, "POST", "orders", json={"channel": "wechat_shop", "shop": "wx-store", "count": count,
                                              **extra})["ids"]


def window(span: int = 3600) -> dict:
    now = int(time.time())
    return {"start_time": now - span, "end_time": now + 60}


def truth(sbx: SandboxHandle) -> dict:
    return admin(sbx, "GET", "truth")


# ----------------------------------------------------------------------------------------------- crypto (§3.6)


def test_signatures_and_ciphertext_match_the_spec_worked_example():
    assert signature(SPEC_TOKEN, "1709265600", "n0nce123") == "7e415d303d3bdc3ea11ae64891e4915985127758"
    encrypted = encrypt_message(SPEC_AES_KEY, SPEC_APPID, SPEC_MSG, b"0123456789abcdef")
    assert len(encrypted) == 300
    assert encrypted.startswith("Q3stYC6hdFzMh9T8HCvyDGp5KiSuOSU9Q16aQtCeF3otGi6d+GXYKFRl9jaR")
    assert signature(SPEC_TOKEN, "1709265600", "n0nce123", encrypted) == "f0b7830d7529b7d2e5a259d1fd6009c705ad5864"
    assert decrypt_message(SPEC_AES_KEY, encrypted) == (SPEC_MSG, SPEC_APPID)


def test_the_pure_python_aes_matches_the_fips_197_aes_256_vector():
    cipher = wechat_shop._Aes(bytes(range(32)))
    block = bytes.fromhex("00112233445566778899aabbccddeeff")
    assert cipher.encrypt_block(block).hex() == "8ea2b7ca516745bfeafc49904b496089"
    assert cipher.decrypt_block(cipher.encrypt_block(block)) == block


# ----------------------------------------------------------------------------------------------- tokens (§3.1)


def test_classic_token_is_issued_and_credential_errors_use_wechat_errcodes(wx):
    issued = wx.fetch_token()
    assert issued["expires_in"] == 7200 and "errcode" not in issued
    assert wx.fetch_token(secret="wrong")["errcode"] == 40001
    assert wx.fetch_token(appid="wx0000000000000000")["errcode"] == 40013
    bad_grant = requests.get(f"{wx.root}/cgi-bin/token", params={"grant_type": "x"}, timeout=TIMEOUT_S).json()
    assert bad_grant["errcode"] == 40002
    assert wx("order/list/get", {"update_time_range": window()}, token=issued["access_token"])["errcode"] == 0
    assert wx("order/list/get", {"update_time_range": window()}, token="")["errcode"] == 41001
    assert wx("order/list/get", {"update_time_range": window()}, token="not-a-token")["errcode"] == 40001


def test_a_new_classic_token_supersedes_the_old_one_after_the_grace_period(wx, monkeypatch):
    old = wx.fetch_token()["access_token"]
    new = wx.fetch_token()["access_token"]
    assert old != new
    # within the 5-minute grace both work
    assert wx("order/list/get", {"update_time_range": window()}, token=old)["errcode"] == 0
    monkeypatch.setattr(wechat_shop, "TOKEN_GRACE_S", 0)
    reply = wx("order/list/get", {"update_time_range": window()}, token=old)
    assert reply["errcode"] == 40001 and "not latest" in reply["errmsg"]
    assert wx("order/list/get", {"update_time_range": window()}, token=new)["errcode"] == 0


def test_token_expiry_answers_42001_and_a_fresh_token_works(sbx, wx):
    sbx.app.faults.merge({"wechat_shop.token_ttl_s": 0.3})
    short = wx.fetch_token()
    assert short["expires_in"] == 0
    time.sleep(0.4)
    assert wx("order/list/get", {"update_time_range": window()}, token=short["access_token"])["errcode"] == 42001
    sbx.app.faults.merge({"wechat_shop.token_ttl_s": 7200})
    assert wx("order/list/get", {"update_time_range": window()}, token=wx.fetch_token()["access_token"])[
        "errcode"] == 0


def test_expire_tokens_knob_expires_every_token_or_only_the_listed_shops(sbx, wx):
    outlet = Wx(sbx, shop="wx-outlet")
    body = {"update_time_range": window()}
    sbx.app.faults.merge({"wechat_shop.expire_tokens": True})
    assert wx("order/list/get", body)["errcode"] == 42001
    assert outlet("order/list/get", body)["errcode"] == 42001
    sbx.app.faults.merge({"wechat_shop.expire_tokens": ["wx-outlet"]})
    assert wx("order/list/get", body)["errcode"] == 0
    assert outlet("order/list/get", body)["errcode"] == 42001


def test_stable_token_is_reused_until_force_refresh_rotates_it(wx):
    first = wx.stable_token()["access_token"]
    assert wx.stable_token()["access_token"] == first
    rotated = wx.stable_token(force=True)["access_token"]
    assert rotated != first
    assert wx("order/list/get", {"update_time_range": window()}, token=rotated)["errcode"] == 0


def test_http_method_and_body_errors(wx):
    assert wx.raw("basics/info/get", {}).json()["errcode"] == 43001  # must be GET
    assert wx.raw("basics/info/get", method="GET").json()["errcode"] == 0
    assert wx.raw("order/list/get", method="GET").json()["errcode"] == 43002
    bad = requests.post(f"{wx.root}/channels/ec/order/get", params={"access_token": wx.token}, data=b"{not json",
                        timeout=TIMEOUT_S)
    assert bad.json()["errcode"] == 47001


# ----------------------------------------------------------------------------------------------- orders (§3.2)


def test_order_list_pages_by_next_key_newest_first_without_gaps_or_duplicates(sbx, wx):
    ids = create(sbx, 5)
    body = {"create_time_range": window(), "page_size": 2}
    first = wx("order/list/get", body)
    assert first["order_id_list"] == ids[::-1][:2] and first["has_more"] is True
    create(sbx, 2)  # new orders between pages must not shift the cursor
    second = wx("order/list/get", {**body, "next_key": first["next_key"]})
    third = wx("order/list/get", {**body, "next_key": second["next_key"]})
    assert second["has_more"] is True and third["has_more"] is False
    assert first["order_id_list"] + second["order_id_list"] + third["order_id_list"] == ids[::-1]
    assert all(isinstance(order_id, str) for order_id in ids) and int(ids[0]) > 2**53
    assert "total_num" not in first  # no total count on order lists


def test_order_list_rejects_changed_filters_bad_cursors_and_bad_windows(sbx, wx):
    create(sbx, 3)
    page = wx("order/list/get", {"create_time_range": window(), "page_size": 1})
    assert wx("order/list/get", {"create_time_range": window(7200), "page_size": 1,
                                 "next_key": page["next_key"]})["errcode"] == 606006
    assert wx("order/list/get", {"create_time_range": window(), "next_key": "garbage"})["errcode"] == 40097
    now = int(time.time())
    too_wide = {"start_time": now - 8 * 86400, "end_time": now}
    assert wx("order/list/get", {"update_time_range": too_wide})["errcode"] == 40097
    assert wx("order/list/get", {"page_size": 10})["errcode"] == 40097  # no range at all
    assert wx("order/list/get", {"update_time_range": window(), "page_size": 101})["errcode"] == 40097


def test_order_get_serves_fen_amounts_unix_times_and_masked_address(sbx, wx):
    order_id = create(sbx, 1, lines=[{"sku": "SKU-001-RED-M", "num": 2}, {"sku": "SKU-004-BLK-M", "num": 1}])[0]
    order = wx("order/get", {"order_id": order_id})["order"]
    assert order["order_id"] == order_id and order["status"] == 20
    detail = order["order_detail"]
    lines, price = detail["product_infos"], detail["price_info"]
    assert [(ln["out_sku_id"], ln["sku_cnt"], ln["sale_price"]) for ln in lines] == [
        ("SKU-001-RED-M", 2, 7900), ("SKU-004-BLK-M", 1, 39900)]
    assert price["product_price"] == 2 * 7900 + 39900
    assert price["order_price"] == (price["product_price"] - price["discounted_price"]
                                    - price["finder_discounted_price"] + price["freight"])
    assert sum(ln["real_price"] for ln in lines) == price["order_price"] - price["freight"]
    assert all(isinstance(v, int) for v in (order["create_time"], order["update_time"], detail["pay_info"]["pay_time"]))
    address = detail["delivery_info"]["address_info"]
    assert address["user_name"].endswith("**") and "****" in address["tel_number"] and address["hash_code"]
    assert wx("order/get", {"order_id": "1"})["errcode"] == 100002
    assert wx("order/get", {"order_id": int(order_id)})["errcode"] == 40097  # ids travel as strings
    other = Wx(sbx, shop="wx-outlet")
    assert other("order/get", {"order_id": order_id})["errcode"] == 100002


def test_malformed_kinds_are_served_broken_and_marked_in_truth(sbx, wx):
    unknown = create(sbx, malformed="unknown_status")[0]
    bad = create(sbx, malformed="bad_amount")[0]
    missing = create(sbx, malformed="missing_order_id")[0]
    assert wx("order/get", {"order_id": unknown})["order"]["status"] == 999
    assert wx("order/get", {"order_id": bad})["order"]["order_detail"]["price_info"]["order_price"] == "12.3.4"
    assert "order_id" not in wx("order/get", {"order_id": missing})["order"]
    orders = truth(sbx)["channels"]["wechat_shop"]["wx-store"]["orders"]
    assert orders[missing]["malformed"] is True and orders[missing]["malformed_kind"] == "missing_order_id"
    reply = requests.post(f"{sbx.url}/_sandbox/orders", json={"channel": "wechat_shop", "malformed": "nope"},
                          timeout=TIMEOUT_S)
    assert reply.status_code == 400


def test_late_index_hides_new_orders_from_the_list_but_not_from_order_get(sbx, wx):
    sbx.app.faults.merge({"wechat_shop.late_index_s": 0.5})
    order_id = create(sbx)[0]
    assert wx("order/list/get", {"create_time_range": window()})["order_id_list"] == []
    assert wx("order/get", {"order_id": order_id})["errcode"] == 0
    time.sleep(0.6)
    assert wx("order/list/get", {"create_time_range": window()})["order_id_list"] == [order_id]


# ----------------------------------------------------------------------------------------------- delivery (§3.3)


def test_delivery_send_ships_once_and_a_second_send_is_rejected_and_counted(sbx, wx):
    order_id = create(sbx)[0]
    parcel = {"delivery_id": "SF", "waybill_id": "SF1234567890123", "deliver_type": 1}
    assert wx("order/delivery/send", {"order_id": order_id, "delivery_list": [parcel]})["errcode"] == 0
    order = wx("order/get", {"order_id": order_id})["order"]
    assert order["status"] == 30
    shipped = order["order_detail"]["delivery_info"]
    assert shipped["delivery_product_info"][0]["waybill_id"] == "SF1234567890123" and shipped["ship_done_time"]
    again = wx("order/delivery/send", {"order_id": order_id, "delivery_list": [parcel]})
    assert again["errcode"] == 100003
    writeback = truth(sbx)["writebacks"]["wechat_shop"][order_id]
    assert (writeback["accepted"], writeback["rejected"], writeback["waybill_id"]) == (1, 1, "SF1234567890123")
    assert truth(sbx)["channels"]["wechat_shop"]["wx-store"]["orders"][order_id]["status"] == 30


def test_partial_delivery_moves_to_21_and_status_filter_20_still_lists_it(sbx, wx):
    order_id = create(sbx, lines=[{"sku": "SKU-001-RED-M", "num": 2}, {"sku": "SKU-002-BLU-30", "num": 1}])[0]
    line = wx("order/get", {"order_id": order_id})["order"]["order_detail"]["product_infos"][0]
    part = {"delivery_id": "YTO", "waybill_id": "YT1", "deliver_type": 1,
            "product_infos": [{"product_id": line["product_id"], "sku_id": line["sku_id"], "product_cnt": 2}]}
    assert wx("order/delivery/send", {"order_id": order_id, "delivery_list": [part]})["errcode"] == 0
    assert wx("order/get", {"order_id": order_id})["order"]["status"] == 21
    assert wx("order/list/get", {"update_time_range": window(), "status": 20})["order_id_list"] == [order_id]
    assert wx("order/delivery/send", {"order_id": order_id, "delivery_list": [part]})["errcode"] == 100003
    rest = {"delivery_id": "YTO", "waybill_id": "YT2", "deliver_type": 1}
    assert wx("order/delivery/send", {"order_id": order_id, "delivery_list": [rest]})["errcode"] == 0
    assert wx("order/get", {"order_id": order_id})["order"]["status"] == 30
    bad = wx("order/delivery/send", {"order_id": create(sbx)[0], "delivery_list": [{**rest, "delivery_id": "XX"}]})
    assert bad["errcode"] == 40097
    assert [c["delivery_id"] for c in wx("order/deliverycompanylist/get")["company_list"]][:2] == ["SF", "YTO"]


def test_timeout_after_success_applies_the_delivery_and_loses_the_reply(sbx, wx):
    order_id = create(sbx)[0]
    sbx.app.faults.merge({"wechat_shop.timeout_after_success": {"calls": 1, "methods": ["order/delivery/send"],
                                                                "sleep_s": 2.0}})
    parcel = {"order_id": order_id, "delivery_list": [{"delivery_id": "SF", "waybill_id": "SF9", "deliver_type": 1}]}
    with pytest.raises(requests.Timeout):
        wx.raw("order/delivery/send", parcel, timeout=0.3)
    assert wx("order/get", {"order_id": order_id})["order"]["status"] == 30  # it took effect
    assert wx("order/delivery/send", parcel)["errcode"] == 100003  # the blind retry is refused
    assert truth(sbx)["writebacks"]["wechat_shop"][order_id]["accepted"] == 1


# ----------------------------------------------------------------------------------------------- faults


def test_http_500_latency_and_throttle_knobs(sbx, wx):
    body = {"update_time_range": window()}
    sbx.app.faults.merge({"wechat_shop.http_500": {"calls": 1}})
    broken = wx.raw("order/list/get", body)
    assert broken.status_code == 500 and "text/html" in broken.headers["Content-Type"]
    assert wx("order/list/get", body)["errcode"] == 0
    sbx.app.faults.merge({"wechat_shop.throttle": {"calls": 1}})
    assert wx("order/list/get", body)["errcode"] == 45011
    assert wx("order/list/get", body)["errcode"] == 0
    sbx.app.faults.merge({"wechat_shop.latency_ms": 300})
    started = time.monotonic()
    assert wx("order/list/get", body)["errcode"] == 0
    assert time.monotonic() - started >= 0.3
    reply = requests.post(f"{sbx.url}/_sandbox/faults", json={"wechat_shop.throttle": {"errcode": 1}},
                          timeout=TIMEOUT_S)
    assert reply.status_code == 400


# ----------------------------------------------------------------------------------------------- stock (§3.4)


def test_stock_update_set_increase_decrease_and_truth_records_what_was_told(sbx, wx):
    line = wx("order/get", {"order_id": create(sbx, lines=[{"sku": "SKU-003-GRY-M", "num": 1}])[0]})[
        "order"]["order_detail"]["product_infos"][0]
    ids = {"product_id": line["product_id"], "sku_id": line["sku_id"]}
    assert wx("product/stock/update", {**ids, "diff_type": 3, "num": 25})["errcode"] == 0
    assert wx("product/stock/update", {**ids, "diff_type": 1, "num": 5})["errcode"] == 0
    assert wx("product/stock/update", {**ids, "diff_type": 2, "num": 10})["errcode"] == 0
    assert wx("product/stock/update", {**ids, "diff_type": 2, "num": 100})["errcode"] == 40097
    assert wx("product/stock/update", {**ids, "diff_type": 4, "num": 1})["errcode"] == 40097
    assert wx("product/stock/get", ids)["data"]["normal_stock_num"] == 20
    told = truth(sbx)["stock_told"]["wechat_shop"]["wx-store"]["SKU-003-GRY-M"]
    assert [(t["qty"], t["mode"], t["result"]) for t in told] == [
        (25, "full", 25), (5, "delta", 30), (-10, "delta", 20)]
    assert truth(sbx)["channels"]["wechat_shop"]["wx-store"]["stock"]["SKU-003-GRY-M"] == 20
    product = wx("product/get", {"product_id": line["product_id"]})["product"]
    assert product["out_product_id"] == "SPU-003" and {s["sku_id"] for s in product["skus"]} >= {line["sku_id"]}


def test_an_order_takes_stock_down(sbx, wx):
    before = truth(sbx)["channels"]["wechat_shop"]["wx-store"]["stock"]["SKU-001-RED-M"]
    create(sbx, lines=[{"sku": "SKU-001-RED-M", "num": 3}])
    assert truth(sbx)["channels"]["wechat_shop"]["wx-store"]["stock"]["SKU-001-RED-M"] == before - 3


# ----------------------------------------------------------------------------------------------- after-sales (§3.5)


def test_after_sales_are_listed_read_accepted_and_a_full_refund_cancels_the_order(sbx, wx):
    order_id = create(sbx, lines=[{"sku": "SKU-001-RED-M", "num": 1}])[0]
    made = admin(sbx, "POST", f"orders/wechat_shop/{order_id}/modify",
                 json={"aftersale": {"type": "REFUND", "count": 1}})
    after_sale_id = made["after_sale_order_id"]
    now = int(time.time())
    listed = wx("aftersale/getaftersalelist", {"begin_update_time": now - 600, "end_update_time": now + 60})
    assert listed["after_sale_order_id_list"] == [after_sale_id] and listed["has_more"] is False
    record = wx("aftersale/getaftersaleorder", {"after_sale_order_id": after_sale_id})["after_sale_order"]
    assert (record["status"], record["type"], record["order_id"]) == ("MERCHANT_PROCESSING", "REFUND", order_id)
    assert record["refund_info"]["amount"] > 0 and record["product_info"]["count"] == 1
    order = wx("order/get", {"order_id": order_id})["order"]
    assert order["aftersale_detail"]["on_aftersale_order_cnt"] == 1
    assert wx("aftersale/acceptapply", {"after_sale_order_id": after_sale_id})["errcode"] == 0
    assert wx("aftersale/getaftersaleorder", {"after_sale_order_id": after_sale_id})["after_sale_order"][
        "status"] == "MERCHANT_REFUND_SUCCESS"
    order = wx("order/get", {"order_id": order_id})["order"]
    assert order["status"] == 200 and order["order_detail"]["product_infos"][0]["finish_aftersale_sku_cnt"] == 1
    shop = truth(sbx)["channels"]["wechat_shop"]["wx-store"]
    assert shop["aftersales"][after_sale_id]["status"] == "MERCHANT_REFUND_SUCCESS"
    assert shop["orders"][order_id]["status"] == 200
    too_wide = {"begin_create_time": now - 2 * 86400, "end_create_time": now}
    assert wx("aftersale/getaftersalelist", too_wide)["errcode"] == 40097


def test_a_return_goes_through_wait_return_and_receipt(sbx, wx):
    order_id = create(sbx, lines=[{"sku": "SKU-002-BLU-30", "num": 2}])[0]
    after_sale_id = admin(sbx, "POST", f"orders/wechat_shop/{order_id}/modify",
                          json={"aftersale": {"type": "RETURN", "count": 1}})["after_sale_order_id"]
    assert wx("aftersale/acceptapply", {"after_sale_order_id": after_sale_id})["errcode"] == 0
    get = {"after_sale_order_id": after_sale_id}
    assert wx("aftersale/getaftersaleorder", get)["after_sale_order"]["status"] == "USER_WAIT_RETURN"
    admin(sbx, "POST", f"wechat_shop/aftersales/{after_sale_id}",
          json={"status": "MERCHANT_WAIT_RECEIPT", "waybill_id": "SF777", "delivery_id": "SF"})
    assert wx("aftersale/getaftersaleorder", get)["after_sale_order"]["return_info"]["waybill_id"] == "SF777"
    assert wx("aftersale/acceptapply", get)["errcode"] == 0
    assert wx("aftersale/getaftersaleorder", get)["after_sale_order"]["status"] == "MERCHANT_RETURN_SUCCESS"
    assert wx("order/get", {"order_id": order_id})["order"]["status"] == 20  # one of two units: order stays
    assert wx("aftersale/rejectapply", get)["errcode"] == 100003


# ----------------------------------------------------------------------------------------------- pushes (§3.6)


class Receiver:
    """A shop backend endpoint: records every push; answers ``fail`` to the first ``failures`` of them."""

    def __init__(self) -> None:
        self.failures = 0
        self.echo = True
        self.received: list[tuple[dict, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        args = {k: request.args[k] for k in request.args}
        if request.method == "GET":  # URL verification
            body = args.get("echostr", "") if self.echo else "nope"
            return Response(body)(environ, start_response)
        with self.lock:
            self.received.append((args, request.get_data()))
            answer = "fail" if len(self.received) <= self.failures else "success"
        return Response(answer)(environ, start_response)

    def events(self, shop: dict) -> list[dict]:
        with self.lock:
            received = list(self.received)
        return [decode(shop, args, body) for args, body in received]


def decode(shop: dict, args: dict, body: bytes) -> dict:
    """Verify and decrypt a push exactly as §3.6 says a receiver must."""
    assert args["signature"] == signature(shop["callback_token"], args["timestamp"], args["nonce"])
    if args.get("encrypt_type") != "aes":
        return json.loads(body)
    envelope = json.loads(body)
    assert envelope["ToUserName"] == shop["username"]
    expected = hashlib.sha1("".join(sorted([shop["callback_token"], args["timestamp"], args["nonce"],
                                            envelope["Encrypt"]])).encode()).hexdigest()
    assert args["msg_signature"] == expected
    # Independent decryption path: the layout of the spec, with the sandbox's AES only for the block cipher.
    key = base64.b64decode(shop["encoding_aes_key"] + "=")
    plain = wechat_shop._Aes(key).cbc_decrypt(base64.b64decode(envelope["Encrypt"]), key[:16])
    assert 1 <= plain[-1] <= 32 and len(plain) % 32 == 0
    plain = plain[: -plain[-1]]
    (length,) = struct.unpack(">I", plain[16:20])
    assert plain[20 + length:].decode() == shop["appid"]
    return json.loads(plain[20: 20 + length])


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    app = Receiver()
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.port}/wechat/callback"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def test_order_events_are_pushed_encrypted_and_signed_with_the_spec_algorithm(sbx, wx, receiver):
    app, url = receiver
    status = admin(sbx, "POST", "wechat_shop/callback", json={"url": url, "verify": True})
    assert status["targets"]["wx-store"]["url"] == url
    order_id = create(sbx)[0]
    wait_for(lambda: len(app.received) == 2)
    events = app.events(wx.shop)
    assert [e["Event"] for e in events] == ["channels_ec_order_new", "channels_ec_order_pay"]
    assert events[0]["order_info"]["order_id"] == int(order_id)  # a JSON number above 2**53, parsed exactly
    assert events[1]["order_info"]["pay_time"] > 0 and events[0]["ToUserName"] == wx.shop["username"]
    wx("order/delivery/send", {"order_id": order_id,
                               "delivery_list": [{"delivery_id": "SF", "waybill_id": "SF1", "deliver_type": 1}]})
    wait_for(lambda: len(app.received) == 3)
    deliver = app.events(wx.shop)[2]
    assert deliver["Event"] == "channels_ec_order_deliver" and deliver["order_info"]["finish_delivery"] == 1
    after_sale_id = admin(sbx, "POST", f"orders/wechat_shop/{order_id}/modify",
                          json={"aftersale": {"type": "REFUND", "count": 1}})["after_sale_order_id"]
    wait_for(lambda: len(app.received) == 4)
    update = app.events(wx.shop)[3]["finder_shop_aftersale_status_update"]
    assert update == {"after_sale_order_id": after_sale_id, "status": "MERCHANT_PROCESSING", "order_id": order_id}


def test_pushes_are_redelivered_until_the_receiver_answers_success(sbx, wx, receiver):
    app, url = receiver
    app.failures = 2
    admin(sbx, "POST", "wechat_shop/callback", json={"url": url})
    order_id = create(sbx)[0]
    wait_for(lambda: admin(sbx, "GET", "wechat_shop/callback")["delivered"] == 2)
    assert len(app.received) == 4  # two refusals of the first event, then both events accepted
    assert app.received[0] == app.received[1] == app.received[2]  # a retry resends the same request
    pushes = truth(sbx)["pushes"]["wechat_shop"]
    assert (pushes["1"]["attempts"], pushes["1"]["delivered"], pushes["1"]["order_id"]) == (3, 1, order_id)
    status = admin(sbx, "GET", "wechat_shop/callback")
    assert status["failures"] == 2 and "fail" in status["last_error"]


def test_duplicate_push_delivers_an_acknowledged_event_twice(sbx, wx, receiver):
    app, url = receiver
    sbx.app.faults.merge({"wechat_shop.duplicate_push": {"calls": 1}})
    admin(sbx, "POST", "wechat_shop/callback", json={"url": url})
    create(sbx)
    wait_for(lambda: len(app.received) == 3)
    time.sleep(0.1)
    events = [e["Event"] for e in app.events(wx.shop)]
    assert events == ["channels_ec_order_new", "channels_ec_order_new", "channels_ec_order_pay"]
    assert truth(sbx)["pushes"]["wechat_shop"]["1"]["delivered"] == 2
    assert sbx.app.faults.get("wechat_shop.duplicate_push")["calls"] == 0


def test_out_of_order_push_delivers_pending_events_newest_first(sbx, wx, receiver):
    app, url = receiver
    ids = create(sbx, 2)  # four events queued before the URL is set
    sbx.app.faults.merge({"wechat_shop.out_of_order_push": True})
    admin(sbx, "POST", "wechat_shop/callback", json={"url": url, "after": 0})
    wait_for(lambda: len(app.received) == 4)
    seen = [(e["Event"].rsplit("_", 1)[1], str(e["order_info"]["order_id"])) for e in app.events(wx.shop)]
    assert seen == [("pay", ids[1]), ("new", ids[1]), ("pay", ids[0]), ("new", ids[0])]


def test_wechatpy_decrypts_a_real_push(sbx, wx, receiver):
    """The reference implementation (wechatpy's WeChatCrypto, optional) accepts what the sandbox pushes."""
    crypto_module = pytest.importorskip("wechatpy.crypto")
    app, url = receiver
    admin(sbx, "POST", "wechat_shop/callback", json={"url": url})
    order_id = create(sbx)[0]
    wait_for(lambda: len(app.received) == 2)
    args, body = app.received[0]
    crypto = crypto_module.WeChatCrypto(wx.shop["callback_token"], wx.shop["encoding_aes_key"], wx.shop["appid"])
    plain = crypto.decrypt_message(json.loads(body), args["msg_signature"], args["timestamp"], args["nonce"])
    assert json.loads(plain)["order_info"]["order_id"] == int(order_id)


def test_plain_mode_pushes_signed_plaintext_and_url_verification_must_echo(sbx, wx, receiver):
    app, url = receiver
    admin(sbx, "POST", "wechat_shop/callback", json={"url": url, "encrypt": False, "shop": "wx-store"})
    create(sbx)
    wait_for(lambda: len(app.received) == 2)
    args, body = app.received[0]
    assert "encrypt_type" not in args and json.loads(body)["Event"] == "channels_ec_order_new"
    assert app.events(wx.shop)[0]["MsgType"] == "event"
    app.echo = False
    reply = requests.post(f"{sbx.url}/_sandbox/wechat_shop/callback", json={"url": url, "verify": True},
                          timeout=TIMEOUT_S)
    assert reply.status_code == 400 and "verification" in reply.json()["error"]
    stopped = admin(sbx, "POST", "wechat_shop/callback", json={"url": None})
    assert stopped["targets"] == {}


# ----------------------------------------------------------------------------------------------- serving


def test_standalone_serves_the_real_paths():
    with running_sandbox(seed=1, system="wechat_shop") as sbx:
        wx = Wx(sbx, base="")
        order_id = create(sbx)[0]
        assert wx("order/list/get", {"create_time_range": window()})["order_id_list"] == [order_id]
        assert requests.post(f"{sbx.url}/wechat/channels/ec/order/get", timeout=TIMEOUT_S).status_code == 404
        assert admin(sbx, "GET", "wechat_shop/callback")["targets"] == {}


def test_same_seed_same_credentials_and_orders_and_reset_empties_the_shop(sbx, wx):
    ids = create(sbx, 2, at="2026-03-01 10:00:00")
    first = [wx("order/get", {"order_id": i})["order"] for i in ids]
    with running_sandbox(seed=1) as other:
        again = Wx(other)
        assert again.shop == wx.shop
        other_ids = create(other, 2, at="2026-03-01 10:00:00")
        assert [again("order/get", {"order_id": i})["order"] for i in other_ids] == first
    admin(sbx, "POST", "reset")
    assert truth(sbx)["channels"]["wechat_shop"]["wx-store"]["orders"] == {}
    assert create(sbx)[0] == ids[0]
