"""``orderhub`` commands of the finance room (hub/finance, hub/reviews.py and hub/reports do the work):

    orderhub reconcile [--date D] [--cod FILE] [--json]          statements of a day vs orders and refunds
    orderhub report sales|refunds|sla|quarantine|prices|copurchase [--since D] [--csv F] [--png F]
    orderhub order show CHANNEL ID [--shop S] [--raw]            one order's trail, paid -> written back
    orderhub reviews summary [--csv F]                           per master SKU ratings

Exit codes as in hub/cli.py; ``reconcile`` exits 1 when it found mismatches (a cron mail is then worth reading).
The helpers of hub/cli.py are imported when a command runs, so hub/cli.py can register these at its end.
"""

from __future__ import annotations

import json
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

report_app = typer.Typer(help="Business reports: Rich tables, CSV, PNG charts.", no_args_is_help=True)
order_app = typer.Typer(help="One order.", no_args_is_help=True)
reviews_app = typer.Typer(help="Buyer reviews.", no_args_is_help=True)
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="configuration file (default: orderhub.yaml "
                                                                      "or $ORDERHUB_CONFIG)")]
CsvOpt = Annotated[Path | None, typer.Option("--csv", help="also write the rows to this CSV file")]
PngOpt = Annotated[Path | None, typer.Option("--png", help="also draw a chart into this PNG file")]


def register(app: typer.Typer) -> None:
    app.command("reconcile")(reconcile_command)
    app.add_typer(report_app, name="report")
    app.add_typer(order_app, name="order")
    app.add_typer(reviews_app, name="reviews")


def _cli():
    import hub.cli as cli

    return cli


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("use yyyy-MM-dd") from None


def reconcile_command(config: ConfigOpt = None,
                      day: Annotated[str | None, typer.Option("--date", help="yyyy-MM-dd; default yesterday "
                                                                              "(Asia/Shanghai)")] = None,
                      cod: Annotated[Path | None, typer.Option(help="a carrier's COD remittance CSV to import and "
                                                                    "reconcile instead of the statements")] = None,
                      as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
                      ) -> None:
    """Reconcile payment statements (Alipay, WeChat Pay) or a COD remittance with the hub's orders and refunds."""
    cli = _cli()
    from hub.finance.reconcile import ReconcileReport
    from hub.finance.run import import_cod, reconcile, summary
    from hub.finance.settings import load_finance_settings

    with cli.handled():
        hub = cli._hub(config)
        if cod is not None:
            settings = load_finance_settings(hub.settings.source_path, hub.settings.finance)
            sources = import_cod(hub.engine, cod.read_bytes(), settings.cod_channels)
            report = ReconcileReport(sources[0].day if sources else date.today(), sources)
        else:
            report = reconcile(hub.engine, hub.settings.source_path, _day(day),
                               settings=load_finance_settings(hub.settings.source_path, hub.settings.finance))
    if as_json:
        typer.echo(json.dumps(summary(report), ensure_ascii=False, indent=2))
    else:
        print_reconciliation(report)
    if report.findings:
        raise typer.Exit(cli.EXIT_CHECK)


def print_reconciliation(report) -> None:
    from rich.table import Table

    from hub.finance.reconcile import KINDS
    from hub.reports import yuan

    cli = _cli()
    table = Table(title=f"Reconciliation {report.day.isoformat()}", title_justify="left")
    for column in ("source", "payments", "paid (yuan)", "refunds", "refunded (yuan)", "fees (yuan)", "matched",
                   "matched (yuan)", "new receipts"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for s in report.sources:
        table.add_row(s.source, str(s.payments), yuan(s.payment_total), str(s.refunds), yuan(s.refund_total),
                      yuan(s.fees), str(s.matched), yuan(s.matched_total), str(s.new_receipts))
    cli.console.print(table)
    if not report.findings:
        cli.console.print("[green]no mismatches[/green]")
        return
    kinds = Table(title="Mismatches by kind (difference = statement - hub)", title_justify="left")
    for column in ("source", "kind", "count", "difference (yuan)"):
        kinds.add_column(column, justify="right" if column in ("count", "difference (yuan)") else "left")
    for s in report.sources:
        totals = s.totals()
        for kind in [k for k in KINDS if k in totals]:
            kinds.add_row(s.source, kind, str(totals[kind][0]), yuan(totals[kind][1]))
    cli.console.print(kinds)
    rows = Table(title="Mismatches", title_justify="left")
    for column in ("source", "kind", "order", "txn / refund", "hub (yuan)", "statement (yuan)"):
        rows.add_column(column)
    for f in report.findings:
        rows.add_row(f.source, f.kind, f.out_trade_no or "-", f.refund_no or f.txn_id or "-",
                     yuan(f.expected), yuan(f.actual))
    cli.console.print(rows)


class ReportName(StrEnum):
    sales = "sales"
    refunds = "refunds"
    sla = "sla"
    quarantine = "quarantine"
    prices = "prices"
    copurchase = "copurchase"


def build_report(hub, name: ReportName, since: date | None = None, prices: Path | None = None):
    import mappings
    from hub.reports import operations, sales

    if name is ReportName.sales:
        return sales.sales(hub.engine, since)
    if name is ReportName.refunds:
        return sales.refund_rate(hub.engine, since)
    if name is ReportName.sla:
        return operations.sla(hub.engine)
    if name is ReportName.quarantine:
        return operations.quarantine_ageing(hub.engine)
    if name is ReportName.prices:
        return sales.price_check(hub.engine, prices or mappings.path("prices.yaml", hub.settings.mappings_dir),
                                 mappings.path("skus.yaml", hub.settings.mappings_dir))
    return sales.copurchase(hub.engine)


@report_app.command("show")
def report_show(name: Annotated[ReportName, typer.Argument(help="which report")],
                config: ConfigOpt = None, csv: CsvOpt = None, png: PngOpt = None,
                since: Annotated[str | None, typer.Option(help="yyyy-MM-dd: sales and refunds from this day")] = None,
                prices: Annotated[Path | None, typer.Option(help="list prices file (default: "
                                                                 "<mappings>/prices.yaml)")] = None) -> None:
    """Print a report; --csv and --png write it out as well."""
    _report(name, config, csv, png, since, prices)


def _report(name, config, csv, png, since=None, prices=None) -> None:
    cli = _cli()
    from hub.reports.render import print_report, write_csv, write_png

    with cli.handled():
        report = build_report(cli._hub(config), name, _day(since), prices)
    print_report(cli.console, report)
    if csv:
        write_csv(report, csv)
        cli.console.print(f"wrote {csv}")
    if png:
        write_png(report, png)
        cli.console.print(f"wrote {png}")


def _shortcut(name: ReportName):
    def command(config: ConfigOpt = None, csv: CsvOpt = None, png: PngOpt = None,
                since: Annotated[str | None, typer.Option(help="yyyy-MM-dd (sales, refunds)")] = None) -> None:
        _report(name, config, csv, png, since)

    command.__doc__ = f"The {name.value} report (same as `report show {name.value}`)."
    return command


for _name in ReportName:
    report_app.command(_name.value)(_shortcut(_name))


@order_app.command("show")
def order_show(channel: Annotated[str, typer.Argument(help="channel slug, e.g. tmall")],
               order_id: Annotated[str, typer.Argument(help="the channel's order id")],
               config: ConfigOpt = None, shop: Annotated[str | None, typer.Option(help="shop, if ambiguous")] = None,
               raw: Annotated[bool, typer.Option("--raw", help="print every raw version received in full")] = False,
               ) -> None:
    """The order's trail: paid -> hub -> every sink document -> shipped -> written back, with the raw versions."""
    cli = _cli()
    from rich.table import Table

    from hub.reports import yuan
    from hub.reports.lineage import order_lineage

    with cli.handled():
        lineage = order_lineage(cli._hub(config).engine, channel, order_id, shop)
    cli.console.print(f"[bold]{lineage.channel}/{lineage.shop} {lineage.order_id}[/bold]  hub id {lineage.hub_id}  "
                      f"status {lineage.status}  version {lineage.version}  paid {yuan(lineage.paid_total)} yuan",
                      highlight=False)
    trail = Table(title="Trail", title_justify="left")
    for column in ("time (UTC)", "what", "who", "detail"):
        trail.add_column(column)
    for step in lineage.steps:
        trail.add_row(step.at.strftime("%Y-%m-%d %H:%M:%S") if step.at else "-", step.what, step.who, step.detail)
    cli.console.print(trail)
    docs = Table(title="Documents in sinks", title_justify="left")
    for column in ("sink", "event", "version", "status", "document", "attempts", "at (UTC)"):
        docs.add_column(column)
    for d in lineage.documents:
        docs.add_row(d["sink"], str(d["event"]), str(d["version"]), d["status"], d["document"], str(d["attempts"]),
                     d["at"].strftime("%Y-%m-%d %H:%M:%S"))
    cli.console.print(docs)
    versions = Table(title="Raw versions received", title_justify="left")
    for column in ("received (UTC)", "channel modified (UTC)", "hash"):
        versions.add_column(column)
    for v in lineage.raw_versions:
        versions.add_row(v["received_at"].strftime("%Y-%m-%d %H:%M:%S"),
                         v["updated_at"].strftime("%Y-%m-%d %H:%M:%S") if v["updated_at"] else "-", v["hash"])
    cli.console.print(versions)
    if raw:
        for v in lineage.raw_versions:
            cli.console.print(f"--- {v['hash']}", highlight=False)
            typer.echo(v["payload"])


@reviews_app.command("summary")
def reviews_summary(config: ConfigOpt = None, csv: CsvOpt = None) -> None:
    """Ratings per master SKU: reviews, average score (1-5), low ones, distribution."""
    cli = _cli()
    from hub.reports import Report
    from hub.reports.render import print_report, write_csv
    from hub.reviews import sku_summary

    with cli.handled():
        rows = sku_summary(cli._hub(config).engine)
    report = Report("Ratings per master SKU", ["master sku", "reviews", "average", "low", "1", "2", "3", "4", "5"],
                    [[r.master_sku, r.reviews, f"{r.average:.2f}", r.low, *(r.distribution[s] for s in range(1, 6))]
                     for r in rows])
    print_report(cli.console, report)
    if csv:
        write_csv(report, csv)
