"""Probe before retry (hub.dispatch): an event in doubt is looked up in the target before it is sent again.

The sandbox WMS has no query method, so the Qimen sink has no probe of its own (it relies on the WMS answering a
repeated ``deliveryOrderCode`` with the same document). These tests wrap it in a sink whose probe reads the
sandbox's record of truth, standing in for a target that can be asked.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from hub.connector import Delivery
from hub.dispatch import CLAIM_TIMEOUT, dispatch_sink
from hub.errors import InDoubtError, TransientError
from hub.store import schema as t
from tests.hub.helpers import create_orders, set_faults, truth


class ProbedWms:
    """The Qimen sink with a probe over the sandbox's truth; ``lose`` decides what the first delivery does:
    ``after`` sends and then loses the answer, ``before`` loses the request, ``none`` delivers normally."""

    def __init__(self, inner, sandbox_url: str, lose: str = "after", probe_error: bool = False) -> None:
        self.inner, self.url, self.lose, self.probe_error = inner, sandbox_url, lose, probe_error
        self.name, self.event_types = inner.name, inner.event_types
        self.sent: list[str] = []
        self.probed: list[str] = []

    def idempotency_key(self, order, event):
        return self.inner.idempotency_key(order, event)

    def deliver(self, order, event):
        code = event["payload"]["document"]["document_code"]
        first = code not in self.sent
        self.sent.append(code)
        if first and self.lose == "before":
            raise InDoubtError("request lost", sink=self.name)
        delivery = self.inner.deliver(order, event)
        if first and self.lose == "after":
            raise InDoubtError("answer lost", sink=self.name)
        return delivery

    def probe(self, order, event):
        code = event["payload"]["document"]["document_code"]
        self.probed.append(code)
        if self.probe_error:
            raise TransientError("WMS query down", sink=self.name)
        found = truth(self.url)["wms"]["delivery_orders"].get(code)
        return Delivery(code, detail={"wms_created": found["created"]}) if found and found["created"] else None


def _prepared(hub, sandbox, n: int = 2, **kwargs) -> ProbedWms:
    set_faults(sandbox.url, wms__auto_ship=False)
    create_orders(sandbox.url, count=n)
    hub.sync()
    hub.process()
    return ProbedWms(hub.sinks()[0], sandbox.url, **kwargs)


def _statuses(engine) -> list[str]:
    with engine.connect() as conn:
        return [r.status for r in conn.execute(sa.select(t.dispatches.c.status).order_by(t.dispatches.c.event_id))]


def test_an_event_in_doubt_that_the_target_has_is_found_by_probe_and_not_sent_again(hub, sandbox):
    sink = _prepared(hub, sandbox, lose="after")
    first = dispatch_sink(hub.engine, sink, max_batches=1)  # one pass: the next run comes later
    assert first.in_doubt == 2 and _statuses(hub.engine) == ["in_doubt"] * 2
    second = dispatch_sink(hub.engine, sink)
    assert second.done == 2 and _statuses(hub.engine) == ["done"] * 2
    assert len(sink.sent) == 2 and sorted(sink.probed) == sorted(set(sink.sent))  # probed, never re-sent
    dos = truth(sandbox.url)["wms"]["delivery_orders"]
    assert all(d["received"] == 1 and d["created"] == 1 for d in dos.values())
    with hub.engine.connect() as conn:
        audits = [r.detail for r in conn.execute(sa.select(t.audit_trail.c.detail)
                                                 .where(t.audit_trail.c.action == "dispatch.done"))]
        refs = {r.document_ref for r in conn.execute(sa.select(t.dispatches.c.document_ref))}
    assert len(audits) == 2 and all(a["found_by"] == "probe" for a in audits)
    assert refs == set(dos)


def test_an_event_in_doubt_that_the_target_does_not_have_is_sent_again(hub, sandbox):
    sink = _prepared(hub, sandbox, lose="before")
    assert dispatch_sink(hub.engine, sink, max_batches=1).in_doubt == 2
    assert truth(sandbox.url)["wms"]["delivery_orders"] == {}
    second = dispatch_sink(hub.engine, sink)
    assert second.done == 2 and len(sink.probed) == 2 and len(sink.sent) == 4
    assert all(d["created"] == 1 for d in truth(sandbox.url)["wms"]["delivery_orders"].values())


def test_a_stale_in_flight_claim_is_probed_like_an_event_in_doubt(hub, sandbox):
    sink = _prepared(hub, sandbox, n=1, lose="none")
    dispatch_sink(hub.engine, sink)
    # the dispatcher "died" after the WMS took the document: its claim is left in_flight and grows old
    with hub.engine.begin() as conn:
        conn.execute(sa.update(t.dispatches).values(
            status="in_flight", updated_at=t.utcnow() - CLAIM_TIMEOUT - timedelta(seconds=5)))
    again = dispatch_sink(hub.engine, sink)
    assert again.done == 1 and len(sink.probed) == 1 and len(sink.sent) == 1


def test_a_probe_that_cannot_answer_leaves_the_event_in_doubt_and_sends_nothing(hub, sandbox):
    sink = _prepared(hub, sandbox, n=1, lose="after", probe_error=True)
    dispatch_sink(hub.engine, sink, max_batches=1)
    report = dispatch_sink(hub.engine, sink)  # the probe fails: in doubt again, and the run ends (no spinning)
    assert report.in_doubt == 1 and len(sink.sent) == 1 and _statuses(hub.engine) == ["in_doubt"]
    sink.probe_error = False
    assert dispatch_sink(hub.engine, sink).done == 1 and len(sink.sent) == 1


def test_a_sink_without_probe_still_re_sends_an_event_in_doubt(hub, sandbox):
    """The Qimen sink itself: no probe, the WMS de-duplicates the re-sent deliveryOrderCode."""
    sink = _prepared(hub, sandbox, n=1, lose="after")
    dispatch_sink(hub.engine, sink, max_batches=1)
    plain = hub.sinks()[0]
    assert not hasattr(plain, "probe")
    assert dispatch_sink(hub.engine, plain).done == 1
    (do,) = truth(sandbox.url)["wms"]["delivery_orders"].values()
    assert do["received"] == 2 and do["created"] == 1


def test_a_target_that_stays_in_doubt_ends_the_run_instead_of_being_retried_in_it(hub, sandbox):
    class NeverAnswers(ProbedWms):
        def deliver(self, order, event):
            self.sent.append(event["payload"]["document"]["document_code"])
            raise InDoubtError("no answer", sink=self.name)

    sink = _prepared(hub, sandbox, n=2)
    sink = NeverAnswers(sink.inner, sandbox.url)
    report = dispatch_sink(hub.engine, sink)
    assert report.in_doubt == 2 and len(sink.sent) == 2  # once each; the next run probes them
    assert _statuses(hub.engine) == ["in_doubt"] * 2
