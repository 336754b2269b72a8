"""Payment reconciliation on sandbox data: Alipay and WeChat Pay statements downloaded through the providers' APIs,
matched to the hub's Tmall orders and refunds; every mismatch kind injected with the sandbox's knobs and compared,
one to one and to the fen, with the sandbox's record of truth."""

from __future__ import annotations

import sqlalchemy as sa
from typer.testing import CliRunner

from hub.cli import app
from hub.finance.reconcile import stored_findings
from hub.store import schema as t
from hub.store.schema_aftersales import refunds as refunds_t
from hub.store.schema_finance import receipts, statement_lines
from tests.finance.conftest import bills, create, fen, knobs, refund, yesterday_at
from tests.hub.helpers import count


def _setup(hub, url, orders=6, refunds=2):
    tids = create(url, orders, yesterday_at(20))
    refunded = [r for tid in tids[:refunds] for r in refund(url, tid, yesterday_at(21))]
    hub.sync()
    return tids, refunded


def test_a_clean_day_matches_every_payment_and_refund_and_emits_each_receipt_exactly_once(finance_hub, sandbox):
    tids, refunded = _setup(finance_hub, sandbox.url)
    day = yesterday_at(0).date()
    summary = finance_hub.reconcile(day)
    alipay = next(s for s in summary["sources"] if s["source"] == "alipay")
    truth = bills(sandbox.url)["alipay"][day.isoformat()]
    assert alipay["payments"] == len(tids) == truth["payments"]
    assert alipay["refunds"] == len(refunded) == truth["refunds"]
    assert alipay["payment_total_fen"] == fen(truth["payment_total"])
    assert alipay["refund_total_fen"] == fen(truth["refund_total"])
    assert alipay["matched"] == len(tids) and alipay["matched_total_fen"] == fen(truth["payment_total"])
    assert alipay["findings"] == {} and alipay["new_receipts"] == len(tids)
    with finance_hub.engine.connect() as conn:
        events = conn.execute(sa.select(t.outbox.c.payload).where(t.outbox.c.event_type == "receipt.matched")).all()
    assert sorted(e.payload["order_id"] for e in events) == sorted(tids)
    assert {e.payload["source"] for e in events} == {"alipay"}
    # again (a retried DAG run, a re-downloaded bill): nothing new is stored or emitted
    again = finance_hub.reconcile(day)
    assert next(s for s in again["sources"] if s["source"] == "alipay")["new_receipts"] == 0
    assert count(finance_hub.engine, t.outbox, t.outbox.c.event_type == "receipt.matched") == len(tids)
    assert count(finance_hub.engine, receipts) == len(tids)
    assert count(finance_hub.engine, statement_lines) == len(tids) + len(refunded)
    # a refund the hub never took in (its stream was off, say): the statement's refund has nothing to match
    lost = refunded[0]
    with finance_hub.engine.begin() as conn:
        conn.execute(sa.delete(refunds_t).where(refunds_t.c.refund_id == str(lost["refund_id"])))
    again = next(s for s in finance_hub.reconcile(day)["sources"] if s["source"] == "alipay")
    assert again["findings"] == {"refund_no_hub_refund": {"count": 1, "difference_fen": fen(lost["refund_fee"])}}


def test_every_mismatch_kind_is_found_with_the_exact_rows_and_amounts_the_sandbox_injected(finance_hub, sandbox):
    tids, refunded = _setup(finance_hub, sandbox.url, orders=7, refunds=2)
    knobs(sandbox.url, missing_payment={"count": 1, "providers": ["alipay"]},
          extra_payment={"count": 2, "providers": ["alipay"], "amount_fen": 8888},
          amount_differs={"count": 1, "providers": ["alipay"], "delta_fen": -1},
          refund_unsettled={"count": 1, "providers": ["alipay"]})
    day = yesterday_at(0).date()
    summary = finance_hub.reconcile(day)
    truth = bills(sandbox.url)["alipay"][day.isoformat()]
    injected = {m["kind"]: [] for m in truth["mismatches"]}
    for m in truth["mismatches"]:
        injected[m["kind"]].append(m)
    found = {}
    for f in stored_findings(finance_hub.engine, day)["alipay"]:
        found.setdefault(f.kind, []).append(f)
    assert set(found) == {"order_no_payment", "paid_no_order", "amount_differs", "refund_not_settled"}
    # one to one with the truth, amounts to the fen
    assert [(f.out_trade_no, f.expected, f.actual) for f in found["order_no_payment"]] == [
        (m["out_trade_no"], fen(m["amount"]), None) for m in injected["missing_payment"]]
    assert sorted((f.txn_id, f.out_trade_no, f.actual) for f in found["paid_no_order"]) == sorted(
        (m["trade_no"], m["out_trade_no"], 8888) for m in injected["extra_payment"])
    assert [(f.out_trade_no, f.expected, f.actual, f.difference) for f in found["amount_differs"]] == [
        (m["out_trade_no"], fen(m["expected"]), fen(m["amount"]), -1) for m in injected["amount_differs"]]
    assert [(f.refund_no, f.expected) for f in found["refund_not_settled"]] == [
        (m["refund_no"], fen(m["amount"])) for m in injected["refund_unsettled"]]
    alipay = next(s for s in summary["sources"] if s["source"] == "alipay")
    assert alipay["findings"] == {
        "order_no_payment": {"count": 1, "difference_fen": -fen(injected["missing_payment"][0]["amount"])},
        "paid_no_order": {"count": 2, "difference_fen": 2 * 8888},
        "amount_differs": {"count": 1, "difference_fen": -1},
        "refund_not_settled": {"count": 1, "difference_fen": -fen(injected["refund_unsettled"][0]["amount"])},
    }
    # totals to the fen: what the file holds, and what the hub matched (the genuine total minus the two findings)
    assert alipay["payment_total_fen"] == fen(truth["payment_total"])
    assert alipay["refund_total_fen"] == fen(truth["refund_total"])
    genuine = fen(truth["genuine_payment_total"])
    assert alipay["matched_total_fen"] == (genuine - fen(injected["missing_payment"][0]["amount"])
                                           - fen(injected["amount_differs"][0]["expected"]))
    assert alipay["matched"] == len(tids) - 2 and alipay["new_receipts"] == len(tids) - 2
    # the CLI prints the same totals and exits 1: there is something for finance to look at
    result = CliRunner().invoke(app, ["reconcile", "--date", day.isoformat(), "-c",
                                      str(finance_hub.settings.source_path)])
    assert result.exit_code == 1, result.output
    for kind in ("order_no_payment", "paid_no_order", "amount_differs", "refund_not_settled"):
        assert kind in result.output
    assert "177.76" in result.output  # the two extra payments of 88.88
