"""Returns end to end: a return with goods is announced to the WMS, the WMS's receipt comes back into the hub once,
and becomes a return sale with its credit note in the real Tryton, read back."""

from __future__ import annotations

import time

import requests
import sqlalchemy as sa

from hub.store import schema as t
from hub.store.schema_fulfilment import return_receipts
from tests.hub.helpers import create_orders, set_faults, truth


def test_a_received_return_becomes_one_credited_return_sale_in_tryton(tryton_hub, sandbox):
    hub = tryton_hub()
    wms = hub.settings.sinks[0]
    wms.returns_feed_url = wms.confirms.feed_url.replace("_confirms", "_returns")
    set_faults(sandbox.url, wms__auto_ship=True)
    (tid,) = create_orders(sandbox.url, count=1)
    hub.run_once()  # released to the WMS and Tryton, shipped, written back
    refund = requests.post(f"{sandbox.url}/_sandbox/orders/tmall/{tid}/refund", json={}, timeout=10).json()[
        "refunds"][0]
    requests.post(f"{sandbox.url}/_sandbox/refunds/tmall/{refund['refund_id']}",
                  json={"status": "WAIT_BUYER_RETURN_GOODS"}, timeout=10).raise_for_status()
    code = f"RT-TMALL-{refund['refund_id']}"
    for _ in range(10):  # the refund's changes are stamped after the write-back's second: read until they show
        time.sleep(0.5)
        hub.sync()
        hub.dispatch("wms")
        if code in truth(sandbox.url)["wms"]["returns"]:
            break
    ro = truth(sandbox.url)["wms"]["returns"][code]
    requests.post(f"{sandbox.url}/_sandbox/wms/return/receive", json={"code": code}, timeout=10).raise_for_status()

    hub.feedback()
    hub.feedback()  # the feed read again: nothing recorded twice
    with hub.engine.connect() as conn:
        (receipt,) = conn.execute(sa.select(return_receipts)).all()
        events = conn.execute(sa.select(sa.func.count()).select_from(t.outbox)
                              .where(t.outbox.c.event_type == "return.received")).scalar()
    assert receipt.return_order_code == code and receipt.delivery_order_code == f"TMALL-{tid}" and events == 1

    hub.dispatch("erp")
    hub.dispatch("erp")
    erp = next(s for s in hub.sinks() if s.name == "erp")
    (sale,) = erp.rpc.search_read("sale.sale", [("reference", "=", code)], ["state", "lines", "invoices",
                                                                             "total_amount"])
    (original,) = erp.rpc.search_read("sale.sale", [("reference", "=", f"TMALL-{tid}")], ["lines"])
    assert sale["state"] in ("confirmed", "processing", "done")
    lines = erp.rpc.call("sale.line", "read", sale["lines"], ["quantity", "unit_price"])
    assert sorted(-line["quantity"] for line in lines) == sorted(line["plan_qty"] for line in ro["lines"])
    assert sale["total_amount"] < 0 and sale["invoices"]  # the credit note Tryton made on confirm
    (invoice,) = erp.rpc.call("account.invoice", "read", sale["invoices"], ["total_amount"])
    assert invoice["total_amount"] == sale["total_amount"]
    assert original["lines"]
