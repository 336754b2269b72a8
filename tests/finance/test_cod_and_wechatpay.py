"""COD remittances against the hub's cash-on-delivery orders, and the WeChat Pay bill through the signed v2
``/pay/downloadbill`` API, on sandbox data."""

from __future__ import annotations

import io
import zipfile

import pytest
import requests
import sqlalchemy as sa

from hub.errors import RecordError
from hub.finance.client import StatementClient
from hub.finance.reconcile import reconcile_day
from hub.finance.run import import_cod, reconcile
from hub.finance.settings import load_finance_settings
from hub.finance.statements import parse_alipay, parse_wechatpay
from hub.store import schema as t
from tests.finance.conftest import bills, create, fen, knobs, wire, yesterday_at


def test_cod_remittances_match_cod_orders_and_report_a_short_collection_and_an_unknown_waybill(finance_hub, sandbox):
    resp = requests.post(f"{sandbox.url}/_sandbox/orders", json={
        "channel": "tmall", "shop": "tm-flagship", "count": 2, "kind": "cod", "at": wire(yesterday_at(20))}, timeout=30)
    first, second = resp.json()["ids"]
    finance_hub.sync()
    with sandbox.app.lock:  # what the carrier must collect: the trade's payment
        due = {tid: fen(sandbox.app.world.trades[int(tid)].data["payment"]) for tid in (first, second)}
    collected_at = wire(yesterday_at(22))
    remittance = (f"waybill_no,order_id,collected,collected_at\n"
                  f"SF100001,{first},{due[first] / 100:.2f},{collected_at}\n"
                  f"SF100002,{second},{(due[second] - 500) / 100:.2f},{collected_at}\n"
                  f"SF100003,NO-SUCH-ORDER,12.34,{collected_at}\n").encode()
    (report,) = import_cod(finance_hub.engine, remittance, ["tmall"])
    assert report.payments == 3 and report.payment_total == due[first] + due[second] - 500 + 1234
    assert report.totals() == {"cod_differs": (1, -500), "paid_no_order": (1, 1234)}
    assert report.matched == 1 and report.matched_total == due[first] and report.new_receipts == 1
    with finance_hub.engine.connect() as conn:
        (payload,) = conn.execute(sa.select(t.outbox.c.payload).where(
            t.outbox.c.event_type == "receipt.matched")).scalars()
    assert payload["source"] == "cod" and payload["order_id"] == first and payload["amount"] == due[first]
    (again,) = import_cod(finance_hub.engine, remittance, ["tmall"])
    assert again.imported == 0 and again.new_receipts == 0 and again.totals() == report.totals()


def test_the_wechat_pay_bill_comes_through_the_signed_v2_api_with_the_sandbox_totals_to_the_fen(finance_hub, sandbox,
                                                                                                 tmp_path):
    resp = requests.post(f"{sandbox.url}/_sandbox/orders", json={
        "channel": "wechat_shop", "shop": "wx-store", "count": 3, "at": wire(yesterday_at(20))}, timeout=30)
    resp.raise_for_status()
    knobs(sandbox.url, extra_payment={"count": 1, "providers": ["wechat"], "amount_fen": 1999})
    day = yesterday_at(0).date()
    settings = load_finance_settings(tmp_path / "orderhub.yaml")
    for sign_type in ("MD5", "HMAC-SHA256"):
        settings.wechatpay.sign_type = sign_type
        lines = parse_wechatpay(StatementClient(settings).download("wechatpay", day))
        truth = bills(sandbox.url)["wechat"][day.isoformat()]
        assert len(lines) == truth["payments"] == 4
        assert sum(ln.amount for ln in lines) == fen(truth["payment_total"])
        assert sum(ln.fee for ln in lines) == sum(round(ln.amount * 0.006) for ln in lines)
    report = reconcile(finance_hub.engine, None, day, settings=settings)
    wechat = next(s for s in report.sources if s.source == "wechatpay")
    # no WeChat shop is configured in this hub: every payment is money for no hub order, the extra one included
    assert wechat.totals() == {"paid_no_order": (4, fen(truth["payment_total"]))}
    assert reconcile_day(finance_hub.engine, "wechatpay", day, ["wechat_shop"]).totals() == wechat.totals()


def test_a_day_without_movements_is_an_empty_statement_not_an_error(finance_hub, sandbox):
    # both providers answer "no bill" for a day without movements (WeChat 20002, Alipay isp.bill_not_exist);
    # an HTTP 500 on the way is retried (hub.retry), not reported
    knobs(sandbox.url, http_500={"calls": 2})
    summary = finance_hub.reconcile(yesterday_at(0).date())
    assert {s["source"] for s in summary["sources"]} == {"alipay", "wechatpay"}
    assert all(s["payments"] == 0 and s["findings"] == {} for s in summary["sources"])


def test_an_alipay_zip_whose_detail_does_not_add_up_to_its_summary_is_refused(finance_hub, sandbox):
    create(sandbox.url, 3, yesterday_at(20))
    day = yesterday_at(0).date()
    data = requests.get(f"{sandbox.url}/payments/alipay/bill", params={"date": day.isoformat(), "format": "zip"},
                        timeout=30).content
    assert len(parse_alipay(data)) == 3
    bare = requests.get(f"{sandbox.url}/payments/alipay/bill", params={"date": day.isoformat()}, timeout=30).content
    assert parse_alipay(bare) == parse_alipay(data)
    # drop the last detail row, as a truncated download would
    source, target = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(target, "w") as archive:
        for name in source.namelist():
            content = source.read(name)
            if "汇总" not in name:
                rows = content.split(b"\r\n")
                last = max(i for i, row in enumerate(rows) if row and not row.startswith(b"#"))
                content = b"\r\n".join(rows[:last] + rows[last + 1:])
            archive.writestr(name, content)
    with pytest.raises(RecordError, match="does not add up"):
        parse_alipay(target.getvalue())
