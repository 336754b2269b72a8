"""Double 11 stock run over every selling channel: oversell count, the delay from a stock change to every channel
being told (p50/p95), shipped orders written back per channel, pre-ship refunds intercepted.

Starts the sandbox in this process and a fresh hub database, counts a scarce pool of SKUs into the ledger (WMS
``WH01`` plus each POS store's shelf), then lets buyers in every Tmall, JD and WeChat shop and at every POS store
order at ``--rate`` orders/s per shop for ``--duration`` seconds (only while their shelf shows stock) while WMS
restock reports arrive ``--lag`` seconds late and ``--refund-share`` of online orders are refunded while their
delivery order waits in the WMS. The hub syncs, pushes stock, releases to the WMS, ships (the loop ships what is not
to be refunded), reads confirms and writes back in a loop (tests/stock/double11.py has the details). The same run is
repeated with the usual ERP-style push as the reference measured alongside: every shop told the whole pool, full
overwrites. Figures go to ``bench/results/stock_double11.json``.

    .venv/bin/python bench/stock_latency.py --rate 20 --duration 60 --lag 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCARCE = ["SKU-001-RED-M", "SKU-002-BLU-30", "SKU-003-GRY-M", "SKU-004-BLK-M", "SKU-005-WHT-F", "SKU-006-BEI-F"]
OUT = ROOT / "bench" / "results" / "stock_double11.json"


def one_run(args, naive: bool):
    from hub.config import load_settings
    from hub.runtime import Hub
    from hub.store import create_engine_for, upgrade
    from sandbox import running_sandbox
    from tests.stock.double11 import CHANNELS, run, write_config, write_policy

    workdir = Path(tempfile.mkdtemp(prefix="orderhub-stock-bench-"))
    db_url = args.database_url or f"sqlite:///{workdir / 'hub.db'}"
    engine = create_engine_for(db_url)
    upgrade(engine)
    with running_sandbox(seed=args.seed) as sandbox:
        hub = Hub(load_settings(write_config(workdir / "orderhub.yaml", sandbox.url, db_url)), engine)
        shops = [(s.channel, s.shop) for s in hub.settings.enabled_shops() if s.channel in CHANNELS]
        skus = SCARCE[:args.skus]
        policy = write_policy(workdir / "stock.yaml", sandbox.app, skus, shops, pool=args.pool,
                              store_stock=args.store_stock, naive=naive)
        result = run(sandbox, hub, policy, skus=skus, pool=args.pool, store_stock=args.store_stock,
                     rate_per_shop=args.rate, duration_s=args.duration, lag_s=args.lag, restocks=args.restocks,
                     refund_share=args.refund_share, seed=args.seed, settle_max_s=args.settle)
    engine.dispose()
    return result, len(shops)


def figures(result) -> dict:
    sold = result.sold_by_channel()
    told = result.told_by_channel()
    return {
        "orders": result.orders, "units_sold": sum(sold.values()), "pool_held": sum(result.held.values()),
        "oversold": result.oversell_count, "oversold_by_sku": result.oversold, "refused": result.refused,
        "per_channel": {c: {"orders": result.orders.get(c, 0), "units_sold": sold.get(c, 0),
                            "pushes_acknowledged": told.get(c, 0), "oversold": result.oversold_by_channel.get(c, 0),
                            "shipped": result.shipped.get(c),
                            "written_back": result.written_back.get(c)} for c in result.orders},
        "change_to_every_channel_told_s": {
            "p50": round(statistics.median(result.delays_s), 3) if result.delays_s else None,
            "p95": round(result.percentile(0.95), 3), "changes": len(result.delays_s), "untold": result.untold},
        "push_cycles": result.cycles, "pushes": result.pushes, "rejected": result.rejected,
        "refunds_before_shipment": result.refunds, "intercepted": result.intercepted,
        "not_intercepted": result.not_intercepted,
        "duplicated": result.duplicated, "duration_s": round(result.duration_s, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20, help="buyer attempts per second per shop or store")
    parser.add_argument("--duration", type=float, default=60, help="seconds of selling")
    parser.add_argument("--lag", type=float, default=5, help="WMS stock report lag in seconds")
    parser.add_argument("--pool", type=int, default=300, help="units per SKU in the WMS at the start")
    parser.add_argument("--store-stock", type=int, default=20, help="units per SKU on each store's shelf")
    parser.add_argument("--skus", type=int, default=6, help="scarce SKUs sold (at most 6)")
    parser.add_argument("--restocks", type=int, default=6, help="WMS restock reports during the run")
    parser.add_argument("--refund-share", type=float, default=0.1, help="online orders refunded before shipment")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--settle", type=float, default=180, help="at most this many seconds after the selling for "
                                                                   "every order to be shipped and written back or "
                                                                   "intercepted")
    parser.add_argument("--database-url", default=None, help="hub database (default: a fresh SQLite file); it is "
                                                             "migrated and must be empty")
    parser.add_argument("--out", type=Path, default=OUT, help="where the figures are written (JSON)")
    args = parser.parse_args()
    from hub.logging import configure_logging

    configure_logging("WARNING")  # the figures, not a log line per window and push
    print(f"Double 11 stock run: {args.skus} SKU(s) x {args.pool} units in the WMS + {args.store_stock} per store, "
          f"Tmall/JD/WeChat shops and POS stores x {args.rate}/s for {args.duration}s, stock report lag {args.lag}s, "
          f"{args.refund_share:.0%} of online orders refunded before shipment")
    runs = {}
    for label, naive in (("hub", False), ("reference", True)):
        if naive and args.database_url:
            print("(reference run skipped: it needs a second empty database; omit --database-url)")
            continue
        result, shops = one_run(args, naive)
        runs[label] = figures(result)
        runs[label]["shops"] = shops
    print(f"\n{'run':10} {'orders':>7} {'sold':>6} {'held':>6} {'oversold':>8} {'refused':>8} {'cycles':>6} "
          f"{'p50 s':>6} {'p95 s':>6} {'untold':>6}")
    for label, f in runs.items():
        d = f["change_to_every_channel_told_s"]
        print(f"{label:10} {sum(f['orders'].values()):7d} {f['units_sold']:6d} {f['pool_held']:6d} {f['oversold']:8d} "
              f"{f['refused']:8d} {f['push_cycles']:6d} {d['p50'] or 0:6.2f} {d['p95']:6.2f} {d['untold']:6d}")
    for label, f in runs.items():
        print(f"\n{label}: {'channel':12} {'orders':>7} {'sold':>6} {'told':>6} {'oversold':>8} {'shipped':>8} "
              f"{'written back':>13}")
        for channel, c in f["per_channel"].items():
            shipped = "-" if c["shipped"] is None else str(c["shipped"])
            written = "-" if c["written_back"] is None else str(c["written_back"])
            print(f"{'':{len(label) + 2}}{channel:12} {c['orders']:7d} {c['units_sold']:6d} "
                  f"{c['pushes_acknowledged']:6d} {c['oversold']:8d} {shipped:>8} {written:>13}")
        print(f"{'':{len(label) + 2}}pre-ship refunds {f['refunds_before_shipment']}, intercepted {f['intercepted']}, "
              f"duplicated {f['duplicated']}, oversold by SKU {f['oversold_by_sku']}")
        if f["not_intercepted"]:
            print(f"{'':{len(label) + 2}}not intercepted: {', '.join(f['not_intercepted'])}")
    command = "bench/stock_latency.py " + " ".join(sys.argv[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": command.strip(), "database": args.database_url or "sqlite",
                                    "runs": runs}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwritten: {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    hub = runs.get("hub")
    ok = hub is not None and hub["oversold"] == 0 and hub["intercepted"] == hub["refunds_before_shipment"] and all(
        c["written_back"] == c["shipped"] for c in hub["per_channel"].values() if c["shipped"] is not None)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
