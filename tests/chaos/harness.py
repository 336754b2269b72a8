"""kill -9 chaos: run the hub's steps in a subprocess, SIGKILL it at random points, restart, check the truth.

Each round the driver adds new paid orders on both Tmall shops, then starts a worker process (forked from a
pre-imported parent, see ZYGOTE) that runs ``Hub.run_once()`` (sync -> process -> dispatch -> feedback ->
write-back). The worker is killed by one of:

- itself, with SIGKILL, at a *critical point* (two rounds in three): the 1st-3rd call of one of ``POINTS``, just
  before or just after it: a page's ingest transaction, a processing step, a dispatch claim, the recording of a
  delivery (``_finish``: the WMS or TOP has accepted, the hub has not written it down), a ship confirm;
- the driver, with SIGKILL, after a random delay (one round in three): anywhere, mid-HTTP call or mid-SQL statement.
A round whose worker finishes before its kill point is not counted as a kill; rounds go on until ``kills`` kills.

Faults stay injected meanwhile: replies lost after success (TOP and WMS), page shift on ``increment.get``, late
indexing. After the last round the faults are cleared and one clean worker runs to a fixed point; then the
sandbox's record of truth is compared with the hub: lost orders, duplicated delivery orders in the WMS, shipments
written back more than once (all must be 0), every order delivered and written back.

A worker takes over claims left ``in_flight`` at once (``CLAIM_TIMEOUT = 0``): workers run one at a time here, so
any in-flight claim it finds belongs to a dead process; production waits ``hub.dispatch.CLAIM_TIMEOUT`` instead.
Used by tests/chaos/test_kill9.py (20 kills) and bench/chaos.py (``make chaos``: 200 kills).
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from hub.demo import truth_counts
from hub.store import create_engine_for

ROOT = Path(__file__).resolve().parents[2]
SHOPS = ("tm-flagship", "tm-outlet")

# The zygote imports the hub once, then forks one worker per round (a fresh process, killed for real: fork before
# any engine, connection or thread exists, so the child owns its own). This keeps a round at the cost of the run,
# not of Python's imports. Protocol on stdin/stdout, one line each: "<kill spec> <runs> <log file>" -> "pid <pid>",
# later "exit <returncode>" (-9 when killed).
ZYGOTE = textwrap.dedent("""\
    import os, signal, sys, traceback
    from datetime import timedelta

    import connectors.registry  # noqa: F401  (imported once, before forking)
    import hub.dispatch, hub.runtime, hub.sync
    from hub.config import load_settings
    from hub.runtime import Hub

    def work(config, spec, runs):
        hub.dispatch.CLAIM_TIMEOUT = timedelta(0)  # one worker at a time: an in-flight claim is a dead worker's
        target = None if spec == "-" else spec.split(":")  # [name, nth call, before|after]
        calls = {}

        def point(name, phase):
            if phase == "before":
                calls[name] = calls.get(name, 0) + 1
            if target and name == target[0] and calls[name] == int(target[1]) and phase == target[2]:
                sys.stderr.write(f"\\nkilled at {phase} {name}\\n")
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGKILL)

        def around(module, name):
            real = getattr(module, name)

            def wrapper(*args, **kwargs):
                point(name, "before")
                out = real(*args, **kwargs)
                point(name, "after")
                return out

            setattr(module, name, wrapper)

        for module, name in ((hub.sync, "ingest_page"), (hub.runtime, "ingest_page"), (hub.dispatch, "_claim"),
                             (hub.dispatch, "_finish"), (hub.runtime, "record_confirm"), (hub.runtime, "process")):
            around(module, name)
        worker = Hub(load_settings(config))
        for _ in range(runs):
            worker.run_once()
        print(f"calls={calls}")

    config = sys.argv[1]
    for line in sys.stdin:
        spec, runs, log_path = line.split()
        pid = os.fork()
        if pid == 0:
            log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(log, 1)
            os.dup2(log, 2)
            code = 0
            try:
                work(config, spec, int(runs))
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        print(f"pid {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        print(f"exit {-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)}", flush=True)
    """)


class Zygote:
    """The pre-imported parent of every worker (see ZYGOTE)."""

    def __init__(self, config: Path, workdir: Path, env: dict[str, str]) -> None:
        script = workdir / "chaos_zygote.py"
        script.write_text(ZYGOTE)
        self.workdir = workdir
        self.proc = subprocess.Popen([sys.executable, str(script), str(config)], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.rounds = 0

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("eof")

    def run(self, spec: str, runs: int, kill_after: float | None) -> tuple[int, str, bool]:
        """One worker (``spec`` "name:nth:before|after" or "-"): (returncode, its output, killed by the timer)."""
        self.rounds += 1
        log = self.workdir / f"worker-{self.rounds}.log"
        self.proc.stdin.write(f"{spec} {runs} {log}\n")
        self.proc.stdin.flush()
        answer = self.lines.get(timeout=60)
        if not answer.startswith("pid "):
            raise RuntimeError(f"chaos zygote died: {answer}")
        pid = int(answer.split()[1])
        timed_out = False
        try:
            answer = self.lines.get(timeout=kill_after if kill_after is not None else 600)
        except queue.Empty:
            os.kill(pid, signal.SIGKILL)
            timed_out = True
            answer = self.lines.get(timeout=60)
        code = int(answer.split()[1])
        return code, log.read_text(errors="replace") if log.exists() else "", timed_out

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# where a worker kills itself: the n-th call (1-3) of one of these, just before or just after it
POINTS = ("ingest_page", "process", "_claim", "_finish", "record_confirm")
FAULTS = {
    "top.timeout_after_success": {"calls": 2, "mode": "drop"},
    "wms.timeout_after_success": {"calls": 2, "mode": "drop"},
    "top.page_shift": {"calls": 3},
    "top.index_lag_s": 2,
}
CLEAR = {"top.timeout_after_success": {"calls": 0}, "wms.timeout_after_success": {"calls": 0},
         "top.page_shift": {"calls": 0}, "top.index_lag_s": 0}


@dataclass
class ChaosResult:
    kills: int = 0
    self_kills: int = 0
    timer_kills: int = 0
    clean_exits: int = 0
    transient_exits: int = 0  # a run that gave up on a TransientError (Airflow retries the task): allowed
    failures: list[str] = field(default_factory=list)
    kill_spots: dict[str, int] = field(default_factory=dict)  # self-kills by critical point
    orders: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    not_delivered: list[str] = field(default_factory=list)
    not_written_back: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _post(url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = requests.post(f"{url}{path}", json=body, timeout=30)
    resp.raise_for_status()
    return resp.json()


def run_chaos(sandbox_url: str, db_url: str, config: Path, workdir: Path, *, kills: int, seed: int = 7,
              orders_per_round: int = 2, max_delay_s: float = 1.5) -> ChaosResult:
    """``kills`` killed worker runs with faults on, then a clean run; returns what the truth says."""
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ORDERHUB_DATABASE_URL": db_url}
    result = ChaosResult()
    started = time.monotonic()
    _post(sandbox_url, "/_sandbox/faults", {"wms.auto_ship": True})
    zygote = Zygote(config, workdir, env)
    try:
        attempts = 0
        while result.kills < kills and attempts < kills * 4:
            attempts += 1
            _post(sandbox_url, "/_sandbox/faults", FAULTS)
            for shop in SHOPS:
                result.orders += len(_post(sandbox_url, "/_sandbox/orders",
                                           {"channel": "tmall", "shop": shop, "count": orders_per_round})["ids"])
            # two rounds in three die at a critical point, one in three after a delay: the mix depends on the
            # seed, not on how fast the machine is
            by_timer = rng.random() < 1 / 3
            spot = "-" if by_timer else f"{rng.choice(POINTS)}:{rng.randint(1, 3)}:{rng.choice(('before', 'after'))}"
            code, output, timed_out = zygote.run(spot, 1, rng.uniform(0.05, max_delay_s) if by_timer else None)
            if timed_out:
                result.timer_kills += 1
                result.kills += 1
            elif code == -signal.SIGKILL:
                spot = output.rsplit("killed at ", 1)[-1].strip()
                result.kill_spots[spot] = result.kill_spots.get(spot, 0) + 1
                result.self_kills += 1
                result.kills += 1
            elif code == 0:
                result.clean_exits += 1
            elif "hub.errors.TransientError" in output.strip().splitlines()[-1]:
                result.transient_exits += 1
            else:  # a worker that fails on its own (not killed) is a finding: keep its last words
                result.failures.append(output[-3000:])
        # faults off, index caught up: a clean worker to a fixed point (its second run_once finds nothing new)
        _post(sandbox_url, "/_sandbox/faults", CLEAR)
        time.sleep(2.1)
        for _ in range(2):
            code, output, _timed_out = zygote.run("-", 2, None)
            if code != 0:
                result.failures.append(output[-3000:])
    finally:
        zygote.close()
    truth = requests.get(f"{sandbox_url}/_sandbox/truth", timeout=60).json()
    engine = create_engine_for(db_url)
    try:
        result.counts = truth_counts(truth, engine)
    finally:
        engine.dispose()
    deliveries = truth["wms"]["delivery_orders"].values()
    delivered = {code for d in deliveries if d["created"] >= 1 for code in d["source_order_codes"]}
    writebacks = truth["writebacks"].get("tmall", {})
    for shop in SHOPS:
        for tid in truth["channels"]["tmall"][shop]["orders"]:
            if tid not in delivered:
                result.not_delivered.append(tid)
            if writebacks.get(tid, {}).get("accepted", 0) != 1:
                result.not_written_back.append(tid)
    result.seconds = time.monotonic() - started
    return result
