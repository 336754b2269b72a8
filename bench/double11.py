"""Double 11: the sandbox's peak generator places ``--rate`` orders/s for ``--duration`` s across every channel that
has both a connector (connectors/registry.py) and a sandbox shop builder, with TOP's degraded-list mode on (a share
of list records come without lines or receiver and must be completed by id). One hub process keeps up as a cron-less
worker would: sync every shop, then process + dispatch to the WMS, again and again, until the backlog is drained.

Afterwards, against the sandbox's record of truth (``GET /_sandbox/truth``):

    lost        orders the channels hold that are not in the hub / have no created delivery order in the WMS (store
                sales excepted: carried out at the till, they never go to a WMS)
    duplicated  delivery orders created more than once, and orders in more than one delivery order
    oversold    not here: bench/stock_latency.py (the stock room's) has buyers limited by what the hub told the shelves
    drained     seconds from the end of the peak until the hub had taken in and delivered everything

The reference measured in the same run is the generator's own achieved rate (what the channels produced). The
sandbox runs in a child process (its generator and HTTP serving do not share this process's interpreter).

    .venv/bin/python bench/double11.py --rate 1000 --duration 60 --db sqlite
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402 - the path above makes bench/ and the project importable
    SandboxProcess,
    fresh_database,
    hub_for,
    peak_rss_mb,
    quiet_logs,
    registered_sandbox_channels,
    save_result,
    workdir,
)

# Store sales are paid and carried out at the till (connectors/pos/README.md): they are taken in, never sent to a WMS.
FULFILLED_AT_SOURCE = frozenset({"pos"})


def hub_counts(engine: Any) -> tuple[int, int]:
    """(orders in the hub, delivery orders dispatched) right now."""
    import sqlalchemy as sa

    from hub.store import schema as t

    with engine.connect() as conn:
        orders = conn.execute(sa.select(sa.func.count()).select_from(t.orders)).scalar() or 0
        done = conn.execute(sa.select(sa.func.count()).select_from(t.dispatches)
                            .where(t.dispatches.c.status == "done")).scalar() or 0
    return int(orders), int(done)


def against_truth(truth: dict[str, Any], engine: Any) -> dict[str, Any]:
    import sqlalchemy as sa

    from hub.store import schema as t

    expected: set[tuple[str, str, str]] = set()
    malformed = 0
    for channel, shops in truth["channels"].items():
        for shop, data in shops.items():
            for order_id, order in (data.get("orders") or {}).items():
                if order.get("malformed"):
                    malformed += 1
                else:
                    expected.add((channel, shop, str(order_id)))
    with engine.connect() as conn:
        rows = [(r.channel, r.shop, r.order_id) for r in conn.execute(
            sa.select(t.orders.c.channel, t.orders.c.shop, t.orders.c.order_id))]
    in_hub = set(rows)
    sources: Counter[str] = Counter()
    created_twice = 0
    for record in truth["wms"]["delivery_orders"].values():
        if record["created"] >= 1:
            sources.update(str(code) for code in record["source_order_codes"])
        created_twice += record["created"] > 1
    expected_ids = {order_id for channel, _s, order_id in expected if channel not in FULFILLED_AT_SOURCE}
    return {
        "channel_orders": len(expected), "malformed_in_channels": malformed, "hub_orders": len(rows),
        "lost_in_hub": len(expected - in_hub), "duplicated_in_hub": len(rows) - len(in_hub),
        "to_deliver": len(expected_ids), "delivered": len(expected_ids & set(sources)),
        "lost_in_wms": len(expected_ids - set(sources)),
        "duplicated_in_wms": created_twice + sum(1 for n in sources.values() if n > 1),
        "lost_examples": sorted(expected_ids - set(sources))[:5],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--degraded-ratio", type=float, default=0.3, help="share of list records degraded")
    parser.add_argument("--db", default="sqlite", choices=["sqlite", "mariadb"])
    parser.add_argument("--drain-timeout", type=float, default=1200, help="give up draining after this many s")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--name", default=None, help="results file (default double11_<db>)")
    args = parser.parse_args()
    quiet_logs()
    channels = registered_sandbox_channels()
    with workdir("orderhub_bench_double11_") as work, SandboxProcess(args.seed) as sbx:
        db_url = fresh_database(args.db, work)
        # lag 2 s: a second is complete before it is read, so a 2 s overlap is enough (the sandbox indexes at once)
        hub = hub_for(sbx.url, db_url, work, channels=channels, initial_lookback_hours=1, lag_seconds=2,
                      overlap_seconds=2, window_minutes=30)
        hub.sync()
        sbx.admin("faults", {"top.degraded_list": {"calls": 10**7, "ratio": args.degraded_ratio}})
        weights = {channel: 1 for channel in channels}
        sbx.admin("peak", {"rate": args.rate, "duration_s": args.duration, "channels": weights})
        started = time.monotonic()
        series: list[dict[str, Any]] = []
        peak: dict[str, Any] = {}
        peak_end: float | None = None
        last_busy = started
        rounds = errors = idle_rounds = 0
        while True:
            round_start = time.monotonic()
            busy = False
            try:
                for report in hub.sync():
                    busy |= bool(report.result.new or report.result.changed)
                for report in hub.dispatch():
                    busy |= bool(report.handled)
            except Exception as exc:  # a transient fault ends a round, not the run; counted in the results
                errors += 1
                busy = True
                print(f"round error: {type(exc).__name__}: {str(exc)[:160]}", file=sys.stderr)
            rounds += 1
            now = time.monotonic()
            if busy:
                last_busy = now
            peak = sbx.admin("peak", method="GET")
            orders, delivered = hub_counts(hub.engine)
            series.append({"t_s": round(now - started, 2), "created": peak["total"], "in_hub": orders,
                           "delivery_orders": delivered})
            print(f"t={now - started:7.1f}s  created {peak['total']:>7,}  in hub {orders:>7,}  "
                  f"delivery orders {delivered:>7,}  round {now - round_start:5.1f}s", flush=True)
            if not peak["running"] and peak_end is None:
                peak_end = started + float(peak["elapsed_s"])
            idle_rounds = 0 if busy else idle_rounds + 1
            # drained: the peak is over, every order is in, and three rounds in a row found nothing to do (one
            # delivery order may carry several orders of one buyer, so delivery orders are not counted against it)
            if peak_end is not None and idle_rounds >= 3 and orders >= peak["total"]:
                break
            if not busy:
                time.sleep(0.2)
            if peak_end is not None and now - peak_end > args.drain_timeout:
                print("drain timeout reached", file=sys.stderr)
                break
        truth = sbx.admin("truth", method="GET")
        check = against_truth(truth, hub.engine)
        hub.engine.dispose()
    drained_s = round(max(0.0, last_busy - (peak_end or last_busy)), 1)
    result = {
        "command": " ".join(["bench/double11.py", *sys.argv[1:]]), "db": args.db, "channels": list(channels),
        "rate_asked": args.rate, "duration_s": args.duration, "degraded_ratio": args.degraded_ratio,
        "reference_generator": {"achieved_rate": peak.get("achieved_rate"), "created": peak.get("created"),
                                "total": peak.get("total"), "errors": peak.get("errors")},
        "rounds": rounds, "round_errors": errors, "backlog_drained_s": drained_s,
        "hub_rate_overall": round((peak.get("total") or 0) / max(last_busy - started, 1e-9), 1),
        "oversold": "not measured here: bench/stock_latency.py (stock room) runs buyers against the shelves the hub "
                    "told and counts oversold units",
        "peak_rss_mb": peak_rss_mb(), **check, "series": series,
    }
    print(f"\nDouble 11 on {args.db}, channels {', '.join(channels)}, degraded lists {args.degraded_ratio:.0%}")
    print(f"  reference: generator achieved {result['reference_generator']['achieved_rate']} orders/s, "
          f"{result['reference_generator']['total']:,} orders")
    print(f"  hub: {result['hub_rate_overall']} orders/s taken in and delivered overall (peak + drain)")
    print(f"  lost in hub {check['lost_in_hub']}, lost in WMS {check['lost_in_wms']}, duplicated in hub "
          f"{check['duplicated_in_hub']}, duplicated in WMS {check['duplicated_in_wms']}, oversold: not measured")
    print(f"  backlog drained {drained_s} s after the peak ended; peak RSS {result['peak_rss_mb']} MB")
    path = save_result(args.name or f"double11_{args.db}", result)
    print(f"results: {path}")
    return 0 if check["lost_in_wms"] == 0 and check["duplicated_in_wms"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
