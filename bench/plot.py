"""Draw bench/results/*.json into one PNG (throughput against scale, latency against load, the Double 11 run) and
print the Markdown tables that bench/README.md carries.

    .venv/bin/python bench/plot.py            # -> bench/results/figures.png + tables on stdout
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def ingest_table(data: dict[str, Any]) -> str:
    rows = ["| db | orders | e2e Hub.sync orders/s | µs/order | hub write path orders/s | (a) raw insert, same rows "
            "| write/raw | (a2) raw insert, orders + lines | write/a2 | (b) dlt merge orders/s | write/dlt | e2e/dlt "
            "| peak RSS e2e MB | lost |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in data["cases"]:
        a2 = c.get("raw_insert_orders_lines")
        a2_rate = f"{a2['orders_per_s']:,.0f}" if a2 else "-"
        rows.append(f"| {c['db']} | {c['orders']:,} | {c['e2e']['orders_per_s']:,.0f} "
                    f"| {c['e2e']['us_per_order']:,.0f} "
                    f"| {c['write']['orders_per_s']:,.0f} | {c['raw_insert']['orders_per_s']:,.0f} "
                    f"| {c['ratios']['write_vs_raw']} "
                    f"| {a2_rate} "
                    f"| {c['ratios'].get('write_vs_raw_orders_lines', '-')} "
                    f"| {c['dlt']['orders_per_s']:,.0f} | {c['ratios']['write_vs_dlt']} | {c['ratios']['e2e_vs_dlt']} "
                    f"| {c['e2e']['peak_rss_mb']} | {c['e2e']['lost']} |")
    return "\n".join(rows)


def latency_table(data: dict[str, Any]) -> str:
    rows = ["| path | background load (orders/s, achieved) | probe orders delivered | p50 s | p95 s | max s |",
            "|---|---:|---:|---:|---:|---:|"]
    for r in [data["reference"], *data["runs"]]:
        path = r["mode"] + (f" (every {r['interval_s']:g} s)" if r.get("interval_s") else "")
        if r["mode"] == "direct":
            path = "reference: by id, synchronous"
        rows.append(f"| {path} | {r['achieved_load_per_s']:g} | {r['delivered']}/{r['orders']} | {r['p50_s']:.2f} "
                    f"| {r['p95_s']:.2f} | {r['max_s']:.2f} |")
    return "\n".join(rows)


def double11_table(runs: list[dict[str, Any]]) -> str:
    rows = ["| db | channels | generator achieved orders/s (orders) | degraded | lost hub / WMS | duplicated hub / WMS "
            "| oversold | backlog drained after peak |", "|---|---|---:|---:|---:|---:|---|---:|"]
    for d in runs:
        g = d["reference_generator"]
        rows.append(f"| {d['db']} | {', '.join(d['channels'])} | {g['achieved_rate']:,} ({g['total']:,}) "
                    f"| {d['degraded_ratio']:.0%} | {d['lost_in_hub']} / {d['lost_in_wms']} "
                    f"| {d['duplicated_in_hub']} / {d['duplicated_in_wms']} | bench/stock_latency.py "
                    f"| {d['backlog_drained_s']} s |")
    return "\n".join(rows)


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    ingest = load("ingest_throughput")
    # the 1M-order cases run on their own (`make bench-million`, or one database at a time: ingest_1m*.json);
    # drawn on the same axes and listed in the same table
    for path in sorted(RESULTS.glob("ingest_1m*.json")):
        if ingest:
            million = json.loads(path.read_text(encoding="utf-8"))
            ingest = {**ingest, "cases": ingest["cases"] + million["cases"]}
    latency = load("latency")
    d11 = [d for d in (load("double11_sqlite"), load("double11_mariadb")) if d]
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.2))

    ax = axes[0]
    if ingest:
        styles = {"e2e": ("e2e Hub.sync", "-o"), "write": ("hub write path", "-s"),
                  "raw_insert": ("(a) raw Core insert, same rows", "--^"),
                  "raw_insert_orders_lines": ("(a2) raw Core insert, orders + lines", "--x"),
                  "dlt": ("(b) dlt merge", ":v")}
        for db in sorted({c["db"] for c in ingest["cases"]}):
            cases = sorted((c for c in ingest["cases"] if c["db"] == db), key=lambda c: c["orders"])
            for key, (label, style) in styles.items():
                measured = [c for c in cases if key in c]  # (a2) exists from the 1M-capable runs on
                if measured:
                    ax.plot([c["orders"] for c in measured], [c[key]["orders_per_s"] for c in measured], style,
                            label=f"{db}: {label}")
        ax.axhline(1000, color="grey", linewidth=0.8, linestyle="-.", label="target 1 000 orders/s")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_title("Ingest throughput against scale")
    ax.set_xlabel("orders in the run")
    ax.set_ylabel("orders/s")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)

    ax = axes[1]
    if latency:
        for mode, style in (("push", "-o"), ("poll", "-s")):
            runs = sorted((r for r in latency["runs"] if r["mode"] == mode),
                          key=lambda r: r["background_load_per_s"])
            if runs:
                loads = [r["achieved_load_per_s"] for r in runs]
                ax.plot(loads, [r["p50_s"] for r in runs], style, label=f"{mode} p50")
                ax.plot(loads, [r["p95_s"] for r in runs], style, alpha=0.5, label=f"{mode} p95")
        ax.axhline(latency["reference"]["p50_s"], color="grey", linestyle="-.",
                   label="reference: by id, synchronous (p50)")
    ax.set_title("Paid -> delivery order in the WMS, against load")
    ax.set_xlabel("background orders/s (achieved)")
    ax.set_ylabel("seconds")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)

    ax = axes[2]
    for d in d11:
        series = d["series"]
        t = [p["t_s"] for p in series]
        # the generator places orders at a steady rate; the rounds sample it too sparsely to draw it from the series
        total = d["reference_generator"]["total"]
        ax.plot([0, d["duration_s"], max(t[-1], d["duration_s"])], [0, total, total], "-",
                label=f"{d['db']}: placed on the channels")
        ax.plot(t, [p["in_hub"] for p in series], "--", label=f"{d['db']}: in the hub")
        ax.plot(t, [p["delivery_orders"] for p in series], ":", label=f"{d['db']}: delivery orders in the WMS")
    ax.set_title("Double 11 (degraded lists on)")
    ax.set_xlabel("seconds since the peak started")
    ax.set_ylabel("orders")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)

    fig.tight_layout()
    out = RESULTS / "figures.png"
    fig.savefig(out, dpi=90)
    print(f"plot: {out}\n")
    if ingest:
        print(ingest_table(ingest) + "\n")
    if latency:
        print(latency_table(latency) + "\n")
    if d11:
        print(double11_table(d11))
    return 0


if __name__ == "__main__":
    sys.exit(main())
