"""Tryton sink against a real trytond 8.2 (JSON-RPC, SQLite): one confirmed sale per released document, read back
from Tryton, even when the answer of every first create/quote/confirm is lost."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from connectors.tryton.client import TrytonRPC, TrytonUserError, classify
from connectors.tryton.sink import TrytonSink
from hub.dispatch import dispatch_sink, replay_parked
from hub.errors import ConfigurationError, InDoubtError, TransientError
from hub.store import schema as t
from tests.hub.helpers import create_orders, set_faults


def _released(engine) -> dict[str, dict]:
    """document code -> fulfilment group, as processing released them."""
    with engine.connect() as conn:
        payloads = [r.payload for r in conn.execute(sa.select(t.outbox.c.payload)
                                                    .where(t.outbox.c.event_type == "order.released"))]
    return {p["document"]["document_code"]: p["document"] for p in payloads}


def _reader(hub) -> TrytonRPC:
    (settings,) = [s for s in hub.settings.sinks if s.name == "erp"]
    return TrytonRPC(settings)


def _sales(rpc: TrytonRPC) -> list[dict]:
    return rpc.search_read("sale.sale", [], ["reference", "state", "party", "lines", "total_amount", "shipments"])


def _check_sales_match_the_documents(hub, groups: dict[str, dict]) -> list[dict]:
    rpc = _reader(hub)
    sales = _sales(rpc)
    assert sorted(s["reference"] for s in sales) == sorted(groups)  # exactly one sale per document
    for sale in sales:
        group = groups[sale["reference"]]
        assert sale["state"] == "processing" and sale["shipments"]  # confirmed: shipment created
        lines = rpc.search_read("sale.line", [("sale", "=", sale["id"])], ["product", "quantity", "unit_price"])
        codes = {p["id"]: p["code"] for p in rpc.search_read(
            "product.product", [("id", "in", [ln["product"] for ln in lines])], ["code"])}
        assert sorted((codes[ln["product"]], int(ln["quantity"])) for ln in lines) == sorted(
            (ln["master_sku"], ln["qty"]) for ln in group["lines"])
        paid = Decimal(sum(ln["allocated_paid_fen"] for ln in group["lines"])) / 100
        assert abs(sale["total_amount"] - paid) <= Decimal("0.01")
    return sales


# -- classify (pure) --------------------------------------------------------------------------------------------

def test_classify_reads_results_and_tells_errors_apart():
    assert classify("m", 200, json.dumps({"id": 1, "result": {"__class__": "Decimal", "decimal": "1.50"}})) \
        == Decimal("1.50")
    with pytest.raises(TrytonUserError):
        classify("m", 200, json.dumps({"id": 1, "error": ["UserError", ["you must enter an invoice address",
                                                                        "", None]]}))
    with pytest.raises(TransientError):
        classify("m", 403, "")
    with pytest.raises(ConfigurationError):
        classify("m", 200, json.dumps({"id": 1, "error": ["'res.user'", ""]}))


# -- against trytond --------------------------------------------------------------------------------------------

def test_each_released_order_becomes_one_confirmed_sale_read_back_from_tryton(tryton_hub, sandbox):
    hub = tryton_hub()
    set_faults(sandbox.url, wms__auto_ship=False)
    create_orders(sandbox.url, count=3)
    hub.sync()
    reports = {r.sink: r for r in hub.dispatch("erp")}
    assert reports["erp"].done == 3
    sales = _check_sales_match_the_documents(hub, _released(hub.engine))
    rpc = _reader(hub)
    (party,) = rpc.search_read("party.party", [("id", "in", list({s["party"] for s in sales}))], ["code"])
    assert party["code"] == "TMALL-TM-FLAGSHIP"
    with hub.engine.connect() as conn:
        refs = {r.document_ref for r in conn.execute(sa.select(t.dispatches.c.document_ref)
                                                     .where(t.dispatches.c.sink == "erp"))}
    assert refs == {s["reference"] for s in sales}


class DroppingRPC(TrytonRPC):
    """Every first create/quote/confirm call with given arguments takes effect, then its answer is lost."""

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.seen: set[str] = set()
        self.dropped = 0

    def call(self, model, method, *args, write=False):
        result = super().call(model, method, *args, write=write)
        key = json.dumps([model, method, args], default=str, sort_keys=True)
        if method in ("create", "quote", "confirm") and key not in self.seen:
            self.seen.add(key)
            self.dropped += 1
            raise InDoubtError(f"answer of {model}.{method} lost", sink=self.settings.name)
        return result


def test_a_lost_answer_on_every_first_create_and_confirm_still_leaves_one_sale_per_order(tryton_hub, sandbox):
    hub = tryton_hub()
    set_faults(sandbox.url, wms__auto_ship=False)
    create_orders(sandbox.url, count=3)
    hub.sync()
    hub.process()
    (settings,) = [s for s in hub.settings.sinks if s.name == "erp"]
    rpc = DroppingRPC(settings)
    sink = TrytonSink(settings, rpc=rpc)
    dispatch_sink(hub.engine, sink)
    dispatch_sink(hub.engine, sink)  # whatever stayed in doubt is probed, then finished
    assert rpc.dropped >= 3 * 3  # party/product creates + for each sale: create, quote, confirm
    _check_sales_match_the_documents(hub, _released(hub.engine))
    with hub.engine.connect() as conn:
        statuses = [r.status for r in conn.execute(sa.select(t.dispatches.c.status)
                                                   .where(t.dispatches.c.sink == "erp"))]
    assert statuses == ["done"] * 3
    rpc2 = _reader(hub)
    assert len(rpc2.search_read("party.party", [("code", "=", "TMALL-TM-FLAGSHIP")], ["id"])) == 1


def test_an_event_in_doubt_after_confirm_took_effect_is_found_by_probe(tryton_hub, sandbox):
    hub = tryton_hub()
    set_faults(sandbox.url, wms__auto_ship=False)
    create_orders(sandbox.url, count=1)
    hub.sync()
    hub.process()
    (settings,) = [s for s in hub.settings.sinks if s.name == "erp"]

    class LoseConfirm(TrytonRPC):
        """confirm takes effect, its answer is lost, and Tryton is unreachable for the rest of the run"""
        down = False

        def call(self, model, method, *args, write=False):
            if self.down:
                raise TransientError("cannot reach Tryton", sink="erp")
            result = super().call(model, method, *args, write=write)
            if method == "confirm":
                self.down = True
                raise InDoubtError("answer of confirm lost", sink="erp")
            return result

    first = dispatch_sink(hub.engine, TrytonSink(settings, rpc=LoseConfirm(settings)), max_batches=1)
    assert first.in_doubt == 1
    again = dispatch_sink(hub.engine, TrytonSink(settings))
    assert again.done == 1
    with hub.engine.connect() as conn:
        detail = conn.execute(sa.select(t.audit_trail.c.detail).where(
            t.audit_trail.c.action == "dispatch.done", t.audit_trail.c.actor == "erp")).scalar_one()
    assert detail["found_by"] == "probe"
    _check_sales_match_the_documents(hub, _released(hub.engine))


def test_replaying_the_whole_outbox_from_position_zero_creates_no_new_sale(tryton_hub, sandbox):
    hub = tryton_hub()
    set_faults(sandbox.url, wms__auto_ship=False)
    create_orders(sandbox.url, count=2)
    hub.sync()
    hub.dispatch("erp")
    before = {s["reference"]: s["id"] for s in _sales(_reader(hub))}
    with hub.engine.begin() as conn:
        conn.execute(sa.delete(t.dispatches).where(t.dispatches.c.sink == "erp"))
        conn.execute(sa.delete(t.subscriptions).where(t.subscriptions.c.name == "erp"))
    (report,) = hub.dispatch("erp")
    assert report.done == 2
    assert {s["reference"]: s["id"] for s in _sales(_reader(hub))} == before and len(before) == 2


def test_parties_per_buyer_and_a_missing_product_refused_when_creation_is_off(tryton_hub, sandbox):
    hub = tryton_hub(party_by="buyer", create_products=False)
    set_faults(sandbox.url, wms__auto_ship=False)
    create_orders(sandbox.url, count=2)
    hub.sync()
    (report,) = hub.dispatch("erp")
    assert report.parked == 2 and report.done == 0  # no product in Tryton for the master SKUs
    with hub.engine.connect() as conn:
        errors = [r.last_error for r in conn.execute(sa.select(t.dispatches.c.last_error)
                                                     .where(t.dispatches.c.sink == "erp"))]
    assert all(e["kind"] == "record" and "no product with code" in e["message"] for e in errors)
    assert _sales(_reader(hub)) == []
    # the engineer switches creation on (or maps the SKUs) and replays the parked events
    hub = tryton_hub(party_by="buyer")
    assert replay_parked(hub.engine, "erp") == 2
    assert hub.dispatch("erp")[0].done == 2
    sales = _check_sales_match_the_documents(hub, _released(hub.engine))
    parties = _reader(hub).search_read("party.party", [("id", "in", [s["party"] for s in sales])], ["code"])
    assert parties and all(p["code"].startswith("TMALL-B-") for p in parties)
