"""``SandboxApp``: the WSGI application that hosts the TOP gateway, the Qimen WMS and the admin API.

Routing is by path (werkzeug ``Map``): ``/top/router/rest`` -> :mod:`sandbox.top`, ``/qimen/...`` ->
:mod:`sandbox.qimen`, ``/_sandbox/...`` -> :mod:`sandbox.admin`. All mutable state (world, WMS book, fault knobs,
confirm pusher cursor) sits on this object behind one ``threading.RLock``; handlers take it for the whole of their
state access and release it before any deliberate sleep (latency, timeout faults), so a slow call never blocks others.

The public methods below are the same operations the admin API exposes over HTTP, so in-process tests can drive the
sandbox directly through ``handle.app``.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import threading
from datetime import datetime, timedelta

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from sandbox import clock, qimen
from sandbox.admin import AdminApi
from sandbox.faults import Faults
from sandbox.peak import PeakGenerator
from sandbox.qimen import ConfirmPusher, DeliveryOrder, QimenRouter, WmsBook, qimen_rules
from sandbox.registry import SYSTEMS
from sandbox.system import ChannelSystem, System, deep_merge
from sandbox.top import (
    GATEWAY_PATH,
    OAUTH_PATH,
    STANDALONE_GATEWAY_PATH,
    STANDALONE_OAUTH_PATH,
    TopGateway,
    gateway_rules,
)
from sandbox.world import World, WorldError

log = logging.getLogger(__name__)

def _builtin_rules() -> list[Rule]:
    # fresh Rule objects per app: werkzeug binds a Rule to the one Map it is added to
    return [
        *gateway_rules(),
        *qimen_rules(),
    ]


class SandboxApp:
    """In-memory simulators of the Tmall TOP gateway and a Qimen WMS, seeded for determinism."""

    def __init__(self, seed: int = 1, only: str | None = None, scenario: object = None) -> None:
        """``only`` serves a single registered system (or ``"tmall"``, the built-in TOP gateway) at its real
        platform's paths (plus the admin API); ``scenario`` is a scenario file path or mapping (sandbox.scenario)."""
        self.lock = threading.RLock()
        # Set by close(): wakes every deliberate sleep (latency, timeout faults, pusher backoff) at once.
        self.stopping = threading.Event()
        self.seed = seed
        self.only = only
        self.world = World.build(seed)
        self.wms = WmsBook.build(seed, self.world)
        self._request_ids = itertools.count(1)
        self.systems: dict[str, System] = {cls.name: cls(self) for cls in SYSTEMS}
        self.faults = Faults({k: v for s in self.systems.values() for k, v in s.knob_defaults.items()},
                             {k: v for s in self.systems.values() for k, v in s.knob_schema.items()})
        self.top = TopGateway(self)
        self.qimen = QimenRouter(self)
        self.admin = AdminApi(self)
        self.pusher = ConfirmPusher(self)
        self.peak = PeakGenerator(self)
        if only is not None and only not in ("tmall", qimen.SYSTEM_NAME) and only not in self.systems:
            raise ValueError(f"unknown system {only!r}; known: {', '.join(self.systems)}")
        rules = (gateway_rules(standalone=True) if only == "tmall" else
                 qimen_rules(standalone=True) if only == qimen.SYSTEM_NAME else
                 [*self.systems[only].standalone_rules()] if only else
                 [*_builtin_rules(), *(r for system in self.systems.values() for r in system.rules())])
        self.routes = Map([*rules, *AdminApi.rules()], strict_slashes=False)
        if scenario is not None:
            from sandbox.scenario import apply_scenario  # scenario imports app helpers; import late to avoid a cycle

            apply_scenario(self, scenario)

    def channel(self, name: str) -> ChannelSystem:
        system = self.systems.get(name)
        if not isinstance(system, ChannelSystem):
            channels = ["tmall", *(n for n, s in self.systems.items() if isinstance(s, ChannelSystem))]
            raise WorldError(f"unknown channel {name!r}; the sandbox simulates: {', '.join(channels)}")
        return system

    # ------------------------------------------------------------------------------------------- WSGI

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        return self.wsgi_app(environ, start_response)

    def wsgi_app(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        try:
            endpoint, args = self.routes.bind_to_environ(environ).match()
            if ":" in endpoint:
                response = self.systems[endpoint.split(":", 1)[0]].handle(endpoint, request, **args)
            elif endpoint == "top":
                response = self.top(request)
            elif endpoint == "top_oauth":
                response = self.top.oauth_token(request)
            elif endpoint.startswith("qimen"):
                response = self.qimen.dispatch(endpoint, request)
            else:
                response = self.admin.dispatch(endpoint, request, **args)
        except HTTPException as exc:
            response = _json_error(exc.code or 500, exc.description or exc.name)
        except Exception:
            # A sandbox bug must surface as a readable 500, not a dropped connection.
            log.exception("sandbox: unhandled error on %s %s", request.method, request.path)
            response = _json_error(500, "internal sandbox error; see the sandbox log")
        return response(environ, start_response)

    # ------------------------------------------------------------------------------------------- helpers

    def now(self) -> datetime:
        return clock.now()

    def visible_at(self) -> datetime:
        """When a write made now becomes visible to the trade search APIs (``top.index_lag_s``)."""
        lag = float(self.faults.get("top.index_lag_s"))  # type: ignore[arg-type]
        return clock.precise_now() + timedelta(seconds=lag)

    def next_request_id(self) -> str:
        return f"sbx-{next(self._request_ids)}"

    def pause(self, seconds: float) -> None:
        """Sleep that ``close()`` interrupts, so shutting down never waits for a fault's sleep."""
        if seconds > 0:
            self.stopping.wait(seconds)

    def stall(self, knob: dict, environ: dict) -> None:
        """Lose the reply of a call whose effect was applied (``*.timeout_after_success``)."""
        sock = environ.get("werkzeug.socket")
        if knob.get("mode") == "drop" and isinstance(sock, socket.socket):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.pause(float(knob["sleep_s"]))

    def close(self) -> None:
        """Stop background work (the confirm pusher) and wake any sleeping handler."""
        self.stopping.set()
        self.peak.stop()
        self.pusher.stop()
        for system in self.systems.values():
            system.close()

    # ------------------------------------------------------------------------------------------- operations

    def credentials(self) -> dict:
        with self.lock:
            world = self.world
            return {
                "tmall": {
                    "app_key": world.tmall_app.app_key,
                    "app_secret": world.tmall_app.app_secret,
                    "sign_method": world.tmall_app.sign_method,
                    "gateway_path": STANDALONE_GATEWAY_PATH if self.only == "tmall" else GATEWAY_PATH,
                    "oauth_path": STANDALONE_OAUTH_PATH if self.only == "tmall" else OAUTH_PATH,
                    "shops": [
                        {
                            "shop": shop.slug,
                            "seller_nick": shop.seller_nick,
                            "session": shop.session,
                            "refresh_token": shop.refresh_token,
                            "expires_at": clock.format_wire(shop.expires_at),
                        }
                        for shop in world.shops.values()
                    ],
                },
                "qimen_wms": qimen.credentials(self),
                **{name: system.credentials() for name, system in self.systems.items() if system.credentials()},
            }

    def catalogue(self) -> list[dict]:
        with self.lock:
            return [sku.as_json() for sku in self.world.catalogue]

    def create_tmall_orders(
        self, shop: str, count: int, at: datetime | None = None, malformed: str | None = None,
        lines: list[dict] | None = None, kind: str | None = None,
    ) -> list[str]:
        """Create ``count`` trades (paid unless ``kind`` says otherwise); returns their tids as strings."""
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
            raise WorldError("count must be an integer between 1 and 1000")
        with self.lock:
            trades = self.world.create_trades(shop, count, at or self.now(), malformed, self.visible_at(), lines,
                                              kind)
            return [str(trade.tid) for trade in trades]

    def modify_tmall_order(
        self,
        tid: int | str,
        at: datetime | None = None,
        seller_memo: str | None = None,
        status: str | None = None,
        receiver_city: str | None = None,
    ) -> str:
        """Change a trade like a buyer/seller/platform would; returns the new ``modified`` wire string."""
        with self.lock:
            trade = self.world.modify_trade(
                tid,
                at or self.now(),
                self.visible_at(),
                seller_memo=seller_memo,
                status=status,
                receiver_city=receiver_city,
            )
            return clock.format_wire(trade.modified)

    def ship_delivery_order(self, record: DeliveryOrder, parcels: int = 1) -> dict:
        """Ship all that is left of a created delivery order: waybill(s), DELIVERED, a signed confirm (qimen.ship)."""
        return qimen.ship(self, record, parcels)

    def ship_pending(self, codes: list[str] | None = None, parcels: int = 1, partial: bool = False,
                     lines: dict | None = None) -> list[str]:
        """Ship the given delivery order codes (all created, unshipped ones when ``codes`` is empty); see
        ``qimen.ship_pending`` for multi-parcel and partial shipments."""
        return qimen.ship_pending(self, codes, parcels=parcels, partial=partial, lines=lines)

    def truth(self) -> dict:
        with self.lock:
            truth = {
                "channels": self.world.channels_truth(),
                "wms": self.wms.truth(),
                "writebacks": self.world.writebacks_truth(),
                "stock_told": {"tmall": self.world.stock_truth()},
                "tmc": {"tmall": self.world.tmc.truth()},
            }
            for slug, refunds in self.world.refunds_truth().items():
                truth["channels"]["tmall"][slug]["refunds"] = refunds
            for slug, rates in self.world.rates_truth().items():
                truth["channels"]["tmall"][slug]["rates"] = rates
            for slug, levels in self.world.stock_levels().items():
                truth["channels"]["tmall"][slug]["stock"] = levels
            for system in self.systems.values():
                deep_merge(truth, system.truth())
            return truth

    def reset(self, seed: int | None = None) -> None:
        """Back to a fresh world (same seed unless given), default knobs, empty WMS, no callback."""
        self.peak.stop()
        with self.lock:
            self.top.reset()
            if seed is not None:
                self.seed = seed
            self.world = World.build(self.seed)
            self.wms = WmsBook.build(self.seed, self.world)
            self.faults.reset()
            self.pusher.reset()
            for system in self.systems.values():
                system.reset()


def _json_error(status: int, message: str) -> Response:
    return Response(json.dumps({"error": message}, ensure_ascii=False), status=status, content_type="application/json")
