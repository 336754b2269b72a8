"""Double 11 stock run: oversell count and the delay from a stock change to every channel being told (p50/p95).

Starts the sandbox in this process and a fresh hub database, counts a scarce pool of SKUs into the ledger, then lets
buyers in every Tmall shop order at ``--rate`` orders/s per shop for ``--duration`` seconds while WMS restock
reports arrive ``--lag`` seconds late; the hub syncs orders and pushes stock in a loop (tests/stock/double11.py has
the details). The same run is repeated with the usual ERP-style push as the reference measured alongside: every
shop told the whole pool, full overwrites.

    .venv/bin/python bench/stock_latency.py --rate 40 --duration 60 --lag 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCARCE = ["SKU-001-RED-M", "SKU-002-BLU-30", "SKU-003-GRY-M", "SKU-004-BLK-M", "SKU-005-WHT-F", "SKU-006-BEI-F"]


def one_run(args, naive: bool):
    from hub.config import load_settings
    from hub.runtime import Hub
    from hub.store import create_engine_for, upgrade
    from sandbox import running_sandbox
    from tests.conftest import write_sandbox_config
    from tests.stock.double11 import run, write_policy

    workdir = Path(tempfile.mkdtemp(prefix="orderhub-stock-bench-"))
    db_url = args.database_url or f"sqlite:///{workdir / 'hub.db'}"
    engine = create_engine_for(db_url)
    upgrade(engine)
    with running_sandbox(seed=args.seed) as sandbox:
        config = write_sandbox_config(workdir / "orderhub.yaml", sandbox.url, db_url)
        hub = Hub(load_settings(config), engine)
        shops = [("tmall", s.shop) for s in hub.settings.enabled_shops() if s.channel == "tmall"]
        skus = SCARCE[:args.skus]
        policy = write_policy(workdir / "stock.yaml", skus, shops, list(sandbox.app.world.catalogue), naive=naive)
        result = run(sandbox, hub, policy, skus=skus, pool=args.pool, rate_per_shop=args.rate,
                     duration_s=args.duration, lag_s=args.lag, restocks=args.restocks, seed=args.seed)
    engine.dispose()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=40, help="buyer attempts per second per shop")
    parser.add_argument("--duration", type=float, default=60, help="seconds of selling")
    parser.add_argument("--lag", type=float, default=5, help="WMS stock report lag in seconds")
    parser.add_argument("--pool", type=int, default=300, help="units per SKU in the pool at the start")
    parser.add_argument("--skus", type=int, default=6, help="scarce SKUs sold (at most 6)")
    parser.add_argument("--restocks", type=int, default=6, help="WMS restock reports during the run")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--database-url", default=None, help="hub database (default: a fresh SQLite file); it is "
                                                             "migrated and must be empty")
    args = parser.parse_args()
    from hub.logging import configure_logging

    configure_logging("WARNING")  # the figures, not a log line per window and push
    print(f"Double 11 stock run: {args.skus} SKU(s) x {args.pool} units, 2 Tmall shops x {args.rate}/s for "
          f"{args.duration}s, stock report lag {args.lag}s")
    rows = []
    for label, naive in (("hub (exclusive pool, deltas)", False), ("reference: full overwrite, shared", True)):
        if naive and args.database_url:
            print("(reference run skipped: it needs a second empty database; omit --database-url)")
            continue
        r = one_run(args, naive)
        sold = sum(sum(v.values()) for v in r.sold.values())
        rows.append((label, r.orders, sold, sum(r.held.values()), r.oversell_count, r.refused, r.cycles,
                     statistics.median(r.delays_s) if r.delays_s else 0.0, r.percentile(0.95), r.untold))
    print(f"{'run':36} {'orders':>7} {'sold':>6} {'held':>6} {'oversold':>8} {'refused':>8} {'cycles':>6} "
          f"{'p50 s':>6} {'p95 s':>6} {'untold':>6}")
    for label, orders, sold, held, over, refused, cycles, p50, p95, untold in rows:
        print(f"{label:36} {orders:7d} {sold:6d} {held:6d} {over:8d} {refused:8d} {cycles:6d} {p50:6.2f} {p95:6.2f} "
              f"{untold:6d}")
    return 0 if rows and rows[0][4] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
