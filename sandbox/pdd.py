"""Simulated Pinduoduo open platform gateway (拼多多开放平台 ``api/router``), faithful to specs/platform-apis.md §4.

One URL, API chosen by ``type``; system parameters ``type, client_id, access_token, timestamp`` (unix seconds, ±10
minutes), ``data_type=JSON``, ``version=V1`` and ``sign`` arrive flat with the business parameters, as a form, a
query string or a JSON object body. ``sign = UPPER(MD5(client_secret + Σ sorted(key + value) + client_secret))``
over every parameter but ``sign``. Answers are HTTP 200 JSON: ``<type without "pdd.", dots -> underscores>_response``
(``order_sn_increment_get_response`` etc. for the methods whose SDK names differ, see ``METHODS``) or
``{"error_response": {"error_code", "error_msg", "sub_code", "sub_msg", "request_id"}}``.

The spec leaves the numeric error codes UNCONFIRMED; the sandbox's choices are in ``ERRORS`` and sandbox/docs/pdd.md.
Served on the shared port at ``/pdd/api/router`` and, standalone (``--system pdd``), at ``/api/router``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox import clock
from sandbox.common import JSON_UTF8, json_response, query_and_form
from sandbox.faults import _TIMEOUT_FIELDS, FaultError, _count, _number, _strings
from sandbox.system import ChannelSystem
from sandbox.world import Buyer, Sku, WorldError

if TYPE_CHECKING:
    from sandbox.app import SandboxApp

ROUTER_PATH = "/pdd/api/router"
STANDALONE_ROUTER_PATH = "/api/router"
TIMESTAMP_SKEW = timedelta(minutes=10)
MAX_WINDOW = timedelta(minutes=30)  # §4: end_updated_at - start_updated_at <= 30 minutes
HISTORY = timedelta(days=90)  # §4: orders created within 3 months
MAX_PAGE_SIZE = 100  # UNCONFIRMED maximum in the spec
TOKEN_LIFETIME = timedelta(days=365)
# the seeded tokens' end is fixed, not now + lifetime: two worlds of one seed serve identical credentials
SEEDED_TOKEN_EXPIRY = datetime(2099, 12, 31, 15, 59, 59, tzinfo=UTC)

# error_code -> (error_msg, sub_code). Numbers are sandbox choices (spec §4: UNCONFIRMED), distinct per cause so a
# connector's classification can be exercised.
ERRORS: dict[int, tuple[str, str]] = {
    10000: ("参数错误", "isv.invalid-parameter"),
    10001: ("接口不存在", "isv.method-not-exist"),
    10016: ("client_id不存在", "isv.client-id-invalid"),
    10017: ("签名错误", "isv.sign-invalid"),
    10018: ("时间戳已过期", "isv.timestamp-invalid"),
    10019: ("access_token已过期", "isv.access-token-expired"),
    20004: ("订单不存在", "isv.order-not-exist"),
    70031: ("调用过于频繁", "isv.call-limited"),
}
THROTTLE_CODE = 70031
ORDER_STATUSES = (1, 2, 3)  # 1 待发货, 2 已发货待签收, 3 已签收
MALFORMED_KINDS = ("unknown_status", "bad_amount", "missing_order_sn")
# after_sales_status values the admin API can set: 2 买家申请退款待商家处理, 3 退货退款待商家处理,
# 4 商家同意退款退款中, 5 平台同意退款退款中, 6 驳回退款待买家处理, 7 已同意退货退款待用户发货,
# 9 平台拒绝退款退款关闭, 10 退款成功, 11 买家撤销 (PDD's public list; the spec only says "2..32 detailed", UNCONFIRMED)
AFTER_SALES_STATUSES = (2, 3, 4, 5, 6, 7, 9, 10, 11)
PROVINCE_IDS = {"浙江省": 13, "上海市": 9, "广东省": 6, "北京市": 2, "江苏省": 12, "四川省": 23}


def sign(params: Mapping[str, object], secret: str) -> str:
    """§4: ``UPPER(MD5_hex(client_secret + Σ sorted(key + value) + client_secret))`` over all params but ``sign``."""
    text = "".join(f"{key}{params[key]}" for key in sorted(params) if key != "sign" and params[key] is not None)
    return hashlib.md5(f"{secret}{text}{secret}".encode()).hexdigest().upper()


def wire_money(amount: Decimal) -> float:
    """PDD serves money as a JSON double in yuan (§4)."""
    return float(amount)


class PddError(Exception):
    def __init__(self, code: int, detail: str = "") -> None:
        msg, sub = ERRORS.get(code, ("系统错误", "isp.unknown"))
        super().__init__(f"{code} {msg}: {detail}")
        self.code, self.msg, self.sub_code, self.sub_msg = code, msg, sub, detail or msg

    def envelope(self, request_id: str) -> dict:
        return {"error_response": {"error_code": self.code, "error_msg": self.msg, "sub_code": self.sub_code,
                                   "sub_msg": self.sub_msg, "request_id": request_id}}


@dataclass
class PddShop:
    slug: str
    owner_id: str
    owner_name: str
    access_token: str
    refresh_token: str
    expires_at: datetime
    generation: int = 0
    expired_upto: int = -1


@dataclass
class PddOrder:
    order_sn: str
    shop: str
    data: dict
    updated: datetime
    visible_at: datetime
    malformed: str | None = None


@dataclass
class PddRefund:
    refund_id: int
    order_sn: str
    shop: str
    data: dict
    updated: datetime
    visible_at: datetime


@dataclass
class PddWorld:
    client_id: str
    client_secret: str
    shops: dict[str, PddShop]
    orders: dict[str, PddOrder] = field(default_factory=dict)
    refunds: dict[int, PddRefund] = field(default_factory=dict)
    counter: int = 0
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def build(cls, seed: int) -> PddWorld:
        creds = random.Random(f"{seed}:pdd:credentials")
        hexes = "0123456789abcdef"
        shops = {}
        for n, (slug, name) in enumerate((("pdd-flagship", "橙舍拼多多旗舰店"), ("pdd-outlet", "橙舍拼多多折扣店"))):
            shops[slug] = PddShop(slug, str(880000 + n * 7 + creds.randint(1, 6)), name,
                                  "".join(creds.choices(hexes, k=32)), "".join(creds.choices(hexes, k=32)),
                                  SEEDED_TOKEN_EXPIRY)
        return cls("".join(creds.choices(hexes, k=32)), "".join(creds.choices(hexes, k=40)), shops,
                   rng=random.Random(f"{seed}:pdd:orders"))

    def shop(self, slug: str) -> PddShop:
        if slug not in self.shops:
            raise WorldError(f"unknown pdd shop {slug!r}; known: {', '.join(self.shops)}")
        return self.shops[slug]

    def order(self, order_sn: str) -> PddOrder:
        if order_sn not in self.orders:
            raise LookupError(f"unknown pdd order {order_sn}")
        return self.orders[order_sn]

    def create_order(self, shop: PddShop, at: datetime, visible_at: datetime, malformed: str | None,
                     skus: list[tuple[Sku, int]], buyer: Buyer) -> PddOrder:
        rng = self.rng
        self.counter += 1
        local = at.astimezone(clock.shanghai())
        sn = f"{local:%y%m%d}-{rng.randint(10**14, 10**15 - 1) // 10**6 * 10**6 + self.counter:015d}"
        items = [{
            "goods_id": 300000000 + int(sku.num_iid) % 10**8, "sku_id": int(sku.sku_id) if sku.sku_id.isdigit()
            else 700000000 + i, "outer_id": sku.outer_sku_id, "outer_goods_id": sku.outer_iid,
            "goods_name": sku.title, "goods_spec": sku.sku_properties_name, "goods_price": wire_money(sku.price),
            "goods_count": num, "goods_img": f"https://img.example.invalid/{sku.outer_sku_id}.jpg",
        } for i, (sku, num) in enumerate(skus)]
        goods = sum((sku.price * num for sku, num in skus), Decimal("0"))
        seller_discount = Decimal(rng.choice(("0", "0", "5")))
        platform_discount = Decimal(rng.choice(("0", "3")))
        postage = Decimal("0")
        discount = seller_discount + platform_discount
        pay = goods - discount + postage
        stamp = clock.format_wire(at)
        cipher = base64.b64encode(hashlib.sha256(f"{sn}:{buyer.open_uid}".encode()).digest()).decode()
        data = {
            "order_sn": sn, "order_status": 1, "refund_status": 1, "confirm_status": 1, "group_status": 1,
            "trade_type": 0, "created_time": stamp, "confirm_time": stamp, "pay_time": stamp, "updated_at": stamp,
            "shipping_time": "", "last_ship_time": clock.format_wire(at + timedelta(hours=48)), "receive_time": "",
            "pay_amount": wire_money(pay), "goods_amount": wire_money(goods), "discount_amount": wire_money(discount),
            "postage": wire_money(postage), "platform_discount": wire_money(platform_discount),
            "seller_discount": wire_money(seller_discount), "capital_free_discount": 0.0,
            "order_change_amount": 0.0, "pay_no": f"4200{rng.randint(10**15, 10**16 - 1)}",
            "pay_type": rng.choice(("WEIXIN", "ALIPAY")), "logistics_id": 0, "tracking_number": "",
            "buyer_memo": "", "remark": "",
            # §4: receiver PII only as ciphertext (decrypt with pdd.open.decrypt.batch), and only while 待发货
            "receiver_name": f"~{cipher[:16]}~", "receiver_phone": f"${cipher[16:28]}$",
            "receiver_address": f"~{cipher[28:]}~", "address": f"~{cipher[28:]}~",
            "province": buyer.state, "city": buyer.city, "town": buyer.district,
            "province_id": PROVINCE_IDS.get(buyer.state, 1), "city_id": 100 + len(buyer.city), "town_id": 1000,
            "risk_control_status": 0, "after_sales_status": 0, "stock_out_handle_status": 0,
            "item_list": items, "gift_list": [],
        }
        if malformed == "unknown_status":
            data["order_status"] = 9
        elif malformed == "bad_amount":
            data["pay_amount"] = "12.3.4"
        elif malformed == "missing_order_sn":
            del data["order_sn"]
        order = PddOrder(sn, shop.slug, data, at, visible_at, malformed)
        self.orders[sn] = order
        return order

    def modify(self, order: PddOrder, at: datetime, visible_at: datetime, changes: Mapping[str, Any]) -> dict:
        at = max(at, order.updated + timedelta(seconds=1))
        data = order.data
        if "order_status" in changes:
            status = changes["order_status"]
            if status not in ORDER_STATUSES:
                raise WorldError(f"order_status must be one of {ORDER_STATUSES}")
            data["order_status"] = status
            if status >= 2 and not data["shipping_time"]:
                data["shipping_time"] = clock.format_wire(at)
                # §4: receiver ciphertext is served only while 待发货
                for key in ("receiver_name", "receiver_phone", "receiver_address", "address"):
                    data[key] = ""
            if status == 3:
                data["receive_time"] = clock.format_wire(at)
        if "remark" in changes:
            data["remark"] = str(changes["remark"] or "")
        if changes.get("refund") is not None:
            self._refund(order, at, visible_at, changes["refund"])
        data["updated_at"] = clock.format_wire(at)
        order.updated, order.visible_at = at, visible_at
        return {"order_sn": order.order_sn, "updated_at": data["updated_at"]}

    def _refund(self, order: PddOrder, at: datetime, visible_at: datetime, spec: object) -> None:
        if not isinstance(spec, dict):
            raise WorldError('refund must be an object like {"amount": "10.00", "status": 2}')
        status = spec.get("status", 2)  # after_sales_status: a subset of PDD's, see sandbox/docs/pdd.md
        if status not in AFTER_SALES_STATUSES:
            raise WorldError(f"refund status must be one of {', '.join(map(str, AFTER_SALES_STATUSES))}")
        kind = spec.get("type", 2)
        if kind not in (2, 3, 4):
            raise WorldError("refund type must be 2 (仅退款), 3 (退货退款) or 4 (换货)")
        existing = next((r for r in self.refunds.values() if r.order_sn == order.order_sn), None)
        if existing is None:
            self.counter += 1
            amount = Decimal(str(spec.get("amount") or order.data["pay_amount"]))
            existing = PddRefund(9000000 + self.counter, order.order_sn, order.shop, {
                "id": 9000000 + self.counter, "order_sn": order.order_sn, "after_sales_type": kind,
                "goods_id": order.data["item_list"][0]["goods_id"], "sku_id": order.data["item_list"][0]["sku_id"],
                "after_sales_status": status, "refund_amount": int(amount * 100), "goods_number": 1,
                "created_time": clock.format_wire(at), "updated_time": clock.format_wire(at),
                "after_sale_reason": str(spec.get("reason") or "不想要了"),
            }, at, visible_at)
            self.refunds[existing.refund_id] = existing
        existing.data["after_sales_status"] = status
        existing.data["updated_time"] = clock.format_wire(at)
        existing.updated, existing.visible_at = at, visible_at
        order.data["after_sales_status"] = status
        order.data["refund_status"] = 4 if status == 10 else (1 if status in (6, 9, 11) else 2)

    def truth(self) -> dict:
        shops: dict = {slug: {"orders": {}, "refunds": {}} for slug in self.shops}
        for order in self.orders.values():
            shops[order.shop]["orders"][order.order_sn] = {
                "order_status": order.data.get("order_status"), "updated_at": clock.format_wire(order.updated),
                "malformed": order.malformed is not None, "malformed_kind": order.malformed,
            }
        for refund in self.refunds.values():
            shops[refund.shop]["refunds"][str(refund.refund_id)] = {
                "order_sn": refund.order_sn, "after_sales_status": refund.data["after_sales_status"]}
        return {"channels": {"pdd": shops}}


def _expire(name: str, value: object) -> bool | list[str]:
    return value if isinstance(value, bool) else _strings(name, value)


def _shift(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultError(f"{name} must be an integer (positive: records skipped, negative: repeated), got {value!r}")
    return value


class PddSystem(ChannelSystem):
    """The Pinduoduo gateway with two shops, ``pdd-flagship`` and ``pdd-outlet`` (one app, the token picks the
    shop)."""

    name = "pdd"
    shops: ClassVar[tuple[str, ...]] = ("pdd-flagship", "pdd-outlet")
    knob_defaults: ClassVar[dict[str, object]] = {
        "pdd.latency_ms": 0,
        "pdd.throttle": {"calls": 0, "ban_seconds": 1},
        "pdd.expire_tokens": False,
        "pdd.timeout_after_success": {"calls": 0, "methods": [], "sleep_s": 5.0, "mode": "sleep"},
        "pdd.late_index_s": 0,
        "pdd.page_shift": {"calls": 0, "by": 1},
    }
    knob_schema: ClassVar[dict[str, object]] = {
        "pdd.latency_ms": _number,
        "pdd.throttle": {"calls": _count, "ban_seconds": _number},
        "pdd.expire_tokens": _expire,
        "pdd.timeout_after_success": _TIMEOUT_FIELDS,
        "pdd.late_index_s": _number,
        "pdd.page_shift": {"calls": _count, "by": _shift},
    }

    def __init__(self, app: SandboxApp) -> None:
        super().__init__(app)
        self.state = PddWorld.build(app.seed)
        self._expiry_seen: object = False
        self._requests = 0

    def reset(self) -> None:
        super().reset()
        self.state = PddWorld.build(self.app.seed)
        self._expiry_seen = False

    def rules(self) -> list[Rule]:
        return [Rule(ROUTER_PATH, endpoint="pdd:router", methods=["GET", "POST"])]

    def standalone_rules(self) -> list[Rule]:
        return [Rule(STANDALONE_ROUTER_PATH, endpoint="pdd:router", methods=["GET", "POST"])]

    def handle(self, endpoint: str, request: Request, **args: str) -> Response:
        if endpoint == "pdd:router":
            return self.router(request)
        return super().handle(endpoint, request, **args)

    # ------------------------------------------------------------------------------------------- admin side

    def credentials(self) -> dict[str, Any]:
        with self.app.lock:
            state = self.state
            return {"client_id": state.client_id, "client_secret": state.client_secret, "router_path": ROUTER_PATH,
                    "standalone_router_path": STANDALONE_ROUTER_PATH,
                    "shops": [{"shop": s.slug, "owner_id": s.owner_id, "owner_name": s.owner_name,
                               "access_token": s.access_token, "refresh_token": s.refresh_token,
                               "expires_at": int(s.expires_at.timestamp())} for s in state.shops.values()]}

    def truth(self) -> dict[str, Any]:
        with self.app.lock:
            return self.state.truth()

    def create_orders(self, shop: str, count: int, at: datetime | None, malformed: str | None,
                      lines: list[dict] | None) -> list[str]:
        if malformed is not None and malformed not in MALFORMED_KINDS:
            raise WorldError(f"unknown malformed kind {malformed!r}; known: {', '.join(MALFORMED_KINDS)}")
        world = self.app.world
        chosen: list[tuple[Sku, int]] | None = None
        if lines:
            chosen = []
            for line in lines:
                code = str(line.get("sku"))
                # a merchant code the catalogue does not know is an ad-hoc listing at 99.00 (as on the other channels)
                sku = world.sku(code) or Sku(code, code.rsplit("-", 1)[0], 600000999999, "799999999", code, "",
                                             Decimal("99.00"), 0)
                num = line.get("num", 1)
                if isinstance(num, bool) or not isinstance(num, int) or num < 1:
                    raise WorldError("num must be a positive integer")
                chosen.append((sku, num))
        with self.app.lock:
            state = self.state
            pdd_shop = state.shop(shop)
            at = at or self.app.now()
            ids = []
            for _ in range(count):
                skus = chosen or [(sku, state.rng.randint(1, 3))
                                  for sku in state.rng.sample(world.catalogue, state.rng.randint(1, 3))]
                order = state.create_order(pdd_shop, at, self._visible_at(), malformed, skus,
                                           state.rng.choice(world.buyers))
                ids.append(order.order_sn)
            return ids

    def modify_order(self, order_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """``{"at", "order_status", "remark", "refund"}`` (sandbox/docs/pdd.md)."""
        known = {"at", "order_status", "remark", "refund"}
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
            try:
                order = self.state.order(order_id)
            except LookupError as exc:
                raise WorldError(str(exc)) from None
            return self.state.modify(order, at or self.app.now(), self._visible_at(), changes)

    def _visible_at(self) -> datetime:
        """When a write made now becomes visible to the increment lists (``pdd.late_index_s``)."""
        lag = float(self.app.faults.get("pdd.late_index_s"))  # type: ignore[arg-type]
        return clock.precise_now() + timedelta(seconds=lag)

    # ------------------------------------------------------------------------------------------- transport

    def router(self, request: Request) -> Response:
        params = query_and_form(request)
        if request.mimetype == "application/json":
            try:
                body = json.loads(request.get_data(as_text=True) or "{}")
            except ValueError:
                body = None
            if isinstance(body, dict):
                for key, value in body.items():
                    params.setdefault(key, value if isinstance(value, str) else json.dumps(value))
        app = self.app
        with app.lock:
            latency_ms = app.faults.get("pdd.latency_ms")
        if latency_ms:
            app.pause(float(latency_ms) / 1000)  # type: ignore[arg-type]
        stall = None
        with app.lock:
            self._requests += 1
            request_id = f"pdd-sbx-{self._requests}"
            method = str(params.get("type") or "")
            try:
                throttle = app.faults.consume("pdd.throttle")
                if throttle:
                    raise PddError(THROTTLE_CODE, f"This ban will last for {throttle['ban_seconds']:g} more seconds")
                self._sync_expiry()
                handler, root = self._authenticate(params)
                body = {root: handler(self, params)}
                body[root]["request_id"] = request_id
                stall = app.faults.consume_timeout("pdd.timeout_after_success", method)
            except PddError as error:
                body = error.envelope(request_id)
        response = json_response(body, content_type=JSON_UTF8)
        if stall:
            app.stall(stall, request.environ)  # the answer is computed (the effect applied); lose the reply
        return response

    def _sync_expiry(self) -> None:
        """Switching ``pdd.expire_tokens`` on expires the tokens the shops hold now; refreshed ones are valid."""
        value = self.app.faults.get("pdd.expire_tokens")
        if value == self._expiry_seen:
            return
        self._expiry_seen = value
        for shop in self.state.shops.values():
            hit = value is True or (isinstance(value, list) and shop.slug in value)
            shop.expired_upto = shop.generation if hit else -1

    def _authenticate(self, params: Mapping[str, str]) -> tuple[Any, str]:
        state = self.state
        method = params.get("type")
        if not method:
            raise PddError(10000, "type is required")
        spec = METHODS.get(method)
        if spec is None:
            raise PddError(10001, f"{method} (not implemented by the sandbox)")
        if params.get("client_id") != state.client_id:
            raise PddError(10016, str(params.get("client_id") or "client_id is required"))
        try:
            sent = datetime.fromtimestamp(int(str(params.get("timestamp"))), tz=clock.shanghai())
        except (TypeError, ValueError):
            raise PddError(10018, "timestamp must be unix seconds") from None
        if abs(self.app.now() - sent) > TIMESTAMP_SKEW:
            raise PddError(10018, "timestamp differs from server time by more than 10 minutes")
        if str(params.get("sign") or "").upper() != sign(params, state.client_secret):
            raise PddError(10017)
        if params.get("data_type", "JSON").upper() != "JSON":
            raise PddError(10000, "data_type must be JSON")
        handler, root, needs_token = spec
        if needs_token:
            token = params.get("access_token")
            shop = next((s for s in state.shops.values() if s.access_token == token), None)
            if shop is None or shop.expired_upto >= shop.generation or shop.expires_at <= self.app.now():
                raise PddError(10019)
            return (lambda system, p: handler(system, p, shop)), root
        return handler, root

    # ------------------------------------------------------------------------------------------- methods

    def _window(self, params: Mapping[str, str]) -> tuple[datetime, datetime]:
        try:
            start = datetime.fromtimestamp(int(params["start_updated_at"]), tz=clock.shanghai())
            end = datetime.fromtimestamp(int(params["end_updated_at"]), tz=clock.shanghai())
        except (KeyError, ValueError):
            raise PddError(10000, "start_updated_at and end_updated_at (unix seconds) are required") from None
        if end < start:
            raise PddError(10000, "end_updated_at is before start_updated_at")
        if end - start > MAX_WINDOW:
            raise PddError(10000, "the window must not span more than 30 minutes")
        if start < self.app.now() - HISTORY:
            raise PddError(10000, "only the last 3 months can be queried")
        return start, end

    def _paging(self, params: Mapping[str, str]) -> tuple[int, int]:
        try:
            page = int(params.get("page") or 1)
            size = int(params.get("page_size") or MAX_PAGE_SIZE)
        except ValueError:
            raise PddError(10000, "page and page_size must be integers") from None
        if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
            raise PddError(10000, f"page >= 1 and 1 <= page_size <= {MAX_PAGE_SIZE}")
        return page, size

    def order_increment(self, params: Mapping[str, str], shop: PddShop) -> dict:
        start, end = self._window(params)
        page, size = self._paging(params)
        try:
            status = int(params.get("order_status") or 0)
            refund = int(params.get("refund_status") or 0)
        except ValueError:
            raise PddError(10000, "order_status and refund_status must be integers") from None
        if status not in (1, 2, 3, 5) or refund not in (1, 2, 3, 4, 5):
            raise PddError(10000, "order_status (1, 2, 3, 5) and refund_status (1-5) are required")
        refund_groups = {1: (1,), 2: (2,), 3: (3,), 4: (4,), 5: (1, 2, 3, 4)}[refund]
        seen_at = clock.precise_now()
        matches = [o for o in self.state.orders.values()
                   if o.shop == shop.slug and o.visible_at <= seen_at and start <= o.updated <= end
                   and (status == 5 or o.data.get("order_status") == status)
                   and o.data.get("refund_status") in refund_groups]
        # newest first (§4 advises paging from the last page backwards)
        matches.sort(key=lambda o: (o.updated, o.order_sn), reverse=True)
        first = (page - 1) * size
        if page > 1:
            shift = self.app.faults.consume("pdd.page_shift")
            if shift:
                first = max(0, first + int(shift["by"]))
        chosen = matches[first:first + size]
        return {"total_count": len(matches), "has_next": first + size < len(matches),
                "order_sn_list": [copy.deepcopy(o.data) for o in chosen]}

    def order_information(self, params: Mapping[str, str], shop: PddShop) -> dict:
        order = self.state.orders.get(str(params.get("order_sn") or ""))
        if order is None or order.shop != shop.slug:
            raise PddError(20004, f"order {params.get('order_sn')} not found")
        return {"order_info": copy.deepcopy(order.data)}

    def refund_increment(self, params: Mapping[str, str], shop: PddShop) -> dict:
        start, end = self._window(params)
        page, size = self._paging(params)
        seen_at = clock.precise_now()
        rows = sorted((r for r in self.state.refunds.values() if r.shop == shop.slug and r.visible_at <= seen_at
                       and start <= r.updated <= end), key=lambda r: (r.updated, r.refund_id), reverse=True)
        first = (page - 1) * size
        return {"total_count": len(rows), "refund_list": [copy.deepcopy(r.data) for r in rows[first:first + size]]}

    def token_refresh(self, params: Mapping[str, str]) -> dict:
        token = params.get("refresh_token")
        shop = next((s for s in self.state.shops.values() if s.refresh_token == token), None)
        if shop is None:
            raise PddError(10019, "refresh_token invalid")
        rng = self.state.rng
        shop.generation += 1
        shop.access_token = "".join(rng.choices("0123456789abcdef", k=32))
        shop.refresh_token = "".join(rng.choices("0123456789abcdef", k=32))
        now = self.app.now()
        shop.expires_at = now + TOKEN_LIFETIME
        lifetime, until = int(TOKEN_LIFETIME.total_seconds()), int(shop.expires_at.timestamp())
        return {"access_token": shop.access_token, "expires_in": lifetime, "expires_at": until,
                "refresh_token": shop.refresh_token, "refresh_token_expires_in": lifetime,
                "refresh_token_expires_at": until, "owner_id": shop.owner_id,
                "owner_name": shop.owner_name, "scope": ["pdd.order.number.list.increment.get",
                                                         "pdd.order.information.get",
                                                         "pdd.refund.list.increment.get"]}


# type -> (handler, response root, needs access_token)
METHODS: dict[str, tuple[Any, str, bool]] = {
    "pdd.order.number.list.increment.get": (PddSystem.order_increment, "order_sn_increment_get_response", True),
    "pdd.order.information.get": (PddSystem.order_information, "order_info_get_response", True),
    "pdd.refund.list.increment.get": (PddSystem.refund_increment, "refund_increment_get_response", True),
    "pdd.pop.auth.token.refresh": (PddSystem.token_refresh, "pop_auth_token_refresh_response", False),
}
