"""``orderhub`` commands of the mapping workbench (hub/processing/workbench.py does the work):

    orderhub process                                   plan new and changed orders, release what is ready
    orderhub mapping check                             every mapping file loads and agrees with the others (exit 3)
    orderhub mapping import FILE [--no-release]        CSV/YAML channel SKU -> master SKU rows; then release
    orderhub mapping export                            imported rows as YAML, to fold into skus.yaml
    orderhub mapping test                              recorded payloads in <mappings>/cases/ (exit 1 on a failure)
    orderhub release [--cause T] [--order C:ID] [--approve NAME]   plan stuck orders again
    orderhub replay --order C:ID | --shop-day SHOP:DATE | --cause T [--dispatch]   what the current tables would do

Exit codes as in hub/cli.py. The helpers of hub/cli.py are imported when a command runs, not at import time, so
hub/cli.py can register these commands at its end without an import cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

mapping_app = typer.Typer(help="SKU tables and order rules: check, import, test.", no_args_is_help=True)
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="configuration file (default: orderhub.yaml "
                                                                      "or $ORDERHUB_CONFIG)")]


def register(app: typer.Typer) -> None:
    app.add_typer(mapping_app, name="mapping")
    app.command("process")(process_command)
    app.command("release")(release_command)
    app.command("replay")(replay_command)


def _cli():
    import hub.cli as cli

    return cli


def print_processing(report, title: str = "processing") -> None:
    cli = _cli()
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(report.statuses.items())) or "-"
    cli.console.print(f"{title}: {report.events} event(s), {report.changed} plan(s) changed ({statuses}), "
                      f"{report.published} order(s) released as {report.documents} document(s)"
                      + (f", {report.merged} merged" if report.merged else ""))


def _print_groups(groups, title: str = "blocked, by what must be fixed") -> None:
    cli = _cli()
    if not groups:
        cli.console.print("no blocked orders")
        return
    cli.console.print(f"{title}:")
    for g in groups:
        cli.console.print(f"  {g.sentence()} ({', '.join(g.shops)})", highlight=False)


def process_command(config: ConfigOpt = None) -> None:
    """Plan new and changed orders (SKU mapping, rules, allocation) and release what is ready to the sinks."""
    cli = _cli()
    from hub.processing.workbench import blocked_groups

    with cli.handled():
        hub = cli._hub(config)
        report = hub.process()
        groups = blocked_groups(hub.engine)
    print_processing(report)
    _print_groups(groups)


@mapping_app.command("check")
def mapping_check(config: ConfigOpt = None) -> None:
    """Validate the channel field maps, skus.yaml, rules.yaml, carriers.yaml and imported SKU mappings."""
    cli = _cli()
    from hub.processing.workbench import check

    with cli.handled():
        result = check(cli._hub(config))
    for path, problem in result.problems:
        cli.err.print(f"[red]problem[/red] {problem.render(path)}")
    for note in result.notes:
        cli.console.print(f"[yellow]note[/yellow] {note}")
    if result.problems:
        raise typer.Exit(cli.EXIT_CONFIG)
    cli.console.print("[green]ok[/green] " + "; ".join(f"{k}: {v}" for k, v in result.summary.items()))


@mapping_app.command("import")
def mapping_import(file: Annotated[Path, typer.Argument(help="CSV (merchant_code|platform_sku_id, master[, channel,"
                                                              " shop]) or YAML (channel_skus: [...])")],
                   config: ConfigOpt = None,
                   no_release: Annotated[bool, typer.Option("--no-release", help="store only; release later with "
                                                                                  "`orderhub release`")] = False,
                   ) -> None:
    """Import channel SKU -> master SKU mappings (all rows or none), then release the orders they unblock."""
    cli = _cli()
    from hub.processing.workbench import import_mappings

    with cli.handled():
        result = import_mappings(cli._hub(config), file, release_after=not no_release)
    cli.console.print(f"imported {result.imported} mapping(s) from {file.name} ({result.replaced} replaced)")
    if result.release is None:
        cli.console.print("nothing released (--no-release): run `orderhub release` when ready")
        return
    _print_release(result.release)


def _print_release(result) -> None:
    cli = _cli()
    r = result.report
    released = r.statuses.get("released", 0)
    cli.console.print(f"planned {result.selected} stuck order(s) again: {released} released as {r.documents} "
                      f"document(s), {r.unchanged} unchanged"
                      + "".join(f", {n} now {s}" for s, n in sorted(r.statuses.items()) if s != "released"))
    if result.still:
        _print_groups(result.still, "still blocked")


@mapping_app.command("export")
def mapping_export(config: ConfigOpt = None) -> None:
    """Print the imported mappings as a channel_skus: block for skus.yaml (to version them with the repo)."""
    cli = _cli()
    from hub.processing.workbench import export_imports

    with cli.handled():
        text = export_imports(cli._hub(config).engine)
    typer.echo(text, nl=False)


@mapping_app.command("test")
def mapping_test(config: ConfigOpt = None,
                 cases: Annotated[Path | None, typer.Option(help="folder of case files (default: "
                                                                 "<mappings>/cases)")] = None) -> None:
    """Run the recorded payloads of the case files through the current mappings and rules; exit 1 on a failure."""
    cli = _cli()
    from hub.processing.workbench import run_cases

    with cli.handled():
        results = run_cases(cli._hub(config), cases)
    failed = [r for r in results if r.failures]
    for r in results:
        mark = "[red]FAIL[/red]" if r.failures else "[green]ok[/green]"
        cli.console.print(f"{mark} {r.file}: {r.name} ({r.status})", highlight=False)
        for failure in r.failures:
            cli.console.print(f"     {failure}", markup=False, highlight=False)
    cli.console.print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed or not results:
        raise typer.Exit(cli.EXIT_CHECK)


def release_command(config: ConfigOpt = None,
                    cause: Annotated[str | None, typer.Option(help="only orders blocked for this cause")] = None,
                    order: Annotated[list[str] | None, typer.Option("--order", help="CHANNEL:ORDER_ID (repeat)")
                                     ] = None,
                    approve: Annotated[str | None, typer.Option(help="your name: also release overridable holds of "
                                                                     "these orders (recorded)")] = None) -> None:
    """Plan blocked, held and waiting orders again with the current mappings and rules; release what now can be."""
    cli = _cli()
    from hub.processing.workbench import release

    if approve and not order:
        cli.err.print("--approve needs --order: approvals are given order by order")
        raise typer.Exit(2)
    with cli.handled():
        result = release(cli._hub(config), cause=cause, orders=order or (), approve_by=approve)
    _print_release(result)


def replay_command(config: ConfigOpt = None,
                   order: Annotated[str | None, typer.Option(help="CHANNEL:ORDER_ID")] = None,
                   shop_day: Annotated[str | None, typer.Option("--shop-day", help="SHOP:YYYY-MM-DD (placed that "
                                                                                   "day, China time)")] = None,
                   cause: Annotated[str | None, typer.Option(help="a quarantine cause of blocked orders")] = None,
                   dispatch: Annotated[bool, typer.Option(help="store the new orders and plans and send what is "
                                                               "released (default: show only)")] = False,
                   limit: Annotated[int, typer.Option(help="orders shown in detail")] = 20) -> None:
    """Re-run orders from their raw payloads through the current mapping and rules; show the differences."""
    cli = _cli()
    from hub.processing.workbench import replay, select_orders

    if sum(x is not None for x in (order, shop_day, cause)) != 1:
        cli.err.print("give exactly one of --order, --shop-day or --cause")
        raise typer.Exit(2)
    with cli.handled():
        hub = cli._hub(config)
        ids = select_orders(hub.engine, order=order, shop_day=shop_day, cause=cause)
        result = replay(hub, ids, dispatch=dispatch)
    shown = 0
    for item in result.items:
        if not item.changed or shown >= limit:
            continue
        shown += 1
        cli.console.print(f"[bold]{item.channel}:{item.order_id}[/bold] ({item.shop}) plan {item.old_status} -> "
                          f"{item.new_status or 'n/a'}", highlight=False)
        if item.error:
            cli.console.print(f"  [red]{item.error}[/red]", highlight=False)
        for title, lines in (("canonical order", item.order_diff), ("plan", item.plan_diff),
                             *((f"documents for {sink}", lines) for sink, lines in item.documents.items())):
            if lines:
                cli.console.print(f"  {title}:", highlight=False)
                for line in lines:
                    cli.console.print(f"    {line}", highlight=False, markup=False)
        if item.note:
            cli.console.print(f"  [yellow]note:[/yellow] {item.note}", highlight=False)
    changed = [i for i in result.items if i.changed]
    cli.console.print(f"replayed {len(result.items)} order(s): {len(changed)} would change "
                      f"({sum(bool(i.order_diff) for i in changed)} canonical order, "
                      f"{sum(bool(i.plan_diff) for i in changed)} plan, "
                      f"{sum(any(i.documents.values()) for i in changed)} documents, "
                      f"{sum(bool(i.error) for i in changed)} refused)"
                      + ("" if shown == len(changed) else f"; {shown} shown"))
    if not result.dispatched:
        cli.console.print("nothing stored or sent: add --dispatch to apply and send" if changed else "nothing to do")
        return
    print_processing(result.replanned, "re-planned")
    cli._print_dispatches(result.dispatch_reports, "dispatch")
