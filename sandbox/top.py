"""Simulated Tmall TOP gateway (``/top/router/rest``; ``/router/rest`` when served alone), faithful to spec §1.

One URL, API chosen by ``method``; system and business parameters arrive as flat fields, in the query string (GET)
or form body (POST), merged before anything else so a client may split them like the Java SDK does. Every answer is
HTTP 200 with JSON: either the method's envelope or ``{"error_response": {...}}`` - except the ``top.http_500`` fault,
which imitates a broken front proxy with an HTML 500 page.

System checks run in a fixed order so a connector sees the same first error TOP would report:
method (21/22) -> app_key (28/29) -> timestamp (30/31, ±10 min) -> sign (24/25) -> session (26/27) -> v (32-34)
-> format (23). Business errors use code 40/41 for parameters and 15 with an ``isv.*`` sub_code otherwise.

Implemented methods: trades (``taobao.trades.sold.increment.get``, ``taobao.trades.sold.get``,
``taobao.trade.fullinfo.get``), shipping (``taobao.logistics.offline.send``, ``taobao.logistics.companies.get``),
refunds (``taobao.refunds.receive.get``, ``taobao.refund.get``), reviews (``taobao.traderates.get``), stock
(``taobao.item.quantity.update``, ``taobao.skus.quantity.update``), OAuth (``taobao.top.auth.token.create``,
``taobao.top.auth.token.refresh``, plus the OAuth token endpoint form) and TMC pull (``taobao.tmc.user.permit``,
``taobao.tmc.user.cancel``, ``taobao.tmc.messages.consume``, ``taobao.tmc.messages.confirm``).

Besides the gateway-wide faults (HTTP 500, throttle, daily quota, QPS limit, latency, ISP errors, lost replies) the
list methods carry two Double-11 faults: ``top.page_shift`` (a trade on the page just served changes, so the pages
after it shift under a forward reader) and ``top.degraded_list`` (list responses leave out nodes such as ``orders`` or
the receiver fields for some trades; ``trade.fullinfo.get`` still has everything).

The admin operations that only make sense for Tmall (refunds, reviews, presale balance, OAuth codes, token expiry)
are listed in ``ADMIN_ROUTES`` at the end and mounted by :mod:`sandbox.admin`.
"""

from __future__ import annotations

import collections
import copy
import json
import re
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from connectors.top_signing import SIGN_METHODS, verify
from sandbox import clock
from sandbox.common import admin_body, query_and_form
from sandbox.tmc import ALL_TOPICS, DEFAULT_QUANTITY, MAX_CONFIRM_IDS, MAX_QUANTITY, MIN_QUANTITY
from sandbox.world import (
    DEFAULT_TOKEN_TTL,
    TOP_CARRIERS,
    ConsignRejected,
    Refund,
    Sku,
    TmallShop,
    TmallToken,
    Trade,
    WorldError,
)

if TYPE_CHECKING:
    from sandbox.app import SandboxApp

GATEWAY_PATH = "/top/router/rest"
# Served alone (``running_sandbox(system="tmall")``) the gateway sits at TOP's real path, the OAuth endpoint at
# oauth.taobao.com's, so an SDK needs only a new host and port.
STANDALONE_GATEWAY_PATH = "/router/rest"
OAUTH_PATH = "/top/oauth/token"
STANDALONE_OAUTH_PATH = "/token"
TIMESTAMP_SKEW = timedelta(minutes=10)
MAX_WINDOW = timedelta(days=1)
# "Only the last 3 months" (spec §1.6); the sandbox reads it as 90 days.
MAX_LOOKBACK = timedelta(days=90)
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 40
# taobao.traderates.get: only the last 180 days, page_no <= 200, page_size 1-150 (spec §1.6).
RATES_LOOKBACK = timedelta(days=180)
RATES_MAX_PAGE_NO = 200
RATES_MAX_PAGE_SIZE = 150
# skus.quantity.update takes at most 20 "id:qty" pairs (spec §1.7).
MAX_SKU_QUANTITIES = 20

# Code -> msg as TOP spells them (spec §1.5).
MESSAGES = {
    7: "App Call Limited",
    10: "Service Currently Unavailable",
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
SUB_REFUND_NOT_EXIST = "isv.refund-not-exist"
SUB_ITEM_NOT_EXIST = "isv.item-not-exist"
SUB_SKU_NOT_EXIST = "isv.sku-not-exist"
SUB_INVALID_AUTH_CODE = "isv.invalid-auth-code"
SUB_INVALID_REFRESH_TOKEN = "isv.invalid-refresh-token"
# Spec §1.5: the app's daily call quota has this sub_code; per-API frequency limits the other one.
SUB_DAILY_QUOTA = "accesscontrol.limited-by-app-access-count"
SUB_FREQUENCY = "accesscontrol.limited-by-api-access-count"

# Non-simplified JSON wraps each list in an object keyed by the singular element name, as the XML does (§1.5).
LIST_WRAPPERS = {
    "trades": "trade",
    "orders": "order",
    "logistics_companies": "logistics_company",
    "refunds": "refund",
    "trade_rates": "trade_rate",
    "messages": "tmc_message",
    "skus": "sku",
}
# Fields top.degraded_list drops for the "receiver" node.
RECEIVER_FIELDS = frozenset({"receiver_name", "receiver_mobile", "receiver_phone", "receiver_state", "receiver_city",
                             "receiver_district", "receiver_town", "receiver_address", "receiver_zip", "oaid"})

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
        self.reset()

    def reset(self) -> None:
        """Forget call counters (daily quota, QPS window); called by ``SandboxApp.reset``."""
        self._quota_day: str | None = None
        self._quota_used = 0
        self._recent_calls: collections.deque[float] = collections.deque()

    # ------------------------------------------------------------------------------------------- transport

    def __call__(self, request: Request) -> Response:
        # Query first, then form: the Java SDK sends system params in the URL and business params in the body.
        params = query_and_form(request)
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
                self._count_call()
                spec, shop = self._authenticate(params)
                isp = app.faults.consume_timeout("top.isp_error", method)
                if isp:
                    # A back-end failure behind the gateway: nothing happened, the caller should retry.
                    raise TopError(15, isp["sub_code"], "服务暂时不可用，请稍后重试 (sandbox fault top.isp_error)")
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

    def _count_call(self) -> None:
        """``top.daily_quota`` (app calls per calendar day, GMT+8) and ``top.qps_limit`` (calls per second)."""
        faults = self.app.faults
        quota = int(faults.get("top.daily_quota"))  # type: ignore[call-overload]
        now = self.app.now()
        day = now.strftime("%Y-%m-%d")
        if day != self._quota_day:
            self._quota_day, self._quota_used = day, 0
        self._quota_used += 1
        if quota and self._quota_used > quota:
            midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0)
            ban = int((midnight - now).total_seconds())
            raise TopError(7, SUB_DAILY_QUOTA, f"This ban will last for {ban} more seconds")
        limit = float(faults.get("top.qps_limit"))  # type: ignore[arg-type]
        if limit:
            tick = time.monotonic()
            while self._recent_calls and self._recent_calls[0] <= tick - 1:
                self._recent_calls.popleft()
            if len(self._recent_calls) >= limit:
                raise TopError(7, SUB_FREQUENCY, "This ban will last for 1 more seconds")
            self._recent_calls.append(tick)

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
            token = world.tokens.get(session)
            if token is None or self._session_expired(token):
                raise TopError(27, SUB_INVALID_SESSION, "SessionKey非法")
            shop = world.shops[token.shop]

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

    def _session_expired(self, token: TmallToken) -> bool:
        expire = self.app.faults.get("top.expire_sessions")
        if expire is True or (isinstance(expire, list) and token.shop in expire):
            return True
        return token.expires_at <= self.app.now()

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
        return self._trade_page(params, shop, fields, "modified", start, end, shift=True)

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
        return self._trade_page(params, shop, fields, "created", start, end)

    def _trade_page(
        self,
        params: Mapping[str, str],
        shop: TmallShop,
        fields: frozenset[str],
        time_field: str,
        start: datetime,
        end: datetime,
        shift: bool = False,
    ) -> dict:
        page_no = _int_param(params, "page_no", 1, 1, None)
        page_size = _int_param(params, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        statuses = _status_filter(params.get("status"))
        types = _type_filter(params.get("type") or DEFAULT_TYPES)
        buyer_nick = params.get("buyer_nick")
        buyer_open_uid = params.get("buyer_open_uid")
        searched_at = clock.precise_now()
        search = (shop.slug, time_field, start, end, None if statuses is None else frozenset(statuses),
                  frozenset(types), buyer_nick, buyer_open_uid)
        matches = self._search(search, searched_at)
        first = (page_no - 1) * page_size
        page = matches[first : first + page_size]

        payload = _paged(params, first + page_size < len(matches), len(matches))
        # Like TOP, an empty page carries no "trades" key at all.
        if page:
            degraded = self.app.faults.consume("top.degraded_list")
            payload["trades"] = [self._degrade(project_trade(trade, fields), trade, degraded) for trade in page]
        if shift and page and first + page_size < len(matches) and self.app.faults.consume("top.page_shift"):
            # top.page_shift: between this page and the next, the seller flags the first trade just served. Its
            # modified jumps to now: it leaves a past window (every later trade moves up one place, so a reader
            # paging forwards misses one) or jumps to the head of a window reaching now (a duplicate instead).
            self.app.world.flag_trade(page[0], self.app.now(), self.app.visible_at())
        return payload

    def _search(self, search: tuple, searched_at: datetime) -> list[Trade]:
        """The trades a list search matches, newest first, ties by tid descending (spec §1.6: ordered by modified
        descending).

        A reader pages through one search page by page, so the matches are kept (``World.search_cache``) while
        they cannot have changed: no trade created or touched since (``World.book_version``) and no trade of the
        search become visible since (``top.index_lag_s``). Without it each page rescans the whole trade book and a
        million-order run costs the square of its size.
        """
        world = self.app.world
        cached = world.search_cache.get(search)
        if cached is not None:
            version, matches, hidden_until = cached
            if version == world.book_version and (hidden_until is None or searched_at < hidden_until):
                return matches
        slug, time_field, start, end, statuses, types, buyer_nick, buyer_open_uid = search
        matches, hidden_until = [], None
        for trade in world.trades.values():
            if not (
                trade.shop == slug
                and start <= getattr(trade, time_field) <= end
                and (statuses is None or trade.status in statuses)
                and trade.data["type"] in types
                and (not buyer_nick or trade.data["buyer_nick"] == buyer_nick)
                and (not buyer_open_uid or trade.data["buyer_open_uid"] == buyer_open_uid)
            ):
                continue
            # top.index_lag_s: the search index lags behind writes; fullinfo.get is not affected.
            if trade.visible_at > searched_at:
                hidden_until = trade.visible_at if hidden_until is None else min(hidden_until, trade.visible_at)
                continue
            matches.append(trade)
        matches.sort(key=lambda t: (getattr(t, time_field), t.tid), reverse=True)
        if len(world.search_cache) >= 32:  # readers page through a few searches at a time; forget the oldest
            world.search_cache.pop(next(iter(world.search_cache)))
        world.search_cache[search] = (world.book_version, matches, hidden_until)
        return matches

    def _degrade(self, wire: dict, trade: Trade, degraded: dict | None) -> dict:
        """``top.degraded_list`` (Double 11 degraded mode): drop nodes of a deterministic share of the trades."""
        if not degraded or zlib.crc32(str(trade.tid).encode()) % 1000 >= degraded["ratio"] * 1000:
            return wire
        for node in degraded["drop"]:
            if node == "receiver":
                for name in RECEIVER_FIELDS:
                    wire.pop(name, None)
            else:
                wire.pop(node, None)
        return wire

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

    # ------------------------------------------------------------------------------------------- refunds

    def refunds_receive_get(self, params: Mapping[str, str], shop: TmallShop | None) -> dict:
        assert shop is not None
        fields = _fields(params)
        start = _optional_time(params, "start_modified")
        end = _optional_time(params, "end_modified")
        if start and end and end < start:
            raise invalid("end_modified", "end_modified 不能早于 start_modified")
        page_no = _int_param(params, "page_no", 1, 1, None)
        page_size = _int_param(params, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
        status = params.get("status")
        types = _type_filter(params["type"]) if params.get("type") else None
        buyer_nick, buyer_open_uid = params.get("buyer_nick"), params.get("buyer_open_uid")
        searched_at = clock.precise_now()
        world = self.app.world
        matches = []
        for refund in world.refunds.values():
            trade = world.trades[refund.tid]
            if (refund.shop == shop.slug and refund.visible_at <= searched_at
                    and (start is None or refund.modified >= start) and (end is None or refund.modified <= end)
                    and (not status or refund.status == status)
                    and (types is None or trade.data["type"] in types)
                    and (not buyer_nick or trade.data["buyer_nick"] == buyer_nick)
                    and (not buyer_open_uid or trade.data["buyer_open_uid"] == buyer_open_uid)):
                matches.append(refund)
        matches.sort(key=lambda r: (r.modified, int(r.refund_id)), reverse=True)
        first = (page_no - 1) * page_size
        page = matches[first : first + page_size]
        payload = _paged(params, first + page_size < len(matches), len(matches))
        if page:
            payload["refunds"] = [self._project_refund(refund, fields) for refund in page]
        return payload

    def refund_get(self, params: Mapping[str, str], shop: TmallShop | None) -> dict:
        assert shop is not None
        fields = _fields(params)
        refund_id = params.get("refund_id")
        if not refund_id:
            raise missing("refund_id")
        refund = self.app.world.refunds.get(refund_id)
        if refund is None or refund.shop != shop.slug:
            raise TopError(15, SUB_REFUND_NOT_EXIST, f"退款 {refund_id} 不存在 (refund not found for this seller)")
        return {"refund": self._project_refund(refund, fields)}

    def _project_refund(self, refund: Refund, fields: frozenset[str]) -> dict:
        wire = refund.wire(self.app.world.trades[refund.tid])
        return {key: value for key, value in wire.items() if key in fields}

    # ------------------------------------------------------------------------------------------- reviews

    def traderates_get(self, params: Mapping[str, str], shop: TmallShop | None) -> dict:
        assert shop is not None
        fields = _fields(params)
        rate_type = params.get("rate_type")
        if not rate_type:
            raise missing("rate_type")
        if rate_type not in ("get", "give"):
            raise invalid("rate_type", "must be get or give")
        role = params.get("role")
        if not role:
            raise missing("role")
        if role not in ("seller", "buyer"):
            raise invalid("role", "must be seller or buyer")
        result = params.get("result")
        if result and result not in ("good", "neutral", "bad"):
            raise invalid("result", "must be good, neutral or bad")
        now = self.app.now()
        start = _optional_time(params, "start_date") or now - RATES_LOOKBACK
        end = _optional_time(params, "end_date") or now
        if end < start:
            raise invalid("end_date", "end_date 不能早于 start_date")
        if start < now - RATES_LOOKBACK:
            raise invalid("start_date", "只能查询180天内的评价 (start_date older than 180 days)")
        page_no = _int_param(params, "page_no", 1, 1, RATES_MAX_PAGE_NO)
        page_size = _int_param(params, "page_size", DEFAULT_PAGE_SIZE, 1, RATES_MAX_PAGE_SIZE)
        tid = params.get("tid")
        num_iid = params.get("num_iid")
        # role = who wrote the review: "get" reads what buyers wrote about the shop, "give" what the shop wrote.
        wanted_role = "buyer" if rate_type == "get" else "seller"
        matches = [
            rate for rate in self.app.world.rates
            if rate.shop == shop.slug and rate.role == role == wanted_role and start <= rate.created <= end
            and (not result or rate.result == result)
            and (not tid or tid in (str(rate.tid), str(rate.oid)))
            and (not num_iid or str(rate.num_iid) == num_iid)
        ]
        matches.sort(key=lambda r: (r.created, r.oid), reverse=True)
        first = (page_no - 1) * page_size
        page = matches[first : first + page_size]
        payload = _paged(params, first + page_size < len(matches), len(matches))
        if page:
            payload["trade_rates"] = [{k: v for k, v in rate.wire().items() if k in fields} for rate in page]
        return payload

    # ------------------------------------------------------------------------------------------- stock

    def item_quantity_update(self, params: Mapping[str, str], shop: TmallShop | None) -> dict:
        assert shop is not None
        world = self.app.world
        num_iid, skus = self._item(params)
        quantity = _required_int(params, "quantity")
        mode = _stock_mode(params)
        if mode == "full" and quantity < 0:
            raise invalid("quantity", "全量更新时库存不能小于0 (a full quantity must be >= 0)")
        sku_id, outer_id = params.get("sku_id"), params.get("outer_id")
        if sku_id:
            targets = [sku for sku in skus if sku.sku_id == sku_id]
        elif outer_id:
            targets = [sku for sku in skus if sku.outer_sku_id == outer_id]
        else:
            raise missing("sku_id")
        if not targets:
            raise TopError(15, SUB_SKU_NOT_EXIST, f"SKU {sku_id or outer_id} 不属于商品 {num_iid}")
        now = self.app.now()
        for sku in targets:
            if world.set_quantity(shop.slug, sku, quantity, mode, now, clamp=False) is None:
                # Spec §1.7: a delta may be negative but the result must stay >= 0.
                raise invalid("quantity", "库存不能小于0 (the delta would make the quantity negative)")
        return {"item": self._item_wire(shop, num_iid, skus, targets, now)}

    def skus_quantity_update(self, params: Mapping[str, str], shop: TmallShop | None) -> dict:
        assert shop is not None
        world = self.app.world
        num_iid, skus = self._item(params)
        mode = _stock_mode(params)
        by_sku, by_outer = params.get("skuid_quantities"), params.get("outerid_quantities")
        if not by_sku and not by_outer:
            raise missing("skuid_quantities")
        name = "skuid_quantities" if by_sku else "outerid_quantities"
        pairs = _quantity_pairs(name, by_sku or by_outer or "")
        plan: list[tuple[Sku, int]] = []
        for key, quantity in pairs:
            # one outerId may stand for several SKUs of the item (spec §1.7)
            hits = [sku for sku in skus if (sku.sku_id if by_sku else sku.outer_sku_id) == key]
            if not hits:
                raise TopError(15, SUB_SKU_NOT_EXIST, f"SKU {key} 不属于商品 {num_iid}")
            if mode == "full" and quantity < 0:
                raise invalid(name, "全量更新时库存不能小于0 (a full quantity must be >= 0)")
            plan.extend((sku, quantity) for sku in hits)
        now = self.app.now()
        for sku, quantity in plan:
            world.set_quantity(shop.slug, sku, quantity, mode, now, clamp=True)
        return {"item": self._item_wire(shop, num_iid, skus, [sku for sku, _ in plan], now)}

    def _item(self, params: Mapping[str, str]) -> tuple[int, list[Sku]]:
        num_iid = _required_int(params, "num_iid")
        skus = self.app.world.item_skus(num_iid)
        if not skus:
            raise TopError(15, SUB_ITEM_NOT_EXIST, f"商品 {num_iid} 不存在 (item not found)")
        return num_iid, skus

    def _item_wire(self, shop: TmallShop, num_iid: int, skus: list[Sku], changed: list[Sku], now: datetime) -> dict:
        stock = self.app.world.stock
        stamp = clock.format_wire(now)
        seen: set[str] = set()
        changed_wire = []
        for sku in changed:
            if sku.sku_id not in seen:
                seen.add(sku.sku_id)
                changed_wire.append({"sku_id": int(sku.sku_id), "num_iid": num_iid, "outer_id": sku.outer_sku_id,
                                     "quantity": stock[(shop.slug, num_iid, sku.sku_id)], "modified": stamp})
        return {"num_iid": num_iid, "num": sum(stock[(shop.slug, num_iid, sku.sku_id)] for sku in skus),
                "modified": stamp, "skus": changed_wire}

    # ------------------------------------------------------------------------------------------- OAuth

    def top_auth_token_create(self, params: Mapping[str, str], shop: TmallShop | None) -> dict:
        code = params.get("code")
        if not code:
            raise missing("code")
        token = self.exchange_code(code)
        if token is None:
            raise TopError(15, SUB_INVALID_AUTH_CODE, "授权码无效或已过期 (code unknown, used or expired)")
        return {"token_result": json.dumps(self.token_json(token), ensure_ascii=False)}

    def top_auth_token_refresh(self, params: Mapping[str, str], shop: TmallShop | None) -> dict:
        refresh_token = params.get("refresh_token")
        if not refresh_token:
            raise missing("refresh_token")
        token = self.refresh(refresh_token)
        if token is None:
            raise TopError(15, SUB_INVALID_REFRESH_TOKEN, "refresh_token 无效、已使用或已过期")
        return {"token_result": json.dumps(self.token_json(token), ensure_ascii=False)}

    def _token_ttl(self) -> timedelta:
        ttl = float(self.app.faults.get("top.session_ttl_s"))  # type: ignore[arg-type]
        return timedelta(seconds=ttl) if ttl else DEFAULT_TOKEN_TTL

    def exchange_code(self, code: str) -> TmallToken | None:
        world, now = self.app.world, self.app.now()
        slug = world.redeem_auth_code(code, now)
        return world.issue_token(slug, now, self._token_ttl()) if slug else None

    def refresh(self, refresh_token: str) -> TmallToken | None:
        """A new grant for a valid, unused refresh token; the old one is spent (single use, sandbox choice)."""
        world, now = self.app.world, self.app.now()
        old = world.token_for_refresh(refresh_token)
        if old is None or old.refresh_used or old.refresh_expires_at <= now:
            return None
        old.refresh_used = True
        return world.issue_token(old.shop, now, self._token_ttl())

    def token_json(self, token: TmallToken) -> dict:
        """The OAuth token JSON (spec §1.3; field list beyond token_result is UNCONFIRMED)."""
        now = self.app.now()
        shop = self.app.world.shops[token.shop]
        expires_in = max(int((token.expires_at - now).total_seconds()), 0)
        re_expires_in = max(int((token.refresh_expires_at - now).total_seconds()), 0)
        return {
            "access_token": token.access_token,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "refresh_token": token.refresh_token,
            "re_expires_in": re_expires_in,
            "r1_expires_in": expires_in,
            "r2_expires_in": expires_in,
            "w1_expires_in": expires_in,
            "w2_expires_in": expires_in,
            "taobao_user_id": str(shop.user_id),
            "taobao_user_nick": shop.seller_nick,
            "expire_time": int(token.expires_at.timestamp() * 1000),
            "refresh_token_valid_time": int(token.refresh_expires_at.timestamp() * 1000),
        }

    def oauth_token(self, request: Request) -> Response:
        """``POST /token`` as on oauth.taobao.com: form ``grant_type=authorization_code|refresh_token`` (UNCONFIRMED
        field names, spec §1.3). Answers the token JSON, or ``{"error", "error_description"}`` with HTTP 400/401."""
        form = {key: request.values[key] for key in request.values}
        app = self.app
        with app.lock:
            if form.get("client_id") != app.world.tmall_app.app_key or \
                    form.get("client_secret") != app.world.tmall_app.app_secret:
                return _oauth_error(401, "invalid_client", "client_id or client_secret is wrong")
            grant = form.get("grant_type")
            if grant == "authorization_code":
                token = self.exchange_code(form.get("code", ""))
            elif grant == "refresh_token":
                token = self.refresh(form.get("refresh_token", ""))
            else:
                return _oauth_error(400, "unsupported_grant_type", f"grant_type {grant!r} is not supported")
            if token is None:
                return _oauth_error(400, "invalid_grant", "code or refresh_token is invalid, used or expired")
            body = self.token_json(token)
        return Response(json.dumps(body, ensure_ascii=False), content_type="application/json;charset=UTF-8")

    # ------------------------------------------------------------------------------------------- TMC

    def tmc_user_permit(self, params: Mapping[str, str], shop: TmallShop | None) -> dict:
        assert shop is not None
        raw = params.get("topics")
        topics = None
        if raw:
            topics = frozenset(name.strip() for name in raw.split(",") if name.strip())
            unknown = sorted(topics - ALL_TOPICS)
            if unknown:
                raise invalid("topics", f"unknown topic(s) {', '.join(unknown)}")
        self.app.world.tmc.permit(shop.slug, topics)
        return {"is_success": True}

    def tmc_user_cancel(self, params: Mapping[str, str], shop: TmallShop | None) -> dict:
        nick = params.get("nick")
        if not nick:
            raise missing("nick")
        for candidate in self.app.world.shops.values():
            if candidate.seller_nick == nick:
                self.app.world.tmc.cancel(candidate.slug)
        return {"is_success": True}

    def tmc_messages_consume(self, params: Mapping[str, str], shop: TmallShop | None) -> dict:
        quantity = _int_param(params, "quantity", DEFAULT_QUANTITY, MIN_QUANTITY, MAX_QUANTITY)
        faults = self.app.faults
        batch = self.app.world.tmc.consume(
            clock.precise_now(), quantity,
            redelivery_s=float(faults.get("top.tmc_redelivery_s")),  # type: ignore[arg-type]
            duplicate=faults.consume("top.tmc_duplicate") is not None,
            shuffle=bool(faults.get("top.tmc_out_of_order")),
        )
        if not batch:
            return {}
        app_key = self.app.world.tmall_app.app_key
        return {"messages": [message.wire(app_key) for message in batch]}

    def tmc_messages_confirm(self, params: Mapping[str, str], shop: TmallShop | None) -> dict:
        confirmed = _id_list(params, "s_message_ids")
        failed = _id_list(params, "f_message_ids")
        if not confirmed and not failed:
            raise missing("s_message_ids")
        tmc = self.app.world.tmc
        tmc.confirm(confirmed)
        tmc.fail(failed)
        return {"is_success": True}

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
    "taobao.refunds.receive.get": MethodSpec(TopGateway.refunds_receive_get, needs_session=True),
    "taobao.refund.get": MethodSpec(TopGateway.refund_get, needs_session=True),
    "taobao.traderates.get": MethodSpec(TopGateway.traderates_get, needs_session=True),
    "taobao.item.quantity.update": MethodSpec(TopGateway.item_quantity_update, needs_session=True),
    "taobao.skus.quantity.update": MethodSpec(TopGateway.skus_quantity_update, needs_session=True),
    "taobao.top.auth.token.create": MethodSpec(TopGateway.top_auth_token_create, needs_session=False),
    "taobao.top.auth.token.refresh": MethodSpec(TopGateway.top_auth_token_refresh, needs_session=False),
    "taobao.tmc.user.permit": MethodSpec(TopGateway.tmc_user_permit, needs_session=True),
    "taobao.tmc.user.cancel": MethodSpec(TopGateway.tmc_user_cancel, needs_session=False),
    "taobao.tmc.messages.consume": MethodSpec(TopGateway.tmc_messages_consume, needs_session=False),
    "taobao.tmc.messages.confirm": MethodSpec(TopGateway.tmc_messages_confirm, needs_session=False),
}


def gateway_rules(standalone: bool = False) -> list[Rule]:
    """The TOP routes: the shared port's ``/top/...`` paths, or TOP's real ones when served alone."""
    if standalone:
        return [Rule(STANDALONE_GATEWAY_PATH, endpoint="top", methods=["GET", "POST"]),
                Rule(STANDALONE_OAUTH_PATH, endpoint="top_oauth", methods=["POST"])]
    return [Rule(GATEWAY_PATH, endpoint="top", methods=["GET", "POST"]),
            Rule(OAUTH_PATH, endpoint="top_oauth", methods=["POST"])]


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


def _paged(params: Mapping[str, str], has_next: bool, total: int) -> dict:
    """``use_has_next=true`` -> ``has_next`` and no ``total_results``; otherwise ``total_results`` (spec §1.6)."""
    return {"has_next": has_next} if params.get("use_has_next") == "true" else {"total_results": total}


def _oauth_error(status: int, error: str, description: str) -> Response:
    body = json.dumps({"error": error, "error_description": description})
    return Response(body, status=status, content_type="application/json;charset=UTF-8")


def _required_int(params: Mapping[str, str], name: str) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        raise missing(name)
    try:
        return int(raw)
    except ValueError:
        raise invalid(name, "must be an integer") from None


def _stock_mode(params: Mapping[str, str]) -> str:
    raw = params.get("type") or "1"
    if raw not in ("1", "2"):
        raise invalid("type", "must be 1 (full) or 2 (delta)")
    return "full" if raw == "1" else "delta"


def _quantity_pairs(name: str, raw: str) -> list[tuple[str, int]]:
    pairs = []
    for part in raw.split(";"):
        if not part.strip():
            continue
        key, sep, value = part.partition(":")
        try:
            if not sep or not key.strip():
                raise ValueError(part)
            pairs.append((key.strip(), int(value)))
        except ValueError:
            raise invalid(name, f"must be 'id:qty;id:qty', got {part!r}") from None
    if not pairs:
        raise missing(name)
    if len(pairs) > MAX_SKU_QUANTITIES:
        raise invalid(name, f"at most {MAX_SKU_QUANTITIES} pairs per call")
    return pairs


def _id_list(params: Mapping[str, str], name: str) -> list[int]:
    raw = params.get(name)
    if not raw:
        return []
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise invalid(name, "must be a comma list of message ids") from None
    if len(ids) > MAX_CONFIRM_IDS:
        raise invalid(name, f"at most {MAX_CONFIRM_IDS} ids per call")
    return ids


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


# ----------------------------------------------------------------------------------------------- admin operations
# Mounted under /_sandbox by sandbox.admin (which turns WorldError into HTTP 4xx). Each takes (app, request, **args).




def admin_at(app: SandboxApp, body: dict) -> datetime:
    raw = body.get("at")
    if raw is None:
        return app.now()
    try:
        return clock.parse_wire(raw)
    except ValueError:
        raise WorldError("at must be 'yyyy-MM-dd HH:mm:ss' (GMT+8)") from None


def _optional_str(body: dict, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise WorldError(f"{name} must be a string")
    return value


def _admin_refund(app: SandboxApp, request: Request, tid: str) -> dict:
    body = admin_body(request)
    amount = body.get("amount")
    if amount is not None and not isinstance(amount, (str, int, float)):
        raise WorldError("amount must be yuan, e.g. '12.50'")
    with app.lock:
        refunds = app.world.create_refunds(
            tid, admin_at(app, body), app.visible_at(), oid=body.get("oid"), phase=_optional_str(body, "phase"),
            amount=None if amount is None else str(amount), status=_optional_str(body, "status"),
            reason=_optional_str(body, "reason"))
        return {"refunds": [refund.wire(app.world.trades[refund.tid]) for refund in refunds]}


def _admin_advance_refund(app: SandboxApp, request: Request, refund_id: str) -> dict:
    body = admin_body(request)
    status = _optional_str(body, "status")
    if not status:
        raise WorldError("status is required, e.g. 'SUCCESS'")
    with app.lock:
        refund = app.world.advance_refund(refund_id, status, admin_at(app, body), app.visible_at(),
                                          sid=_optional_str(body, "sid"),
                                          company_code=_optional_str(body, "company_code"))
        return refund.wire(app.world.trades[refund.tid])


def _admin_final_payment(app: SandboxApp, request: Request, tid: str) -> dict:
    body = admin_body(request)
    with app.lock:
        trade = app.world.pay_final(tid, admin_at(app, body), app.visible_at())
        return {"tid": str(trade.tid), "modified": trade.data["modified"], "status": trade.status,
                "step_trade_status": trade.data["step_trade_status"]}


def _admin_rate(app: SandboxApp, request: Request, tid: str) -> dict:
    body = admin_body(request)
    with app.lock:
        rates = app.world.rate_trade(tid, admin_at(app, body), result=_optional_str(body, "result") or "bad",
                                     content=_optional_str(body, "content"), oid=body.get("oid"))
        return {"rates": [rate.wire() for rate in rates]}


def _admin_auth_code(app: SandboxApp, request: Request) -> dict:
    shop = _optional_str(admin_body(request), "shop")
    if not shop:
        raise WorldError("shop is required (e.g. 'tm-flagship')")
    with app.lock:
        return {"shop": shop, "code": app.world.issue_auth_code(shop, app.now()), "expires_in": 600}


def _admin_expire_session(app: SandboxApp, request: Request, shop: str) -> dict:
    seconds = admin_body(request).get("in_s", 0)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
        raise WorldError("in_s must be a non-negative number of seconds")
    with app.lock:
        app.world.expire_shop_tokens(shop, app.now() + timedelta(seconds=seconds))
        return {"shop": shop, "expires_at": clock.format_wire(app.world.shops[shop].expires_at)}


def _admin_stock(app: SandboxApp, request: Request) -> dict:
    with app.lock:
        return app.world.stock_levels()


def _admin_tmc(app: SandboxApp, request: Request) -> dict:
    with app.lock:
        return app.world.tmc.truth()


# (methods, path under /_sandbox, endpoint, handler, what)
ADMIN_ROUTES: list[tuple[tuple[str, ...], str, str, Callable[..., dict], str]] = [
    (("POST",), "/orders/tmall/<tid>/refund", "admin_tmall_refund", _admin_refund,
     "buyer asks for a refund (one line or all; onsale/aftersale; amount)"),
    (("POST",), "/refunds/tmall/<refund_id>", "admin_tmall_refund_advance", _admin_advance_refund,
     "move a Tmall refund on (status: SUCCESS, CLOSED, WAIT_BUYER_RETURN_GOODS ...)"),
    (("POST",), "/orders/tmall/<tid>/final_payment", "admin_tmall_final_payment", _admin_final_payment,
     "presale trade: balance paid (FRONT_PAID_FINAL_PAID)"),
    (("POST",), "/orders/tmall/<tid>/rate", "admin_tmall_rate", _admin_rate,
     "buyer reviews a trade (default result bad)"),
    (("POST",), "/tmall/auth_code", "admin_tmall_auth_code", _admin_auth_code,
     "OAuth code for a shop (for taobao.top.auth.token.create)"),
    (("POST",), "/tmall/sessions/<shop>/expire", "admin_tmall_expire_session", _admin_expire_session,
     "the shop's access tokens expire in in_s seconds"),
    (("GET",), "/tmall/stock", "admin_tmall_stock", _admin_stock, "item/SKU quantities per Tmall shop"),
    (("GET",), "/tmall/tmc", "admin_tmall_tmc", _admin_tmc, "TMC queue counters"),
]
