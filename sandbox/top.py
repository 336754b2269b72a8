"""Simulated Tmall TOP gateway (``/top/router/rest``), faithful to specs/platform-apis.md §1.1-1.8.

One URL, API chosen by ``method``; system and business parameters arrive as flat fields, in the query string (GET)
or form body (POST), merged before anything else so a client may split them like the Java SDK does. Every answer is
HTTP 200 with JSON: either the method's envelope or ``{"error_response": {...}}`` - except the ``top.http_500`` fault,
which imitates a broken front proxy with an HTML 500 page.

System checks run in a fixed order so a connector sees the same first error TOP would report:
method (21/22) -> app_key (28/29) -> timestamp (30/31, ±10 min) -> sign (24/25) -> session (26/27) -> v (32-34)
-> format (23). Business errors use code 40/41 for parameters and 15 with an ``isv.*`` sub_code otherwise.

Implemented methods: ``taobao.trades.sold.increment.get``, ``taobao.trades.sold.get``, ``taobao.trade.fullinfo.get``,
``taobao.logistics.offline.send``, ``taobao.logistics.companies.get``.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request, Response

from connectors.top_signing import SIGN_METHODS, verify
from sandbox import clock
from sandbox.world import TOP_CARRIERS, ConsignRejected, TmallShop, Trade

if TYPE_CHECKING:
    from sandbox.app import SandboxApp

GATEWAY_PATH = "/top/router/rest"
TIMESTAMP_SKEW = timedelta(minutes=10)
MAX_WINDOW = timedelta(days=1)
# "Only the last 3 months" (spec §1.6); the sandbox reads it as 90 days.
MAX_LOOKBACK = timedelta(days=90)
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 40

# Code -> msg as TOP spells them (spec §1.5).
MESSAGES = {
    7: "App Call Limited",
    15: "Remote Service Error",
    21: "Missing Method",
    22: "Invalid Method",
    23: "Invalid Format",
    24: "Missing Signature",
    25: "Invalid Signature",
    26: "Missing Session",
    27: "Invalid session",
    28: "Missing App Key",
    29: "Invalid App Key",
    30: "Missing Timestamp",
    31: "Invalid Timestamp",
    32: "Missing Version",
    33: "Invalid Version",
    34: "Unsupported Version",
    40: "Missing Required Arguments",
    41: "Invalid Arguments",
}

# The invalid-signature sub_code is UNCONFIRMED in the spec (§1.5, §11); connectors must key on code 25.
SUB_INVALID_SIGNATURE = "isv.invalid-signature"
SUB_INVALID_SESSION = "invalid-sessionkey"
SUB_MISSING_PARAMETER = "isv.missing-parameter"
SUB_INVALID_PARAMETER = "isv.invalid-parameter"
# Sandbox choices for business errors (UNCONFIRMED against production, documented in README.md).
SUB_TRADE_NOT_EXIST = "isv.trade-not-exist"
SUB_OFFLINE_SEND_ERROR = "isv.logistics-offline-service-error"
SUB_COMPANY_NOT_EXIST = "isv.logistics-company-not-exist"

# Non-simplified JSON wraps each list in an object keyed by the singular element name, as the XML does (§1.5).
LIST_WRAPPERS = {"trades": "trade", "orders": "order", "logistics_companies": "logistics_company"}

# §1.9: TOP only returns oaid when the field list also asks for all of these.
OAID_PREREQUISITES = frozenset({"receiver_name", "receiver_address", "created", "receiver_mobile", "receiver_phone"})

# Query-only aggregate statuses (§1.8).
STATUS_AGGREGATES = {
    "ALL_WAIT_PAY": {"WAIT_BUYER_PAY", "TRADE_NO_CREATE_PAY"},
    "ALL_CLOSED": {"TRADE_CLOSED", "TRADE_CLOSED_BY_TAOBAO"},
}
# guarantee_trade is the umbrella type of fixed-price and auction trades; the default type list includes it.
TYPE_ALIASES = {"guarantee_trade": {"guarantee_trade", "fixed", "auction"}}
DEFAULT_TYPES = "guarantee_trade,auto_delivery,ec,cod,step"


class TopError(Exception):
    """An error the gateway answers with ``error_response``."""

    def __init__(self, code: int, sub_code: str | None = None, sub_msg: str | None = None) -> None:
        super().__init__(f"{code} {MESSAGES[code]}: {sub_code} {sub_msg}")
        self.code = code
        self.sub_code = sub_code
        self.sub_msg = sub_msg

    def envelope(self, request_id: str) -> dict:
        body: dict = {"code": self.code, "msg": MESSAGES[self.code]}
        if self.sub_code:
            body["sub_code"] = self.sub_code
        if self.sub_msg:
            body["sub_msg"] = self.sub_msg
        body["request_id"] = request_id
        return {"error_response": body}


def missing(name: str) -> TopError:
    return TopError(40, SUB_MISSING_PARAMETER, f"缺少必选参数 {name} (missing required parameter {name})")


def invalid(name: str, why: str) -> TopError:
    return TopError(41, SUB_INVALID_PARAMETER, f"参数 {name} 非法: {why}")


@dataclass(frozen=True)
class MethodSpec:
    handler: Callable[[TopGateway, Mapping[str, str], TmallShop | None], dict]
    needs_session: bool


class TopGateway:
    """The WSGI-level handler for ``/top/router/rest``; all state lives in the owning :class:`SandboxApp`."""

    def __init__(self, app: SandboxApp) -> None:
        self.app = app

    # ------------------------------------------------------------------------------------------- transport

    def __call__(self, request: Request) -> Response:
        # Query first, then form: the Java SDK sends system params in the URL and business params in the body.
        params: dict[str, str] = {}
        for source in (request.args, request.form):
            for key in source:
                params.setdefault(key, source[key])
        method = params.get("method", "")

        app = self.app
        with app.lock:
            latency_ms = app.faults.get("top.latency_ms")
        if latency_ms:
            app.pause(float(latency_ms) / 1000)

        stall = None
        with app.lock:
            if app.faults.consume("top.http_500"):
                return Response(
                    "<html><body><h1>500 Internal Server Error</h1></body></html>", status=500, mimetype="text/html"
                )
            request_id = app.next_request_id()
            try:
                throttle = app.faults.consume("top.throttle")
                if throttle:
                    ban = f"This ban will last for {throttle['ban_seconds']} more seconds"
                    raise TopError(7, throttle["sub_code"], ban)
                spec, shop = self._authenticate(params)
                payload = spec.handler(self, params, shop)
                body = self._envelope(method, payload, params.get("simplify") == "true", request_id)
                stall = app.faults.consume_timeout("top.timeout_after_success", method)
            except TopError as error:
                body = error.envelope(request_id)
        response = Response(json.dumps(body, ensure_ascii=False), content_type="application/json;charset=UTF-8")
        if stall:
            # The effect is already applied; now imitate a reply lost on the way back (client times out / drops).
            app.stall(stall, request.environ)
        return response

    @staticmethod
    def _envelope(method: str, payload: dict, simplify: bool, request_id: str) -> dict:
        if simplify:
            return {**payload, "request_id": request_id}
        root = method.removeprefix("taobao.").replace(".", "_") + "_response"
        return {root: {**_wrap_lists(payload), "request_id": request_id}}

    def _authenticate(self, params: Mapping[str, str]) -> tuple[MethodSpec, TmallShop | None]:
        world = self.app.world
        method = params.get("method")
        if not method:
            raise TopError(21)
        spec = METHODS.get(method)
        if spec is None:
            raise TopError(22, None, f"方法 {method} 不存在 (not implemented by the sandbox)")

        app_key = params.get("app_key")
        if not app_key:
            raise TopError(28)
        if app_key != world.tmall_app.app_key:
            raise TopError(29, None, f"app_key {app_key} 不存在")

        stamp = params.get("timestamp")
        if not stamp:
            raise TopError(30)
        try:
            sent_at = clock.parse_wire(stamp)
        except ValueError:
            raise TopError(31, None, "timestamp must be 'yyyy-MM-dd HH:mm:ss' GMT+8") from None
        if abs(self.app.now() - sent_at) > TIMESTAMP_SKEW:
            raise TopError(31, None, "timestamp differs from server time by more than 10 minutes")

        if not params.get("sign"):
            raise TopError(24)
        sign_method = params.get("sign_method") or "md5"
        if sign_method not in SIGN_METHODS:
            raise TopError(25, SUB_INVALID_SIGNATURE, f"unsupported sign_method {sign_method}")
        # Every received parameter takes part, exactly as the client signed them (spec §1.4).
        if not verify(params, world.tmall_app.app_secret):
            raise TopError(25, SUB_INVALID_SIGNATURE, "Invalid signature")

        shop = None
        if spec.needs_session:
            session = params.get("session")
            if not session:
                raise TopError(26)
            shop = world.shop_for_session(session)
            if shop is None or self._session_expired(shop):
                raise TopError(27, SUB_INVALID_SESSION, "SessionKey非法")

        version = params.get("v")
        if not version:
            raise TopError(32)
        if not re.fullmatch(r"\d+\.\d+", version):
            raise TopError(33)
        if version != "2.0":
            raise TopError(34)

        # TOP defaults to XML; the sandbox only speaks JSON and says so rather than answering a format the client
        # did not expect.
        if params.get("format") != "json":
            raise TopError(23, None, "the sandbox implements format=json only (TOP's default is xml)")
        return spec, shop

    def _session_expired(self, shop: TmallShop) -> bool:
        expire = self.app.faults.get("top.expire_sessions")
        if expire is True or (isinstance(expire, list) and shop.slug in expire):
            return True
        return shop.expires_at <= self.app.now()

    # ------------------------------------------------------------------------------------------- methods

    def trades_sold_increment_get(self, params: Mapping[str, str], shop: TmallShop | None) -> dict:
        assert shop is not None
        fields = _fields(params)
        start = _required_time(params, "start_modified")
        end = _required_time(params, "end_modified")
        if end < start:
            raise invalid("end_modified", "end_modified 不能早于 start_modified")
        if end - start > MAX_WINDOW:
            raise invalid("end_modified", "start_modified 与 end_modified 的间隔不能超过一天 (window > 1 day)")
        if start < self.app.now() - MAX_LOOKBACK:
            raise invalid("start_modified", "只能查询三个月内的订单 (start_modified older than 3 months)")
        return self._trade_page(params, shop, fields, lambda t: start <= t.modified <= end, lambda t: t.modified)

    def trades_sold_get(self, params: Mapping[str, str], shop: TmallShop | None) -> dict:
        assert shop is not None
        fields = _fields(params)
        now = self.app.now()
        start = _optional_time(params, "start_created") or now - MAX_LOOKBACK
        end = _optional_time(params, "end_created") or now
        if end < start:
            raise invalid("end_created", "end_created 不能早于 start_created")
        if start < now - MAX_LOOKBACK:
            raise invalid("start_created", "只能查询三个月内的订单 (start_created older than 3 months)")
        return self._trade_page(params, shop, fields, lambda t: start <= t.created <= end, lambda t: t.created)

    def _trade_page(
        self,
        params: Mapping[str, str],
        shop: TmallShop,
        fields: frozenset[str],
        in_window: Callable[[Trade], bool],
        order_key: Callable[[Trade], datetime],
    ) -> dict:
        page_no = _int_param(params, "page_no", 1, 1, None)
        page_size = _int_param(params, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        statuses = _status_filter(params.get("status"))
        types = _type_filter(params.get("type") or DEFAULT_TYPES)
        buyer_nick = params.get("buyer_nick")
        buyer_open_uid = params.get("buyer_open_uid")
        searched_at = clock.precise_now()

        matches = [
            trade
            for trade in self.app.world.trades.values()
            if trade.shop == shop.slug
            # top.index_lag_s: the search index lags behind writes; fullinfo.get is not affected.
            and trade.visible_at <= searched_at
            and in_window(trade)
            and (statuses is None or trade.status in statuses)
            and trade.data["type"] in types
            and (not buyer_nick or trade.data["buyer_nick"] == buyer_nick)
            and (not buyer_open_uid or trade.data["buyer_open_uid"] == buyer_open_uid)
        ]
        # Newest first, ties by tid descending (spec §1.6: results ordered by modified descending).
        matches.sort(key=lambda t: (order_key(t), t.tid), reverse=True)
        first = (page_no - 1) * page_size
        page = matches[first : first + page_size]

        payload: dict = {}
        if params.get("use_has_next") == "true":
            payload["has_next"] = first + page_size < len(matches)
        else:
            payload["total_results"] = len(matches)
        # Like TOP, an empty page carries no "trades" key at all.
        if page:
            payload["trades"] = [project_trade(trade, fields) for trade in page]
        return payload

    def trade_fullinfo_get(self, params: Mapping[str, str], shop: TmallShop | None) -> dict:
        assert shop is not None
        fields = _fields(params)
        trade = self._own_trade(params, shop)
        include_oaid = params.get("include_oaid") == "true"
        return {"trade": project_trade(trade, fields, include_oaid=include_oaid)}

    def logistics_offline_send(self, params: Mapping[str, str], shop: TmallShop | None) -> dict:
        assert shop is not None
        world = self.app.world
        trade = self._own_trade(params, shop)
        try:
            out_sid = params.get("out_sid")
            if not out_sid:
                raise missing("out_sid")
            company_code = params.get("company_code")
            if not company_code:
                raise missing("company_code")
            if company_code not in TOP_CARRIERS:
                raise TopError(15, SUB_COMPANY_NOT_EXIST, f"物流公司 {company_code} 不存在 (unknown company_code)")
            sub_oids = None
            if params.get("is_split") == "1":
                raw = params.get("sub_tid")
                if not raw:
                    raise missing("sub_tid")
                try:
                    sub_oids = [int(part) for part in raw.split(",") if part.strip()]
                except ValueError:
                    raise invalid("sub_tid", "must be a comma list of oids") from None
        except TopError:
            world.reject_writeback(trade)
            raise
        now = self.app.now()
        try:
            world.consign(trade, out_sid, company_code, sub_oids, now, self.app.visible_at())
        except ConsignRejected as rejection:
            raise TopError(15, SUB_OFFLINE_SEND_ERROR, str(rejection)) from None
        return {"shipping": {"is_success": True}}

    def logistics_companies_get(self, params: Mapping[str, str], shop: TmallShop | None) -> dict:
        wanted = {name.strip() for name in (params.get("fields") or "id,code,name").split(",") if name.strip()}
        companies = []
        for index, (code, name) in enumerate(TOP_CARRIERS.items(), start=1):
            company = {"id": index, "code": code, "name": name}
            companies.append({key: value for key, value in company.items() if key in wanted})
        return {"logistics_companies": companies}

    def _own_trade(self, params: Mapping[str, str], shop: TmallShop) -> Trade:
        raw = params.get("tid")
        if not raw:
            raise missing("tid")
        try:
            tid = int(raw)
        except ValueError:
            raise invalid("tid", "must be an integer") from None
        trade = self.app.world.trades.get(tid)
        # Another seller's trade is indistinguishable from a non-existent one, as on TOP.
        if trade is None or trade.shop != shop.slug:
            raise TopError(15, SUB_TRADE_NOT_EXIST, f"交易 {tid} 不存在 (trade not found for this seller)")
        return trade


METHODS: dict[str, MethodSpec] = {
    "taobao.trades.sold.increment.get": MethodSpec(TopGateway.trades_sold_increment_get, needs_session=True),
    "taobao.trades.sold.get": MethodSpec(TopGateway.trades_sold_get, needs_session=True),
    "taobao.trade.fullinfo.get": MethodSpec(TopGateway.trade_fullinfo_get, needs_session=True),
    "taobao.logistics.offline.send": MethodSpec(TopGateway.logistics_offline_send, needs_session=True),
    "taobao.logistics.companies.get": MethodSpec(TopGateway.logistics_companies_get, needs_session=False),
}


def project_trade(trade: Trade, fields: frozenset[str], include_oaid: bool = False) -> dict:
    """The wire form of ``trade`` restricted to ``fields`` (spec §1.7: only requested fields come back).

    ``tid`` brings ``tid_str`` along (and ``oid`` brings ``oid_str``) because clients need the string form to
    survive JSON parsers that turn int64 into doubles. ``orders`` returns whole line objects, ``orders.x`` only field
    ``x`` of each line. ``oaid`` needs the §1.9 receiver fields in the same request.
    """
    out: dict = {}
    for key, value in trade.data.items():
        if key == "oaid":
            if ("oaid" in fields or include_oaid) and OAID_PREREQUISITES <= fields:
                out[key] = value
        elif key in fields or (key == "tid_str" and "tid" in fields):
            out[key] = value
    line_fields = {name.split(".", 1)[1] for name in fields if name.startswith("orders.")}
    if "orders" in fields:
        out["orders"] = copy.deepcopy(trade.lines)
    elif line_fields:
        out["orders"] = [
            {k: v for k, v in line.items() if k in line_fields or (k == "oid_str" and "oid" in line_fields)}
            for line in trade.lines
        ]
    return out


def _wrap_lists(value: object, key: str | None = None) -> object:
    if isinstance(value, dict):
        return {k: _wrap_lists(v, k) for k, v in value.items()}
    if isinstance(value, list):
        items = [_wrap_lists(item) for item in value]
        return {LIST_WRAPPERS[key]: items} if key in LIST_WRAPPERS else items
    return value


def _fields(params: Mapping[str, str]) -> frozenset[str]:
    raw = params.get("fields")
    if not raw:
        raise missing("fields")
    return frozenset(name.strip() for name in raw.split(",") if name.strip())


def _required_time(params: Mapping[str, str], name: str) -> datetime:
    value = _optional_time(params, name)
    if value is None:
        raise missing(name)
    return value


def _optional_time(params: Mapping[str, str], name: str) -> datetime | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        return clock.parse_wire(raw)
    except ValueError:
        raise invalid(name, "格式必须为 yyyy-MM-dd HH:mm:ss") from None


def _int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int | None) -> int:
    raw = params.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(name, "must be an integer") from None
    if value < low or (high is not None and value > high):
        raise invalid(name, f"must be between {low} and {high}" if high else f"must be >= {low}")
    return value


def _status_filter(raw: str | None) -> set[str] | None:
    if not raw:
        return None
    return STATUS_AGGREGATES.get(raw, {raw})


def _type_filter(raw: str) -> set[str]:
    types: set[str] = set()
    for name in raw.split(","):
        name = name.strip()
        types |= TYPE_ALIASES.get(name, {name})
    return types
