"""Start and stop ``airflow standalone`` on 127.0.0.1 for OrderHub: used by ``make airflow``, the tests and the
latency benchmark. No Airflow import here: Airflow runs in its own process group, configured by environment.

Stopping sends SIGTERM to the process group the launcher created (``start_new_session``), never by name: a process
started from a non-interactive shell ignores SIGINT (spec §2.1), and the triggerer takes up to ~10 s to leave.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def airflow_env(home: Path, config_path: Path, port: int, **extra: str) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__API__HOST": LOOPBACK,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://{LOOPBACK}:{port}",
        "AIRFLOW__CORE__PARALLELISM": "4",  # default 32 forks 32 idle LocalExecutor workers on a 2-core box
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "ORDERHUB_CONFIG": str(config_path),
        "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),  # standalone spawns `airflow ...` from PATH
        "PYTHONPATH": str(ROOT) + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else ""),
    }
    env.update(extra)
    return env


@dataclass
class Airflow:
    url: str
    home: Path
    process: subprocess.Popen
    log_path: Path

    @property
    def password(self) -> str:
        return json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]

    def token(self) -> str:
        r = requests.post(f"{self.url}/auth/token", json={"username": "admin", "password": self.password}, timeout=10)
        r.raise_for_status()
        return r.json()["access_token"]

    def api(self, token: str) -> requests.Session:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {token}"
        return s

    def stop(self, grace: float = 30) -> None:
        """SIGTERM to the process group; whatever of the group still runs after ``grace`` seconds gets SIGKILL.
        Waiting for the standalone parent alone is not enough: a scheduler was seen outliving it."""
        group = self.process.pid
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (self.process.poll() is None or group_members(group)):
            time.sleep(0.3)
        if group_members(group):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            pass


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def wait_until_ready(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"airflow standalone exited ({process.returncode}):\n{log_path.read_text()[-3000:]}")
        try:
            health = requests.get(f"{url}/api/v2/monitor/health", timeout=2)
            if health.status_code == 200 and health.json().get("scheduler", {}).get("status") == "healthy":
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"airflow did not become healthy in {timeout}s:\n{log_path.read_text()[-3000:]}")


@contextmanager
def standalone(home: Path, config_path: Path, port: int | None = None, **extra_env: str) -> Iterator[Airflow]:
    """``airflow standalone`` (scheduler, dag-processor, triggerer, API server on 127.0.0.1) in its own process
    group; stopped on exit."""
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = home / "standalone.log"
    log = open(log_path, "ab")
    process = subprocess.Popen([str(Path(sys.executable).parent / "airflow"), "standalone"],
                               env=airflow_env(home, config_path, port, **extra_env), stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                               cwd=str(home))
    handle = Airflow(url=f"http://{LOOPBACK}:{port}", home=home, process=process, log_path=log_path)
    try:
        wait_until_ready(handle.url, process, log_path)
        yield handle
    finally:
        handle.stop()
        log.close()


def ensure_pools_over_rest(session: requests.Session, url: str, pools: dict[str, tuple[int, str]]) -> None:
    """Create (or resize) the per-app-key pools through the REST API of a running Airflow."""
    for name, (slots, description) in pools.items():
        r = session.post(f"{url}/api/v2/pools", json={"name": name, "slots": slots, "description": description},
                         timeout=10)
        if r.status_code == 409:
            r = session.patch(f"{url}/api/v2/pools/{name}", params={"update_mask": "slots"},
                              json={"pool": name, "slots": slots, "description": description,
                                    "include_deferred": False}, timeout=10)
        r.raise_for_status()


def unpause(session: requests.Session, url: str, dag_id: str, timeout: float = 60) -> None:
    """Unpause a DAG, waiting for the dag-processor to have registered it first."""
    deadline = time.monotonic() + timeout
    while True:
        r = session.patch(f"{url}/api/v2/dags/{dag_id}", json={"is_paused": False}, timeout=10)
        if r.status_code == 200:
            return
        if time.monotonic() > deadline:
            r.raise_for_status()
        time.sleep(0.5)


def trigger(session: requests.Session, url: str, dag_id: str, conf: dict[str, Any] | None = None) -> str:
    r = session.post(f"{url}/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf or {}},
                     timeout=10)
    r.raise_for_status()
    return r.json()["dag_run_id"]


def wait_for_run(session: requests.Session, url: str, dag_id: str, run_id: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = session.get(f"{url}/api/v2/dags/{dag_id}/dagRuns/{run_id}", timeout=10).json().get("state")
        if state in ("success", "failed"):
            return state
        time.sleep(0.5)
    raise TimeoutError(f"{dag_id} {run_id} still {state} after {timeout}s")
