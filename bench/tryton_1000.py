"""1 000 orders through the hub into a real Tryton, next to a bare JSON-RPC create+quote+confirm loop in the same run.

    .venv/bin/python bench/tryton_1000.py [--orders 1000] [--database sqlite|mariadb]

What it does: a sandbox in a child process, a fresh hub database, a real ``trytond`` on a copy of the test template
(tests/sinks/tryton_server.py: ``.venv-tryton`` must exist, ``make test`` builds it), ``--orders`` paid Tmall orders
spread over the last hours; the hub syncs and processes them (timed apart), then dispatches to the Tryton sink only
(the WMS sink is disabled: this measures the ERP). Then the reference: a plain ``requests`` loop of JSON-RPC calls,
``sale.sale.create`` + ``quote`` + ``confirm`` for as many sales, built from the very lines of the hub's sales (same
party, products, quantities and prices), interleaved with the hub in chunks of ``--chunk`` so both run under the same
machine load, so the difference is the hub's own cost (look-before-write searches, party
and product lookups, claims and audit rows). Duplicates are read back from Tryton: sales per ``reference``.
Prints the figures and writes ``bench/results/tryton_1000.json``.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402  (bench scripts run as files)
    ROOT,
    SandboxProcess,
    create_spread_orders,
    fresh_database,
    peak_rss_mb,
    quiet_logs,
    save_result,
    workdir,
)


def _hub(sandbox_url: str, db_url: str, work: Path, server: Any) -> Any:
    import yaml

    from hub.config import load_settings
    from hub.runtime import Hub
    from sandbox.configuration import orderhub_config

    data = orderhub_config(sandbox_url, db_url)
    for shop in data["shops"]:
        shop["sync"].update({"initial_lookback_hours": 6, "window_minutes": 60})
    data["sinks"][0]["enabled"] = False  # the WMS is not what is measured here
    data["sinks"].append({"kind": "tryton", "name": "erp", "url": server.url, "database": server.database,
                          "username": server.username, "password": {"value": server.password},
                          "http": {"timeout_s": 60, "attempts": 3}})
    path = work / "orderhub.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return Hub(load_settings(path))


class BareRPC:
    """The reference: JSON-RPC over one requests session, no retries, no searches, no bookkeeping."""

    def __init__(self, server: Any) -> None:
        import requests

        self.http = requests.Session()
        self.url = f"{server.url}/{server.database}/rpc/"
        self.n = 0
        uid, token, *_ = self.post("common.db.login", [server.username, {"password": server.password}, "en"])
        self.http.headers["Authorization"] = "Session " + base64.b64encode(
            f"{server.username}:{uid}:{token}".encode()).decode()
        self.context = self.post("model.res.user.get_preferences", [True, {}])

    def post(self, method: str, params: list[Any]) -> Any:
        from connectors.tryton.client import encode

        self.n += 1
        resp = self.http.post(self.url, data=json.dumps({"id": self.n, "method": method, "params": params},
                                                        default=encode),
                              headers={"Content-Type": "application/json"}, timeout=60)
        body = resp.json()
        if "error" in body:
            raise RuntimeError(f"{method}: {body['error']}")
        return body["result"]

    def call(self, model: str, method: str, *args: Any) -> Any:
        return self.post(f"model.{model}.{method}", [*args, self.context])


def _hub_sales(rpc: BareRPC, prefix: str) -> list[dict[str, Any]]:
    return rpc.call("sale.sale", "search_read", [("reference", "like", prefix + "%")], 0, None, None,
                    ["reference", "state", "party", "invoice_address", "shipment_address", "payment_term",
                     "sale_date", "lines"])


def bare_loop(rpc: BareRPC, templates: list[dict[str, Any]], count: int, start: int = 0) -> tuple[float, int]:
    """``count`` sales created, quoted and confirmed one after the other, copied from the hub's sales."""
    lines_by_id = {line["id"]: line for line in rpc.call(
        "sale.line", "read", sorted({i for s in templates for i in s["lines"]}),
        ["product", "quantity", "unit", "unit_price", "description"])}
    started = time.perf_counter()
    for number in range(count):
        sale = templates[number % len(templates)]
        lines = [{"type": "line", "product": lines_by_id[i]["product"], "quantity": lines_by_id[i]["quantity"],
                  "unit": lines_by_id[i]["unit"], "unit_price": lines_by_id[i]["unit_price"],
                  "description": lines_by_id[i]["description"]} for i in sale["lines"]]
        (sale_id,) = rpc.call("sale.sale", "create", [{
            "party": sale["party"], "invoice_address": sale["invoice_address"],
            "shipment_address": sale["shipment_address"], "payment_term": sale["payment_term"],
            "reference": f"BARE-{start + number:05d}", "description": "bench reference loop",
            "sale_date": sale["sale_date"],
            "lines": [["create", lines]]}])
        rpc.call("sale.sale", "quote", [sale_id])
        rpc.call("sale.sale", "confirm", [sale_id])
    return time.perf_counter() - started, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--database", choices=("sqlite", "mariadb"), default="sqlite")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--chunk", type=int, default=100, help="orders per hub chunk / bare chunk (interleaved)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.sinks import tryton_server

    quiet_logs()
    tryton_server.template()  # built once and cached (about 20 s the first time), not part of any figure
    with workdir("orderhub-tryton-bench-") as work, SandboxProcess(args.seed) as sandbox, \
            tryton_server.running(work) as server:
        db_url = fresh_database(args.database, work)
        t0 = time.perf_counter()
        ids = create_spread_orders(sandbox.url, args.orders, ["tm-flagship", "tm-outlet"], hours=4)
        created_s = time.perf_counter() - t0
        hub = _hub(sandbox.url, db_url, work, server)
        t0 = time.perf_counter()
        hub.sync()
        hub.process()
        intake_s = time.perf_counter() - t0
        # interleaved: a chunk through the hub, then as many bare sales copied from that chunk, and so on, so both
        # are measured under the same machine load (2 shared cores)
        from hub.dispatch import DispatchReport, dispatch_sink

        sink = next(x for x in hub.sinks() if x.name == "erp")
        rpc = BareRPC(server)
        report = DispatchReport("erp")
        dispatch_s = bare_s = 0.0
        bare_n, seen = 0, set()
        while True:
            t0 = time.perf_counter()
            chunk = dispatch_sink(hub.engine, sink, batch=args.chunk, max_batches=1)
            dispatch_s += time.perf_counter() - t0
            for name in ("done", "skipped", "parked", "in_doubt"):
                setattr(report, name, getattr(report, name) + getattr(chunk, name))
            if not chunk.handled:
                break
            fresh = [x for x in _hub_sales(rpc, "TMALL-") if x["reference"] not in seen]
            seen |= {x["reference"] for x in fresh}
            took, made = bare_loop(rpc, fresh, len(fresh), start=bare_n)
            bare_s += took
            bare_n += made

        sales = _hub_sales(rpc, "TMALL-")
        per_reference = Counter(s["reference"] for s in sales)
        duplicates = sum(n - 1 for n in per_reference.values())
        expected = {f"TMALL-{tid}" for tid in ids}
        missing = len(expected - set(per_reference))
        not_confirmed = sum(1 for s in sales if s["state"] not in ("confirmed", "processing", "done"))
        bare_sales = rpc.call("sale.sale", "search_count", [("reference", "like", "BARE-%")])

    hub_ms = dispatch_s / max(report.done, 1) * 1000
    bare_ms = bare_s / max(bare_n, 1) * 1000
    figures = {
        "orders": args.orders, "database": args.database, "interleaved_chunk": args.chunk,
        "hub": {"dispatch_wall_s": round(dispatch_s, 2), "per_order_ms": round(hub_ms, 1), "done": report.done,
                "parked": report.parked, "in_doubt": report.in_doubt, "intake_wall_s": round(intake_s, 2),
                "end_to_end_wall_s": round(intake_s + dispatch_s, 2)},
        "bare_jsonrpc": {"wall_s": round(bare_s, 2), "per_sale_ms": round(bare_ms, 1), "sales": bare_n,
                         "read_back": bare_sales},
        "overhead_ratio": round(hub_ms / bare_ms, 2) if bare_ms else None,
        "tryton": {"sales_read_back": len(sales), "distinct_references": len(per_reference),
                   "duplicates": duplicates, "missing": missing, "not_confirmed": not_confirmed},
        "sandbox_order_creation_s": round(created_s, 2), "peak_rss_mb": peak_rss_mb(),
    }
    path = save_result("tryton_1000", figures)
    print(f"{args.orders} orders -> real Tryton ({args.database} hub database)")
    print(f"  hub dispatch        {dispatch_s:8.1f} s  {hub_ms:7.1f} ms/order  done={report.done} "
          f"parked={report.parked} in_doubt={report.in_doubt}   (sync+process before it: {intake_s:.1f} s)")
    print(f"  bare JSON-RPC loop  {bare_s:8.1f} s  {bare_ms:7.1f} ms/sale   (create+quote+confirm, same lines)")
    print(f"  hub / bare          {figures['overhead_ratio']}x")
    print(f"  Tryton read back: {len(sales)} sales, {len(per_reference)} references, duplicates={duplicates}, "
          f"missing={missing}, not confirmed={not_confirmed}")
    print(f"  -> {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
