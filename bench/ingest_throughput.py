"""Ingest throughput: N orders from the sandbox's TOP gateway into the hub, next to the references of the same run.

For each (database, N) case, in a child process of its own (so that peak RSS is that case's alone):

    e2e        ``Hub.sync()`` over HTTP: signing, paging, mapping, validation, upsert, bindings, raw archive, outbox,
               cursor and window ledger; the sandbox runs in another process (its CPU is reported separately)
    fetch      the same windows read again (HTTP + sandbox only) and spilled to a file, the pages the next three
               read back one at a time (only the time inside each loader counts), so memory stays flat at 1M
    write      the hub's write path alone: ``ingest_page`` of the pre-fetched pages into a fresh database
    raw        reference (a): SQLAlchemy Core bulk insert of the same rows the write path stores for each new order
               (binding, order, lines, raw payload, outbox event, audit entry; built beforehand by the hub's own
               row functions), one transaction per page, into a fresh database of the same kind: the physical
               limit of the write path. (a2): the order and line rows alone, a plain two-table load, stricter.
    dlt        reference (b): dlt (destination ``sqlalchemy``, same database kind) loading the same raw pages with
               ``write_disposition="merge"`` and primary key ``tid``; dlt maps nothing and validates nothing

    .venv/bin/python bench/ingest_throughput.py --db sqlite mariadb --orders 10000 100000
    .venv/bin/python bench/ingest_throughput.py --db sqlite --orders 1000000     # see bench/README.md for its time
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (  # noqa: E402 - the path above makes bench/ and the project importable
    MARIADB_URL,
    SandboxProcess,
    create_spread_orders,
    fresh_database,
    hub_for,
    peak_rss_mb,
    quiet_logs,
    save_result,
    tmall_shops,
    workdir,
)

SPREAD_HOURS = 20  # orders placed over the last 20 hours: ~20 one-hour windows per shop, 100 trades a page


def run_case(db: str, orders: int, seed: int) -> dict[str, Any]:
    import sqlalchemy as sa

    from hub.entities import ingest_page
    from hub.heap import freeze_startup_heap
    from hub.store import create_engine_for
    from hub.store import schema as t

    quiet_logs()
    case: dict[str, Any] = {"db": db, "orders": orders}
    with workdir("orderhub_bench_ingest_") as work, SandboxProcess(seed) as sbx:
        shops = tmall_shops(sbx.url)
        started = time.perf_counter()
        ids = create_spread_orders(sbx.url, orders, shops, SPREAD_HOURS)
        case["sandbox_orders_created_s"] = round(time.perf_counter() - started, 1)
        assert len(ids) == orders

        # -- e2e: Hub.sync over HTTP ------------------------------------------------------------------------------
        db_url = fresh_database(db, work, "e2e")
        hub = hub_for(sbx.url, db_url, work, initial_lookback_hours=SPREAD_HOURS + 1, window_minutes=60)
        freeze_startup_heap()  # as the CLI and the Airflow tasks do once the hub is built (hub/heap.py)
        cpu0, sbx_cpu0 = time.process_time(), sbx.cpu_s()
        started = time.perf_counter()
        reports = hub.sync()
        e2e_s = time.perf_counter() - started
        with hub.engine.connect() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(t.orders)).scalar()
            outbox = conn.execute(sa.select(sa.func.count()).select_from(t.outbox)).scalar()
        case["e2e"] = {
            "seconds": round(e2e_s, 2), "orders_per_s": round(orders / e2e_s, 1),
            "us_per_order": round(e2e_s / orders * 1e6, 1), "stored": stored, "outbox_events": outbox,
            "lost": orders - stored, "windows": sum(r.windows for r in reports), "pages": sum(r.pages for r in reports),
            "hub_cpu_s": round(time.process_time() - cpu0, 1), "sandbox_cpu_s": round(sbx.cpu_s() - sbx_cpu0, 1),
            "peak_rss_mb": peak_rss_mb(),
        }
        hub.engine.dispose()

        # -- fetch the same windows once, spilled to disk page by page -------------------------------------------
        # The write path and both references read the same pages back from this file one at a time, so memory stays
        # flat at a million orders; only the time inside each loader is counted, never the file reading.
        sources: list[Any] = []
        spill = work / "pages.jsonl"
        now = datetime.now(UTC).replace(microsecond=0)
        page_count = records = 0
        started = time.perf_counter()
        with spill.open("w", encoding="utf-8") as out:
            for shop_settings in hub.settings.enabled_shops():
                stream = hub.source_connector(shop_settings.channel).open_streams(shop_settings)["orders"]
                sources.append(hub.source(shop_settings, stream))
                start = now - timedelta(hours=SPREAD_HOURS + 1)
                while start < now:  # one-day windows at most (the API's limit)
                    end = min(start + stream.max_window, now)
                    for page in stream.read_window(start, end):
                        out.write(json.dumps([len(sources) - 1, list(page.records)], ensure_ascii=False) + "\n")
                        page_count += 1
                        records += len(page.records)
                    start = end
        fetch_s = time.perf_counter() - started
        case["fetch"] = {"seconds": round(fetch_s, 2), "pages": page_count, "records": records,
                         "orders_per_s": round(records / fetch_s, 1), "spill_mb": round(spill.stat().st_size / 2**20)}

        def spilled_pages():
            with spill.open(encoding="utf-8") as lines:
                for line in lines:
                    source_index, page = json.loads(line)
                    yield sources[source_index], page

        # -- write path alone -------------------------------------------------------------------------------------
        write_url = fresh_database(db, work, "write")
        engine = create_engine_for(write_url)
        write_s = write_cpu = 0.0
        for source, page in spilled_pages():
            cpu0, started = time.process_time(), time.perf_counter()
            ingest_page(engine, source, page)
            write_s += time.perf_counter() - started
            write_cpu += time.process_time() - cpu0
        with engine.connect() as conn:
            written = conn.execute(sa.select(sa.func.count()).select_from(t.orders)).scalar()
        engine.dispose()
        case["write"] = {"seconds": round(write_s, 2), "orders_per_s": round(written / write_s, 1),
                         "us_per_order": round(write_s / written * 1e6, 1), "stored": written,
                         "hub_cpu_s": round(write_cpu, 2)}

        # -- reference (a): raw Core bulk insert of the same rows -------------------------------------------------
        # The rows the write path stores for a new order - binding, order, lines, raw payload, outbox event, audit
        # entry - built outside the clock by the hub's own row functions; only the inserts and the commit of each
        # page are timed. (a2) is the same with the order and line rows only: a plain two-table load, stricter.
        case["raw_insert"] = raw_insert(db, work, spilled_pages, full=True)
        case["raw_insert_orders_lines"] = raw_insert(db, work, spilled_pages, full=False)

        # -- reference (b): dlt merge of the same raw pages -------------------------------------------------------
        case["dlt"] = run_dlt(db, work, spilled_pages, records)
        case["peak_rss_mb"] = peak_rss_mb()
        case["sandbox_rss_mb"] = sbx.rss_mb()
        case["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    case["ratios"] = {
        "write_vs_raw": round(case["write"]["orders_per_s"] / case["raw_insert"]["orders_per_s"], 2),
        "write_vs_raw_orders_lines": round(
            case["write"]["orders_per_s"] / case["raw_insert_orders_lines"]["orders_per_s"], 2),
        "e2e_vs_dlt": round(case["e2e"]["orders_per_s"] / case["dlt"]["orders_per_s"], 2)
        if case["dlt"]["orders_per_s"] else None,
        "write_vs_dlt": round(case["write"]["orders_per_s"] / case["dlt"]["orders_per_s"], 2)
        if case["dlt"]["orders_per_s"] else None,
    }
    return case


def raw_insert(db: str, work: Path, spilled_pages: Callable[[], Iterator[tuple[Any, list[dict[str, Any]]]]],
               full: bool) -> dict[str, Any]:
    import sqlalchemy as sa

    from hub.ingest import (
        _accepted_audit,
        _binding_row,
        _event,
        _line_rows,
        _order_row,
        _raw_row,
        content_hash,
        new_hub_id,
        raw_json,
    )
    from hub.store import create_engine_for
    from hub.store import schema as t

    url = fresh_database(db, work, "raw_full" if full else "raw")
    engine = create_engine_for(url)
    seconds = cpu = 0.0
    for source, page in spilled_pages():
        now = datetime.now(UTC)
        context = {"channel": source.channel, "shop": source.shop}
        rows: dict[sa.Table, list[dict[str, Any]]] = {table: [] for table in (
            t.bindings, t.orders, t.order_lines, t.raw_payloads, t.outbox, t.audit_trail)}
        seen = set()
        for record in page:
            order = source.mapper.to_model(record, context)
            if order.order_id in seen:  # the probe page can repeat a record; raw keeps the first
                continue
            seen.add(order.order_id)
            hub_id = new_hub_id()
            rows[t.orders].append(_order_row(hub_id, order, 1, now, first_seen=now))
            rows[t.order_lines].extend(_line_rows(hub_id, order))
            if full:
                raw, _ = raw_json(record)
                rows[t.bindings].append(_binding_row(source, order.order_id, hub_id, now))
                rows[t.raw_payloads].append(_raw_row(source, order.order_id, content_hash(raw), order.updated_at,
                                                     raw, now))
                rows[t.outbox].append(_event("order.accepted", hub_id, 1, order, now))
                rows[t.audit_trail].append(_accepted_audit(hub_id, order, now, "sync"))
        cpu0, started = time.process_time(), time.perf_counter()
        with engine.begin() as conn:
            for table, table_rows in rows.items():
                if table_rows:
                    conn.execute(sa.insert(table), table_rows)
        seconds += time.perf_counter() - started
        cpu += time.process_time() - cpu0
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(t.orders)).scalar()
    engine.dispose()
    return {"seconds": round(seconds, 2), "orders_per_s": round(stored / seconds, 1),
            "us_per_order": round(seconds / stored * 1e6, 1), "stored": stored, "hub_cpu_s": round(cpu, 2),
            "tables": "bindings, orders, order_lines, raw_payloads, outbox, audit_trail" if full
            else "orders, order_lines"}


def run_dlt(db: str, work: Path, spilled_pages: Callable[[], Iterator[tuple[Any, list[dict[str, Any]]]]],
            records: int) -> dict[str, Any]:
    import dlt
    import sqlalchemy as sa

    if db == "sqlite":
        credentials = f"sqlite:///{work / 'dlt.db'}"
        dataset = "main"  # dlt's sqlite attaches one file per dataset; "main" keeps it in the file above
    else:
        credentials = MARIADB_URL
        dataset = MARIADB_URL.rsplit("/", 1)[1]  # on MySQL a dataset is a database: stay in the bench one

    if db == "sqlite":
        # one load job at a time: SQLite takes one writer (a 1M run with dlt's default parallel load jobs failed in
        # the load step)
        os.environ["LOAD__WORKERS"] = "1"
    reading = {"seconds": 0.0, "cpu": 0.0}  # time dlt spends waiting on the spill file: not dlt's, subtracted

    @dlt.resource(name="dlt_orders", write_disposition="merge", primary_key="tid")
    def pages():
        source_pages = spilled_pages()
        while True:
            cpu0, started = time.process_time(), time.perf_counter()
            item = next(source_pages, None)
            reading["seconds"] += time.perf_counter() - started
            reading["cpu"] += time.process_time() - cpu0
            if item is None:
                return
            yield item[1]

    pipeline = dlt.pipeline(pipeline_name="orderhub_bench", pipelines_dir=str(work / "dlt_pipelines"),
                            destination=dlt.destinations.sqlalchemy(credentials=credentials), dataset_name=dataset,
                            progress=None)
    cpu0, started = time.process_time(), time.perf_counter()
    try:
        pipeline.run(pages())
    except Exception as exc:  # noqa: BLE001 - a failed reference is a result too; the hub's figures stay
        cause: BaseException = exc
        while cause.__cause__ is not None or cause.__context__ is not None:
            cause = cause.__cause__ or cause.__context__
        # the class and the driver's first line only: dlt's and SQLAlchemy's texts carry every bound row
        first_line = (str(getattr(cause, "orig", cause)).splitlines() or [""])[0][:200]
        reason = f"{type(exc).__name__}: {type(cause).__name__}: {first_line}"
        print(f"dlt failed after {time.perf_counter() - started:.0f} s: {reason}", file=sys.stderr)
        return {"failed": reason, "seconds": round(time.perf_counter() - started, 2), "orders_per_s": 0.0,
                "us_per_order": 0.0, "stored": 0, "destination": f"dlt.destinations.sqlalchemy ({db}), merge on tid, "
                f"dlt {dlt.__version__}"}
    seconds = time.perf_counter() - started - reading["seconds"]
    cpu = time.process_time() - cpu0 - reading["cpu"]
    engine = sa.create_engine(credentials)
    with engine.connect() as conn:
        table = "dlt_orders" if db == "mariadb" else "main.dlt_orders"
        loaded = conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar()
    engine.dispose()
    return {"seconds": round(seconds, 2), "orders_per_s": round(records / seconds, 1),
            "us_per_order": round(seconds / records * 1e6, 1), "stored": loaded, "hub_cpu_s": round(cpu, 2),
            "destination": f"dlt.destinations.sqlalchemy ({db}), merge on tid, dlt {dlt.__version__}"}


def print_case(case: dict[str, Any]) -> None:
    e, w, r, d = case["e2e"], case["write"], case["raw_insert"], case["dlt"]
    print(f"\n== {case['db']} · {case['orders']:,} orders ==")
    print(f"  e2e Hub.sync        {e['orders_per_s']:>9,.0f} orders/s  {e['us_per_order']:>7,.0f} us/order  "
          f"{e['seconds']:>7.1f} s  stored {e['stored']:,} lost {e['lost']}  "
          f"(hub CPU {e['hub_cpu_s']} s, sandbox CPU {e['sandbox_cpu_s']} s, {e['pages']} pages)")
    print(f"  fetch only (HTTP)   {case['fetch']['orders_per_s']:>9,.0f} orders/s")
    print(f"  hub write path      {w['orders_per_s']:>9,.0f} orders/s  {w['us_per_order']:>7,.0f} us/order  "
          f"CPU {w.get('hub_cpu_s')} s")
    print(f"  ref (a) raw insert  {r['orders_per_s']:>9,.0f} orders/s  {r['us_per_order']:>7,.0f} us/order  "
          f"CPU {r.get('hub_cpu_s')} s  (the same rows: {r.get('tables')})")
    if "raw_insert_orders_lines" in case:
        r2 = case["raw_insert_orders_lines"]
        print(f"  ref (a2) raw insert {r2['orders_per_s']:>9,.0f} orders/s  {r2['us_per_order']:>7,.0f} us/order  "
              f"CPU {r2.get('hub_cpu_s')} s  (orders and lines only; write/a2 "
              f"{case['ratios']['write_vs_raw_orders_lines']}x)")
    print(f"  ref (b) dlt merge   {d['orders_per_s']:>9,.0f} orders/s  {d['us_per_order']:>7,.0f} us/order  "
          f"CPU {d.get('hub_cpu_s')} s  stored {d['stored']:,}" + (f"  FAILED: {d['failed']}" if "failed" in d else ""))
    print(f"  write/raw {case['ratios']['write_vs_raw']}x (target >= 0.5)   "
          f"write/dlt {case['ratios']['write_vs_dlt']}x "
          f"(target > 1; both load the same fetched pages)   e2e/dlt {case['ratios']['e2e_vs_dlt']}x (e2e also fetches)"
          f"   e2e >= 1000/s: {'yes' if e['orders_per_s'] >= 1000 else 'NO'}   "
          f"peak RSS e2e {e['peak_rss_mb']} MB, whole case {case['peak_rss_mb']} MB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", nargs="+", default=["sqlite", "mariadb"], choices=["sqlite", "mariadb"])
    parser.add_argument("--orders", nargs="+", type=int, default=[10_000, 100_000])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--name", default="ingest_throughput", help="results file name (bench/results/NAME.json)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # child mode: "db:orders", prints the case as JSON
    args = parser.parse_args()
    if args.case:
        db, orders = args.case.split(":")
        print(json.dumps(run_case(db, int(orders), args.seed)))
        return 0
    cases = []
    for db in args.db:
        for orders in args.orders:
            child = subprocess.run([sys.executable, __file__, "--case", f"{db}:{orders}", "--seed", str(args.seed)],
                                   capture_output=True, text=True)
            if child.returncode != 0:
                print(child.stderr[:2000] + "\n...\n" + child.stderr[-2000:], file=sys.stderr)
                return child.returncode
            case = json.loads(child.stdout.strip().splitlines()[-1])
            print_case(case)
            cases.append(case)
    path = save_result(args.name, {"command": " ".join(["bench/ingest_throughput.py", *sys.argv[1:]]),
                                   "spread_hours": SPREAD_HOURS, "cases": cases})
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
