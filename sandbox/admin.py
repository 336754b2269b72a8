"""The admin API under ``/_sandbox/``: JSON in, JSON out, for tests and integration engineers driving the sandbox.

It creates and changes channel orders, reads and sets fault knobs, ships WMS orders by hand, registers the confirm
callback and reports the record of truth (what the simulated platforms really hold, to compare with what the hub
ingested). Each handler only parses and validates HTTP input, then calls the matching ``SandboxApp`` method.
Errors are ``{"error": "..."}`` with HTTP 400 (bad input) or 404 (unknown order / code).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox import peak, qimen, scenario, top
from sandbox.common import admin_at as _at
from sandbox.common import admin_body as _body
from sandbox.common import json_response as _json
from sandbox.faults import FaultError
from sandbox.world import MALFORMED_KINDS, WorldError

if TYPE_CHECKING:
    from sandbox.app import SandboxApp

PREFIX = "/_sandbox"
# Admin operations that live next to the simulator they drive: (methods, path, endpoint, handler(app, request), what).
EXTENSION_ROUTES = [*top.ADMIN_ROUTES, *peak.ADMIN_ROUTES, *scenario.ADMIN_ROUTES, *qimen.ADMIN_ROUTES]

ENDPOINTS = (
    ("GET|POST", "/top/router/rest", "Tmall TOP gateway (signed)"),
    ("POST", "/qimen/router", "Qimen WMS router (signed, XML body)"),
    ("GET", "/qimen/_confirms?after=&limit=", "pull feed of signed deliveryorder.confirm messages"),
    ("GET", "/qimen/_returns?after=&limit=", "pull feed of signed returnorder.confirm messages"),
    ("GET", "/qimen/_stockchanges?after=&limit=", "pull feed of signed stockchange.report messages"),
    ("GET", f"{PREFIX}/", "this list"),
    ("GET", f"{PREFIX}/health", "liveness and seed"),
    ("GET", f"{PREFIX}/credentials", "app keys, secrets, shop sessions, WMS customer"),
    ("GET", f"{PREFIX}/catalogue", "the SKUs (merchant codes = WMS item codes)"),
    ("POST", f"{PREFIX}/orders", "create paid Tmall trades"),
    ("POST", f"{PREFIX}/orders/tmall/<tid>/modify", "change a Tmall trade"),
    ("GET", f"{PREFIX}/faults", "current fault knobs"),
    ("POST", f"{PREFIX}/faults", "merge fault knobs ({'reset': true} restores defaults)"),
    ("GET", f"{PREFIX}/truth", "record of truth"),
    ("POST", f"{PREFIX}/reset", "fresh world, default knobs"),
    ("POST", f"{PREFIX}/wms/ship", "ship created delivery orders"),
    ("GET", f"{PREFIX}/wms/callback", "confirm push status"),
    ("POST", f"{PREFIX}/wms/callback", "set the confirm push URL"),
)


class BadRequest(Exception):
    """Invalid admin input; becomes HTTP 400."""


class AdminApi:
    def __init__(self, app: SandboxApp) -> None:
        self.app = app
        self._handlers: dict[str, Callable[..., object]] = {
            "admin_index": self.index,
            "admin_health": self.health,
            "admin_credentials": lambda request: self.app.credentials(),
            "admin_catalogue": lambda request: {"skus": self.app.catalogue()},
            "admin_create_orders": self.create_orders,
            "admin_modify_order": self.modify_order,
            "admin_modify_channel_order": lambda request, channel, order_id: self.app.channel(channel).modify_order(
                order_id, _body(request)),
            "admin_faults": self.faults,
            "admin_truth": lambda request: self.app.truth(),
            "admin_reset": self.reset,
            "admin_wms_ship": self.wms_ship,
            "admin_wms_callback": self.wms_callback,
            **{endpoint: _bind(handler, app) for _, _, endpoint, handler, _ in EXTENSION_ROUTES},
        }

    @staticmethod
    def rules() -> list[Rule]:
        return [
            Rule(f"{PREFIX}/", endpoint="admin_index", methods=["GET"]),
            Rule(f"{PREFIX}/health", endpoint="admin_health", methods=["GET"]),
            Rule(f"{PREFIX}/credentials", endpoint="admin_credentials", methods=["GET"]),
            Rule(f"{PREFIX}/catalogue", endpoint="admin_catalogue", methods=["GET"]),
            Rule(f"{PREFIX}/orders", endpoint="admin_create_orders", methods=["POST"]),
            Rule(f"{PREFIX}/orders/tmall/<tid>/modify", endpoint="admin_modify_order", methods=["POST"]),
            Rule(f"{PREFIX}/orders/<channel>/<order_id>/modify", endpoint="admin_modify_channel_order",
                 methods=["POST"]),
            Rule(f"{PREFIX}/faults", endpoint="admin_faults", methods=["GET", "POST"]),
            Rule(f"{PREFIX}/truth", endpoint="admin_truth", methods=["GET"]),
            Rule(f"{PREFIX}/reset", endpoint="admin_reset", methods=["POST"]),
            Rule(f"{PREFIX}/wms/ship", endpoint="admin_wms_ship", methods=["POST"]),
            Rule(f"{PREFIX}/wms/callback", endpoint="admin_wms_callback", methods=["GET", "POST"]),
            *(Rule(f"{PREFIX}{path}", endpoint=endpoint, methods=list(methods))
              for methods, path, endpoint, _, _ in EXTENSION_ROUTES),
        ]

    def dispatch(self, endpoint: str, request: Request, **args: str) -> Response:
        try:
            payload = self._handlers[endpoint](request, **args)
        except (BadRequest, FaultError) as exc:
            return _json({"error": str(exc)}, 400)
        except WorldError as exc:
            return _json({"error": str(exc)}, exc.http_status)
        return _json(payload)

    # ------------------------------------------------------------------------------------------- handlers

    def index(self, request: Request) -> dict:
        extensions = [("|".join(m), f"{PREFIX}{p}", w) for m, p, _, _, w in EXTENSION_ROUTES]
        return {"endpoints": [{"method": m, "path": p, "what": w} for m, p, w in [*ENDPOINTS, *extensions]]}

    def health(self, request: Request) -> dict:
        return {"ok": True, "seed": self.app.seed}

    def create_orders(self, request: Request) -> dict:
        body = _body(request)
        channel = body.get("channel", "tmall")
        if channel != "tmall":
            system = self.app.channel(channel)
            count = body.get("count", 1)
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
                raise BadRequest("count must be an integer between 1 and 1000")
            shop = body.get("shop") or (system.shops[0] if system.shops else None)
            return {"ids": system.create_orders(str(shop), count, _at(body), body.get("malformed"),
                                                body.get("lines"))}
        shop = body.get("shop")
        if not isinstance(shop, str):
            raise BadRequest("shop is required (e.g. 'tm-flagship')")
        malformed = body.get("malformed")
        if malformed is not None and malformed not in MALFORMED_KINDS:
            raise BadRequest(f"malformed must be one of {', '.join(MALFORMED_KINDS)}")
        lines = body.get("lines")
        if lines is not None and (not isinstance(lines, list) or not all(
                isinstance(line, dict) and isinstance(line.get("sku"), str) for line in lines)):
            raise BadRequest('lines must be a list like [{"sku": "SKU-001-RED-M", "num": 2}]')
        ids = self.app.create_tmall_orders(shop, body.get("count", 1), at=_at(body), malformed=malformed,
                                           lines=lines, kind=body.get("kind"))
        return {"ids": ids}

    def modify_order(self, request: Request, tid: str) -> dict:
        body = _body(request)
        changes = {}
        for name in ("seller_memo", "status", "receiver_city"):
            value = body.get(name)
            if value is not None and not isinstance(value, str):
                raise BadRequest(f"{name} must be a string")
            changes[name] = value
        modified = self.app.modify_tmall_order(tid, at=_at(body), **changes)
        return {"tid": tid, "modified": modified}

    def faults(self, request: Request) -> dict:
        if request.method == "POST":
            body = _body(request)
            with self.app.lock:
                self.app.faults.merge(body)
        with self.app.lock:
            return self.app.faults.snapshot()

    def reset(self, request: Request) -> dict:
        seed = _body(request).get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise BadRequest("seed must be an integer")
        self.app.reset(seed)
        return {"ok": True, "seed": self.app.seed}

    def wms_ship(self, request: Request) -> dict:
        # {"codes", "parcels", "partial", "lines"}: validated and run by sandbox.qimen (multi-parcel, partial)
        return qimen.admin_ship(self.app, _body(request))

    def wms_callback(self, request: Request) -> dict:
        if request.method == "POST":
            body = _body(request)
            url = body.get("url")
            if url is not None:
                parts = urlsplit(url) if isinstance(url, str) else None
                if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                    raise BadRequest("url must be an absolute http(s) URL, or null to stop pushing")
            after = body.get("after")
            if after is not None and not _cursor(after) and not (
                    isinstance(after, dict) and set(after) <= set(qimen.FEEDS) and all(map(_cursor, after.values()))):
                raise BadRequest("after must be a non-negative integer (a confirm seq) or {feed: seq}")
            kinds = body.get("kinds")
            if kinds is not None and (not isinstance(kinds, list) or not set(kinds) <= set(qimen.FEEDS)):
                raise BadRequest(f"kinds must be a list of {', '.join(qimen.FEEDS)}")
            self.app.pusher.configure(url, after, kinds)
        return self.app.pusher.status()


def _cursor(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _bind(handler: Callable[..., object], app: SandboxApp) -> Callable[..., object]:
    return lambda request, **args: handler(app, request, **args)


