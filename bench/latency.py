"""Latency paid on the channel -> delivery order created in the WMS, without Airflow, through two paths:

    push   ``Hub.intake_pushes()`` in a loop (TMC messages -> trade.fullinfo.get -> ingest)
    poll   ``Hub.sync()`` (windowed pull, lag 0) every ``--interval`` seconds
    and, in a second thread for both, ``Hub.dispatch()`` (process + deliver to the WMS) whenever there is work

The sandbox runs in this process so the probe can see the WMS book directly: N probe orders are paid one at a time at
random gaps; a watcher thread notes (every 10 ms) when each first exists as a *created* delivery order in the
simulated Qimen WMS. Each path is measured at several background loads: the sandbox's peak generator places
``--loads`` orders/s of other orders meanwhile, which the same loop has to take in and deliver too. Airflow's own
figure is bench/airflow_nrt_latency.py.

    .venv/bin/python bench/latency.py --orders 200 --loads 0 100 300 --interval 1
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402 - the path above makes bench/ and the project importable
    SHANGHAI,
    fresh_database,
    hub_for,
    percentile,
    quiet_logs,
    save_result,
    workdir,
)


class WmsWatcher:
    """Notes when each source order first appears in a created delivery order of the sandbox's WMS."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: dict[str, float] = {}
        self._done_codes: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wms-watcher", daemon=True)

    def __enter__(self) -> WmsWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            with self.app.lock:
                fresh = [(code, record) for code, record in self.app.wms.delivery_orders.items()
                         if code not in self._done_codes and record.created >= 1]
                sources = [(code, [line.source_order_code for line in record.lines]) for code, record in fresh]
            for code, tids in sources:
                self._done_codes.add(code)
                for tid in tids:
                    if tid:
                        self.seen.setdefault(str(tid), now)
            self._stop.wait(0.01)


class Loop:
    """The hub's steps in two background threads, as the Airflow DAGs run them (taking in and delivering are separate
    tasks): one takes in (push: ``intake_pushes`` in short batches; poll: ``sync`` every ``interval`` seconds), the
    other processes and dispatches whatever is new."""

    def __init__(self, hub: Any, mode: str, interval: float) -> None:
        self.hub, self.mode, self.interval = hub, mode, interval
        self.rounds = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._take_in, name=f"hub-{mode}", daemon=True),
                         threading.Thread(target=self._deliver, name="hub-dispatch", daemon=True)]

    def __enter__(self) -> Loop:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _take_in(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if self.mode == "push":
                    # a few batches of 100 messages per call, so each call commits and confirms promptly
                    self.hub.intake_pushes(max_batches=2)
                else:
                    self.hub.sync()
            except Exception as exc:  # a transient fault must not end the measurement; it shows in the report
                self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
            self.rounds += 1
            pause = self.interval - (time.monotonic() - started) if self.mode == "poll" else 0.05
            if pause > 0:
                self._stop.wait(pause)

    def _deliver(self) -> None:
        while not self._stop.is_set():
            try:
                handled = sum(report.handled for report in self.hub.dispatch())
            except Exception as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                handled = 0
            if not handled:
                self._stop.wait(0.05)


def measure(mode: str, load: float, args: argparse.Namespace, db: str) -> dict[str, Any]:
    from sandbox import running_sandbox

    rng = random.Random(args.seed)
    with workdir(f"orderhub_bench_latency_{mode}_") as work, running_sandbox(seed=args.seed) as sbx:
        db_url = fresh_database(db, work)
        hub = hub_for(sbx.url, db_url, work, initial_lookback_hours=1, lag_seconds=0, overlap_seconds=args.overlap)
        if mode == "push":
            hub.intake_pushes()  # the shops' permits: only changes after them are pushed
        else:
            hub.sync()  # the first run reads the (empty) lookback; the measurement starts from a settled cursor
        paid: dict[str, float] = {}
        shops = list(sbx.app.world.shops)
        if mode == "direct":
            return direct(hub, sbx.app, shops, args, db)
        with WmsWatcher(sbx.app) as watcher, Loop(hub, mode, args.interval) as loop:
            if load:
                sbx.app.peak.start(load, args.orders * (args.min_gap + args.max_gap) / 2 + 30)
            for number in range(args.orders):
                at = datetime.now(SHANGHAI)
                (tid,) = sbx.app.create_tmall_orders(shops[number % len(shops)], 1, at=at)
                paid[tid] = at.timestamp()
                time.sleep(rng.uniform(args.min_gap, args.max_gap))
            peak = sbx.app.peak.stop() if load else {"achieved_rate": 0.0, "total": 0}
            deadline = time.time() + 120
            while time.time() < deadline and not set(paid) <= set(watcher.seen):
                time.sleep(0.1)
        hub.engine.dispose()
    latencies = [watcher.seen[t] - paid[t] for t in paid if t in watcher.seen]
    return {
        "mode": mode, "db": db, "background_load_per_s": load, "achieved_load_per_s": peak["achieved_rate"],
        "background_orders": peak["total"], "orders": len(paid), "delivered": len(latencies),
        "interval_s": args.interval if mode == "poll" else None, "loop_rounds": loop.rounds,
        "loop_errors": loop.errors[:5],
        "p50_s": round(percentile(latencies, 0.50), 3), "p95_s": round(percentile(latencies, 0.95), 3),
        "max_s": round(max(latencies), 3) if latencies else None,
        "mean_s": round(statistics.mean(latencies), 3) if latencies else None,
    }


def direct(hub: Any, app: Any, shops: list[str], args: argparse.Namespace, db: str) -> dict[str, Any]:
    """The reference: the same work done synchronously for one order at a time (fetch by id, ingest, process,
    dispatch), with no waiting for a loop: the floor the two paths' latency sits on."""
    latencies = []
    for number in range(min(args.orders, 50)):
        shop = shops[number % len(shops)]
        at = datetime.now(SHANGHAI)
        (tid,) = app.create_tmall_orders(shop, 1, at=at)
        hub.sync_order_ids("tmall", shop, [tid])
        hub.dispatch()
        done = time.time()
        with app.lock:
            found = any(str(line.source_order_code) == tid for record in app.wms.delivery_orders.values()
                        if record.created >= 1 for line in record.lines)
        if found:
            latencies.append(done - at.timestamp())
    hub.engine.dispose()
    return {"mode": "direct", "db": db, "background_load_per_s": 0, "achieved_load_per_s": 0.0,
            "background_orders": 0, "orders": min(args.orders, 50), "delivered": len(latencies), "interval_s": None,
            "loop_rounds": 0, "loop_errors": [],
            "p50_s": round(percentile(latencies, 0.50), 3), "p95_s": round(percentile(latencies, 0.95), 3),
            "max_s": round(max(latencies), 3) if latencies else None,
            "mean_s": round(statistics.mean(latencies), 3) if latencies else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=200, help="probe orders per (mode, load)")
    parser.add_argument("--loads", type=float, nargs="+", default=[0, 100, 300], help="background orders/s")
    parser.add_argument("--modes", nargs="+", default=["push", "poll"], choices=["push", "poll"])
    parser.add_argument("--interval", type=float, default=1.0, help="poll: seconds between sync starts")
    parser.add_argument("--overlap", type=int, default=2,
                        help="poll: sync.overlap_seconds; the sandbox config's 120 s re-reads 2 min of orders per "
                             "round, which at 100 orders/s costs more than the round itself")
    parser.add_argument("--min-gap", type=float, default=0.05)
    parser.add_argument("--max-gap", type=float, default=0.45)
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "mariadb"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--name", default="latency")
    args = parser.parse_args()
    quiet_logs()
    runs = []
    print(f"{'path':<6}{'load/s':>8}{'achieved':>10}{'orders':>8}{'p50 s':>9}{'p95 s':>9}{'max s':>9}{'rounds':>8}")
    reference = measure("direct", 0, args, args.db)
    print(f"{'direct':<6}{0:>8}{0:>10.1f}{reference['delivered']:>5}/{reference['orders']:<3}"
          f"{reference['p50_s']:>8.2f}{reference['p95_s']:>9.2f}{reference['max_s'] or float('nan'):>9.2f}"
          "  <- reference: fetch by id + ingest + process + dispatch, synchronously, one order at a time")
    for mode in args.modes:
        for load in args.loads:
            run = measure(mode, load, args, args.db)
            runs.append(run)
            print(f"{mode:<6}{load:>8.0f}{run['achieved_load_per_s']:>10.1f}{run['delivered']:>5}/{run['orders']:<3}"
                  f"{run['p50_s']:>8.2f}{run['p95_s']:>9.2f}{run['max_s'] or float('nan'):>9.2f}"
                  f"{run['loop_rounds']:>8}" + (f"  errors: {run['loop_errors']}" if run["loop_errors"] else ""))
    path = save_result(args.name, {"command": " ".join(["bench/latency.py", *sys.argv[1:]]), "runs": runs,
                                   "reference": reference})
    print(f"results: {path}")
    return 0 if all(r["delivered"] == r["orders"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
