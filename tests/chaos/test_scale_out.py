"""Scale-out: two worker processes at once against one store, syncing disjoint shops and dispatching the same
sinks concurrently. Row-level claims (hub/dispatch.py: the unique (sink, event) row) mean no event is sent twice:
the sandbox's record of truth shows every delivery order received once and every shipment written back once.

Runs on SQLite (two processes, one file) and on MariaDB (the production shape: see docker/README.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter

import requests
import sqlalchemy as sa

from hub.store import schema as t
from tests.chaos.harness import ROOT
from tests.conftest import write_sandbox_config
from tests.hub.helpers import create_orders, set_faults, truth

# One worker per shop; both process, dispatch to the WMS and write back to TOP. The WMS confirm feed is a single
# sequential cursor: one worker polls it (an Airflow pool of one slot per feed, see docker/README.md). Each worker
# goes on until the sandbox shows every order written back (or 20 rounds).
WORKER = textwrap.dedent("""\
    import json, sys, time
    import requests
    from hub.config import load_settings
    from hub.runtime import Hub

    config, shop, go_at, polls_feed, expected, sandbox = sys.argv[1:7]
    worker = Hub(load_settings(config))
    totals = {"synced": 0, "delivered": 0, "written_back": 0, "rounds": 0}
    time.sleep(max(0.0, float(go_at) - time.time()))  # both workers start their first round together
    for _ in range(20):
        totals["rounds"] += 1
        totals["synced"] += sum(r.result.new for r in worker.sync(shop=shop))
        worker.process()
        totals["delivered"] += sum(r.done for r in worker.dispatch(process_first=False))
        if polls_feed == "1":
            worker.feedback()
        totals["written_back"] += worker.writeback().done
        told = requests.get(sandbox + "/_sandbox/truth", timeout=30).json()["writebacks"].get("tmall", {})
        if sum(1 for w in told.values() if w.get("accepted")) >= int(expected):
            break
    print(json.dumps(totals))
    """)


def test_two_workers_on_disjoint_shops_dispatching_the_same_sinks_send_no_event_twice(
        tmp_path, sandbox, db_url, engine):
    per_shop = 30
    flagship = create_orders(sandbox.url, count=per_shop)
    outlet = create_orders(sandbox.url, shop="tm-outlet", count=per_shop)
    set_faults(sandbox.url, wms__latency_ms=15)  # widen the window in which both could pick the same event
    config = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, page_size=10)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ORDERHUB_DATABASE_URL": db_url}
    go_at = time.time() + 2.0
    workers = [subprocess.Popen([sys.executable, str(script), str(config), shop, str(go_at), polls_feed,
                                 str(2 * per_shop), sandbox.url], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
               for shop, polls_feed in (("tm-flagship", "1"), ("tm-outlet", "0"))]
    outputs = [w.communicate(timeout=240) for w in workers]
    print("scale-out workers:", [out.decode().strip().splitlines()[-1:] for out, _err in outputs])
    for worker, (_out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err.decode(errors="replace")[-3000:]
    totals = [json.loads(out.decode().strip().splitlines()[-1]) for out, _err in outputs]
    assert [x["synced"] for x in totals] == [per_shop, per_shop]  # each synced its own shop

    state = truth(sandbox.url)
    deliveries = state["wms"]["delivery_orders"]
    assert len(deliveries) == 2 * per_shop
    assert all(d["received"] == 1 and d["created"] == 1 for d in deliveries.values())  # nothing sent twice
    covered = {code for d in deliveries.values() for code in d["source_order_codes"]}
    assert covered == set(flagship) | set(outlet)
    writebacks = state["writebacks"]["tmall"]
    assert all(writebacks[tid]["accepted"] == 1 for tid in flagship + outlet)
    # both workers delivered: the work was shared, not serialised behind one of them
    assert sum(x["delivered"] for x in totals) == 2 * per_shop and min(x["delivered"] for x in totals) > 0
    assert sum(x["written_back"] for x in totals) == 2 * per_shop
    with engine.connect() as conn:
        done = Counter((actor, detail["event_id"]) for actor, detail in conn.execute(
            sa.select(t.audit_trail.c.actor, t.audit_trail.c.detail).where(t.audit_trail.c.action == "dispatch.done")))
        claims = conn.execute(sa.select(t.dispatches.c.sink, t.dispatches.c.event_id)).all()
    assert all(n == 1 for n in done.values()) and len(claims) == len(set(claims))
    requests.post(f"{sandbox.url}/_sandbox/faults", json={"wms.latency_ms": 0}, timeout=10)


DISPATCHER = textwrap.dedent("""\
    import sys, time
    from hub.config import load_settings
    from hub.runtime import Hub

    worker = Hub(load_settings(sys.argv[1]))
    time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
    print(sum(r.done for r in worker.dispatch(process_first=False)))
    """)


def test_two_dispatchers_started_together_on_the_same_pending_events_send_each_event_once(
        tmp_path, sandbox, db_url, hub):
    set_faults(sandbox.url, wms__auto_ship=False, wms__latency_ms=10)
    tids = create_orders(sandbox.url, count=25) + create_orders(sandbox.url, shop="tm-outlet", count=25)
    hub.sync()
    hub.process()  # 50 released orders wait in the outbox for the WMS
    script = tmp_path / "dispatcher.py"
    script.write_text(DISPATCHER)
    config = write_sandbox_config(tmp_path / "workers.yaml", sandbox.url, db_url)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ORDERHUB_DATABASE_URL": db_url}
    go_at = time.time() + 1.5
    workers = [subprocess.Popen([sys.executable, str(script), str(config), str(go_at)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [w.communicate(timeout=240) for w in workers]
    for worker, (_out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err.decode(errors="replace")[-3000:]
    done = [int(out.decode().strip().splitlines()[-1]) for out, _err in outputs]
    print("two dispatchers, events each:", done)
    assert sum(done) == len(tids) and min(done) > 0  # both took a share, together exactly one send per event
    deliveries = truth(sandbox.url)["wms"]["delivery_orders"]
    assert len(deliveries) == len(tids)
    assert all(d["received"] == 1 for d in deliveries.values())
    requests.post(f"{sandbox.url}/_sandbox/faults", json={"wms.latency_ms": 0}, timeout=10)
