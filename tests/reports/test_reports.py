"""Business reports and the per-order lineage on sandbox data: orders through the WMS and back, a refund, a
malformed order in quarantine; each figure checked against the sandbox's own trades."""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal
from itertools import combinations

import pytest
import requests
from typer.testing import CliRunner

import mappings
from hub.cli import app
from hub.config import load_settings
from hub.reports import operations, sales
from hub.runtime import Hub
from tests.conftest import write_sandbox_config
from tests.hub.helpers import create_orders

runner = CliRunner()


def _fen(text) -> int:
    return int(Decimal(str(text)) * 100)


@pytest.fixture
def config_path(tmp_path, sandbox, db_url):
    return write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, streams=["orders", "refunds"])


@pytest.fixture
def busy_hub(config_path, engine, sandbox):
    hub = Hub(load_settings(config_path), engine)
    flagship = create_orders(sandbox.url, count=6)
    outlet = create_orders(sandbox.url, shop="tm-outlet", count=4)
    create_orders(sandbox.url, count=2, malformed="unknown_status")
    hub.run_once()
    with sandbox.app.lock:
        oid = sandbox.app.world.trades[int(outlet[0])].lines[0]["oid"]
    resp = requests.post(f"{sandbox.url}/_sandbox/orders/tmall/{outlet[0]}/refund",
                         json={"status": "SUCCESS", "oid": str(oid)}, timeout=30)
    resp.raise_for_status()
    time.sleep(2)  # the refund is stamped a second after the trade's last change: let "now" pass it
    hub.run_once()  # the shipped status and the refund come back; write-backs finish
    with sandbox.app.lock:
        trades = {tid: sandbox.app.world.trades[int(tid)] for tid in flagship + outlet}
        refunded = sum(_fen(r["refund_fee"]) for r in resp.json()["refunds"])
        lines = {tid: [dict(line) for line in trade.lines] for tid, trade in trades.items()}
        paid = {tid: _fen(trade.data["payment"]) for tid, trade in trades.items()}
    return hub, flagship, outlet, lines, paid, refunded


def test_the_business_reports_agree_with_the_sandboxs_trades(busy_hub, tmp_path):
    hub, flagship, outlet, lines, paid, refunded = busy_hub
    report = sales.sales(hub.engine)
    by_shop = Counter()
    for row in report.rows:
        by_shop[row[2]] += _fen(row[5])
    assert by_shop == {"tm-flagship": sum(paid[t] for t in flagship), "tm-outlet": sum(paid[t] for t in outlet)}
    assert sum(row[3] for row in report.rows) == len(flagship) + len(outlet)
    assert sum(row[4] for row in report.rows) == sum(int(ln["num"]) for ls in lines.values() for ln in ls)

    (outlet_row,) = [r for r in sales.refund_rate(hub.engine).rows if r[1] == "tm-outlet"]
    assert outlet_row[2:6] == [len(outlet), sales.yuan(sum(paid[t] for t in outlet)), 1, sales.yuan(refunded)]

    sla = {row[0]: row for row in operations.sla(hub.engine).rows}
    # every (non-closed) order reached the WMS, shipped and was written back
    assert int(sla["paid -> wms"][1]) >= len(flagship) + len(outlet) - 1
    assert int(sla["paid -> shipped"][1]) == int(sla["shipped -> written back"][1]) >= len(flagship)

    quarantine = operations.quarantine_ageing(hub.engine)
    assert [r[:3] + r[6:7] for r in quarantine.rows] == [["tmall", "order", 2, 2]]

    baskets = [sorted({ln["outer_sku_id"] for ln in ls}) for ls in lines.values()]
    pairs = Counter(p for b in baskets for p in combinations(b, 2))
    report = sales.copurchase(hub.engine, top=100)
    got = Counter({tuple(sorted((r[0], r[2]))): r[3] for r in report.rows})
    assert got == pairs

    prices = tmp_path / "prices.yaml"
    some = lines[flagship[0]][0]
    list_fen = _fen(some["price"]) + 1000
    prices.write_text(f"tolerance_pct: 1\nlist_prices:\n  {some['outer_sku_id']}: '{sales.yuan(list_fen)}'\n",
                      encoding="utf-8")
    (row,) = sales.price_check(hub.engine, prices).rows
    assert row[0] == some["outer_sku_id"] and row[2] == sales.yuan(list_fen) and row[5] == "BELOW"
    default = sales.price_check(hub.engine, tmp_path / "absent.yaml", mappings.path("skus.yaml"))
    assert {r[0] for r in default.rows} == {ln["outer_sku_id"] for ls in lines.values() for ln in ls}


def test_order_show_prints_the_trail_and_the_report_commands_write_csv_and_png(busy_hub, config_path, tmp_path):
    hub, flagship, *_ = busy_hub
    result = runner.invoke(app, ["order", "show", "tmall", flagship[0], "-c", str(config_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    for step in ("paid", "in the hub", "order.accepted", "plan.released", "dispatch.done", "shipped",
                 "channel_writeback", "Raw versions received"):
        assert step in out, step
    assert out.index("order.accepted") < out.index("plan.released") < out.index("channel_writeback")
    missing = runner.invoke(app, ["order", "show", "tmall", "404", "-c", str(config_path)])
    assert missing.exit_code == 3 and "no tmall order 404" in missing.output
    # the report commands print, and write CSV and PNG
    for name in ("sales", "refunds", "sla", "quarantine", "copurchase"):
        csv, png = tmp_path / f"{name}.csv", tmp_path / f"{name}.png"
        result = runner.invoke(app, ["report", name, "-c", str(config_path), "--csv", str(csv), "--png", str(png)])
        assert result.exit_code == 0, result.output
        assert csv.read_text(encoding="utf-8-sig").count("\n") >= 2
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
