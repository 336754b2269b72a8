"""`make chaos`: the kill -9 run of tests/chaos at a larger scale, with its figures printed and saved.

    python bench/chaos.py --kills 200                       # SQLite file in a temporary folder
    python bench/chaos.py --kills 200 --db mysql+pymysql://root@127.0.0.1:3306/orderhub_chaos   # every table dropped

A worker process runs the hub's steps against the in-process sandbox with faults injected (replies lost after
success on TOP and the WMS, page shift, late indexing) and is SIGKILLed at a random critical point or after a
random delay, ``--kills`` times; then a clean worker runs to a fixed point and the sandbox's record of truth is
compared with the hub (tests/chaos/harness.py). Lost, duplicated and not-written-back must all be 0: the script
exits 1 otherwise. Results go to bench/results/chaos-<db>.json.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import save_result, wipe_mariadb, workdir  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--db", default="sqlite", help="sqlite, or a MariaDB/MySQL URL whose tables may be dropped")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from hub.store import create_engine_for, upgrade
    from sandbox import running_sandbox
    from tests.chaos.harness import run_chaos
    from tests.conftest import write_sandbox_config

    with workdir("orderhub-chaos-") as folder, running_sandbox(seed=11) as sandbox:
        if args.db == "sqlite":
            db_url, label = f"sqlite:///{folder / 'hub.db'}", "sqlite"
        else:
            db_url, label = args.db, "mariadb"
            wipe_mariadb(db_url)
        engine = create_engine_for(db_url)
        upgrade(engine)
        engine.dispose()
        config = write_sandbox_config(folder / "orderhub.yaml", sandbox.url, db_url, page_size=5)
        result = run_chaos(sandbox.url, db_url, config, folder, kills=args.kills, seed=args.seed)
    figures = asdict(result)
    figures["failures"] = [f[-600:] for f in result.failures]
    path = save_result(f"chaos-{label}", {"command": " ".join(["python", "bench/chaos.py", *sys.argv[1:]]),
                                          **figures})
    counts = result.counts
    print(f"kill -9 chaos on {label}: {result.kills} kills ({result.self_kills} at a critical point, "
          f"{result.timer_kills} after a random delay), {result.transient_exits} runs gave up on a transient error, "
          f"{len(result.failures)} worker failures, {result.seconds:.0f} s")
    print(f"  kill points: {dict(sorted(result.kill_spots.items()))}")
    print(f"  orders on the channel {counts.get('on_channel')}, in the hub {counts.get('in_hub')}, "
          f"WMS delivery orders {counts.get('wms_delivery_orders')}, written back {counts.get('written_back')}")
    print(f"  lost {counts.get('lost')}, duplicated {counts.get('duplicated')}, not delivered "
          f"{len(result.not_delivered)}, not written back {len(result.not_written_back)}   -> {path}")
    ok = (not result.failures and counts.get("lost") == 0 and counts.get("duplicated") == 0
          and not result.not_delivered and not result.not_written_back)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
