"""``orderhub stock`` commands (hub/stock does the work):

    orderhub stock status [--sku S] [--channel C]     per SKU and channel: pushed what, when, from which ledger
                                                      version, acknowledged or not, how stale
    orderhub stock levels                             the ledger: on hand per SKU and warehouse, and its version
    orderhub stock push [--channel C] [--shop S]      WMS stock changes in, then only the changed SKUs out
    orderhub stock resync [--channel C] [--shop S]    a full quantity of every SKU (recovery)
    orderhub stock preview --policy FILE              what each channel would be told under FILE (nothing sent)
    orderhub stock count                              ask the WMS (inventory.query) for every master SKU
    orderhub stock import FILE                        counts (CSV sku,warehouse,quantity or YAML counts:) as snapshots

Exit codes as in hub/cli.py; its helpers are imported when a command runs (hub/cli.py registers this at its end).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

stock_app = typer.Typer(help="Stock ledger, available-to-sell per channel, versioned pushes.", no_args_is_help=True)
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="configuration file (default: orderhub.yaml "
                                                                      "or $ORDERHUB_CONFIG)")]
ChannelOpt = Annotated[str | None, typer.Option(help="only this channel")]
ShopOpt = Annotated[str | None, typer.Option(help="only this shop")]


def register(app: typer.Typer) -> None:
    app.add_typer(stock_app, name="stock")


def _cli():
    import hub.cli as cli

    return cli


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


@stock_app.command("status")
def status_command(config: ConfigOpt = None, sku: Annotated[str | None, typer.Option(help="only this SKU")] = None,
                   channel: ChannelOpt = None) -> None:
    """What every channel was told per SKU: quantity, when, from which version, acknowledged, how stale."""
    from rich.table import Table

    from hub.stock.ledger import ledger_version
    from hub.stock.push import status_rows
    from hub.store.db import reading

    cli = _cli()
    with cli.handled():
        hub = cli._hub(config)
        with reading(hub.engine) as conn:
            version = ledger_version(conn)
            rows = [r for r in status_rows(conn) if (not sku or r["sku"] == sku)
                    and (not channel or r["channel"] == channel)]
    cli.console.print(f"ledger version {version}")
    if not rows:
        cli.console.print("no stock pushed yet: run `orderhub stock push`")
        return
    table = Table("sku", "channel/shop", "told", "pushed at (UTC)", "from version", "status", "acked version",
                  "channel shows", "versions behind", "age s")
    for r in rows:
        status = r["status"] + ("" if r["listed"] else " (de-listed)") + (f": {r['error']}" if r["error"] else "")
        table.add_row(r["sku"], f"{r['channel']}/{r['shop']}", str(r["target"]), _when(r["pushed_at"]),
                      str(r["pushed_version"]), status, str(r["acked_version"] if r["acked_version"] is not None
                                                            else "-"),
                      str(r["channel_qty"] if r["channel_qty"] is not None else "-"), str(r["versions_behind"]),
                      str(r["age_s"]))
    cli.console.print(table)


@stock_app.command("levels")
def levels_command(config: ConfigOpt = None) -> None:
    """On hand per master SKU and warehouse, with the version of the last movement."""
    from rich.table import Table

    from hub.stock.ledger import ledger_version, levels
    from hub.store.db import reading

    cli = _cli()
    with cli.handled():
        hub = cli._hub(config)
        with reading(hub.engine) as conn:
            version, current = ledger_version(conn), levels(conn)
    cli.console.print(f"ledger version {version}")
    table = Table("sku", "warehouse", "on hand", "locked", "version", "as of")
    for lv in current:
        table.add_row(lv.sku, lv.warehouse, str(lv.on_hand), str(lv.locked), str(lv.version), _when(lv.as_of))
    cli.console.print(table)


def _print_push(report) -> None:
    cli = _cli()
    if report.intake:
        cli.console.print("WMS stock changes: " + ", ".join(f"{k} {v}" for k, v in report.intake.items()))
    cli.console.print(f"ledger version {report.version}")
    for s in report.shops:
        cli.console.print(f"  {s.channel}/{s.shop}: {s.pushed} pushed ({s.acked} acked, {s.rejected} rejected, "
                          f"{s.in_doubt} in doubt, {s.stale} stale), {s.unchanged} unchanged", highlight=False)
    if not report.shops:
        cli.console.print("  no shop with a stock policy and a stock API is enabled")


@stock_app.command("push")
def push_command(config: ConfigOpt = None, channel: ChannelOpt = None, shop: ShopOpt = None) -> None:
    """Read WMS stock changes, then tell every channel the SKUs whose available-to-sell changed."""
    cli = _cli()
    with cli.handled():
        report = cli._hub(config).push_stock(channel, shop)
    _print_push(report)
    if report.rejected:
        raise typer.Exit(cli.EXIT_CHECK)


@stock_app.command("resync")
def resync_command(config: ConfigOpt = None, channel: ChannelOpt = None, shop: ShopOpt = None) -> None:
    """Tell every channel a full quantity of every SKU (recovery after a channel was edited by hand)."""
    cli = _cli()
    with cli.handled():
        report = cli._hub(config).push_stock(channel, shop, resync=True)
    _print_push(report)
    if report.rejected:
        raise typer.Exit(cli.EXIT_CHECK)


@stock_app.command("preview")
def preview_command(policy: Annotated[Path, typer.Option("--policy", help="the policy file to try")],
                    config: ConfigOpt = None,
                    all_rows: Annotated[bool, typer.Option("--all", help="also SKUs that would not change")] = False,
                    ) -> None:
    """What each channel would be told under --policy, beside the current policy's figure (nothing is sent)."""
    from rich.table import Table

    from hub.stock import service
    from hub.stock.ats import ShopKey, load_policy
    from hub.stock.preview import preview
    from hub.store.db import reading

    cli = _cli()
    with cli.handled():
        hub = cli._hub(config)
        proposed = load_policy(policy)
        current = service.policy(hub)
        shops = [ShopKey(s.channel, s.shop) for s in hub.settings.enabled_shops()]
        with reading(hub.engine) as conn:
            rows = preview(conn, current, proposed, hub.processing_tables().skus, shops)
    changing = [r for r in rows if r.changes]
    cli.console.print(f"{len(changing)} of {len(rows)} channel SKU(s) would be told something else under {policy}")
    table = Table("channel/shop", "sku", "pool", "available", "now told", "would be told", "last pushed",
                  "channel shows")
    for r in rows if all_rows else changing:
        table.add_row(f"{r.channel}/{r.shop}", r.sku, r.pool, str(r.available),
                      "-" if r.current is None else str(r.current), str(r.proposed),
                      "-" if r.last_pushed is None else str(r.last_pushed),
                      "-" if r.last_acked is None else str(r.last_acked))
    cli.console.print(table)


@stock_app.command("count")
def count_command(config: ConfigOpt = None) -> None:
    """Ask every WMS for the stock of every master SKU (inventory.query) and record it in the ledger."""
    cli = _cli()
    with cli.handled():
        counts = cli._hub(config).stock_count()
    cli.console.print(f"{counts['items']} WMS stock row(s) read, {counts['applied']} changed the ledger")


@stock_app.command("import")
def import_command(file: Annotated[Path, typer.Argument(help="CSV (sku,warehouse,quantity) or YAML (counts: [...])")],
                   config: ConfigOpt = None) -> None:
    """Record counts (ERP stock, a stocktake) as ledger snapshots: all rows or none."""
    from hub.stock.ledger import apply_movements
    from hub.stock.preview import parse_counts

    cli = _cli()
    with cli.handled():
        hub = cli._hub(config)
        result = apply_movements(hub.engine, parse_counts(file))
    cli.console.print(f"{result.received} count(s) read: {result.applied} changed the ledger, "
                      f"{result.unchanged} unchanged, {result.stale} older than the ledger; version {result.version}")
