"""The end-to-end demo behind `make demo`: a fresh sandbox and SQLite file, a few hundred paid Tmall orders, the whole
path (pull -> hub -> WMS delivery order -> ship confirm -> write-back), then a count against the sandbox's truth.

"Lost" is an order the channel holds that is neither in the hub nor in quarantine; "duplicated" is a delivery order
the WMS created more than once, a write-back accepted more than once, or a channel order bound twice in the hub.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
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


def truth_counts(truth: dict[str, Any], engine, channels: Iterable[str] | None = None) -> dict[str, int]:
    """Compare the sandbox's record of truth with the hub: the numbers the demo and the tests judge by. Every channel
    the sandbox simulates counts, or only ``channels``."""
    channel_orders = {(channel, shop, order_id): o for channel, shops in truth["channels"].items()
                      if channels is None or channel in channels
                      for shop, data in shops.items() for order_id, o in (data.get("orders") or {}).items()}
    with reading(engine) as conn:
        hub_orders = {(r.channel, r.shop, r.order_id) for r in conn.execute(
            sa.select(t.orders.c.channel, t.orders.c.shop, t.orders.c.order_id))}
        quarantined = {(r.channel, r.shop, r.external_id) for r in conn.execute(
            sa.select(t.quarantine.c.channel, t.quarantine.c.shop, t.quarantine.c.external_id)
            .where(t.quarantine.c.status == "open"))}
        quarantined_rows = conn.execute(sa.select(sa.func.count()).select_from(t.quarantine)
                                        .where(t.quarantine.c.status == "open")).scalar()
        double_bound = conn.execute(sa.select(sa.func.count()).select_from(
            sa.select(t.orders.c.channel, t.orders.c.shop, t.orders.c.order_id)
            .group_by(t.orders.c.channel, t.orders.c.shop, t.orders.c.order_id)
            .having(sa.func.count() > 1).subquery())).scalar()
    # every record the demo and the tests create carries its id, so "lost" is matched by id
    lost_count = sum(1 for key in channel_orders if key not in hub_orders and key not in quarantined)
    dos = truth["wms"]["delivery_orders"]
    writebacks = {(channel, order_id): w for channel, per_order in truth["writebacks"].items()
                  if channels is None or channel in channels for order_id, w in per_order.items()}
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



def truth_by_channel(truth: dict[str, Any], engine) -> dict[str, dict[str, int]]:
    """``truth_counts`` per channel: what each channel holds and what the hub, the WMS and the write-back made of it
    (a store's till sale is handed over at the till, so it never needs the WMS or a write-back)."""
    with reading(engine) as conn:
        hub_orders = {(r.channel, r.order_id) for r in conn.execute(sa.select(t.orders.c.channel,
                                                                             t.orders.c.order_id))}
    by_order = {order_id: channel for channel, order_id in hub_orders}
    wms: dict[str, int] = {}
    for document in truth["wms"]["delivery_orders"].values():
        channels = {by_order.get(str(code)) for code in document.get("source_order_codes") or []} - {None}
        for channel in channels:
            wms[channel] = wms.get(channel, 0) + 1
    result = {}
    for channel in truth["channels"]:
        counts = truth_counts(truth, engine, channels=[channel])
        in_hub = sum(1 for c, _ in hub_orders if c == channel)
        if not (counts["on_channel"] or in_hub):
            continue
        with reading(engine) as conn:
            quarantined = conn.execute(sa.select(sa.func.count()).select_from(t.quarantine).where(
                t.quarantine.c.status == "open", t.quarantine.c.channel == channel)).scalar()
        result[channel] = {**counts, "in_hub": in_hub, "quarantined": quarantined,
                           "wms_delivery_orders": wms.get(channel, 0)}
    return result

DEMO_CHANNELS = ("tmall", "jd", "wechat_shop", "pos")


def run_demo(url: str, workdir: Path, *, orders_per_shop: int, malformed: int, console: Console,
             channels: tuple[str, ...] = DEMO_CHANNELS) -> dict[str, int]:
    from sandbox.configuration import orderhub_config

    db_path = workdir / "orderhub.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    config_path = workdir / "orderhub.yaml"
    config = orderhub_config(url, f"sqlite:///{db_path.resolve()}", channels=channels)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    settings = load_settings(config_path)
    configure_logging("ERROR")  # the summary table reports quarantine; per-record warnings would drown it
    engine = create_engine_for(settings.database_url)
    upgrade(engine)
    hub = Hub(settings, engine)

    started = time.monotonic()
    shops = [(s.channel, s.shop) for s in settings.shops]
    for i, (channel, shop) in enumerate(shops):
        requests.post(f"{url}/_sandbox/orders", json={"channel": channel, "shop": shop, "count": orders_per_shop},
                      timeout=60).raise_for_status()
        if malformed and i == 0:
            requests.post(f"{url}/_sandbox/orders", json={"channel": channel, "shop": shop, "count": malformed,
                                                          "malformed": "unknown_status"}, timeout=60).raise_for_status()
    console.print(f"sandbox at {url}: {orders_per_shop} paid orders in each of "
                  f"{', '.join(f'{c}/{s}' for c, s in shops)} (+{malformed} malformed)")
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
    per_channel = Table(title="per channel")
    for column in ("channel", "on the channel", "in the hub", "quarantined", "WMS", "written back", "lost",
                   "duplicated"):
        per_channel.add_column(column, justify="left" if column == "channel" else "right")
    for channel, c in truth_by_channel(truth, engine).items():
        per_channel.add_row(channel, *(str(c[k]) for k in ("on_channel", "in_hub", "quarantined",
                                                            "wms_delivery_orders", "written_back", "lost",
                                                            "duplicated")))
    console.print(per_channel)
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
