"""The simulated store POS middleware: API-key auth, receipt feed with cursor, returns, store stock, faults."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import requests

from sandbox.server import SandboxHandle, running_sandbox

TIMEOUT_S = 5


class Pos:
    def __init__(self, sbx: SandboxHandle, base: str = "/pos/api") -> None:
        self.sbx, self.root = sbx, sbx.url + base
        self.creds = requests.get(f"{sbx.url}/_sandbox/credentials", timeout=TIMEOUT_S).json()["pos"]

    def raw(self, path: str, key: str | None = None, timeout: float = TIMEOUT_S, **params: object
            ) -> requests.Response:
        headers = {"X-Api-Key": self.creds["api_key"] if key is None else key}
        return requests.get(f"{self.root}/{path}", params=params, headers=headers, timeout=timeout)

    def __call__(self, path: str, **params: object) -> dict:
        reply = self.raw(path, **params)
        assert reply.status_code == 200, reply.text
        return reply.json()


@pytest.fixture
def sbx() -> Iterator[SandboxHandle]:
    with running_sandbox(seed=1) as handle:
        yield handle


@pytest.fixture
def pos(sbx: SandboxHandle) -> Pos:
    return Pos(sbx)


def admin(sbx: SandboxHandle, verb: str, path: str, **kwargs: object) -> dict:
    reply = requests.request(verb, f"{sbx.url}/_sandbox/{path}", timeout=TIMEOUT_S, **kwargs)
    assert reply.status_code == 200, reply.text
    return reply.json()


def sell(sbx: SandboxHandle, count: int = 1, store: str = "store-sh-001", **extra: object) -> list[str]:
    return admin(sbx, "POST", "orders", json={"channel": "pos", "shop": store, "count": count, **extra})["ids"]


def stock_of(pos: Pos, store: str, sku: str) -> int:
    return next(item["qty"] for item in pos("stock", store=store)["items"] if item["sku"] == sku)


def test_the_api_key_header_is_required(pos):
    assert pos.raw("receipts", key="", store="store-sh-001").status_code == 401
    wrong = pos.raw("receipts", key="pk_wrong", store="store-sh-001")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "UNAUTHORIZED"
    assert pos.raw("receipts").status_code == 400  # store missing
    assert pos.raw("receipts", store="store-xx-999").status_code == 404
    assert [s["store"] for s in pos.creds["stores"]] == ["store-sh-001", "store-hz-002"]


def test_receipts_carry_lines_payments_and_a_masked_member(sbx, pos):
    receipt_no = sell(sbx, lines=[{"sku": "SKU-001-RED-M", "num": 2}, {"sku": "SKU-005-WHT-F", "num": 1}])[0]
    (receipt,) = pos("receipts", store="store-sh-001")["receipts"]
    assert receipt["receipt_no"] == receipt_no and receipt["type"] == "SALE" and receipt["currency"] == "CNY"
    assert [(ln["sku"], ln["qty"], ln["unit_price"], ln["line_total"]) for ln in receipt["lines"]] == [
        ("SKU-001-RED-M", 2, "79.00", "158.00"), ("SKU-005-WHT-F", 1, "29.90", "29.90")]
    assert all(len(ln["barcode"]) == 13 and ln["barcode"].isdigit() for ln in receipt["lines"])
    total = sum(Decimal(ln["line_total"]) for ln in receipt["lines"])
    discount = sum(Decimal(ln["line_discount"]) for ln in receipt["lines"])
    assert Decimal(receipt["paid_amount"]) == total - discount == sum(Decimal(p["amount"]) for p in receipt["payments"])
    assert {p["method"] for p in receipt["payments"]} <= {"CASH", "CARD", "ALIPAY", "WECHAT_PAY"}
    assert receipt["member_id"] is None or receipt["member_id"].startswith("VIP****")
    assert receipt["sale_time"].endswith("+08:00")


def test_payment_methods_cover_cash_card_alipay_and_wechat_pay(sbx, pos):
    sell(sbx, 60)
    methods = {p["method"] for r in pos("receipts", store="store-sh-001")["receipts"] for p in r["payments"]}
    assert methods == {"CASH", "CARD", "ALIPAY", "WECHAT_PAY"}


def test_cursor_paging_follows_the_upload_order_and_resumes_later(sbx, pos):
    ids = sell(sbx, 5)
    first = pos("receipts", store="store-sh-001", limit=2)
    second = pos("receipts", store="store-sh-001", limit=2, cursor=first["next_cursor"])
    third = pos("receipts", store="store-sh-001", limit=2, cursor=second["next_cursor"])
    assert [r["receipt_no"] for page in (first, second, third) for r in page["receipts"]] == ids
    assert (first["has_more"], second["has_more"], third["has_more"]) == (True, True, False)
    # The last cursor is a checkpoint: nothing now, the next upload later.
    assert pos("receipts", store="store-sh-001", cursor=third["next_cursor"])["receipts"] == []
    late = sell(sbx)
    assert [r["receipt_no"] for r in pos("receipts", store="store-sh-001", cursor=third["next_cursor"])[
        "receipts"]] == late
    assert pos.raw("receipts", store="store-sh-001", cursor="garbage").status_code == 400
    assert pos.raw("receipts", store="store-hz-002", cursor=third["next_cursor"]).status_code == 400
    assert pos.raw("receipts", store="store-sh-001", limit=501).status_code == 400


def test_since_filters_on_upload_time_so_an_offline_tills_old_sale_still_arrives(sbx, pos):
    sell(sbx)
    time.sleep(1.1)
    checkpoint = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    offline = sell(sbx, at="2026-01-02 09:00:00")  # rung up weeks ago, uploaded now
    page = pos("receipts", store="store-sh-001", since=checkpoint)
    assert [r["receipt_no"] for r in page["receipts"]] == offline
    assert page["receipts"][0]["sale_time"] == "2026-01-02T09:00:00+08:00"
    assert offline[0].startswith("SH001-20260102-")
    assert pos.raw("receipts", store="store-sh-001", since="yesterday").status_code == 400


def test_a_return_is_a_negative_receipt_referencing_the_original_and_restocks(sbx, pos):
    sale = sell(sbx, lines=[{"sku": "SKU-002-BLU-30", "num": 2}])[0]
    before = stock_of(pos, "store-sh-001", "SKU-002-BLU-30")
    made = admin(sbx, "POST", f"orders/pos/{sale}/modify", json={"return": [{"sku": "SKU-002-BLU-30", "qty": 1}]})
    receipts = {r["receipt_no"]: r for r in pos("receipts", store="store-sh-001")["receipts"]}
    back = receipts[made["return_receipt_no"]]
    assert back["type"] == "RETURN" and back["original_receipt_no"] == sale
    assert back["lines"][0]["qty"] == -1 and back["lines"][0]["line_total"] == "-199.00"
    assert Decimal(back["paid_amount"]) < 0 and back["payments"][0]["method"] == receipts[sale]["payments"][0]["method"]
    assert stock_of(pos, "store-sh-001", "SKU-002-BLU-30") == before + 1
    orders = admin(sbx, "GET", "truth")["channels"]["pos"]["store-sh-001"]["orders"]
    assert orders[sale]["status"] == "PARTIALLY_RETURNED"
    assert orders[made["return_receipt_no"]]["original_receipt_no"] == sale
    admin(sbx, "POST", f"orders/pos/{sale}/modify", json={})  # the rest
    assert admin(sbx, "GET", "truth")["channels"]["pos"]["store-sh-001"]["orders"][sale]["status"] == "RETURNED"
    refused = requests.post(f"{sbx.url}/_sandbox/orders/pos/{sale}/modify", json={}, timeout=TIMEOUT_S)
    assert refused.status_code == 400  # nothing left to return


def test_store_stock_moves_with_sales_and_is_per_store(sbx, pos):
    sh = stock_of(pos, "store-sh-001", "SKU-001-RED-M")
    hz = stock_of(pos, "store-hz-002", "SKU-001-RED-M")
    sell(sbx, lines=[{"sku": "SKU-001-RED-M", "num": 3}])
    assert stock_of(pos, "store-sh-001", "SKU-001-RED-M") == sh - 3
    assert stock_of(pos, "store-hz-002", "SKU-001-RED-M") == hz
    truth = admin(sbx, "GET", "truth")["channels"]["pos"]
    assert truth["store-sh-001"]["stock"]["SKU-001-RED-M"] == sh - 3
    sell(sbx, lines=[{"sku": "SKU-NEW-001", "num": 1}])  # an unknown code: stock goes negative, as tills allow
    assert stock_of(pos, "store-sh-001", "SKU-NEW-001") == -1


def test_truth_lists_every_receipt_per_store(sbx, pos):
    sh = sell(sbx, 2)
    hz = sell(sbx, 1, store="store-hz-002")
    truth = admin(sbx, "GET", "truth")["channels"]["pos"]
    assert sorted(truth["store-sh-001"]["orders"]) == sorted(sh) and list(truth["store-hz-002"]["orders"]) == hz
    assert hz[0].startswith("HZ002-")
    assert truth["store-sh-001"]["orders"][sh[0]]["status"] == "COMPLETED"


def test_malformed_kinds(sbx, pos):
    bad = sell(sbx, malformed="bad_amount")[0]
    missing = sell(sbx, malformed="missing_receipt_no")[0]
    odd = sell(sbx, malformed="unknown_payment")[0]
    receipts = pos("receipts", store="store-sh-001")["receipts"]
    assert receipts[0]["paid_amount"] == "12.3.4" and "receipt_no" not in receipts[1]
    assert receipts[2]["payments"][0]["method"] == "E_CNY"
    orders = admin(sbx, "GET", "truth")["channels"]["pos"]["store-sh-001"]["orders"]
    assert [orders[n]["malformed_kind"] for n in (bad, missing, odd)] == ["bad_amount", "missing_receipt_no",
                                                                         "unknown_payment"]
    assert requests.post(f"{sbx.url}/_sandbox/orders", json={"channel": "pos", "malformed": "x"},
                         timeout=TIMEOUT_S).status_code == 400


def test_http_500_and_latency_knobs(sbx, pos):
    sbx.app.faults.merge({"pos.http_500": {"calls": 1}})
    broken = pos.raw("receipts", store="store-sh-001")
    assert broken.status_code == 500 and broken.json()["error"]["code"] == "INTERNAL_ERROR"
    assert pos.raw("receipts", store="store-sh-001").status_code == 200
    sbx.app.faults.merge({"pos.latency_ms": 300})
    started = time.monotonic()
    pos("stock", store="store-sh-001")
    assert time.monotonic() - started >= 0.3


def test_timeout_after_success_withholds_the_reply(sbx, pos):
    sbx.app.faults.merge({"pos.timeout_after_success": {"calls": 1, "methods": ["receipts"], "sleep_s": 2.0}})
    pos("stock", store="store-sh-001")  # another method: not affected
    with pytest.raises(requests.Timeout):
        pos.raw("receipts", store="store-sh-001", timeout=0.3)
    assert pos.raw("receipts", store="store-sh-001").status_code == 200
    assert sbx.app.faults.get("pos.timeout_after_success")["calls"] == 0


def test_standalone_serves_the_api_at_its_real_paths():
    with running_sandbox(seed=1, system="pos") as sbx:
        pos = Pos(sbx, base="/api")
        receipt_no = sell(sbx)[0]
        assert [r["receipt_no"] for r in pos("receipts", store="store-sh-001")["receipts"]] == [receipt_no]
        assert requests.get(f"{sbx.url}/pos/api/stock", timeout=TIMEOUT_S).status_code == 404


def test_same_seed_gives_the_same_key_stock_and_receipts(sbx, pos):
    sell(sbx, 3, at="2026-03-01 10:00:00")
    first = pos("receipts", store="store-sh-001")["receipts"]
    with running_sandbox(seed=1) as other:
        again = Pos(other)
        assert again.creds["api_key"] == pos.creds["api_key"]
        sell(other, 3, at="2026-03-01 10:00:00")
        strip = [{k: v for k, v in r.items() if k != "uploaded_at"} for r in first]
        assert [{k: v for k, v in r.items() if k != "uploaded_at"} for r in again(
            "receipts", store="store-sh-001")["receipts"]] == strip
        assert again("stock", store="store-sh-001")["items"] == pos("stock", store="store-sh-001")["items"]
