"""Peak mode: a background generator that places orders at a steady rate, as on Double 11 (Singles' Day).

``POST /_sandbox/peak {"rate": 1000, "duration_s": 60, "channels": {"tmall": 0.5, "jd": 0.3, "wechat_shop": 0.2},
"kind": optional}`` starts it; ``GET /_sandbox/peak`` reports progress (orders created per channel, achieved rate);
``POST /_sandbox/peak {"stop": true}`` (or ``DELETE``) stops it, and so do ``SandboxApp.close()`` and ``reset()``.

Channels: ``tmall`` is built in (its shops take turns); any other name must be a registered ``ChannelSystem``
(sandbox/system.py) and is driven only through its ``create_orders(shop, count, at, malformed, lines)``, its shops
taking turns too. The split follows the weights exactly (smooth weighted round-robin, so 0.5/0.3/0.2 over 10 orders
is 5/3/2 at every point in time), which keeps a run deterministic for a given seed and rate.

The generator works in ticks of a few milliseconds: each tick creates the orders owed since the start
(``rate * elapsed - created``), at most ``MAX_BATCH`` per tick so the app lock is never held long and readers (a hub
paging the TOP gateway) keep being served. On a slow machine it falls behind rather than bursting; the status shows
the achieved rate, which is the number to report. A channel whose ``create_orders`` raises is dropped from the run
and its error reported; the other channels go on.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request

from sandbox.world import ORDER_KINDS, WorldError

if TYPE_CHECKING:
    from sandbox.app import SandboxApp

log = logging.getLogger(__name__)

MAX_RATE = 1000  # orders per second
MAX_DURATION_S = 3600
MAX_BATCH = 200  # orders created under one lock hold
TICK_S = 0.005


class PeakGenerator:
    """One peak run at a time, in a daemon thread; every public method is thread-safe."""

    def __init__(self, app: SandboxApp) -> None:
        self.app = app
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._state: dict = {"running": False, "rate": 0, "duration_s": 0, "channels": {}, "created": {},
                             "errors": {}, "elapsed_s": 0.0, "achieved_rate": 0.0, "total": 0, "kind": None}

    # ------------------------------------------------------------------------------------------- control

    def start(self, rate: float, duration_s: float, channels: dict[str, float] | None = None,
              kind: str | None = None) -> dict:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= MAX_RATE:
            raise WorldError(f"rate must be a number of orders per second in (0, {MAX_RATE}]")
        if isinstance(duration_s, bool) or not isinstance(duration_s, (int, float)) or \
                not 0 < duration_s <= MAX_DURATION_S:
            raise WorldError(f"duration_s must be a number of seconds in (0, {MAX_DURATION_S}]")
        weights = dict(channels or {"tmall": 1})
        if not weights or not all(isinstance(name, str) and not isinstance(w, bool) and isinstance(w, (int, float))
                                  and w >= 0 for name, w in weights.items()) or sum(weights.values()) <= 0:
            raise WorldError('channels must map channel names to non-negative weights, e.g. {"tmall": 0.5, "jd": 0.5}')
        weights = {name: float(w) for name, w in weights.items() if w > 0}
        for name in weights:
            if name != "tmall":
                self.app.channel(name)  # raises WorldError for an unknown channel
        if kind is not None and kind not in ORDER_KINDS:
            raise WorldError(f"kind must be one of {', '.join(ORDER_KINDS)} (Tmall orders only)")
        with self._guard:
            if self._thread is not None and self._thread.is_alive():
                raise WorldError("a peak is already running; stop it first (POST /_sandbox/peak {\"stop\": true})",
                                 409)
            self._stop = threading.Event()
            self._state = {"running": True, "rate": rate, "duration_s": duration_s, "channels": weights,
                           "created": {name: 0 for name in weights}, "errors": {}, "elapsed_s": 0.0,
                           "achieved_rate": 0.0, "total": 0, "kind": kind}
            self._thread = threading.Thread(target=self._run, args=(rate, duration_s, weights, kind, self._stop),
                                            name="sandbox-peak", daemon=True)
            self._thread.start()
        return self.status()

    def stop(self) -> dict:
        with self._guard:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        return self.status()

    def wait(self, timeout: float | None = None) -> dict:
        """Block until the current run ends (tests, scenario scripts)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status()

    def status(self) -> dict:
        with self._guard:
            state = dict(self._state)
            state["created"] = dict(state["created"])
            state["errors"] = dict(state["errors"])
            return state

    # ------------------------------------------------------------------------------------------- the run

    def _run(self, rate: float, duration_s: float, weights: dict[str, float], kind: str | None,
             stop: threading.Event) -> None:
        schedule = _SmoothRoundRobin(weights)
        turns = {name: 0 for name in weights}  # which shop of the channel is next
        created_total = 0
        started = time.monotonic()
        try:
            while not stop.is_set() and not self.app.stopping.is_set():
                elapsed = min(time.monotonic() - started, duration_s)
                owed = min(int(rate * elapsed) - created_total, MAX_BATCH)
                if owed > 0:
                    counts = schedule.take(owed)
                    for name, count in counts.items():
                        if count and name in schedule.weights:
                            made = self._create(name, count, turns, kind)
                            created_total += made
                            if made < count:
                                # The channel failed: drop it, and count its share as done so the other channels
                                # are not asked to make up for it.
                                schedule.drop(name)
                                created_total += count - made
                                log.warning("peak: channel %s dropped: %s", name, self.status()["errors"].get(name))
                    self._progress(elapsed)
                if elapsed >= duration_s or not schedule.weights:
                    break
                stop.wait(TICK_S)
        finally:
            self._progress(min(time.monotonic() - started, duration_s), running=False)

    def _create(self, name: str, count: int, turns: dict[str, int], kind: str | None) -> int:
        try:
            if name == "tmall":
                shops = list(self.app.world.shops)
                shop = shops[turns[name] % len(shops)]
                turns[name] += 1
                made = len(self.app.create_tmall_orders(shop, count, kind=kind))
            else:
                system = self.app.channel(name)
                shop = system.shops[turns[name] % len(system.shops)] if system.shops else None
                turns[name] += 1
                made = len(system.create_orders(str(shop) if shop else "", count, None, None, None))
        except Exception as exc:  # a channel's bug must not kill the run for the others
            with self._guard:
                self._state["errors"][name] = f"{type(exc).__name__}: {exc}"
            return 0
        with self._guard:
            self._state["created"][name] += made
            self._state["total"] += made
        return made

    def _progress(self, elapsed: float, running: bool = True) -> None:
        with self._guard:
            self._state["elapsed_s"] = round(elapsed, 3)
            self._state["achieved_rate"] = round(self._state["total"] / elapsed, 1) if elapsed > 0 else 0.0
            if not running:
                self._state["running"] = False


class _SmoothRoundRobin:
    """Nginx's smooth weighted round-robin: picks follow the weights exactly and interleave evenly."""

    def __init__(self, weights: dict[str, float]) -> None:
        self.weights = dict(weights)
        self.current = {name: 0.0 for name in weights}

    def take(self, count: int) -> dict[str, int]:
        picks = {name: 0 for name in self.weights}
        total = sum(self.weights.values())
        for _ in range(count):
            for name, weight in self.weights.items():
                self.current[name] += weight
            best = max(self.current, key=lambda name: self.current[name])
            self.current[best] -= total
            picks[best] += 1
        return picks

    def drop(self, name: str) -> None:
        self.weights.pop(name, None)
        self.current.pop(name, None)


# ----------------------------------------------------------------------------------------------- admin


def _admin_peak(app: SandboxApp, request: Request) -> dict:
    from sandbox.common import admin_body  # late import keeps peak importable alone

    if request.method == "DELETE":
        return app.peak.stop()
    if request.method == "POST":
        body = admin_body(request)
        if body.get("stop") is True:
            return app.peak.stop()
        return start_from(app, body)
    return app.peak.status()


def start_from(app: SandboxApp, body: dict) -> dict:
    """Start a peak from a JSON/YAML mapping (``rate``, ``duration_s``, ``channels``, ``kind``)."""
    unknown = set(body) - {"rate", "duration_s", "channels", "kind"}
    if unknown:
        raise WorldError(f"unknown peak field(s): {', '.join(sorted(unknown))}")
    channels = body.get("channels")
    if channels is not None and not isinstance(channels, dict):
        raise WorldError('channels must be an object like {"tmall": 1}')
    return app.peak.start(body.get("rate", 100), body.get("duration_s", 10), channels, body.get("kind"))


ADMIN_ROUTES = [
    (("GET", "POST", "DELETE"), "/peak", "admin_peak", _admin_peak,
     "peak mode: start {rate, duration_s, channels}, progress, stop ({'stop': true} or DELETE)"),
]
