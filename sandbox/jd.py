"""Simulated JD JOS gateway (京东宙斯 ``routerjson``), faithful to specs/platform-apis.md §2.

One URL, API chosen by ``method``; system parameters (``method, app_key, access_token, timestamp, v, sign`` and
optional ``format``) arrive flat in the query string or a form body (the Python SDK puts everything in the query of a
POST), business parameters as **one JSON text** in ``360buy_param_json`` (§2.1). Every answer is HTTP 200 with JSON:
the method's envelope ``<method, dots -> underscores>_responce`` (JD's historical misspelling, §2.4) holding
``"code": "0"`` and the result object, or ``{"error_response": {"code": "<string>", "zh_desc", "en_desc"}}`` - except
the ``jd.http_500`` fault, which imitates a broken front proxy with an HTML 500 page.

Business failures are not gateway errors on JOS: the envelope says ``code "0"`` and an inner object reports them
(``apiResult.success false`` for orders, ``sopjosshipment_result.success false`` for shipments, ...), so a connector
that only checks the outer code is caught out - on purpose.

Served on the shared port at ``/jd/routerjson`` (+ ``/jd/oauth2/refresh_token``) and, standalone
(``orderhub sandbox serve --system jd``), at ``/routerjson`` (+ ``/oauth2/refresh_token``), so JD's SDKs work by
changing only host and port.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox import clock
from sandbox.common import JSON_UTF8, json_response, query_and_form
from sandbox.faults import _TIMEOUT_FIELDS, FaultError, _count, _number, _strings
from sandbox.jd_world import (
    MALFORMED_KINDS,
    ORDER_STATES,
    JdOrder,
    JdShop,
    JdWorld,
    ShipmentRejected,
)
from sandbox.system import ChannelSystem
from sandbox.world import WorldError, money

if TYPE_CHECKING:
    from sandbox.app import SandboxApp

ROUTER_PATH = "/jd/routerjson"
REFRESH_PATH = "/jd/oauth2/refresh_token"
STANDALONE_ROUTER_PATH = "/routerjson"
STANDALONE_REFRESH_PATH = "/oauth2/refresh_token"

# The gateway's clock tolerance is UNCONFIRMED; the sandbox uses TOP's ±10 minutes.
TIMESTAMP_SKEW = timedelta(minutes=10)
# §2.5: an order-search window spans at most "1 month", read here as 30 days; both dates empty (allowed only for
# WAIT_SELLER_STOCK_OUT) means the last 30 days.
MAX_WINDOW = timedelta(days=30)
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20  # JOS's default page size is UNCONFIRMED

# Gateway error codes. Only 19 (invalid/expired access_token) is confirmed by the spec (§2.4); 12 (无效签名) and 15
# (不存在的方法名) match what public client code quotes, the rest are sandbox choices - distinct on purpose so a
# connector's classification table can be exercised (spec §2.4 / §11: UNCONFIRMED).
GATEWAY_ERRORS = {
    "11": ("缺少必选系统参数", "Missing required system parameter"),
    "12": ("无效签名", "Invalid signature"),
    "13": ("无效的时间戳", "Invalid timestamp"),
    "14": ("无效的app_key", "Invalid app_key"),
    "15": ("不存在的方法名", "Invalid Method"),
    "16": ("不支持的版本号", "Unsupported version"),
    "18": ("缺少access_token", "Missing access_token"),
    "19": ("无效access_token", "Invalid access_token"),
    "20": ("360buy_param_json格式错误", "Invalid 360buy_param_json"),
    "66": ("系统繁忙，请稍后重试", "System busy, please retry"),
    "90": ("接口调用次数超限，请稍后重试", "App call limited"),
}
# Default throttle code (UNCONFIRMED); jd.throttle.code may pick any digits, e.g. "66" which the .NET SDK retries.
THROTTLE_CODE = "90"

# Sandbox numberCode for a business parameter error inside apiResult (UNCONFIRMED).
NUMBER_INVALID_PARAMETER = 10100
NUMBER_NOT_FOUND = 10200


def sign(params: Mapping[str, object], secret: str, skip_empty: bool = True) -> str:
    """§2.2: ``UPPER(MD5_hex(secret + Σ sorted(key + value) + secret))`` over every param but ``sign``, UTF-8.

    ``360buy_param_json`` takes part as its exact JSON text. Empty values are skipped (.NET SDK) unless
    ``skip_empty`` is false (the Python SDK signs them too).
    """
    text = "".join(
        f"{key}{params[key]}" for key in sorted(params)
        if key != "sign" and (not skip_empty or (params[key] is not None and str(params[key]) != ""))
    )
    return hashlib.md5(f"{secret}{text}{secret}".encode()).hexdigest().upper()


def verify(params: Mapping[str, str], secret: str) -> bool:
    """Accept a signature computed either way on empty values (the SDKs disagree); case-insensitive hex."""
    sent = (params.get("sign") or "").upper()
    if sent == sign(params, secret):
        return True
    has_empty = any(value == "" for key, value in params.items() if key != "sign")
    return has_empty and sent == sign(params, secret, skip_empty=False)


_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})(?:\.\d{1,3})?([+-]\d{4})?")


def parse_timestamp(text: str) -> datetime:
    """§2.1: the official ``yyyy-MM-dd HH:mm:ss`` (GMT+8) and the SDKs' ``…ss.fff+0800`` / ``…ss.000%z``."""
    match = _TIMESTAMP.fullmatch(text or "")
    if not match:
        raise ValueError(f"unparseable timestamp {text!r}")
    base = datetime.strptime(match.group(1), clock.WIRE_FORMAT)
    offset = match.group(2)
    if offset is None:
        return base.replace(tzinfo=clock.shanghai())
    minutes = int(offset[1:3]) * 60 + int(offset[3:5])
    zone = timezone(timedelta(minutes=minutes if offset[0] == "+" else -minutes))
    return base.replace(tzinfo=zone)


class JdError(Exception):
    """A gateway-level error, answered with ``error_response``."""

    def __init__(self, code: str, detail: str | None = None) -> None:
        zh, en = GATEWAY_ERRORS.get(code, ("系统错误", "System error"))
        super().__init__(f"{code} {en}: {detail}")
        self.code = code
        self.zh = zh
        self.en = f"{en}: {detail}" if detail else en

    def envelope(self) -> dict:
        return {"error_response": {"code": self.code, "zh_desc": self.zh, "en_desc": self.en}}


class BusinessFailure(Exception):
    """A business refusal: answered inside the method's normal envelope (``code "0"``), never counted as a success
    by ``jd.timeout_after_success``."""

    def __init__(self, payload: dict) -> None:
        super().__init__(json.dumps(payload, ensure_ascii=False))
        self.payload = payload


def api_result(success: bool = True, chinese: str = "", english: str = "", number: int = 0) -> dict:
    # §2.4: only success/chineseErrCode are confirmed names; englishErrCode/numberCode are UNCONFIRMED.
    return {"success": success, "chineseErrCode": chinese, "englishErrCode": english, "numberCode": number}


@dataclass(frozen=True)
class MethodSpec:
    handler: Callable[[JdSystem, dict, JdShop], dict]
    # Where a business failure goes: builds the payload from (chinese, english, number).
    failure: Callable[[str, str, int], dict]


def _order_search_failure(chinese: str, english: str, number: int) -> dict:
    return {"searchorderinfo_result": {"apiResult": api_result(False, chinese, english, number), "orderTotal": 0,
                                       "orderInfoList": []}}


def _order_get_failure(chinese: str, english: str, number: int) -> dict:
    return {"orderDetailInfo": {"apiResult": api_result(False, chinese, english, number)}}


def _shipment_failure(chinese: str, english: str, number: int) -> dict:
    return {"sopjosshipment_result": {"success": False, "chinese_err_code": chinese, "english_err_code": english,
                                      "error_code": str(number)}}


def _plain_failure(chinese: str, english: str, number: int) -> dict:
    return {"success": False, "resultCode": str(number), "resultMsg": chinese, "englishMsg": english}


def _afs_failure(chinese: str, english: str, number: int) -> dict:
    return {"resultExport": {"success": False, "resultCode": str(number), "resultMsg": chinese,
                             "englishMsg": english}}


def _comment_failure(chinese: str, english: str, number: int) -> dict:
    return {"comments": [], "totalItem": 0, "page": 1, "resultCode": str(number), "resultMsg": chinese}


class _Invalid(Exception):
    """A bad business parameter; the router turns it into the method's failure payload."""

    def __init__(self, chinese: str, english: str, number: int = NUMBER_INVALID_PARAMETER) -> None:
        super().__init__(english)
        self.chinese = chinese
        self.english = english
        self.number = number


def _shift(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultError(f"{name} must be an integer (positive: records skipped, negative: repeated), got {value!r}")
    return value


def _ratio(name: str, value: object) -> float:
    number = _number(name, value)
    if number > 1:
        raise FaultError(f"{name} must be between 0 and 1, got {value!r}")
    return number


def _code(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.isdigit():
        raise FaultError(f"{name} must be a string of digits such as \"90\" or \"66\", got {value!r}")
    return value


def _expire(name: str, value: object) -> bool | list[str]:
    return value if isinstance(value, bool) else _strings(name, value)


class JdSystem(ChannelSystem):
    """The JD JOS POP merchant gateway with two shops, ``jd-flagship`` and ``jd-outlet``."""

    name = "jd"
    shops: ClassVar[tuple[str, ...]] = ("jd-flagship", "jd-outlet")
    knob_defaults: ClassVar[dict[str, object]] = {
        "jd.latency_ms": 0,
        "jd.http_500": {"calls": 0},
        "jd.throttle": {"calls": 0, "code": THROTTLE_CODE},
        "jd.expire_tokens": False,
        "jd.timeout_after_success": {"calls": 0, "methods": [], "sleep_s": 5.0, "mode": "sleep"},
        "jd.late_index_s": 0,
        "jd.page_shift": {"calls": 0, "by": 1},
        "jd.degraded_list": {"calls": 0, "drop": ["itemInfoList"]},
        "jd.cod_ratio": 0,
    }
    knob_schema: ClassVar[dict[str, object]] = {
        "jd.latency_ms": _number,
        "jd.http_500": {"calls": _count},
        "jd.throttle": {"calls": _count, "code": _code},
        "jd.expire_tokens": _expire,
        "jd.timeout_after_success": _TIMEOUT_FIELDS,
        "jd.late_index_s": _number,
        "jd.page_shift": {"calls": _count, "by": _shift},
        "jd.degraded_list": {"calls": _count, "drop": _strings},
        "jd.cod_ratio": _ratio,
    }

    def __init__(self, app: SandboxApp) -> None:
        super().__init__(app)
        self.state = JdWorld.build(app.seed, app.world.catalogue)
        self._expiry_seen: object = False

    def reset(self) -> None:
        super().reset()
        self.state = JdWorld.build(self.app.seed, self.app.world.catalogue)
        self._expiry_seen = False

    # ------------------------------------------------------------------------------------------- routes

    def rules(self) -> list[Rule]:
        return [
            Rule(ROUTER_PATH, endpoint="jd:router", methods=["GET", "POST"]),
            Rule(REFRESH_PATH, endpoint="jd:refresh", methods=["GET", "POST"]),
        ]

    def standalone_rules(self) -> list[Rule]:
        return [
            Rule(STANDALONE_ROUTER_PATH, endpoint="jd:router", methods=["GET", "POST"]),
            Rule(STANDALONE_REFRESH_PATH, endpoint="jd:refresh", methods=["GET", "POST"]),
        ]

    def handle(self, endpoint: str, request: Request, **args: str) -> Response:
        if endpoint == "jd:router":
            return self.router(request)
        if endpoint == "jd:refresh":
            return self.refresh(request)
        return super().handle(endpoint, request, **args)

    # ------------------------------------------------------------------------------------------- admin side

    def credentials(self) -> dict[str, Any]:
        with self.app.lock:
            state = self.state
            return {
                "app_key": state.app.app_key,
                "app_secret": state.app.app_secret,
                "router_path": ROUTER_PATH,
                "refresh_path": REFRESH_PATH,
                "standalone_router_path": STANDALONE_ROUTER_PATH,
                "shops": [
                    {"shop": shop.slug, "vender_id": shop.vender_id, "shop_name": shop.name,
                     "access_token": shop.access_token, "refresh_token": shop.refresh_token,
                     "expires_at": clock.format_wire(shop.expires_at)}
                    for shop in state.shops.values()
                ],
            }

    def truth(self) -> dict[str, Any]:
        with self.app.lock:
            return self.state.truth()

    def create_orders(self, shop: str, count: int, at: datetime | None, malformed: str | None,
                      lines: list[dict] | None) -> list[str]:
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1000:
            raise WorldError("count must be an integer between 1 and 1000")
        if malformed is not None and malformed not in MALFORMED_KINDS:
            raise WorldError(f"unknown malformed kind {malformed!r}; known: {', '.join(MALFORMED_KINDS)}")
        if lines is not None and (not isinstance(lines, list) or not lines or not all(
                isinstance(line, dict) and isinstance(line.get("sku"), str) for line in lines)):
            raise WorldError('lines must be a list like [{"sku": "SKU-001-RED-M", "num": 2}]')
        with self.app.lock:
            state = self.state
            jd_shop = state.shop(shop)
            chosen = None
            if lines:
                chosen = []
                for line in lines:
                    num = line.get("num", 1)
                    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
                        raise WorldError("num must be a positive integer")
                    chosen.append((state.listing_for_code(jd_shop, line["sku"], self.app.world.sku(line["sku"])),
                                   num))
            ratio = float(self.app.faults.get("jd.cod_ratio"))  # type: ignore[arg-type]
            at = at or self.app.now()
            orders = [state.create_order(jd_shop, at, self._visible_at(), malformed, chosen, self.app.world.buyers,
                                         ratio) for _ in range(count)]
            return [order.order_id for order in orders]

    def modify_order(self, order_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Admin ``modify``: ``{"at", "status", "vender_remark", "refund", "afs_status", "service_id",
        "comment"}`` (see sandbox/docs/jd.md)."""
        known = {"at", "status", "vender_remark", "refund", "afs_status", "service_id", "comment"}
        unknown = set(changes) - known
        if unknown:
            raise WorldError(f"unknown change(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
        at = None
        if changes.get("at") is not None:
            try:
                at = clock.parse_wire(changes["at"])
            except ValueError:
                raise WorldError("at must be 'yyyy-MM-dd HH:mm:ss' (GMT+8)") from None
        with self.app.lock:
            order = self.state.order(order_id)
            return self.state.modify(order, at or self.app.now(), self._visible_at(), dict(changes))

    def _visible_at(self) -> datetime:
        """When a write made now becomes visible to order search (``jd.late_index_s``: late indexing)."""
        lag = float(self.app.faults.get("jd.late_index_s"))  # type: ignore[arg-type]
        return clock.precise_now() + timedelta(seconds=lag)

    # ------------------------------------------------------------------------------------------- transport

    def router(self, request: Request) -> Response:
        # Query first, then form: SDKs differ in where they put things and the signature covers both.
        params = query_and_form(request)
        method = params.get("method", "")
        app = self.app
        with app.lock:
            latency_ms = app.faults.get("jd.latency_ms")
        if latency_ms:
            app.pause(float(latency_ms) / 1000)  # type: ignore[arg-type]

        stall = None
        with app.lock:
            if app.faults.consume("jd.http_500"):
                return Response("<html><body><h1>500 Internal Server Error</h1></body></html>", status=500,
                                mimetype="text/html")
            try:
                throttle = app.faults.consume("jd.throttle")
                if throttle:
                    raise JdError(throttle["code"])
                self._sync_expiry()
                spec, shop, business = self._authenticate(params)
                root = method.replace(".", "_") + "_responce"
                try:
                    payload = spec.handler(self, business, shop)
                except _Invalid as bad:
                    raise BusinessFailure(spec.failure(bad.chinese, bad.english, bad.number)) from None
                body: dict = {root: {"code": "0", **payload}}
                stall = app.faults.consume_timeout("jd.timeout_after_success", method)
            except JdError as error:
                body = error.envelope()
            except BusinessFailure as failure:
                body = {method.replace(".", "_") + "_responce": {"code": "0", **failure.payload}}
        response = Response(json.dumps(body, ensure_ascii=False), content_type="application/json;charset=utf-8")
        if stall:
            # The effect is applied; now lose the reply (client timeout or dropped connection).
            app.stall(stall, request.environ)
        return response

    def _sync_expiry(self) -> None:
        """Apply a change of ``jd.expire_tokens``: switching it on expires the tokens the shops hold *now*.

        Tokens obtained later through the refresh endpoint are valid, so "token expired -> refresh -> retry" can be
        rehearsed with the knob left on; switching it off makes the old tokens valid again.
        """
        value = self.app.faults.get("jd.expire_tokens")
        if value == self._expiry_seen:
            return
        self._expiry_seen = value
        for shop in self.state.shops.values():
            hit = value is True or (isinstance(value, list) and shop.slug in value)
            shop.expired_upto = shop.token_generation if hit else -1

    def _token_valid(self, shop: JdShop) -> bool:
        return shop.expired_upto < shop.token_generation and shop.expires_at > self.app.now()

    def _authenticate(self, params: Mapping[str, str]) -> tuple[MethodSpec, JdShop, dict]:
        state = self.state
        method = params.get("method")
        if not method:
            raise JdError("11", "method")
        spec = METHODS.get(method)
        if spec is None:
            raise JdError("15", f"{method} (not implemented by the sandbox)")
        app_key = params.get("app_key")
        if not app_key:
            raise JdError("11", "app_key")
        if app_key != state.app.app_key:
            raise JdError("14", app_key)
        stamp = params.get("timestamp")
        if not stamp:
            raise JdError("11", "timestamp")
        try:
            sent_at = parse_timestamp(stamp)
        except ValueError:
            raise JdError("13", "expected 'yyyy-MM-dd HH:mm:ss' (GMT+8) or 'yyyy-MM-dd HH:mm:ss.SSS+0800'") from None
        if abs(self.app.now() - sent_at) > TIMESTAMP_SKEW:
            raise JdError("13", "timestamp differs from server time by more than 10 minutes")
        if not params.get("sign"):
            raise JdError("11", "sign")
        if not verify(params, state.app.app_secret):
            raise JdError("12")
        token = params.get("access_token")
        if not token:
            raise JdError("18")
        shop = state.shop_for_token(token)
        if shop is None or not self._token_valid(shop):
            # Unknown, replaced by a refresh, expired, or expired by the jd.expire_tokens knob: all the same 19.
            raise JdError("19")
        version = params.get("v")
        if not version:
            raise JdError("11", "v")
        if version != "2.0":
            raise JdError("16", version)
        raw = params.get("360buy_param_json")
        if raw is None or raw == "":
            business: object = {}
        else:
            try:
                business = json.loads(raw)
            except ValueError:
                raise JdError("20", "not valid JSON") from None
        if not isinstance(business, dict):
            raise JdError("20", "must be a JSON object")
        return spec, shop, business

    def refresh(self, request: Request) -> Response:
        """§2.3 ``oauth2/refresh_token``: a new access_token and refresh_token for the shop; the old token dies.

        Error bodies are a sandbox choice (UNCONFIRMED): ``{"code": <int>, "msg": "..."}`` with HTTP 200.
        """
        params = {**request.form.to_dict(), **request.args.to_dict()}
        with self.app.lock:
            self._sync_expiry()
            state = self.state
            if params.get("app_key") != state.app.app_key or params.get("app_secret") != state.app.app_secret:
                return _json({"code": 401, "msg": "invalid app_key or app_secret"})
            if params.get("grant_type") != "refresh_token":
                return _json({"code": 402, "msg": "grant_type must be refresh_token"})
            shop = next((s for s in state.shops.values() if s.refresh_token == params.get("refresh_token")), None)
            if shop is None:
                return _json({"code": 403, "msg": "invalid refresh_token"})
            now = self.app.now()
            if shop.expires_at <= now:
                # §2.3: a token cannot be refreshed after it expired (the jd.expire_tokens knob does not count).
                return _json({"code": 404, "msg": "access_token already expired; authorise again"})
            state.refresh(shop, now)
            return _json({
                "code": 0,
                "access_token": shop.access_token,
                "refresh_token": shop.refresh_token,
                "expires_in": int((shop.expires_at - now).total_seconds()),
                "scope": "snsapi_base",
                "xid": f"o*AA{shop.vender_id}",
                "time": int(now.timestamp() * 1000),
                "token_type": "bearer",
            })

    # ------------------------------------------------------------------------------------------- orders

    def order_search(self, biz: dict, shop: JdShop) -> dict:
        # Newer doc revisions wrap the params in paramOrderJSFQuery (UNCONFIRMED, §2.4); accept both.
        if isinstance(biz.get("paramOrderJSFQuery"), dict):
            biz = {**biz, **biz["paramOrderJSFQuery"]}
        states = _split(biz.get("order_state"))
        if not states:
            raise _Invalid("order_state不能为空", "order_state is required")
        unknown = [s for s in states if s not in ORDER_STATES]
        if unknown:
            raise _Invalid(f"order_state不合法: {','.join(unknown)}",
                           f"unknown order_state {','.join(unknown)} (English state names only)")
        fields = _split(biz.get("optional_fields"))
        if not fields:
            raise _Invalid("optional_fields不能为空", "optional_fields is required")
        page = _int(biz, "page", 1, 1, None)
        page_size = _int(biz, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        date_type = _int(biz, "dateType", 0, 0, 1)
        descending = _int(biz, "sortType", 0, None, None) == 1
        start = _date(biz, "start_date")
        end = _date(biz, "end_date")
        now = self.app.now()
        if start is None and end is None:
            if set(states) != {"WAIT_SELLER_STOCK_OUT"}:
                raise _Invalid("start_date和end_date不能为空", "start_date and end_date are required unless "
                               "order_state is WAIT_SELLER_STOCK_OUT")
            start, end = now - MAX_WINDOW, now
        elif start is None or end is None:
            raise _Invalid("start_date和end_date必须同时传入", "start_date and end_date go together")
        if end < start:
            raise _Invalid("end_date不能早于start_date", "end_date is before start_date")
        if end - start > MAX_WINDOW:
            raise _Invalid("查询时间跨度不能超过一个月", "window longer than one month (30 days)")

        def when(order: JdOrder) -> datetime:
            return order.modified if date_type == 0 else order.created

        searched_at = clock.precise_now()
        wanted = set(states)
        matches = [
            order for order in self.state.orders.values()
            if order.shop == shop.slug
            # jd.late_index_s: the search index lags behind writes; order.get is not affected.
            and order.visible_at <= searched_at
            and order.search_state in wanted
            and start <= when(order) <= end
        ]
        # §2.5: sortType 1 = descending, anything else ascending (oldest first), ties by orderId.
        matches.sort(key=lambda o: (when(o), int(o.order_id)), reverse=descending)
        first = (page - 1) * page_size
        if page > 1:
            # jd.page_shift: records moved between pages while the reader paged (as when orders of earlier pages
            # are modified out of an ascending modification-time window): by > 0 skips records, by < 0 repeats.
            shift = self.app.faults.consume("jd.page_shift")
            if shift:
                first = max(0, first + int(shift["by"]))
        chosen = matches[first: first + page_size]
        # jd.degraded_list: at peak, list answers come back without some nodes; order.get still has them.
        degraded = self.app.faults.consume("jd.degraded_list")
        drop = frozenset(degraded["drop"]) if degraded else frozenset()
        return {"searchorderinfo_result": {
            "apiResult": api_result(),
            "orderTotal": len(matches),
            "orderInfoList": [_project(order, fields, drop) for order in chosen],
        }}

    def order_get(self, biz: dict, shop: JdShop) -> dict:
        order_id = str(biz.get("order_id") or "").strip()
        if not order_id:
            raise _Invalid("order_id不能为空", "order_id is required")
        order = self.state.orders.get(order_id)
        states = _split(biz.get("order_state"))
        if order is None or order.shop != shop.slug or (states and order.state not in states):
            # Another vendor's order is indistinguishable from a missing one.
            raise _Invalid("订单不存在", f"order {order_id} not found", NUMBER_NOT_FOUND)
        fields = _split(biz.get("optional_fields")) or list(order.data)
        return {"orderDetailInfo": {"apiResult": api_result(), "orderInfo": _project(order, fields, frozenset())}}

    def order_shipment(self, biz: dict, shop: JdShop) -> dict:
        order_id = str(biz.get("orderId") or "").strip()
        if not order_id:
            raise _Invalid("orderId不能为空", "orderId is required")
        order = self.state.orders.get(order_id)
        if order is None or order.shop != shop.slug:
            raise _Invalid("订单不存在", f"order {order_id} not found", NUMBER_NOT_FOUND)
        now = self.app.now()
        try:
            self.state.ship(order, str(biz.get("logiCoprId") or "").strip(), str(biz.get("logiNo") or "").strip(),
                            now, self._visible_at())
        except ShipmentRejected as rejected:
            raise BusinessFailure(_shipment_failure(rejected.chinese, rejected.english,
                                                    int(rejected.error_code))) from None
        return {"sopjosshipment_result": {"success": True, "chinese_err_code": "", "english_err_code": "",
                                          "error_code": ""}}

    # ------------------------------------------------------------------------------------------- stock, skus

    def stock_update(self, biz: dict, shop: JdShop) -> dict:
        sku_id = str(biz.get("skuId") or "").strip()
        listing = self.state.listings[shop.slug].get(sku_id)
        if listing is None:
            raise _Invalid("SKU不存在或不属于该商家", f"skuId {sku_id!r} not found for this vendor", NUMBER_NOT_FOUND)
        qty = biz.get("stockNum")
        try:
            qty = int(str(qty))
        except ValueError:
            raise _Invalid("stockNum不合法", "stockNum must be an integer") from None
        if qty < 0:
            raise _Invalid("stockNum不能为负数", "stockNum must be >= 0")
        # Full overwrite (§2.6); storeId is accepted and ignored (single warehouse per shop in the sandbox).
        self.state.tell_stock(shop, listing, qty, "full", self.app.now())
        return {"success": True}

    def sku_search(self, biz: dict, shop: JdShop) -> dict:
        page = _int(biz, "page", 1, 1, None)
        page_size = _int(biz, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        ware_id = str(biz.get("wareId") or "").strip()
        stock = self.state.stock[shop.slug]
        rows = [
            {"skuId": sku.sku_id, "outerId": sku.outer_sku_id, "jdPrice": money(sku.price),
             "stockNum": stock.get(sku.sku_id, 0), "skuName": sku.name, "wareId": sku.ware_id}
            for sku in self.state.listings[shop.slug].values() if not ware_id or sku.ware_id == ware_id
        ]
        first = (page - 1) * page_size
        return {"page": {"data": rows[first: first + page_size], "pageNo": page, "pageSize": page_size,
                         "totalItem": len(rows)}}

    # ------------------------------------------------------------------------------------------- after-sales

    def afs_query(self, biz: dict, shop: JdShop) -> dict:
        bu_id = str(biz.get("buId") or "").strip()
        if bu_id and bu_id != shop.vender_id:
            raise _Invalid("buId与授权商家不一致", f"buId {bu_id} is not this vendor's id ({shop.vender_id})")
        page = _int(biz, "pageIndex", 1, 1, None)
        page_size = _int(biz, "pageSize", 10, 1, MAX_PAGE_SIZE)
        begin = _date(biz, "afsApplyTimeBegin")
        end = _date(biz, "afsApplyTimeEnd")
        if begin and end and end < begin:
            raise _Invalid("afsApplyTimeEnd不能早于afsApplyTimeBegin", "afsApplyTimeEnd is before afsApplyTimeBegin")
        # Only the apply time can be filtered on: a status change of an old service does not bring it back into a
        # recent window, so a connector must re-read open services (a real JOS limitation of this method).
        rows = sorted(
            (s for s in self.state.services.values() if s.shop == shop.slug
             and (begin is None or s.apply_time >= begin) and (end is None or s.apply_time <= end)),
            key=lambda s: (s.apply_time, s.service_id),
        )
        first = (page - 1) * page_size
        return {"resultExport": {"success": True, "resultCode": "0", "resultMsg": "",
                                 "data": {"totalNum": len(rows), "pageIndex": page, "pageSize": page_size,
                                          "serviceExportList": [s.as_wire() for s in rows[first: first + page_size]]}}}

    # ------------------------------------------------------------------------------------------- reviews

    def comments_query(self, biz: dict, shop: JdShop) -> dict:
        page = _int(biz, "page", 1, 1, None)
        page_size = _int(biz, "pageSize", 10, 1, 50)
        skus = set(_split(biz.get("skuids")))
        orders = set(_split(biz.get("orderIds")))
        begin = _date(biz, "beginTime")
        end = _date(biz, "endTime")
        score = _int(biz, "score", 0, 0, 5)
        reply = biz.get("isVenderReply")
        rows = [
            c for c in self.state.comments.values()
            if c.shop == shop.slug and (not skus or c.listing.sku_id in skus) and (not orders or c.order_id in orders)
            and (begin is None or c.created >= begin) and (end is None or c.created <= end)
            and (not score or c.score == score)
            and (reply in (None, "") or (str(reply).lower() in ("1", "true")) == bool(c.replies))
        ]
        rows.sort(key=lambda c: (c.created, c.comment_id), reverse=True)  # newest first
        first = (page - 1) * page_size
        return {"comments": [c.as_wire() for c in rows[first: first + page_size]], "totalItem": len(rows),
                "page": page, "resultCode": "0", "resultMsg": "success"}

    def comment_reply(self, biz: dict, shop: JdShop) -> dict:
        comment = self.state.comments.get(str(biz.get("commentId") or "").strip())
        if comment is None or comment.shop != shop.slug:
            raise _Invalid("评价不存在", "comment not found", NUMBER_NOT_FOUND)
        content = str(biz.get("content") or "").strip()
        if not content:
            raise _Invalid("回复内容不能为空", "content is required")
        comment.replies.append({"content": content, "creationTime": clock.format_wire(self.app.now()),
                                "nickName": shop.name})
        return {"success": True, "resultCode": "0", "resultMsg": "success"}


METHODS: dict[str, MethodSpec] = {
    "jingdong.pop.order.search": MethodSpec(JdSystem.order_search, _order_search_failure),
    "jingdong.pop.order.get": MethodSpec(JdSystem.order_get, _order_get_failure),
    "jingdong.pop.order.shipment": MethodSpec(JdSystem.order_shipment, _shipment_failure),
    "jingdong.stock.write.updateSkuStock": MethodSpec(JdSystem.stock_update, _plain_failure),
    "jingdong.sku.read.searchSkuList": MethodSpec(JdSystem.sku_search, _plain_failure),
    "jingdong.ServiceInfoProvider.queryServicePage": MethodSpec(JdSystem.afs_query, _afs_failure),
    "jingdong.pop.PopCommentJsfService.getVenderCommentsForJos": MethodSpec(JdSystem.comments_query,
                                                                            _comment_failure),
    # Method name inferred from the SDK request class ClubPopCommentreplySaveRequest (UNCONFIRMED, §2.6).
    "jingdong.club.pop.commentreply.save": MethodSpec(JdSystem.comment_reply, _plain_failure),
}


def _project(order: JdOrder, fields: list[str] | frozenset[str], drop: frozenset[str]) -> dict:
    wanted = set(fields)
    return {key: copy.deepcopy(value) for key, value in order.data.items() if key in wanted and key not in drop}


def _split(raw: object) -> list[str]:
    if raw is None:
        return []
    return [part.strip() for part in str(raw).split(",") if part.strip()]


def _int(biz: Mapping[str, object], name: str, default: int, low: int | None, high: int | None) -> int:
    # JOS takes numbers or numeric strings ("page":"1" and "dateType":0 in the same request, §2.2 example).
    raw = biz.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(str(raw))
    except ValueError:
        raise _Invalid(f"{name}必须为整数", f"{name} must be an integer") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise _Invalid(f"{name}超出范围", f"{name} must be between {low} and {high}" if high is not None
                       else f"{name} must be >= {low}")
    return value


def _date(biz: Mapping[str, object], name: str) -> datetime | None:
    raw = biz.get(name)
    if raw is None or raw == "":
        return None
    try:
        return clock.parse_wire(str(raw))
    except ValueError:
        raise _Invalid(f"{name}格式必须为yyyy-MM-dd HH:mm:ss", f"{name} must be 'yyyy-MM-dd HH:mm:ss'") from None


def _json(payload: object) -> Response:
    return json_response(payload, content_type=JSON_UTF8)

