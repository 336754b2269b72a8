"""``orderhub``: the command line of the hub (Typer + Rich). Every command takes ``--config`` and honours
``ORDERHUB_DATABASE_URL``.

Exit codes mean something, so cron and CI can act on them:
  0 done (quarantined records and parked events are reported, not failures of the run)
  1 done, but a check failed (``status --strict``, ``demo`` found lost or duplicated orders)
  2 wrong usage
  3 configuration problem: a person must fix the config, a credential or a mapping (never retried)
  4 transient problem outlasted the retries (run again later)
  5 fatal: the run stopped to avoid losing or duplicating data
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import requests
import sqlalchemy as sa
import typer
import yaml
from rich.console import Console
from rich.table import Table

from hub.config import DEFAULT_CONFIG_PATH, ConfigError, Settings, check_settings, load_settings
from hub.errors import ConfigurationError, FatalError, OrderHubError, TransientError
from hub.logging import configure_logging

app = typer.Typer(help="OrderHub: marketplaces and stores in, ERP/WMS/finance/logistics out.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration file.", no_args_is_help=True)
sandbox_app = typer.Typer(help="Local simulators of every external system.", no_args_is_help=True)
quarantine_app = typer.Typer(help="Records that could not be taken in.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(quarantine_app, name="quarantine")

console = Console()
err = Console(stderr=True, soft_wrap=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="configuration file (default: orderhub.yaml "
                                                                      "or $ORDERHUB_CONFIG)")]
EXIT_CHECK, EXIT_CONFIG, EXIT_TRANSIENT, EXIT_FATAL = 1, 3, 4, 5


@contextmanager
def handled():
    """Turn the hub's error kinds into messages and exit codes."""
    try:
        yield
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(f"[red]config[/red] {problem.render(exc.path)}")
        raise typer.Exit(EXIT_CONFIG) from None
    except ConfigurationError as exc:
        err.print(f"[red]configuration problem:[/red] {exc}")
        if exc.how_to_fix:
            err.print(f"[yellow]how to fix:[/yellow] {exc.how_to_fix}")
        raise typer.Exit(EXIT_CONFIG) from None
    except TransientError as exc:
        err.print(f"[red]temporary problem, retries exhausted:[/red] {exc}; run again later")
        raise typer.Exit(EXIT_TRANSIENT) from None
    except (FatalError, OrderHubError) as exc:
        err.print(f"[red]stopped:[/red] {exc}")
        raise typer.Exit(EXIT_FATAL) from None


def _settings(config: Path | None) -> Settings:
    settings = load_settings(config)
    configure_logging(os.environ.get("ORDERHUB_LOG_LEVEL", settings.log_level))
    return settings


def _hub(config: Path | None):
    from hub.heap import freeze_startup_heap
    from hub.runtime import Hub

    hub = Hub(_settings(config))
    freeze_startup_heap()
    return hub


# -- init / config / db ---------------------------------------------------------------------------------------------

@app.command()
def init(sandbox: Annotated[str, typer.Option(help="URL of a running sandbox, e.g. http://127.0.0.1:8600")],
         config: ConfigOpt = None,
         force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False) -> None:
    """Write a working configuration for every shop and sink of a running sandbox."""
    path = config or Path(DEFAULT_CONFIG_PATH)
    if path.exists() and not force:
        err.print(f"{path} exists; pass --force to overwrite it")
        raise typer.Exit(EXIT_CHECK)
    from sandbox.configuration import orderhub_config

    with handled():
        data = orderhub_config(sandbox)
    header = ("# OrderHub configuration written by `orderhub init --sandbox`. Credentials here are the sandbox's\n"
              "# fake ones, inline; for a real shop reference them: {env: NAME} or {airflow_connection: ID}.\n")
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    console.print(f"wrote {path}: {len(data['shops'])} shop(s), {len(data['sinks'])} sink(s)")


@config_app.command("check")
def config_check(config: ConfigOpt = None) -> None:
    """Validate the configuration and resolve every credential; print each problem with its line and a fix."""
    settings, problems = check_settings(config)
    path = str(config or os.environ.get("ORDERHUB_CONFIG") or DEFAULT_CONFIG_PATH)
    for problem in problems:
        err.print(f"[red]problem[/red] {problem.render(path)}")
    if problems:
        raise typer.Exit(EXIT_CONFIG)
    inline = [f"{s.channel}/{s.shop}" for s in settings.shops
              if any(getattr(getattr(s, f, None), "is_inline", False) for f in type(s).model_fields)]
    console.print(f"[green]ok[/green] {path}: {len(settings.shops)} shop(s), {len(settings.sinks)} sink(s)")
    if inline:
        console.print(f"[yellow]note[/yellow] inline credentials in {', '.join(inline)}: fine for the sandbox, "
                      "use env or Airflow connection references for real shops")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None,
               revision: Annotated[str, typer.Option(help="target revision")] = "head") -> None:
    """Create or migrate the hub's tables (Alembic)."""
    from hub.store import create_engine_for, database_url, upgrade

    with handled():
        configured = load_settings(config).database_url if (config or Path(DEFAULT_CONFIG_PATH).exists()) else None
        url = database_url(configured)
        upgrade(create_engine_for(url), revision)
    console.print(f"database at revision {revision}: {_safe_url(url)}")


def _safe_url(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


# -- the run's steps --------------------------------------------------------------------------------------------------

@app.command()
def sync(config: ConfigOpt = None,
         channel: Annotated[str | None, typer.Option(help="only this channel")] = None,
         shop: Annotated[str | None, typer.Option(help="only this shop")] = None,
         stream: Annotated[str | None, typer.Option(help="only this stream")] = None,
         order_id: Annotated[list[str] | None, typer.Option(
             "--order-id", help="fetch these orders by id (needs --channel and --shop)")] = None,
         ) -> None:
    """Pull new and changed records from the channels into the hub."""
    with handled():
        hub = _hub(config)
        if order_id:
            if not (channel and shop):
                err.print("--order-id needs --channel and --shop")
                raise typer.Exit(2)
            r = hub.sync_order_ids(channel, shop, order_id)
            console.print(f"{r.received} fetched: {r.new} new, {r.changed} changed, {r.unchanged} unchanged, "
                          f"{r.quarantined} quarantined")
            return
        reports = hub.sync(channel=channel, shop=shop, stream=stream)
    _print_syncs(reports)


def _print_syncs(reports) -> None:
    table = Table(title="sync")
    for col in ("shop", "stream", "windows", "pages", "received", "new", "changed", "unchanged", "quarantined",
                "cursor"):
        table.add_column(col, justify="right" if col not in ("shop", "stream", "cursor") else "left")
    for r in reports:
        table.add_row(f"{r.connector}/{r.shop}", r.stream, str(r.windows), str(r.pages), str(r.result.received),
                      str(r.result.new), str(r.result.changed), str(r.result.unchanged), str(r.result.quarantined),
                      r.cursor.isoformat() if r.cursor else "-")
    console.print(table)
    _print_stopped(reports)


def _print_stopped(reports) -> None:
    for r in reports:
        if getattr(r, "stopped", None):
            console.print(f"[yellow]{r.connector}/{r.shop}/{r.stream} stopped early:[/yellow] {r.stopped}")


@app.command()
def sweep(config: ConfigOpt = None,
          channel: Annotated[str | None, typer.Option(help="only this channel")] = None,
          shop: Annotated[str | None, typer.Option(help="only this shop")] = None) -> None:
    """Compensation sweep: re-read open windows older than sync.settle_seconds; close the ones that agree."""
    with handled():
        reports = _hub(config).sweep(channel=channel, shop=shop)
    _print_sweeps(reports)


def _print_sweeps(reports) -> None:
    table = Table(title="sweep")
    for col in ("shop", "stream", "re-scanned", "closed", "still open", "received", "new", "changed"):
        table.add_column(col, justify="left" if col in ("shop", "stream") else "right")
    for r in reports:
        table.add_row(f"{r.connector}/{r.shop}", r.stream, str(r.rescanned), str(r.closed), str(r.still_open),
                      str(r.result.received), str(r.result.new), str(r.result.changed))
    console.print(table)
    _print_stopped(reports)


@app.command("intake-pushes")
def intake_pushes(config: ConfigOpt = None) -> None:
    """Take in pushed change notices (Tmall TMC): re-read each order by id, then confirm the messages."""
    with handled():
        reports = _hub(config).intake_pushes()
    _print_pushes(reports)


def _print_pushes(reports) -> None:
    for r in reports:
        console.print(f"{r.queue}: {r.messages} message(s), {r.fetched} order(s) read: {r.result.new} new, "
                      f"{r.result.changed} changed, {r.result.unchanged} unchanged; {r.ignored} ignored, "
                      f"{r.confirmed} confirmed; {r.permitted} shop(s) permitted")


def _print_dispatches(reports, title: str) -> None:
    table = Table(title=title)
    for col in ("sink", "done", "skipped", "parked", "in doubt"):
        table.add_column(col, justify="left" if col == "sink" else "right")
    for r in reports:
        table.add_row(r.sink, str(r.done), str(r.skipped), str(r.parked), str(r.in_doubt))
    console.print(table)


@app.command()
def dispatch(config: ConfigOpt = None,
             sink: Annotated[str | None, typer.Option(help="only this sink")] = None,
             replay: Annotated[bool, typer.Option(help="first put parked events of the sink back in line")] = False,
             ) -> None:
    """Plan what is new (processing), then deliver outbox events to the sinks (WMS, ERP, ...)."""
    from hub.dispatch import replay_parked

    with handled():
        hub = _hub(config)
        if replay:
            names = [sink] if sink else [s.name for s in hub.settings.enabled_sinks()] + ["channel_writeback"]
            for name in names:
                console.print(f"{name}: {replay_parked(hub.engine, name)} parked event(s) put back in line")
        reports = hub.dispatch(sink)
    _print_dispatches(reports, "dispatch")


@app.command()
def feedback(config: ConfigOpt = None) -> None:
    """Take in ship confirmations from the WMS and write shipments back to the channels."""
    with handled():
        hub = _hub(config)
        fb = hub.feedback()
        wb = hub.writeback()
    for r in fb:
        console.print(f"{r.sink}: {r.received} confirmation(s), {r.recorded} recorded, {r.duplicates} duplicate, "
                      f"{r.rejected} rejected")
    _print_dispatches([wb], "write-back")


@app.command()
def run(config: ConfigOpt = None,
        once: Annotated[bool, typer.Option("--once", help="every step once, then exit (for cron)")] = False) -> None:
    """Every configured step once: pushes, pull, sweep, process, dispatch, feedback, write-back."""
    if not once:
        err.print("only `run --once` exists; schedule it with cron, or use the Airflow DAGs")
        raise typer.Exit(2)
    with handled():
        report = _hub(config).run_once()
    _print_pushes(report.pushes)
    _print_syncs(report.syncs)
    if report.sweeps:
        _print_sweeps(report.sweeps)
    print_processing(report.processing)
    _print_dispatches(report.dispatches, "dispatch")
    for r in report.feedback:
        console.print(f"feedback {r.sink}: {r.recorded} shipment confirmation(s) recorded, {r.duplicates} duplicate")
    _print_dispatches(report.writebacks, "write-back")


@app.command()
def status(config: ConfigOpt = None,
           strict: Annotated[bool, typer.Option(help="exit 1 when anything needs attention")] = False) -> None:
    """What needs attention first: unclosed windows, quarantine, parked and in-doubt dispatches; then the totals."""
    from hub.status import collect

    with handled():
        hub = _hub(config)
        s = collect(hub.engine)
    t = Table(title="needs attention")
    t.add_column("what")
    t.add_column("count", justify="right")
    t.add_column("detail")
    for problem in s["source_problems"]:
        t.add_row(f"source {problem['source']}", "1", problem["text"])
    t.add_row("open windows", str(s["open_windows"]), s["oldest_open_window"] or "")
    t.add_row("quarantined (open)", str(s["quarantine_open"]),
              "; ".join(f"{g}: {n}" for g, n in s["quarantine_groups"][:5]))
    t.add_row("dispatches parked", str(s["parked"]), "; ".join(f"{k}: {v}" for k, v in s["parked_by_sink"].items()))
    t.add_row("dispatches in doubt", str(s["in_doubt"]), "")
    t.add_row("orders held / waiting", f"{s['plans'].get('held', 0)} / {s['plans'].get('waiting', 0)}",
              "`orderhub release --order CHANNEL:ID --approve NAME`" if s["plans"].get("held") else "")
    console.print(t)
    totals = Table(title="hub")
    for col in ("orders", "by status", "outbox events", "shipments", "cursors"):
        totals.add_column(col)
    totals.add_row(str(s["orders"]), ", ".join(f"{k} {v}" for k, v in s["orders_by_status"].items()),
                   str(s["outbox"]), str(s["shipments"]),
                   "\n".join(f"{c}: {p}" for c, p in s["cursors"]))
    console.print(totals)
    if strict and (s["source_problems"] or s["quarantine_open"] or s["parked"] or s["in_doubt"]
                   or s["plans"].get("held")):
        raise typer.Exit(EXIT_CHECK)


# -- quarantine -----------------------------------------------------------------------------------------------------

@quarantine_app.command("list")
def quarantine_list(config: ConfigOpt = None,
                    all_: Annotated[bool, typer.Option("--all", help="include replayed and discarded")] = False,
                    limit: int = 50) -> None:
    """Quarantined records grouped by what must be fixed, then the newest rows."""
    from hub.status import quarantine_groups, quarantine_rows

    with handled():
        hub = _hub(config)
        groups = quarantine_groups(hub.engine)
        rows = quarantine_rows(hub.engine, include_closed=all_, limit=limit)
    g = Table(title="quarantine by cause")
    for col in ("cause", "records", "shops"):
        g.add_column(col, overflow="fold")
    for key, count, shops in groups:
        g.add_row(key, str(count), shops)
    console.print(g)
    table = Table(title="records")
    for col in ("id", "status", "channel/shop", "entity", "external id", "kind", "reason", "attempts"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r.id), r.status, f"{r.channel}/{r.shop}", r.entity, r.external_id or "-", r.error_kind,
                      r.reason, str(r.attempts))
    console.print(table)


@quarantine_app.command("show")
def quarantine_show(record_id: int, config: ConfigOpt = None) -> None:
    """One quarantined record: reason, attributes and raw payload (as stored; personal data stays masked)."""
    from hub.status import quarantine_row

    with handled():
        row = quarantine_row(_hub(config).engine, record_id)
    if row is None:
        err.print(f"no quarantine record {record_id}")
        raise typer.Exit(EXIT_CHECK)
    console.print(f"[bold]#{row.id}[/bold] {row.status} {row.channel}/{row.shop} {row.entity} "
                  f"{row.external_id or '-'}")
    console.print(f"kind: {row.error_kind}\nreason: {row.reason}\ncause: {row.group_key}")
    console.print("attributes:", json.dumps(row.attributes, ensure_ascii=False, indent=2))
    console.print("payload:")
    try:
        console.print_json(row.payload)
    except Exception:  # not JSON (e.g. an XML confirmation): print as stored
        console.print(row.payload)


@quarantine_app.command("replay")
def quarantine_replay(config: ConfigOpt = None,
                      record_id: Annotated[list[int] | None, typer.Option("--id", help="only these ids")] = None,
                      cause: Annotated[str | None, typer.Option(help="only records with this cause")] = None) -> None:
    """Run open quarantined records again through the current mapping (after you fixed it)."""
    with handled():
        counts = _hub(config).replay_quarantine(ids=record_id, group_key=cause)
    console.print(f"{counts['replayed']} record(s) taken in, {counts['still_bad']} still quarantined")


# -- sandbox and demo -----------------------------------------------------------------------------------------------

@sandbox_app.command("serve")
def sandbox_serve(port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8600,
                  seed: Annotated[int, typer.Option(help="seed of the simulated world")] = 1,
                  system: Annotated[str | None, typer.Option(help="serve only this system, at the real platform's "
                                                                  "paths (e.g. jd at /routerjson)")] = None,
                  scenario: Annotated[Path | None, typer.Option(help="YAML scenario (fault knobs, orders, peak) "
                                                                     "applied at start")] = None) -> None:
    """Serve every simulated system on one port of 127.0.0.1 (see sandbox/README.md)."""
    from sandbox import serve
    from sandbox.scenario import ScenarioError, load_scenario

    with handled():
        try:
            loaded = load_scenario(scenario) if scenario else None
            console.print(f"sandbox on http://127.0.0.1:{port} (seed {seed}); admin API under /_sandbox/")
            # the app applies (and checks) the scenario's knobs before the port is bound
            serve(host="127.0.0.1", port=port, seed=seed, system=system, scenario=loaded)
        except ScenarioError as exc:
            raise ConfigurationError(f"scenario {scenario}: {exc}",
                                     how_to_fix="fix the file; sandbox/README.md lists every knob") from exc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _sandbox_process(seed: int, log_path: Path):
    """Start ``orderhub sandbox serve`` as a child process; stop exactly that process afterwards.

    Its request log goes to a file: a pipe nobody reads would fill up and freeze the sandbox mid-run.
    """
    port = _free_port()
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "sandbox", "serve", "--port", str(port),
                                 "--seed", str(seed)], stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(f"{url}/_sandbox/health", timeout=1)
                break
            except requests.RequestException:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-500:]
                    raise FatalError(f"the sandbox did not start (log {log_path}): {tail}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@app.command()
def demo(orders: Annotated[int, typer.Option(help="paid orders per shop (2 shops each of Tmall, JD, WeChat, POS)")
                              ] = 50,
         malformed: Annotated[int, typer.Option(help="malformed orders mixed in (they go to quarantine)")] = 3,
         workdir: Annotated[Path, typer.Option(help="where the demo's config and SQLite file go")] = Path(".demo"),
         seed: int = 7) -> None:
    """Run the whole path against a fresh sandbox and a fresh SQLite file, then compare with the sandbox's truth."""
    from hub.demo import run_demo

    workdir.mkdir(parents=True, exist_ok=True)
    with handled(), _sandbox_process(seed, workdir / "sandbox.log") as url:
        summary = run_demo(url, workdir, orders_per_shop=orders, malformed=malformed, console=console)
    if summary["lost"] or summary["duplicated"]:
        raise typer.Exit(EXIT_CHECK)


from hub.cli_workbench import print_processing, register  # noqa: E402  (process, mapping, release, replay)

register(app)
from hub.cli_stock import register as register_stock  # noqa: E402  (orderhub stock ...)

register_stock(app)
from hub.cli_connector import register as register_connector  # noqa: E402  (connector new)

register_connector(app)
from hub.cli_finance import register as register_finance  # noqa: E402  (reconcile, report, order show, reviews)

register_finance(app)

if __name__ == "__main__":
    app()
