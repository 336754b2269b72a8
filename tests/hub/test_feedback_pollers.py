"""Ship confirmations are recorded once, even when two processes poll the same WMS feed at the same moment."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from connectors.registry import SINKS
from hub.feedback import record_confirm
from hub.store import schema as t
from tests.hub.helpers import create_orders


def test_two_pollers_recording_the_same_confirmation_at_once_record_it_once(hub, sandbox, engine):
    create_orders(sandbox.url, count=1)
    hub.sync()
    hub.dispatch()
    wms = hub.settings.enabled_sinks()[0]
    items = [i for i in SINKS[wms.kind].poll_feedback(wms, 0) if i.confirm is not None]
    assert items, "the sandbox WMS ships at once and reports it"
    confirm = items[0].confirm
    start = threading.Barrier(2)
    results: list[str] = []

    def poller() -> None:
        start.wait()
        results.append(record_confirm(engine, confirm))

    threads = [threading.Thread(target=poller) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["duplicate", "recorded"]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.shipments)).scalar() == 1
