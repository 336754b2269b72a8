"""The end-to-end demo behind `make demo`: a fresh sandbox and SQLite file, a few hundred paid Tmall orders, the whole
path (pull -> hub -> WMS delivery order -> ship confirm -> write-back), then a count against the sandbox's truth.

"Lost" is an order the channel holds that is neither in the hub nor in quarantine; "duplicated" is a delivery order
the WMS created more than once, a write-back accepted more than once, or a channel order bound twice in the hub.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
import yaml
from rich.console import Console
from rich.table import Table

from hub.config import load_settings
from hub.logging import configure_logging
from hub.runtime import Hub
from hub.store import create_engine_for, upgrade
from hub.store import schema as t
from hub.store.db import reading


def truth_counts(truth: dict[str, Any], engine) -> dict[str, int]:
    """Compare the sandbox's record of truth with the hub: the numbers the demo and the tests judge by."""
    channel_orders = {(shop, tid): o for shop, data in truth["channels"]["tmall"].items()
                      for tid, o in data["orders"].items()}
    with reading(engine) as conn:
        hub_orders = {(r.shop, r.order_id) for r in conn.execute(sa.select(t.orders.c.shop, t.orders.c.order_id))}
        quarantined = {(r.shop, r.external_id) for r in conn.execute(
            sa.select(t.quarantine.c.shop, t.quarantine.c.external_id).where(t.quarantine.c.status == "open"))}
        quarantined_rows = conn.execute(sa.select(sa.func.count()).select_from(t.quarantine)
                                        .where(t.quarantine.c.status == "open")).scalar()
        double_bound = conn.execute(sa.select(sa.func.count()).select_from(
            sa.select(t.orders.c.channel, t.orders.c.shop, t.orders.c.order_id)
            .group_by(t.orders.c.channel, t.orders.c.shop, t.orders.c.order_id)
            .having(sa.func.count() > 1).subquery())).scalar()
    # every record the demo and the tests create carries its id, so "lost" is matched by id
    lost_count = sum(1 for key in channel_orders if key not in hub_orders and key not in quarantined)
    dos = truth["wms"]["delivery_orders"]
    writebacks = truth["writebacks"].get("tmall", {})
    return {
        "on_channel": len(channel_orders),
        "in_hub": len(hub_orders),
        "quarantined": quarantined_rows,
        "wms_delivery_orders": len(dos),
        "written_back": sum(1 for w in writebacks.values() if w.get("accepted", 0) >= 1),
        "lost": lost_count,
        "duplicated": sum(1 for d in dos.values() if d.get("created", 0) > 1)
                      + sum(1 for w in writebacks.values() if w.get("accepted", 0) > 1) + double_bound,
    }


def run_demo(url: str, workdir: Path, *, orders_per_shop: int, malformed: int, console: Console) -> dict[str, int]:
    from sandbox.configuration import orderhub_config

    db_path = workdir / "orderhub.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    config_path = workdir / "orderhub.yaml"
    config_path.write_text(yaml.safe_dump(orderhub_config(url, f"sqlite:///{db_path.resolve()}"), sort_keys=False,
                                          allow_unicode=True), encoding="utf-8")
    settings = load_settings(config_path)
    configure_logging("ERROR")  # the summary table reports quarantine; per-record warnings would drown it
    engine = create_engine_for(settings.database_url)
    upgrade(engine)
    hub = Hub(settings, engine)

    started = time.monotonic()
    shops = [s.shop for s in settings.shops]
    for i, shop in enumerate(shops):
        requests.post(f"{url}/_sandbox/orders", json={"channel": "tmall", "shop": shop, "count": orders_per_shop},
                      timeout=60).raise_for_status()
        if malformed and i == 0:
            requests.post(f"{url}/_sandbox/orders", json={"channel": "tmall", "shop": shop, "count": malformed,
                                                          "malformed": "unknown_status"}, timeout=60).raise_for_status()
    console.print(f"sandbox at {url}: {orders_per_shop} paid orders in each of {', '.join(shops)}"
                  f" (+{malformed} malformed)")
    # Pass 1 pulls, dispatches, takes in the WMS's ship confirms and writes back; pass 2 reads the shipped status
    # the channel now reports, which must change nothing downstream. On a loaded machine a call can end in doubt and
    # be settled by the next pass, so passes go on (at most 5) until one finds nothing left to do.
    for n in range(1, 6):
        report = hub.run_once()
        got = sum(r.result.received for r in report.syncs)
        done = sum(r.done for r in report.dispatches)
        unsettled = sum(r.in_doubt for r in [*report.dispatches, *report.writebacks])
        shipped = sum(r.recorded for r in report.feedback)
        wb = sum(r.done for r in report.writebacks)
        console.print(f"pass {n}: pulled {got}, delivery orders sent {done}, shipments recorded {shipped}, "
                      f"written back {wb}" + (f", {unsettled} in doubt" if unsettled else ""))
        if n >= 2 and not (done or shipped or wb or unsettled):
            break
    elapsed = time.monotonic() - started
    truth = requests.get(f"{url}/_sandbox/truth", timeout=60).json()
    summary = truth_counts(truth, engine)
    table = Table(title=f"OrderHub demo ({elapsed:.1f} s)")
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, key in (("orders on the channel", "on_channel"), ("in the hub", "in_hub"),
                       ("quarantined", "quarantined"), ("delivery orders in the WMS", "wms_delivery_orders"),
                       ("written back to the channel", "written_back"), ("lost (must be 0)", "lost"),
                       ("duplicated (must be 0)", "duplicated")):
        style = "red" if key in ("lost", "duplicated") and summary[key] else ""
        table.add_row(label, f"[{style}]{summary[key]}[/{style}]" if style else str(summary[key]))
    console.print(table)
    return summary
