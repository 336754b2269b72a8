"""The WeChat Pay bill against the hub's WeChat Channels shop orders and after-sales, on sandbox data.

The sandbox bills each paid WeChat shop order under its ``transaction_id`` (微信订单号) with the order id as 商户订单号,
and each successful after-sale under its ``after_sale_order_id`` (商户退款单号); the hub takes the same ids in through
the WeChat shop connector. Every mismatch kind the bill can show is injected with the sandbox's knobs and compared, one
to one and to the fen, with the sandbox's record of truth.
"""

from __future__ import annotations

from datetime import datetime

import pytest
import requests
import sqlalchemy as sa
import yaml

from hub.finance.client import StatementClient
from hub.finance.reconcile import import_lines, reconcile_day, stored_findings
from hub.finance.settings import load_finance_settings
from hub.finance.statements import parse_wechatpay
from hub.store import schema as t
from hub.store.schema_aftersales import refunds as refunds_t
from hub.store.schema_finance import receipts, statement_lines
from tests.finance.conftest import SH, bills, fen, knobs, wire, yesterday_at
from tests.hub.helpers import count


@pytest.fixture
def wechat_hub(tmp_path, sandbox, db_url, engine):
    """A hub reading Tmall and WeChat shop orders and refunds back to yesterday 19:00, with the sandbox's payment
    accounts (WeChat Pay settles the ``wechat_shop`` channel)."""
    from hub.config import load_settings
    from hub.runtime import Hub
    from sandbox.configuration import finance_config, orderhub_config

    hours = (datetime.now(SH) - yesterday_at(19)).total_seconds() / 3600
    data = orderhub_config(sandbox.url, db_url, channels=("tmall", "wechat_shop"))
    for shop in data["shops"]:
        shop["streams"] = ["orders", "refunds"]
        shop["sync"].update({"initial_lookback_hours": hours, "window_minutes": 1440})
        shop["http"] = {"timeout_s": 3, "attempts": 4}
    path = tmp_path / "orderhub.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    (tmp_path / "finance.yaml").write_text(yaml.safe_dump(finance_config(sandbox.url), allow_unicode=True),
                                           encoding="utf-8")
    return Hub(load_settings(path), engine)


def _setup(hub, url, orders: int, refunds: int) -> tuple[list[str], list[str]]:
    """``orders`` WeChat shop orders paid yesterday 20:00, the first ``refunds`` of them refunded at 21:00."""
    resp = requests.post(f"{url}/_sandbox/orders", json={"channel": "wechat_shop", "shop": "wx-store",
                                                         "count": orders, "at": wire(yesterday_at(20))}, timeout=30)
    resp.raise_for_status()
    ids = resp.json()["ids"]
    aftersales = []
    for order_id in ids[:refunds]:
        resp = requests.post(f"{url}/_sandbox/orders/wechat_shop/{order_id}/modify", json={
            "at": wire(yesterday_at(21)), "aftersale": {"type": "REFUND", "status": "MERCHANT_REFUND_SUCCESS"}},
            timeout=30)
        resp.raise_for_status()
        aftersales.append(resp.json()["after_sale_order_id"])
    hub.sync()
    return ids, aftersales


def _wechat(summary: dict) -> dict:
    return next(s for s in summary["sources"] if s["source"] == "wechatpay")


def test_a_clean_wechat_pay_day_matches_every_wechat_shop_order_and_after_sale_by_their_own_ids(wechat_hub, sandbox):
    ids, aftersales = _setup(wechat_hub, sandbox.url, orders=4, refunds=2)
    day = yesterday_at(0).date()
    summary = wechat_hub.reconcile(day)
    wechat = _wechat(summary)
    truth = bills(sandbox.url)["wechat"][day.isoformat()]
    assert wechat["payments"] == len(ids) == truth["payments"]
    assert wechat["refunds"] == len(aftersales) == truth["refunds"]
    assert wechat["payment_total_fen"] == fen(truth["payment_total"])
    assert wechat["refund_total_fen"] == fen(truth["refund_total"])
    assert wechat["matched"] == len(ids) and wechat["matched_total_fen"] == fen(truth["payment_total"])
    assert wechat["findings"] == {} and wechat["new_receipts"] == len(ids)
    # the bill's 微信订单号 is the transaction id the hub's order carries from the shop's order detail
    with sandbox.app.lock:
        txns = {oid: sandbox.app.systems["wechat_shop"].orders[oid].data["order_detail"]["pay_info"]["transaction_id"]
                for oid in ids}
    with wechat_hub.engine.connect() as conn:
        events = conn.execute(sa.select(t.outbox.c.payload).where(t.outbox.c.event_type == "receipt.matched")
                              ).scalars().all()
        documents = dict(conn.execute(sa.select(t.orders.c.order_id, t.orders.c.document).where(
            t.orders.c.channel == "wechat_shop")).all())
    assert {e["order_id"]: e["txn_id"] for e in events} == txns
    assert {e["source"] for e in events} == {"wechatpay"} and {e["channel"] for e in events} == {"wechat_shop"}
    assert {oid: doc["payments"][0]["channel_txn_id"] for oid, doc in documents.items()} == txns
    # the hub's refunds are the bill's refunds, amounts to the fen
    with wechat_hub.engine.connect() as conn:
        hub_refunds = dict(conn.execute(sa.select(refunds_t.c.refund_id, refunds_t.c.refunded_amount).where(
            refunds_t.c.channel == "wechat_shop")).all())
    assert sorted(hub_refunds) == sorted(aftersales)
    assert sum(hub_refunds.values()) == fen(truth["refund_total"])
    # again: nothing new is stored or emitted
    assert _wechat(wechat_hub.reconcile(day))["new_receipts"] == 0
    assert count(wechat_hub.engine, receipts, receipts.c.source == "wechatpay") == len(ids)
    assert count(wechat_hub.engine, statement_lines, statement_lines.c.source == "wechatpay") == len(ids) + len(
        aftersales)
    # an after-sale the hub never took in: the bill's refund has nothing to match
    lost = aftersales[0]
    with wechat_hub.engine.begin() as conn:
        conn.execute(sa.delete(refunds_t).where(refunds_t.c.refund_id == lost))
    assert _wechat(wechat_hub.reconcile(day))["findings"] == {
        "refund_no_hub_refund": {"count": 1, "difference_fen": hub_refunds[lost]}}


def test_every_wechat_pay_mismatch_kind_is_found_with_the_rows_and_amounts_the_sandbox_injected(wechat_hub, sandbox):
    ids, aftersales = _setup(wechat_hub, sandbox.url, orders=6, refunds=2)
    knobs(sandbox.url, missing_payment={"count": 1, "providers": ["wechat"]},
          extra_payment={"count": 2, "providers": ["wechat"], "amount_fen": 4321},
          amount_differs={"count": 1, "providers": ["wechat"], "delta_fen": 7},
          refund_unsettled={"count": 1, "providers": ["wechat"]})
    day = yesterday_at(0).date()
    summary = wechat_hub.reconcile(day)
    truth = bills(sandbox.url)["wechat"][day.isoformat()]
    injected: dict[str, list[dict]] = {}
    for m in truth["mismatches"]:
        injected.setdefault(m["kind"], []).append(m)
    assert {k: len(v) for k, v in injected.items()} == {"missing_payment": 1, "extra_payment": 2,
                                                        "amount_differs": 1, "refund_unsettled": 1}
    assert {m["source"] for k in ("missing_payment", "amount_differs", "refund_unsettled")
            for m in injected[k]} == {"wechat_shop"}
    found: dict[str, list] = {}
    for f in stored_findings(wechat_hub.engine, day)["wechatpay"]:
        found.setdefault(f.kind, []).append(f)
    assert set(found) == {"order_no_payment", "paid_no_order", "amount_differs", "refund_not_settled"}
    # one to one with the truth, amounts to the fen
    (missing,) = injected["missing_payment"]
    assert [(f.out_trade_no, f.channel, f.expected, f.actual) for f in found["order_no_payment"]] == [
        (missing["out_trade_no"], "wechat_shop", fen(missing["amount"]), None)]
    assert sorted((f.txn_id, f.out_trade_no, f.actual) for f in found["paid_no_order"]) == sorted(
        (m["trade_no"], m["out_trade_no"], 4321) for m in injected["extra_payment"])
    (differs,) = injected["amount_differs"]
    assert [(f.txn_id, f.out_trade_no, f.expected, f.actual, f.difference) for f in found["amount_differs"]] == [
        (differs["trade_no"], differs["out_trade_no"], fen(differs["expected"]), fen(differs["amount"]), 7)]
    (unsettled,) = injected["refund_unsettled"]
    assert [(f.refund_no, f.out_trade_no, f.expected) for f in found["refund_not_settled"]] == [
        (unsettled["refund_no"], unsettled["out_trade_no"], fen(unsettled["amount"]))]
    assert unsettled["refund_no"] in aftersales and missing["out_trade_no"] in ids
    wechat = _wechat(summary)
    assert wechat["findings"] == {
        "order_no_payment": {"count": 1, "difference_fen": -fen(missing["amount"])},
        "paid_no_order": {"count": 2, "difference_fen": 2 * 4321},
        "amount_differs": {"count": 1, "difference_fen": 7},
        "refund_not_settled": {"count": 1, "difference_fen": -fen(unsettled["amount"])},
    }
    # totals to the fen: what the file holds, and what the hub matched (the genuine total minus the two findings)
    assert wechat["payment_total_fen"] == fen(truth["payment_total"])
    assert wechat["refund_total_fen"] == fen(truth["refund_total"])
    assert wechat["refunds"] == len(aftersales) - 1
    assert wechat["matched_total_fen"] == (fen(truth["genuine_payment_total"]) - fen(missing["amount"])
                                           - fen(differs["expected"]))
    assert wechat["matched"] == len(ids) - 2 and wechat["new_receipts"] == len(ids) - 2
    # the Alipay account, which settles Tmall only, has nothing to say about WeChat shop orders
    assert next(s for s in summary["sources"] if s["source"] == "alipay")["findings"] == {}


def test_a_bill_whose_merchant_order_numbers_are_not_the_order_ids_still_matches_by_transaction_id(wechat_hub,
                                                                                                   sandbox):
    ids, _ = _setup(wechat_hub, sandbox.url, orders=3, refunds=0)
    day = yesterday_at(0).date()
    settings = load_finance_settings(wechat_hub.settings.source_path)
    lines = parse_wechatpay(StatementClient(settings).download("wechatpay", day))
    assert import_lines(wechat_hub.engine, day, lines) == len(ids)
    # a merchant account that numbers its own orders: 商户订单号 is no hub order id, 微信订单号 still is the order's
    with wechat_hub.engine.begin() as conn:
        conn.execute(sa.update(statement_lines).values(out_trade_no="MCH-" + statement_lines.c.out_trade_no))
    report = reconcile_day(wechat_hub.engine, "wechatpay", day, ["wechat_shop"])
    assert report.findings == [] and report.matched == len(ids) == report.new_receipts
    assert report.matched_total == sum(ln.amount for ln in lines)
    with wechat_hub.engine.connect() as conn:
        claimed = dict(conn.execute(sa.select(receipts.c.txn_id, receipts.c.order_id)).all())
    assert claimed == {ln.txn_id: ln.out_trade_no for ln in lines} and sorted(claimed.values()) == sorted(ids)
