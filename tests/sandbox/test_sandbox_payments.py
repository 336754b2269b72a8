"""The simulated payment statement files (sandbox/payments.py): Alipay and WeChat Pay daily bills generated from the
sandbox's own paid orders and refunds, their exact layouts (§9), the v2/OpenAPI download flows, and every mismatch
knob with totals checked to the fen.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
import zipfile
from decimal import Decimal

import pytest
import requests

from sandbox import clock
from sandbox.payments import ALIPAY_HEADER, WECHAT_HEADER, WECHAT_SUMMARY_HEADER, wechat_pay_sign
from sandbox.server import running_sandbox

TIMEOUT_S = 5
DAY = "2026-03-01"
AT = f"{DAY} 10:00:00"


def test_wechat_pay_v2_sign_matches_the_spec_worked_example() -> None:
    params = {"appid": "wx1234567890abcdef", "mch_id": "1900000109", "nonce_str": "abc123", "bill_date": "20240301",
              "bill_type": "ALL"}
    assert wechat_pay_sign(params, "wxpay_api_key_32chars_xxxxxxxxxx") == "8A58AC3D1732E136DE537AF9D50F9160"


@pytest.fixture
def day_of_sales(sbx, admin) -> dict:
    """Paid orders on DAY in every channel that settles through Alipay / WeChat Pay, plus one refund each."""
    tids = admin("POST", "orders", json={"channel": "tmall", "shop": "tm-flagship", "count": 4, "at": AT})["ids"]
    admin("POST", f"orders/tmall/{tids[0]}/refund", json={"status": "SUCCESS", "at": f"{DAY} 15:00:00"})
    admin("POST", f"orders/tmall/{tids[1]}/refund", json={"at": f"{DAY} 15:00:00"})  # still open: not settled
    wx = admin("POST", "orders", json={"channel": "wechat_shop", "shop": "wx-store", "count": 3, "at": AT})["ids"]
    admin("POST", f"orders/wechat_shop/{wx[0]}/modify", json={
        "at": f"{DAY} 16:00:00", "aftersale": {"type": "REFUND", "count": 1, "status": "MERCHANT_REFUND_SUCCESS"}})
    pos = admin("POST", "orders", json={"channel": "pos", "shop": "store-sh-001", "count": 12, "at": AT})["ids"]
    app = sbx.app
    # A customer brings back everything bought with Alipay at the till: the refund goes back to Alipay.
    alipay_sale = next(no for no in pos if app.systems["pos"].receipts[no].data["payments"][0]["method"] == "ALIPAY")
    returned = admin("POST", f"orders/pos/{alipay_sale}/modify", json={"at": f"{DAY} 17:00:00"})
    # What each provider should hold, computed from the channels' own data (not from the bill code).
    expected = {"alipay": {"payments": {}, "refunds": {}}, "wechat": {"payments": {}, "refunds": {}}}
    for tid in tids:
        trade = app.world.trades[int(tid)]
        expected["alipay"]["payments"][tid] = Decimal(trade.data["payment"])
    for refund in app.world.refunds.values():
        if refund.status == "SUCCESS":
            # one refund per line: a trade's refunds add up
            refunds = expected["alipay"]["refunds"]
            refunds[str(refund.tid)] = refunds.get(str(refund.tid), Decimal(0)) + refund.refund_fee
    shop = app.systems["wechat_shop"]
    for order_id in wx:
        expected["wechat"]["payments"][order_id] = Decimal(shop.orders[order_id].data["order_detail"]["price_info"][
            "order_price"]) / 100
    for aftersale in shop.aftersales.values():
        amount = Decimal(aftersale.data["refund_info"]["amount"]) / 100
        expected["wechat"]["refunds"][aftersale.data["order_id"]] = amount
    refund_receipt = app.systems["pos"].receipts[returned["return_receipt_no"]]
    expected["alipay"]["refunds"][alipay_sale] = -Decimal(refund_receipt.data["payments"][0]["amount"])
    for receipt_no in pos:
        for payment in app.systems["pos"].receipts[receipt_no].data["payments"]:
            provider = {"ALIPAY": "alipay", "WECHAT_PAY": "wechat"}.get(payment["method"])
            if provider:
                expected[provider]["payments"][receipt_no] = Decimal(payment["amount"])
    assert expected["alipay"]["refunds"] and expected["wechat"]["refunds"]
    assert any(key.startswith("SH") for key in expected["alipay"]["payments"])
    assert any(key.startswith("SH") for key in expected["wechat"]["payments"])
    return expected


def by_order(pairs) -> dict:
    """Sum amounts per merchant order number (a trade may have several refund rows)."""
    totals: dict = {}
    for key, amount in pairs:
        totals[key] = totals.get(key, Decimal(0)) + amount
    return totals


def alipay_file(sbx, fmt: str = "csv", day: str = DAY) -> str:
    response = requests.get(f"{sbx.url}/payments/alipay/bill", params={"date": day, "format": fmt}, timeout=TIMEOUT_S)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/csv;charset=GBK"
    return response.content.decode("gbk")


def parse_alipay(text: str) -> tuple[list[str], list[str], list[dict], list[str]]:
    lines = text.split("\r\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    head = lines[:4]
    body_end = next(i for i in range(4, len(lines)) if lines[i].startswith("#"))
    table = list(csv.reader(lines[4:body_end]))
    header, rows = table[0], [dict(zip(table[0], row)) for row in table[1:]]
    return head, header, rows, lines[body_end:]


def parse_wechat(text: str) -> tuple[list[dict], dict]:
    lines = text.split("\r\n")[:-1]
    assert lines[0].split(",") == WECHAT_HEADER
    split = lines.index(",".join(WECHAT_SUMMARY_HEADER))
    rows = []
    for line in lines[1:split]:
        values = line.split(",")
        assert all(value.startswith("`") for value in values)
        rows.append(dict(zip(WECHAT_HEADER, (value[1:] for value in values))))
    summary_values = lines[split + 1].split(",")
    assert split + 2 == len(lines) and all(value.startswith("`") for value in summary_values)
    return rows, dict(zip(WECHAT_SUMMARY_HEADER, (value[1:] for value in summary_values)))


def test_alipay_detail_layout_and_totals(sbx, day_of_sales) -> None:
    head, header, rows, footer = parse_alipay(alipay_file(sbx))
    assert head[0] == "#支付宝业务明细查询" and head[1].startswith("#账号：[2088")
    assert head[2] == "#起始日期：[2026年03月01日 00:00:00]   终止日期：[2026年03月02日 00:00:00]"
    assert head[3].startswith("#---") and "业务明细列表" in head[3]
    assert header == ALIPAY_HEADER and len(header) == 25
    assert all(line.startswith("#") for line in footer) and "导出时间" in footer[-1]

    trades = [r for r in rows if r["业务类型"] == "交易"]
    refunds = [r for r in rows if r["业务类型"] == "退款"]
    # id-like values carry a trailing tab (so spreadsheets keep them as text)
    assert all(r["支付宝交易号"].endswith("\t") and r["商户订单号"].endswith("\t") for r in rows)
    paid = {r["商户订单号"].strip(): Decimal(r["商家实收（元）"]) for r in trades}
    assert paid == day_of_sales["alipay"]["payments"]
    refunded = by_order((r["商户订单号"].strip(), -Decimal(r["商家实收（元）"])) for r in refunds)
    assert refunded == day_of_sales["alipay"]["refunds"]
    assert all(Decimal(r["订单金额（元）"]) < 0 and r["退款批次号/请求号"].endswith("\t") for r in refunds)
    # Tmall rows join on alipay_no
    tid = next(iter(day_of_sales["alipay"]["refunds"]))
    alipay_no = sbx.app.world.trades[int(tid)].data["alipay_no"]
    assert {r["支付宝交易号"].strip() for r in rows if r["商户订单号"].strip() == tid} == {alipay_no}
    assert footer[1].startswith(f"#交易合计：{len(trades)}笔，商家实收：{sum(paid.values()):.2f}元")

    truth = sbx.app.truth()["bills"]["alipay"][DAY]
    assert truth["payments"] == len(trades) and truth["payment_total"] == f"{sum(paid.values()):.2f}"
    assert truth["mismatches"] == []


def test_alipay_zip_download_has_gbk_detail_and_summary(sbx, day_of_sales) -> None:
    response = requests.get(f"{sbx.url}/payments/alipay/bill", params={"date": DAY, "format": "zip"},
                            timeout=TIMEOUT_S)
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = sorted(archive.namelist())
    assert names[0].endswith("_业务明细(汇总).csv") and names[1].endswith("_业务明细.csv")
    detail = archive.read(names[1]).decode("gbk")
    assert detail == alipay_file(sbx)
    summary = archive.read(names[0]).decode("gbk").split("\r\n")
    total = dict(zip(summary[4].split(","), summary[5].split(",")))
    net = sum(day_of_sales["alipay"]["payments"].values()) - sum(day_of_sales["alipay"]["refunds"].values())
    assert total["商家实收（元）"] == f"{net:.2f}"


def test_wechat_bill_layout_and_totals(sbx, day_of_sales) -> None:
    response = requests.get(f"{sbx.url}/payments/wechat/bill", params={"date": DAY}, timeout=TIMEOUT_S)
    assert response.headers["Content-Type"] == "text/csv;charset=utf-8"
    rows, summary = parse_wechat(response.content.decode("utf-8"))
    paid = {r["商户订单号"]: Decimal(r["应结订单金额"]) for r in rows if r["交易状态"] == "SUCCESS"}
    refunded = by_order((r["商户订单号"], Decimal(r["退款金额"])) for r in rows if r["交易状态"] == "REFUND")
    assert paid == day_of_sales["wechat"]["payments"] and refunded == day_of_sales["wechat"]["refunds"]
    assert summary["总交易单数"] == str(len(rows))
    assert summary["应结订单总金额"] == f"{sum(paid.values()):.2f}"
    assert summary["退款总金额"] == f"{sum(refunded.values()):.2f}"
    fee_total = sum(Decimal(r["手续费"]) for r in rows)
    assert summary["手续费总金额"] == f"{fee_total:.5f}" and all(len(r["手续费"].split(".")[1]) == 5 for r in rows)
    order_id = next(iter(refunded))
    transaction_id = sbx.app.systems["wechat_shop"].orders[order_id].data["order_detail"]["pay_info"]["transaction_id"]
    assert {r["微信订单号"] for r in rows if r["商户订单号"] == order_id} == {transaction_id}
    refunds_only, _ = parse_wechat(requests.get(f"{sbx.url}/payments/wechat/bill",
                                                params={"date": DAY, "bill_type": "REFUND"},
                                                timeout=TIMEOUT_S).content.decode())
    assert {r["交易状态"] for r in refunds_only} == {"REFUND"} and len(refunds_only) == summary_refund_rows(rows)


def summary_refund_rows(rows: list[dict]) -> int:
    return sum(r["交易状态"] == "REFUND" for r in rows)


def test_an_empty_day_is_an_empty_file(sbx) -> None:
    _, header, rows, footer = parse_alipay(alipay_file(sbx, day="2026-02-01"))
    assert rows == [] and footer[1].startswith("#交易合计：0笔")
    rows, summary = parse_wechat(requests.get(f"{sbx.url}/payments/wechat/bill", params={"date": "2026-02-01"},
                                              timeout=TIMEOUT_S).text)
    assert rows == [] and summary["总交易单数"] == "0"


def _alipay_totals(sbx) -> tuple[dict, dict]:
    _, _, rows, _ = parse_alipay(alipay_file(sbx))
    paid = {r["商户订单号"].strip(): Decimal(r["商家实收（元）"]) for r in rows if r["业务类型"] == "交易"}
    back = by_order((r["商户订单号"].strip(), -Decimal(r["商家实收（元）"])) for r in rows if r["业务类型"] == "退款")
    return paid, back


def test_missing_payment_knob(sbx, day_of_sales) -> None:
    sbx.app.faults.merge({"payments.missing_payment": {"count": 2, "providers": ["alipay"]}})
    paid, _ = _alipay_totals(sbx)
    expected = day_of_sales["alipay"]["payments"]
    missing = set(expected) - set(paid)
    assert len(missing) == 2 and len(paid) == len(expected) - 2
    truth = sbx.app.truth()["bills"]["alipay"][DAY]
    assert {m["out_trade_no"] for m in truth["mismatches"]} == missing
    assert all(m["kind"] == "missing_payment" for m in truth["mismatches"])
    assert Decimal(truth["genuine_payment_total"]) - Decimal(truth["payment_total"]) == sum(
        expected[key] for key in missing)
    # providers: the WeChat file is untouched
    rows, _ = parse_wechat(requests.get(f"{sbx.url}/payments/wechat/bill", params={"date": DAY},
                                        timeout=TIMEOUT_S).text)
    assert len([r for r in rows if r["交易状态"] == "SUCCESS"]) == len(day_of_sales["wechat"]["payments"])


def test_extra_payment_knob(sbx, day_of_sales) -> None:
    sbx.app.faults.merge({"payments.extra_payment": {"count": 2, "amount_fen": 1234}})
    paid, _ = _alipay_totals(sbx)
    extras = {key: value for key, value in paid.items() if key not in day_of_sales["alipay"]["payments"]}
    assert extras == {"SBX-EXTRA-20260301-001": Decimal("12.34"), "SBX-EXTRA-20260301-002": Decimal("12.34")}
    assert sum(paid.values()) == sum(day_of_sales["alipay"]["payments"].values()) + Decimal("24.68")
    rows, summary = parse_wechat(requests.get(f"{sbx.url}/payments/wechat/bill", params={"date": DAY},
                                              timeout=TIMEOUT_S).text)
    assert Decimal(summary["应结订单总金额"]) == sum(day_of_sales["wechat"]["payments"].values()) + Decimal("24.68")
    assert [m["kind"] for m in sbx.app.truth()["bills"]["wechat"][DAY]["mismatches"]] == ["extra_payment"] * 2


def test_amount_differs_knob(sbx, day_of_sales) -> None:
    sbx.app.faults.merge({"payments.amount_differs": {"count": 3, "delta_fen": -1, "providers": ["alipay"]}})
    paid, _ = _alipay_totals(sbx)
    expected = day_of_sales["alipay"]["payments"]
    differing = {key for key in paid if paid[key] != expected[key]}
    assert len(differing) == 3 and all(expected[key] - paid[key] == Decimal("0.01") for key in differing)
    assert sum(paid.values()) == sum(expected.values()) - Decimal("0.03")
    mismatches = sbx.app.truth()["bills"]["alipay"][DAY]["mismatches"]
    assert {m["out_trade_no"]: (m["amount"], m["expected"]) for m in mismatches} == {
        key: (str(paid[key]), str(expected[key])) for key in differing}


def test_refund_unsettled_knob(sbx, day_of_sales) -> None:
    sbx.app.faults.merge({"payments.refund_unsettled": {"count": 10}})  # more than there are: all go
    paid, back = _alipay_totals(sbx)
    assert back == {} and paid == day_of_sales["alipay"]["payments"]
    rows, summary = parse_wechat(requests.get(f"{sbx.url}/payments/wechat/bill", params={"date": DAY},
                                              timeout=TIMEOUT_S).text)
    assert summary["退款总金额"] == "0.00" and all(r["交易状态"] == "SUCCESS" for r in rows)
    alipay = sbx.app.truth()["bills"]["alipay"][DAY]
    assert len(alipay["mismatches"]) == 4  # three Tmall line refunds + one POS return
    assert sum(Decimal(m["amount"]) for m in alipay["mismatches"]) == sum(day_of_sales["alipay"]["refunds"].values())
    assert alipay["refund_total"] == "0.00"
    (mismatch,) = sbx.app.truth()["bills"]["wechat"][DAY]["mismatches"]
    assert mismatch["kind"] == "refund_unsettled"
    assert Decimal(mismatch["amount"]) == next(iter(day_of_sales["wechat"]["refunds"].values()))


def test_bad_knob_values_are_refused(sbx) -> None:
    for bad in ({"payments.missing_payment": {"count": -1}}, {"payments.extra_payment": {"amount_fen": 0}},
                {"payments.amount_differs": {"providers": ["paypal"]}}):
        assert requests.post(f"{sbx.url}/_sandbox/faults", json=bad, timeout=TIMEOUT_S).status_code == 400


def _downloadbill(sbx, creds, path: str = "/payments/pay/downloadbill", key: str | None = None,
                  **overrides: str) -> requests.Response:
    wx = creds["payments"]["wechat"]
    params = {"appid": wx["appid"], "mch_id": wx["mch_id"], "nonce_str": "abc123", "bill_date": "20260301",
              "bill_type": "ALL", **overrides}
    params["sign"] = wechat_pay_sign(params, key or wx["api_key"], params.get("sign_type", "MD5"))
    body = "<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in params.items()) + "</xml>"
    return requests.post(sbx.url + path, data=body.encode(), headers={"Content-Type": "text/xml"}, timeout=TIMEOUT_S)


def test_wechat_v2_downloadbill(sbx, creds, day_of_sales) -> None:
    csv_text = _downloadbill(sbx, creds).content.decode("utf-8")
    assert csv_text == requests.get(f"{sbx.url}/payments/wechat/bill", params={"date": DAY}, timeout=TIMEOUT_S).text
    hmac_signed = _downloadbill(sbx, creds, sign_type="HMAC-SHA256", tar_type="GZIP")
    assert gzip.decompress(hmac_signed.content).decode("utf-8") == csv_text
    bad = _downloadbill(sbx, creds, key="wrong").text
    assert "<return_code><![CDATA[FAIL]]></return_code>" in bad and "签名错误" in bad
    none = _downloadbill(sbx, creds, bill_date="20260201").text
    assert "No Bill Exist" in none and "20002" in none


def test_alipay_downloadurl_query_then_download(sbx, creds, day_of_sales) -> None:
    ali = creds["payments"]["alipay"]
    params = {"app_id": ali["app_id"], "method": "alipay.data.dataservice.bill.downloadurl.query",
              "format": "JSON", "charset": "utf-8", "sign_type": "RSA2", "timestamp": clock.format_wire(clock.now()),
              "version": "1.0", "sign": "not-checked",
              "biz_content": json.dumps({"bill_type": "trade", "bill_date": DAY})}
    answer = requests.post(sbx.url + ali["gateway_path"], data=params, timeout=TIMEOUT_S).json()
    inner = answer["alipay_data_dataservice_bill_downloadurl_query_response"]
    assert inner["code"] == "10000" and inner["msg"] == "Success"
    archive = zipfile.ZipFile(io.BytesIO(requests.get(inner["bill_download_url"], timeout=TIMEOUT_S).content))
    assert len(archive.namelist()) == 2
    params["biz_content"] = json.dumps({"bill_type": "trade", "bill_date": "2026-02-01"})
    missing = requests.post(sbx.url + ali["gateway_path"], data=params, timeout=TIMEOUT_S).json()
    assert missing["alipay_data_dataservice_bill_downloadurl_query_response"]["sub_code"] == "isp.bill_not_exist"


def test_transport_fault_knobs(sbx, day_of_sales) -> None:
    sbx.app.faults.merge({"payments.http_500": {"calls": 1}, "payments.latency_ms": 200,
                          "payments.timeout_after_success": {"calls": 1, "methods": ["wechat"], "sleep_s": 3}})
    url = f"{sbx.url}/payments/wechat/bill"
    assert requests.get(url, params={"date": DAY}, timeout=TIMEOUT_S).status_code == 500
    with pytest.raises(requests.Timeout):
        requests.get(url, params={"date": DAY}, timeout=0.5)
    started = time.monotonic()
    assert requests.get(url, params={"date": DAY}, timeout=TIMEOUT_S).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_standalone_paths() -> None:
    with running_sandbox(seed=1, system="payments") as handle:
        requests.post(f"{handle.url}/_sandbox/orders", json={"channel": "tmall", "shop": "tm-flagship", "count": 2,
                                                             "at": AT}, timeout=TIMEOUT_S)
        text = requests.get(f"{handle.url}/alipay/bill", params={"date": DAY}, timeout=TIMEOUT_S).content.decode("gbk")
        _, _, rows, _ = parse_alipay(text)
        assert len(rows) == 2
        creds = requests.get(f"{handle.url}/_sandbox/credentials", timeout=TIMEOUT_S).json()
        assert "No Bill Exist" in _downloadbill(handle, creds, path="/pay/downloadbill").text
