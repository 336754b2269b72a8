"""``python -m orderhub_airflow``: deployment helpers.

    pools                 create/resize the per-app-key pools for $ORDERHUB_CONFIG (needs a migrated Airflow DB)
    dags                  list the DAGs the factory builds from $ORDERHUB_CONFIG (no Airflow DB needed)
    standalone            what `make airflow` runs: the sandbox, a hub DB, and `airflow standalone` on 127.0.0.1
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests


def _pools() -> int:
    from hub.config import load_settings
    from orderhub_airflow.options import AirflowOptions
    from orderhub_airflow.pools import ensure_pools

    options = AirflowOptions.from_env()
    for name, slots in ensure_pools(load_settings(options.config_path), options).items():
        print(f"pool {name}: {slots} slots")
    return 0


def _dags() -> int:
    from orderhub_airflow.factory import dags_from_environment

    for dag_id, d in sorted(dags_from_environment().items()):
        print(f"{dag_id:48} {type(d.timetable).__name__:26} {', '.join(t.task_id for t in d.tasks)}")
    return 0


def _standalone(args: argparse.Namespace) -> int:
    import yaml

    from orderhub_airflow import launcher
    from sandbox.configuration import orderhub_config

    base = Path(args.dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    sandbox_url = f"http://127.0.0.1:{args.sandbox_port}"
    sandbox_log = open(base / "sandbox.log", "ab")
    sandbox = subprocess.Popen([str(Path(sys.executable).parent / "orderhub"), "sandbox", "serve", "--port",
                                str(args.sandbox_port)], stdout=sandbox_log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    stopping = {"now": False}

    def stop(*_):
        stopping["now"] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for _ in range(100):
            try:
                requests.get(f"{sandbox_url}/_sandbox/health", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                time.sleep(0.1)
        config_path = base / "orderhub.yaml"
        data = orderhub_config(sandbox_url, f"sqlite:///{base / 'hub.db'}")
        config_path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        subprocess.run([str(Path(sys.executable).parent / "orderhub"), "db", "upgrade", "--config",
                        str(config_path)], check=True)
        for shop in [s["shop"] for s in data["shops"]]:
            requests.post(f"{sandbox_url}/_sandbox/orders", json={"channel": "tmall", "shop": shop,
                                                                    "count": args.orders}, timeout=30)
        with launcher.standalone(base / "home", config_path, port=args.port,
                                 AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False") as af:
            from hub.config import load_settings
            from orderhub_airflow.options import AirflowOptions
            from orderhub_airflow.pools import required_pools

            api = af.api(af.token())
            launcher.ensure_pools_over_rest(api, af.url, required_pools(load_settings(config_path),
                                                                        AirflowOptions.from_env(config_path)))
            print(f"\nAirflow is up on {af.url}  (login: admin / {af.password})", flush=True)
            print(f"OrderHub page: {af.url}/plugin/orderhub   sandbox: {sandbox_url}   hub config: {config_path}")
            print(f"logs: {af.log_path}   stop with Ctrl-C", flush=True)
            while not stopping["now"] and af.process.poll() is None:
                time.sleep(0.5)
            print("stopping Airflow (its process group) and the sandbox...", flush=True)
    finally:
        try:
            import os

            os.killpg(sandbox.pid, signal.SIGTERM)
            sandbox.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        sandbox_log.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orderhub_airflow")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("pools", help="create/resize the per-app-key pools")
    sub.add_parser("dags", help="list the DAGs built from $ORDERHUB_CONFIG")
    sa = sub.add_parser("standalone", help="sandbox + airflow standalone on 127.0.0.1 (make airflow)")
    sa.add_argument("--dir", default=".airflow", help="working folder (hub DB, config, AIRFLOW_HOME, logs)")
    sa.add_argument("--port", type=int, default=8080)
    sa.add_argument("--sandbox-port", type=int, default=8600)
    sa.add_argument("--orders", type=int, default=20, help="paid orders to create per shop at start")
    args = parser.parse_args(argv)
    if args.command == "pools":
        return _pools()
    if args.command == "dags":
        return _dags()
    return _standalone(args)


if __name__ == "__main__":
    sys.exit(main())
