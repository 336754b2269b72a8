"""Kingdee receivables and vouchers against the sandbox tenant: one audited AR_receivable per released document and
one balanced GL_VOUCHER per matched receipt, exactly once, even when every write loses its answer."""

from __future__ import annotations

import sqlalchemy as sa

from connectors.kingdee.sink import KingdeeSink
from hub.store import schema as t
from hub.store.schema import utcnow
from tests.hub.helpers import create_orders, set_faults, truth

EVERY_WRITE_LOST = {"calls": 500, "methods": ["Save", "Submit", "Audit"], "mode": "drop"}


def _form(sandbox_url: str, form: str) -> dict:
    return truth(sandbox_url)["sinks"]["kingdee"].get(form, {})


def _receipts(engine, fee: int = 60) -> list[dict]:
    """``receipt.matched`` events as hub finance writes them (hub/finance/reconcile.py), one per order."""
    now = utcnow()
    with engine.begin() as conn:
        orders = list(conn.execute(sa.select(t.orders.c.hub_id, t.orders.c.channel, t.orders.c.shop,
                                             t.orders.c.order_id, t.orders.c.paid_total, t.orders.c.paid_at)))
        payloads = [{"source": "alipay", "txn_id": f"2026{o.order_id[-12:]}", "order_id": o.order_id,
                     "channel": o.channel, "shop": o.shop, "amount": o.paid_total, "fee": fee, "currency": "CNY",
                     "paid_at": o.paid_at.isoformat()} for o in orders]
        conn.execute(sa.insert(t.outbox), [
            {"event_type": "receipt.matched", "entity": "receipt", "hub_id": o.hub_id, "version": 1,
             "payload": p, "created_at": now} for o, p in zip(orders, payloads, strict=True)])
    return payloads


def _erp_statuses(engine) -> list[str]:
    with engine.connect() as conn:
        return [r.status for r in conn.execute(sa.select(t.dispatches.c.status).where(t.dispatches.c.sink == "erp"))]


def test_lost_answers_on_every_write_still_leave_one_audited_receivable_and_one_voucher_per_order(kd_hub, sandbox):
    hub = kd_hub()
    set_faults(sandbox.url, wms__auto_ship=False, kingdee__timeout_after_success=EVERY_WRITE_LOST)
    ids = create_orders(sandbox.url, count=3)
    hub.sync()
    payloads = _receipts(hub.engine)
    hub.dispatch("erp")
    hub.dispatch("erp")  # whatever was left in doubt is probed and finished

    receivables = _form(sandbox.url, "AR_receivable")
    assert sorted(receivables) == sorted(f"AR-TMALL-{tid}" for tid in ids)
    assert all(r["created"] == 1 and r["duplicates"] >= 1 and r["status"] == "C" for r in receivables.values())
    vouchers = _form(sandbox.url, "GL_VOUCHER")
    assert sorted(vouchers) == sorted(f"RC-ALIPAY-{p['txn_id']}" for p in payloads)
    assert all(v["created"] == 1 and v["duplicates"] >= 1 and v["status"] == "C" for v in vouchers.values())
    assert _erp_statuses(hub.engine) == ["done"] * 6

    # read one voucher back: bank + fee debited, receivable credited, to the fen
    set_faults(sandbox.url, kingdee__timeout_after_success={"calls": 0})
    sink = next(s for s in hub.sinks() if s.name == "erp")
    assert isinstance(sink, KingdeeSink)
    bill = sink.client.view("GL_VOUCHER", f"RC-ALIPAY-{payloads[0]['txn_id']}")["Result"]
    entries = {e["FAccountID"]["FNumber"]: e for e in bill["FEntity"]}
    amount = payloads[0]["amount"]
    assert round(entries["1002"]["FDEBIT"] * 100) == amount - 60 and round(entries["6603"]["FDEBIT"] * 100) == 60
    assert round(entries["1122"]["FCREDIT"] * 100) == amount
    receivable = sink.client.view("AR_receivable", f"AR-TMALL-{ids[0]}")["Result"]
    assert receivable["FCustomerID"]["FNumber"] == "TMALL-TM-FLAGSHIP"


def test_replaying_the_outbox_from_zero_creates_no_new_receivable_or_voucher(kd_hub, sandbox):
    hub = kd_hub()
    set_faults(sandbox.url, wms__auto_ship=False)
    create_orders(sandbox.url, count=2)
    hub.sync()
    _receipts(hub.engine)
    assert hub.dispatch("erp")[0].done == 4
    before = {form: {k: v["created"] for k, v in _form(sandbox.url, form).items()}
              for form in ("SAL_SaleOrder", "AR_receivable", "GL_VOUCHER")}
    with hub.engine.begin() as conn:  # forget every dispatch of the ERP sink
        conn.execute(sa.delete(t.dispatches).where(t.dispatches.c.sink == "erp"))
        conn.execute(sa.delete(t.subscriptions).where(t.subscriptions.c.name == "erp"))
    assert hub.dispatch("erp")[0].done == 4
    after = {form: {k: v["created"] for k, v in _form(sandbox.url, form).items()}
             for form in ("SAL_SaleOrder", "AR_receivable", "GL_VOUCHER")}
    assert after == before and all(len(v) == 2 for v in before.values())
