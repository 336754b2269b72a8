"""Running the sandbox: ``serve()`` for a blocking local server, ``running_sandbox()`` for tests in one process.

Both use werkzeug's threaded development server, which is enough for a test double and starts in milliseconds. The
sandbox binds 127.0.0.1 only: it has an unauthenticated admin API that hands out every secret, so it must never be
reachable from another machine.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from werkzeug.serving import WSGIRequestHandler, make_server

from sandbox.app import SandboxApp
from sandbox.qimen import CONFIRMS_PATH, ROUTER_PATH, STANDALONE_ROUTER_PATH
from sandbox.top import GATEWAY_PATH, STANDALONE_GATEWAY_PATH

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 8765
# How often serve_forever checks for shutdown; small so leaving ``running_sandbox`` takes milliseconds.
POLL_INTERVAL_S = 0.01

log = logging.getLogger(__name__)


class _QuietRequestHandler(WSGIRequestHandler):
    """Request handler for in-process use: access lines go to the ``sandbox.http`` logger at DEBUG, not stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        logging.getLogger("sandbox.http").debug('"%s" %s %s', self.requestline, code, size)


@dataclass(frozen=True)
class SandboxHandle:
    """A running in-process sandbox: base ``url`` (no trailing slash) and the live :class:`SandboxApp`."""

    url: str
    app: SandboxApp
    port: int

    @property
    def top_gateway_url(self) -> str:
        return self.url + (STANDALONE_GATEWAY_PATH if self.app.only == "tmall" else GATEWAY_PATH)

    @property
    def qimen_router_url(self) -> str:
        return self.url + (STANDALONE_ROUTER_PATH if self.app.only == "qimen_wms" else ROUTER_PATH)

    @property
    def qimen_confirms_url(self) -> str:
        return self.url + CONFIRMS_PATH


@contextmanager
def running_sandbox(seed: int = 1, port: int = 0, system: str | None = None, scenario: object = None
                    ) -> Iterator[SandboxHandle]:
    """Serve a fresh ``SandboxApp(seed)`` on 127.0.0.1 (``port=0``: any free port) in a daemon thread.

    On exit the app is closed first (waking handlers parked in a fault's sleep and stopping the confirm pusher),
    then the server is shut down and its thread joined. ``system`` serves one registered system alone, at its real
    platform's paths (plus the admin API).
    """
    app = SandboxApp(seed, only=system, scenario=scenario)
    server = make_server(LOOPBACK, port, app, threaded=True, request_handler=_QuietRequestHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_INTERVAL_S}, name="sandbox-http", daemon=True
    )
    thread.start()
    try:
        yield SandboxHandle(url=f"http://{LOOPBACK}:{server.port}", app=app, port=server.port)
    finally:
        app.close()
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


def serve(host: str = LOOPBACK, port: int = DEFAULT_PORT, seed: int = 1, system: str | None = None,
          scenario: object = None) -> None:
    """Serve the sandbox until interrupted (Ctrl-C). Only 127.0.0.1 is accepted as ``host``."""
    if host != LOOPBACK:
        raise ValueError(
            f"the sandbox binds {LOOPBACK} only (got {host!r}): its admin API hands out every secret without auth"
        )
    app = SandboxApp(seed, only=system, scenario=scenario)
    server = make_server(host, port, app, threaded=True)
    print(f"OrderHub sandbox (seed={seed}) on http://{host}:{server.port}  - admin API at /_sandbox/", file=sys.stderr)
    try:
        server.serve_forever()
    finally:
        app.close()
