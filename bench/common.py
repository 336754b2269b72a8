"""What the benchmarks share: a sandbox in its own process, fresh databases, a hub configured against both, order
generation over the sandbox's admin API, peak RSS, percentiles and the results folder.

The sandbox runs in a child process for the throughput benchmarks so that its CPU and memory are not counted as the
hub's (and the two share the machine's cores as a real deployment would share a network). Running this file
directly serves one: ``python bench/common.py serve-sandbox --seed 11`` prints its URL and serves until killed.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"
# the benchmarks drop every table of this database: never point it at one that holds anything of value
MARIADB_URL = os.environ.get("ORDERHUB_BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/orderhub_bench")
SHANGHAI = ZoneInfo("Asia/Shanghai")


# ------------------------------------------------------------------------------------------------ measurements


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_avg_when_saved": [round(x, 2) for x in os.getloadavg()]}  # the machine is shared: say how busy


def save_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    data = {"benchmark": name, "measured_at": datetime.now(ZoneInfo("UTC")).isoformat(timespec="seconds"),
            "machine": machine(), **data}
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ sandbox


class SandboxProcess:
    """A sandbox served by a child process; ``url`` once started, ``cpu_s()`` / ``rss_mb()`` for the report."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> SandboxProcess:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "serve-sandbox",
                                      "--seed", str(self.seed)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("http://"):
            self.proc.kill()
            raise RuntimeError(f"the sandbox child did not start: {line!r}")
        self.url = line
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()  # our own child, by its handle
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def _ps(self) -> Any:
        import psutil

        assert self.proc is not None
        return psutil.Process(self.proc.pid)

    def cpu_s(self) -> float:
        times = self._ps().cpu_times()
        return times.user + times.system

    def rss_mb(self) -> float:
        return round(self._ps().memory_info().rss / 2**20, 1)

    def admin(self, path: str, body: dict[str, Any] | None = None, method: str = "POST") -> Any:
        return admin(self.url, path, body, method)


def admin(url: str, path: str, body: dict[str, Any] | None = None, method: str = "POST") -> Any:
    import requests

    response = requests.request(method, f"{url}/_sandbox/{path.lstrip('/')}", json=body, timeout=120)
    response.raise_for_status()
    return response.json()


def wire_time(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def create_spread_orders(url: str, total: int, shops: list[str], hours: float, chunk: int = 100) -> list[str]:
    """``total`` paid Tmall orders, shops taking turns, placed at evenly spread seconds over the last ``hours``
    (a day of trading, so the hub reads many windows of many pages, not one)."""
    ids: list[str] = []
    now = datetime.now(SHANGHAI).replace(microsecond=0) - timedelta(seconds=5)
    batches = (total + chunk - 1) // chunk
    step = hours * 3600 / max(batches, 1)
    for number in range(batches):
        count = min(chunk, total - number * chunk)
        at = now - timedelta(seconds=int((batches - number) * step))
        body = {"channel": "tmall", "shop": shops[number % len(shops)], "count": count, "at": wire_time(at)}
        ids.extend(admin(url, "orders", body)["ids"])
    return ids


def tmall_shops(url: str) -> list[str]:
    return [s["shop"] for s in admin(url, "credentials", method="GET")["tmall"]["shops"]]


# ------------------------------------------------------------------------------------------------ databases


def fresh_database(kind: str, workdir: Path, name: str = "hub") -> str:
    """A migrated, empty database: a new SQLite file, or the MariaDB bench database with every table dropped."""
    from hub.store import create_engine_for, upgrade

    if kind == "sqlite":
        url = f"sqlite:///{workdir / (name + '.db')}"
    elif kind == "mariadb":
        url = MARIADB_URL
        wipe_mariadb(url)
    else:
        raise ValueError(f"unknown database kind {kind!r} (sqlite or mariadb)")
    engine = create_engine_for(url)
    upgrade(engine)
    engine.dispose()
    return url


def wipe_mariadb(url: str) -> None:
    import sqlalchemy as sa

    from hub.store import create_engine_for

    server_url, _, name = url.rpartition("/")
    server = sa.create_engine(server_url + "/")
    with server.begin() as conn:  # the bench database is created on first use
        conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
    server.dispose()
    engine = create_engine_for(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
        for (table,) in conn.exec_driver_sql("SHOW TABLES").fetchall():
            conn.exec_driver_sql(f"DROP TABLE `{table}`")
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")
    engine.dispose()


def hub_for(sandbox_url: str, db_url: str, workdir: Path, channels: tuple[str, ...] = ("tmall",),
            **sync: Any) -> Any:
    """A Hub over the sandbox's shops and WMS, with ``sync`` settings overridden on every shop."""
    import yaml

    from hub.config import load_settings
    from hub.runtime import Hub
    from sandbox.configuration import orderhub_config

    data = orderhub_config(sandbox_url, db_url, channels=channels)
    for shop in data["shops"]:
        shop["sync"].update(sync)
    path = workdir / "orderhub.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return Hub(load_settings(path))


def registered_sandbox_channels() -> tuple[str, ...]:
    """Source channels that both have a connector (connectors/registry.py) and a sandbox shop builder."""
    from connectors.registry import SOURCES
    from sandbox.configuration import SHOP_BUILDERS

    return tuple(c for c in SOURCES if c in SHOP_BUILDERS)


@contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=prefix) as path:
        yield Path(path)


def quiet_logs() -> None:
    """Warnings and up only: the per-window info lines would cost time and drown the figures."""
    from hub.logging import configure_logging

    configure_logging("ERROR", stream=open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process


# ------------------------------------------------------------------------------------------------ child entry


def _serve_sandbox(seed: int) -> None:
    import signal

    from sandbox import running_sandbox

    with running_sandbox(seed=seed) as handle:
        print(handle.url, flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="bench helpers")
    parser.add_argument("command", choices=["serve-sandbox"])
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    import signal

    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # delivered to sigwait only
    _serve_sandbox(args.seed)
