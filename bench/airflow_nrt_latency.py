"""Paid order in the sandbox -> delivery order in the WMS, through Airflow's near-real-time DAG: p50/p95.

Starts the sandbox in this process, a hub DB, and `airflow standalone` on 127.0.0.1 with only
``orderhub_nrt__tmall__tm-flagship`` unpaused (so the WMS can be reached by no other path), then creates N paid
orders one at a time at random gaps and records when each first appears as a created delivery order in the WMS.

    .venv/bin/python bench/airflow_nrt_latency.py --orders 50 --interval 15
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NRT = "orderhub_nrt__tmall__tm-flagship"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=50)
    parser.add_argument("--interval", type=int, default=15, help="ORDERHUB_AIRFLOW_NRT_SECONDS")
    parser.add_argument("--min-gap", type=float, default=0.5)
    parser.add_argument("--max-gap", type=float, default=3.5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from hub.config import load_settings
    from hub.store import create_engine_for, upgrade
    from orderhub_airflow import launcher
    from orderhub_airflow.options import AirflowOptions
    from orderhub_airflow.pools import required_pools
    from sandbox import running_sandbox
    from sandbox.configuration import orderhub_config

    work = Path(tempfile.mkdtemp(prefix="orderhub_nrt_bench_"))
    db_url = f"sqlite:///{work / 'hub.db'}"
    upgrade(create_engine_for(db_url))
    rng = random.Random(args.seed)
    with running_sandbox(seed=3) as sbx:
        config = work / "orderhub.yaml"
        config.write_text(yaml.safe_dump(orderhub_config(sbx.url, db_url), sort_keys=False))
        env = {"ORDERHUB_AIRFLOW_NRT_SECONDS": str(args.interval)}
        with launcher.standalone(work / "airflow_home", config, **env) as af:
            api = af.api(af.token())
            launcher.ensure_pools_over_rest(api, af.url, required_pools(load_settings(config),
                                                                        AirflowOptions.from_env(config)))
            launcher.unpause(api, af.url, NRT)
            time.sleep(args.interval + 5)  # the first run fires at unpause; let the cursor settle before measuring
            paid: dict[str, float] = {}
            seen: dict[str, float] = {}
            done = threading.Event()

            def watch() -> None:
                while not done.is_set():
                    now = time.time()
                    for d in sbx.app.truth()["wms"]["delivery_orders"].values():
                        if d["created"] >= 1:
                            for tid in d["source_order_codes"]:
                                seen.setdefault(tid, now)
                    time.sleep(0.1)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            for _ in range(args.orders):
                at = datetime.now(ZoneInfo("Asia/Shanghai"))
                (tid,) = sbx.app.create_tmall_orders("tm-flagship", 1, at=at)
                paid[tid] = at.timestamp()
                time.sleep(rng.uniform(args.min_gap, args.max_gap))
            deadline = time.time() + 4 * args.interval + 60
            while time.time() < deadline and not set(paid) <= set(seen):
                time.sleep(0.5)
            done.set()
            watcher.join(5)
            runs = api.get(f"{af.url}/api/v2/dags/{NRT}/dagRuns", params={"limit": 200}).json()
    latencies = [seen[t] - paid[t] for t in paid if t in seen]
    result = {
        "orders": len(paid), "delivered": len(latencies), "nrt_interval_s": args.interval,
        "p50_s": round(percentile(latencies, 0.50), 2), "p95_s": round(percentile(latencies, 0.95), 2),
        "min_s": round(min(latencies), 2), "max_s": round(max(latencies), 2),
        "mean_s": round(statistics.mean(latencies), 2),
        "nrt_runs": runs.get("total_entries"),
        "run_states": sorted({r["state"] for r in runs.get("dag_runs", [])}),
    }
    print(json.dumps(result))
    return 0 if len(latencies) == len(paid) else 1


if __name__ == "__main__":
    sys.exit(main())
