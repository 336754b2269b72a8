"""A real trytond for the Tryton sink tests (specs airflow-and-tryton §5).

trytond lives in its own venv (``.venv-tryton``, made by the Makefile before ``make test-sqlite``) because its
pins differ from the hub's.
``template()`` builds an initialised database once (``trytond-admin --all``, then sale/stock/account_invoice, then
``tryton/setup_fixtures.py``: about 20 s) and caches it under ``.cache/tryton/<trytond version>-<fixtures hash>/``,
so later runs only copy a 5 MB file. ``running()`` copies it, starts ``trytond -c conf -d orderhub`` on a free
loopback port (always with ``-d``: §5.6 #1) and stops it by PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("ORDERHUB_TRYTON_VENV", ROOT / ".venv-tryton"))
CACHE = ROOT / ".cache" / "tryton"
FIXTURES = Path(__file__).resolve().parent / "tryton" / "setup_fixtures.py"
DB = "orderhub"
PASSWORD = "admin"  # a throwaway test database's admin password


@dataclass(frozen=True)
class TrytonServer:
    url: str
    database: str
    username: str
    password: str
    ids: dict
    pid: int


def _conf(home: Path, port: int) -> Path:
    conf = home / "trytond.conf"
    conf.write_text(f"[database]\nuri = sqlite://\npath = {home / 'db'}\nlanguage = en\n\n"
                    f"[web]\nlisten = 127.0.0.1:{port}\n\n[session]\ntimeout = 3600\n", encoding="utf-8")
    return conf


def _version() -> str:
    out = subprocess.run([str(VENV / "bin" / "python"), "-c", "import trytond; print(trytond.__version__)"],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def template() -> Path:
    """The cached, initialised template folder (``db/orderhub.sqlite`` + ``ids.json``); built on first use."""
    if not (VENV / "bin" / "trytond").exists():
        raise RuntimeError(f"no trytond in {VENV}: run `make .venv-tryton/.installed-stamp` (`make test-sqlite` "
                           "does it), or set ORDERHUB_SKIP_TRYTON=1 to skip")
    key = f"{_version()}-{hashlib.sha256(FIXTURES.read_bytes()).hexdigest()[:10]}"
    target = CACHE / key
    if (target / "ids.json").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pytest sessions at once build it once
        if (target / "ids.json").exists():
            return target
        build = Path(tempfile.mkdtemp(prefix=f"{key}.", dir=CACHE))
        (build / "db").mkdir()
        (build / "db" / f"{DB}.sqlite").touch()  # the SQLite backend wants the file to exist (§5.6 #2)
        (build / "adminpass").write_text(PASSWORD + "\n", encoding="utf-8")
        conf = _conf(build, 0)
        env = {**os.environ, "TRYTONPASSFILE": str(build / "adminpass"), "TRYTON_DB": DB}
        admin = str(VENV / "bin" / "trytond-admin")
        steps = [[admin, "-c", str(conf), "-d", DB, "--all", "--email", "admin@example.com"],
                 [admin, "-c", str(conf), "-d", DB, "-u", "sale", "stock", "account_invoice",
                  "--activate-dependencies"],
                 [str(VENV / "bin" / "python"), str(FIXTURES), str(conf), str(build / "ids.json")]]
        for step in steps:
            done = subprocess.run(step, env=env, capture_output=True, text=True, cwd=build)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(step)} failed:\n{done.stderr[-3000:]}")
        os.rename(build, target)
    return target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(workdir: Path) -> Iterator[TrytonServer]:
    """A trytond on a copy of the template, stopped by PID at the end."""
    source = template()
    home = workdir / "tryton"
    (home / "db").mkdir(parents=True)
    shutil.copy(source / "db" / f"{DB}.sqlite", home / "db" / f"{DB}.sqlite")
    port = _free_port()
    conf = _conf(home, port)
    log = open(home / "trytond.log", "wb")
    proc = subprocess.Popen([str(VENV / "bin" / "trytond"), "-c", str(conf), "-d", DB], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=home)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = requests.post(f"{url}/rpc/", json={"id": 0, "method": "common.server.version", "params": []},
                                  timeout=2)
                if r.ok and "result" in r.json():
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"trytond did not start: {(home / 'trytond.log').read_text()[-3000:]}")
            time.sleep(0.1)
        ids = json.loads((source / "ids.json").read_text())
        yield TrytonServer(url=url, database=DB, username="admin", password=PASSWORD, ids=ids, pid=proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
