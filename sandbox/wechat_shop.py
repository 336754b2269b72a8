"""Simulated WeChat Channels shop (视频号小店 / 微信小店) API, per specs/platform-apis.md §3.

Wire rules the simulator reproduces (§3.1):

* every business call carries ``?access_token=`` in the query string and is a JSON POST, except
  ``GET /channels/ec/basics/info/get`` (POSTing it answers errcode 43001; GETting a POST API answers 43002);
* every answer is HTTP 200 with ``errcode``/``errmsg`` (0 / ``ok`` on success), except the ``http_500`` fault;
* tokens come from ``GET /cgi-bin/token`` (each fetch rotates the token; the previous one keeps working for a
  5-minute grace, then answers 40001 "not latest") or ``POST /cgi-bin/stable_token`` (the same token until it
  expires or ``force_refresh`` rotates it); an expired token answers 42001;
* money is integer fen, times are unix seconds, ids are strings above 2**53 (except in pushes, where ``order_id``
  is a JSON number, as §3.6 warns).

Order lists use cursor paging (§3.2): ``next_key`` is an opaque keyset cursor bound to the filters that produced
it, so a client that changes the filters between pages gets errcode 606006 instead of a silently wrong page.

Callback events (§3.6) are pushed to a URL set with ``POST /_sandbox/wechat_shop/callback``, encrypted and signed
exactly as WeChat message crypto does (AES-256-CBC with the EncodingAESKey, PKCS#7 to 32-byte blocks, sha1
``msg_signature``), at least once: each event is resent until the receiver answers HTTP 200 with ``success`` (or an
empty body). AES is implemented here in pure Python (messages are a few hundred bytes) so the sandbox needs no
crypto dependency; the test suite checks it against the spec's worked example.

Served on the shared port under ``/wechat`` (``/wechat/cgi-bin/token``, ``/wechat/channels/ec/...``) and alone at
the real paths (``/cgi-bin/token``, ``/channels/ec/...``).
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import random
import string
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import urlsplit

import requests
from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox import clock
from sandbox.common import admin_at
from sandbox.common import admin_body as _json_body
from sandbox.common import json_response as _json
from sandbox.faults import _TIMEOUT_FIELDS, FaultError, _count, _flag, _number, _strings
from sandbox.system import ChannelSystem
from sandbox.world import TOP_CARRIERS, Buyer, Sku, WorldError

NAME = "wechat_shop"
PREFIX = "/wechat"
ADMIN_PREFIX = f"/_sandbox/{NAME}"

TOKEN_TTL_S = 7200
# Classic /cgi-bin/token: after a new fetch the old token stays valid for 5 minutes (WeChat's documented grace).
TOKEN_GRACE_S = 300
MAX_ORDER_WINDOW_S = 7 * 24 * 3600
MAX_AFTERSALE_WINDOW_S = 24 * 3600
DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
# Order ids start at the spec's example value; after-sale ids have their own counter. Both exceed 2**53.
FIRST_ORDER_ID = 3705115058471208928
FIRST_AFTERSALE_ID = 4237000000000000001

# Errcodes (§3.1). 41001/43002/40002 are WeChat's standard codes for the cases the spec does not list.
ERRMSG = {
    40001: "invalid credential, access_token is invalid or not latest",
    40002: "invalid grant_type",
    40013: "invalid appid",
    40097: "invalid args",
    41001: "access_token missing",
    42001: "access_token expired",
    43001: "require GET method",
    43002: "require POST method",
    45009: "reach max api daily quota limit",
    45011: "api minute-quota reach limit",
    47001: "data format error",
    100002: "order not found",
    # Sandbox choice (UNCONFIRMED): the spec gives no code for "already shipped / status forbids delivery".
    100003: "order status does not allow this operation",
    606006: "params differ from the previous page",
}

# Order status (§3.2).
PAID, PART_SHIPPED, SHIPPED, COMPLETED = 20, 21, 30, 100
CANCELLED_AFTERSALE, CANCELLED_UNPAID, OVERSOLD_CANCEL = 200, 250, 190
KNOWN_STATUSES = (10, 12, 13, 20, 21, 30, 100, 190, 200, 250)
UNKNOWN_STATUS = 999
BAD_AMOUNT = "12.3.4"
MALFORMED_KINDS = ("unknown_status", "bad_amount", "missing_order_id")

AFTERSALE_STATUSES = (
    "USER_CANCELD", "MERCHANT_PROCESSING", "MERCHANT_REJECT_REFUND", "MERCHANT_REJECT_RETURN", "USER_WAIT_RETURN",
    "RETURN_CLOSED", "MERCHANT_WAIT_RECEIPT", "MERCHANT_OVERDUE_REFUND", "MERCHANT_REFUND_SUCCESS",
    "MERCHANT_RETURN_SUCCESS", "PLATFORM_REFUNDING", "PLATFORM_REFUND_FAIL", "USER_WAIT_CONFIRM",
    "MERCHANT_REFUND_RETRY_FAIL", "MERCHANT_FAIL", "USER_WAIT_CONFIRM_UPDATE", "USER_WAIT_HANDLE_MERCHANT_AFTER_SALE",
    "MERCHANT_EXCHANGE_SUCCESS",
)
AFTERSALE_DONE = ("MERCHANT_REFUND_SUCCESS", "MERCHANT_RETURN_SUCCESS")
AFTERSALE_CLOSED = ("USER_CANCELD", "RETURN_CLOSED", "MERCHANT_FAIL", "MERCHANT_REJECT_REFUND",
                    "MERCHANT_REJECT_RETURN", "MERCHANT_EXCHANGE_SUCCESS")

# diff_type (§3.4) -> how stock_told records it (canonical StockLevel modes of §10).
DIFF_TYPES = {1: "delta", 2: "delta", 3: "full"}
THROTTLE_CODES = (45011, 45009)

_ALNUM = string.ascii_letters + string.digits


class WxError(Exception):
    """An error answered as ``{"errcode": n, "errmsg": "..."}`` (HTTP 200)."""

    def __init__(self, errcode: int, detail: str | None = None) -> None:
        message = ERRMSG.get(errcode, "error")
        if detail:
            message = f"{message}: {detail}"
        super().__init__(message)
        self.errcode = errcode
        self.errmsg = message

    def envelope(self) -> dict:
        return {"errcode": self.errcode, "errmsg": self.errmsg}


def _invalid(detail: str) -> WxError:
    return WxError(40097, detail)


# ----------------------------------------------------------------------------------------------- message crypto


class _Aes:
    """AES block cipher (FIPS-197), enough for WeChat message crypto: AES-256-CBC over a few hundred bytes.

    Pure Python on purpose: the sandbox stays dependency-free and speed is irrelevant at push rates.
    """

    def __init__(self, key: bytes) -> None:
        sbox, _ = _sboxes()
        nk = len(key) // 4
        rounds = nk + 6
        words = [list(key[4 * i: 4 * i + 4]) for i in range(nk)]
        rcon = 1
        for i in range(nk, 4 * (rounds + 1)):
            word = list(words[-1])
            if i % nk == 0:
                word = [sbox[b] for b in word[1:] + word[:1]]
                word[0] ^= rcon
                rcon = _xtime(rcon)
            elif nk > 6 and i % nk == 4:
                word = [sbox[b] for b in word]
            words.append([a ^ b for a, b in zip(words[i - nk], word)])
        self.round_keys = [sum(words[4 * r: 4 * r + 4], []) for r in range(rounds + 1)]

    def encrypt_block(self, block: bytes) -> bytes:
        sbox, _ = _sboxes()
        keys = self.round_keys
        state = [a ^ b for a, b in zip(block, keys[0])]
        for rnd in range(1, len(keys)):
            state = _shift_rows([sbox[b] for b in state], 1)
            if rnd != len(keys) - 1:
                state = _mix_columns(state, (2, 3, 1, 1))
            state = [a ^ b for a, b in zip(state, keys[rnd])]
        return bytes(state)

    def decrypt_block(self, block: bytes) -> bytes:
        _, inverse = _sboxes()
        keys = self.round_keys
        state = [a ^ b for a, b in zip(block, keys[-1])]
        for rnd in range(len(keys) - 2, -1, -1):
            state = [inverse[b] for b in _shift_rows(state, -1)]
            state = [a ^ b for a, b in zip(state, keys[rnd])]
            if rnd:
                state = _mix_columns(state, (14, 11, 13, 9))
        return bytes(state)

    def cbc_encrypt(self, data: bytes, iv: bytes) -> bytes:
        out, previous = bytearray(), iv
        for i in range(0, len(data), 16):
            previous = self.encrypt_block(bytes(a ^ b for a, b in zip(data[i: i + 16], previous)))
            out += previous
        return bytes(out)

    def cbc_decrypt(self, data: bytes, iv: bytes) -> bytes:
        out, previous = bytearray(), iv
        for i in range(0, len(data), 16):
            block = data[i: i + 16]
            out += bytes(a ^ b for a, b in zip(self.decrypt_block(block), previous))
            previous = block
        return bytes(out)


def _xtime(value: int) -> int:
    value <<= 1
    return (value ^ 0x11B) if value & 0x100 else value


def _gmul(a: int, b: int) -> int:
    result = 0
    while b:
        if b & 1:
            result ^= a
        a = _xtime(a)
        b >>= 1
    return result


@functools.cache
def _sboxes() -> tuple[tuple[int, ...], tuple[int, ...]]:
    # Derived (multiplicative inverse + affine map) rather than pasted, so there is no 256-entry table to mistype.
    inverse_of = [0] * 256
    for x in range(1, 256):
        inverse_of[x] = next(y for y in range(1, 256) if _gmul(x, y) == 1)
    sbox = []
    for x in range(256):
        b = s = inverse_of[x]
        for _ in range(4):
            b = ((b << 1) | (b >> 7)) & 0xFF
            s ^= b
        sbox.append(s ^ 0x63)
    inverse = [0] * 256
    for index, value in enumerate(sbox):
        inverse[value] = index
    return tuple(sbox), tuple(inverse)


def _shift_rows(state: list[int], direction: int) -> list[int]:
    return [state[r + 4 * ((c + direction * r) % 4)] for c in range(4) for r in range(4)]


def _mix_columns(state: list[int], row: tuple[int, int, int, int]) -> list[int]:
    out = []
    for c in range(4):
        column = state[4 * c: 4 * c + 4]
        for r in range(4):
            out.append(_gmul(column[0], row[(-r) % 4]) ^ _gmul(column[1], row[(1 - r) % 4])
                       ^ _gmul(column[2], row[(2 - r) % 4]) ^ _gmul(column[3], row[(3 - r) % 4]))
    return out


def signature(token: str, timestamp: str, nonce: str, encrypt: str | None = None) -> str:
    """§3.6: ``sha1(''.join(sorted([token, timestamp, nonce(, Encrypt)])))`` in lower-case hex."""
    parts = [token, timestamp, nonce] + ([encrypt] if encrypt is not None else [])
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def encrypt_message(encoding_aes_key: str, appid: str, message: str, random16: bytes) -> str:
    """§3.6: AES-256-CBC(key, iv=key[:16]) over ``random16 ‖ len(msg) u32be ‖ msg ‖ appid``, PKCS#7 to 32."""
    key = base64.b64decode(encoding_aes_key + "=")
    body = message.encode("utf-8")
    plain = random16 + struct.pack(">I", len(body)) + body + appid.encode("utf-8")
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    return base64.b64encode(_Aes(key).cbc_encrypt(plain, key[:16])).decode("ascii")


def decrypt_message(encoding_aes_key: str, encrypted: str) -> tuple[str, str]:
    """Inverse of :func:`encrypt_message`: returns ``(message, appid)``; the caller checks the appid."""
    key = base64.b64decode(encoding_aes_key + "=")
    plain = _Aes(key).cbc_decrypt(base64.b64decode(encrypted), key[:16])
    plain = plain[: -plain[-1]]
    (length,) = struct.unpack(">I", plain[16:20])
    return plain[20: 20 + length].decode("utf-8"), plain[20 + length:].decode("utf-8")


# ----------------------------------------------------------------------------------------------- state


@dataclass
class WxShop:
    slug: str
    name: str
    appid: str
    secret: str
    username: str  # ToUserName of pushes, the shop account's gh_ id
    callback_token: str
    encoding_aes_key: str


@dataclass
class WxToken:
    value: str
    shop: str
    kind: str  # "classic" | "stable"
    expires_at: float
    superseded_at: float | None = None


@dataclass(frozen=True)
class WxProduct:
    product_id: str
    sku_id: str
    sku: Sku


@dataclass
class WxOrder:
    shop: str
    order_id: str
    buyer: Buyer
    data: dict  # the wire order of /order/get
    updated: datetime
    visible_at: float
    malformed: str | None
    shipped: list[int] = field(default_factory=list)  # units shipped per line (index as in product_infos)

    @property
    def status(self) -> int | str:
        return self.data["status"]

    @property
    def lines(self) -> list[dict]:
        return self.data["order_detail"]["product_infos"]


@dataclass
class WxAftersale:
    shop: str
    data: dict  # the wire after_sale_order
    line: dict  # the order line it concerns (shared with the order)
    visible_at: float

    @property
    def id(self) -> str:
        return self.data["after_sale_order_id"]


@dataclass
class WxWriteback:
    accepted: int = 0
    rejected: int = 0
    waybills: list[dict] = field(default_factory=list)

    def as_json(self) -> dict:
        last = self.waybills[-1] if self.waybills else {}
        return {"accepted": self.accepted, "rejected": self.rejected, "waybill_id": last.get("waybill_id"),
                "delivery_id": last.get("delivery_id"), "waybills": copy.deepcopy(self.waybills)}


@dataclass
class PushEvent:
    seq: int
    shop: str
    message: dict  # plaintext JSON event
    attempts: int = 0
    delivered: int = 0
    request: tuple[dict, bytes] | None = None  # (query params, body) built on first attempt, reused by retries


# ----------------------------------------------------------------------------------------------- knobs

_KNOBS: dict[str, object] = {
    f"{NAME}.latency_ms": 0,
    f"{NAME}.http_500": {"calls": 0},
    f"{NAME}.throttle": {"calls": 0, "errcode": 45011},
    f"{NAME}.expire_tokens": False,
    f"{NAME}.token_ttl_s": TOKEN_TTL_S,
    f"{NAME}.timeout_after_success": {"calls": 0, "methods": [], "sleep_s": 5.0, "mode": "sleep"},
    f"{NAME}.late_index_s": 0,
    f"{NAME}.duplicate_push": {"calls": 0},
    f"{NAME}.out_of_order_push": False,
}


def _expire_tokens(name: str, value: object) -> bool | list[str]:
    # true = every token answers 42001; a list of shop slugs = only those shops' tokens.
    return value if isinstance(value, bool) else _strings(name, value)


def _throttle_code(name: str, value: object) -> int:
    if value not in THROTTLE_CODES:
        raise FaultError(f"{name} must be one of {', '.join(map(str, THROTTLE_CODES))}, got {value!r}")
    return value  # type: ignore[return-value]


_SCHEMA: dict[str, object] = {
    f"{NAME}.latency_ms": _number,
    f"{NAME}.http_500": {"calls": _count},
    f"{NAME}.throttle": {"calls": _count, "errcode": _throttle_code},
    f"{NAME}.expire_tokens": _expire_tokens,
    f"{NAME}.token_ttl_s": _number,
    f"{NAME}.timeout_after_success": _TIMEOUT_FIELDS,
    f"{NAME}.late_index_s": _number,
    f"{NAME}.duplicate_push": {"calls": _count},
    f"{NAME}.out_of_order_push": _flag,
}


@dataclass(frozen=True)
class Api:
    handler: str
    http_method: str = "POST"
    needs_token: bool = True
    envelope: bool = True  # token endpoints answer without errcode on success


API: dict[str, Api] = {
    "/cgi-bin/token": Api("token", "GET", needs_token=False, envelope=False),
    "/cgi-bin/stable_token": Api("stable_token", needs_token=False, envelope=False),
    "/channels/ec/basics/info/get": Api("basics_info", "GET"),
    "/channels/ec/order/list/get": Api("order_list"),
    "/channels/ec/order/get": Api("order_get"),
    "/channels/ec/order/deliverycompanylist/get": Api("delivery_companies"),
    "/channels/ec/order/delivery/send": Api("delivery_send"),
    "/channels/ec/product/list/get": Api("product_list"),
    "/channels/ec/product/get": Api("product_get"),
    "/channels/ec/product/stock/update": Api("stock_update"),
    "/channels/ec/product/stock/get": Api("stock_get"),
    "/channels/ec/aftersale/getaftersalelist": Api("aftersale_list"),
    "/channels/ec/aftersale/getaftersaleorder": Api("aftersale_get"),
    "/channels/ec/aftersale/acceptapply": Api("aftersale_accept"),
    "/channels/ec/aftersale/rejectapply": Api("aftersale_reject"),
}

SHOPS = (("wx-store", "橙舍微信小店"), ("wx-outlet", "橙舍微信奥莱店"))


def _fen(value: Decimal) -> int:
    return int((value * 100).quantize(Decimal(1), ROUND_HALF_UP))


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


class WechatShop(ChannelSystem):
    """WeChat Channels shop: tokens, orders, delivery, stock, after-sales and signed callback pushes."""

    name = NAME
    shops = tuple(slug for slug, _ in SHOPS)
    knob_defaults = _KNOBS
    knob_schema = _SCHEMA

    def __init__(self, app: Any) -> None:
        super().__init__(app)
        self.pusher = CallbackPusher(self)
        self._build()

    def _build(self) -> None:
        # Separate streams per concern, so adding an order never shifts credentials or push nonces.
        master = random.Random(f"{self.app.seed}:{NAME}")
        creds = random.Random(master.getrandbits(64))
        self.orders_rng = random.Random(master.getrandbits(64))
        self.tokens_rng = random.Random(master.getrandbits(64))
        self.stock_seed = master.getrandbits(64)
        self.push_seed = master.getrandbits(64)
        self.shop_data: dict[str, WxShop] = {}
        for slug, title in SHOPS:
            self.shop_data[slug] = WxShop(
                slug=slug, name=title,
                appid="wx" + f"{creds.getrandbits(64):016x}",
                secret=f"{creds.getrandbits(128):032x}",
                username="gh_" + f"{creds.getrandbits(48):012x}",
                callback_token="".join(creds.choices(_ALNUM, k=32)),
                encoding_aes_key="".join(creds.choices(_ALNUM, k=43)),
            )
        self.tokens: dict[str, WxToken] = {}
        self.products: dict[str, WxProduct] = {}  # by out_sku_id
        for index, sku in enumerate(self.app.world.catalogue, start=1):
            spu_no = int(sku.outer_iid.rsplit("-", 1)[1])
            self.products[sku.outer_sku_id] = WxProduct(str(10000000000 + spu_no), str(20000000000 + index), sku)
        stock_rng = random.Random(self.stock_seed)
        self.stock: dict[str, dict[str, int]] = {
            slug: {code: stock_rng.randint(50, 300) for code in self.products} for slug in self.shop_data}
        self.stock_told: dict[str, dict[str, list[dict]]] = {slug: {} for slug in self.shop_data}
        self.orders: dict[str, WxOrder] = {}
        self.aftersales: dict[str, WxAftersale] = {}
        self.writebacks: dict[str, WxWriteback] = {}
        self.next_order_id = FIRST_ORDER_ID
        self.next_aftersale_id = FIRST_AFTERSALE_ID

    def reset(self) -> None:
        super().reset()
        self._build()
        self.pusher.reset()

    def close(self) -> None:
        self.pusher.stop()

    # ------------------------------------------------------------------------------------------- routes

    def _rules(self, prefix: str) -> list[Rule]:
        rules = [Rule(prefix + path, endpoint=f"{NAME}:{path}", methods=["GET", "POST"]) for path in API]
        return rules + [
            Rule(f"{ADMIN_PREFIX}/callback", endpoint=f"{NAME}:admin_callback", methods=["GET", "POST"]),
            Rule(f"{ADMIN_PREFIX}/aftersales/<after_sale_order_id>", endpoint=f"{NAME}:admin_aftersale",
                 methods=["POST"]),
        ]

    def rules(self) -> list[Rule]:
        return self._rules(PREFIX)

    def standalone_rules(self) -> list[Rule]:
        return self._rules("")

    def handle(self, endpoint: str, request: Request, **args: str) -> Response:
        what = endpoint.split(":", 1)[1]
        if what == "admin_callback":
            return self._admin(lambda: self.callback_admin(request))
        if what == "admin_aftersale":
            return self._admin(lambda: self.aftersale_admin(args["after_sale_order_id"], _json_body(request)))
        return self._api(what, request)

    def _admin(self, action: Callable[[], dict]) -> Response:
        try:
            return _json(action())
        except WorldError as exc:
            return _json({"error": str(exc)}, exc.http_status)

    def credentials(self) -> dict[str, Any]:
        with self.app.lock:
            return {
                "api_base": PREFIX,
                "standalone_api_base": "",  # served alone (--system wechat_shop): the real paths, no prefix
                "token_path": "/cgi-bin/token",
                "stable_token_path": "/cgi-bin/stable_token",
                "callback_admin_path": f"{ADMIN_PREFIX}/callback",
                "shops": [{"shop": s.slug, "name": s.name, "appid": s.appid, "secret": s.secret,
                           "username": s.username, "callback_token": s.callback_token,
                           "encoding_aes_key": s.encoding_aes_key} for s in self.shop_data.values()],
            }

    # ------------------------------------------------------------------------------------------- transport

    def _api(self, path: str, request: Request) -> Response:
        spec = API[path]
        app = self.app
        with app.lock:
            latency_ms = app.faults.get(f"{NAME}.latency_ms")
        if latency_ms:
            app.pause(float(latency_ms) / 1000)  # type: ignore[arg-type]
        stall = None
        with app.lock:
            if app.faults.consume(f"{NAME}.http_500"):
                return Response("<html><body><h1>500 Internal Server Error</h1></body></html>", status=500,
                                mimetype="text/html")
            try:
                throttle = app.faults.consume(f"{NAME}.throttle")
                if throttle:
                    raise WxError(throttle["errcode"])
                if request.method != spec.http_method:
                    raise WxError(43001 if spec.http_method == "GET" else 43002)
                shop = self._shop_for_token(request.args.get("access_token")) if spec.needs_token else None
                body = _api_body(request) if request.method == "POST" else {}
                payload = getattr(self, spec.handler)(shop, body, request)
                result = {"errcode": 0, "errmsg": "ok", **payload} if spec.envelope else payload
                short = path.removeprefix("/channels/ec/").removeprefix("/")
                stall = app.faults.consume_timeout(f"{NAME}.timeout_after_success", path, short)
            except WxError as error:
                result = error.envelope()
        response = Response(json.dumps(result, ensure_ascii=False), content_type="application/json; charset=utf-8")
        if stall:
            app.stall(stall, request.environ)
        return response

    # ------------------------------------------------------------------------------------------- tokens

    def token(self, shop: None, body: dict, request: Request) -> dict:
        args = request.args
        if args.get("grant_type") != "client_credential":
            raise WxError(40002)
        account = self._account(args.get("appid"), args.get("secret"))
        now = time.time()
        for token in self.tokens.values():
            if token.shop == account.slug and token.kind == "classic" and token.superseded_at is None:
                token.superseded_at = now
        return self._issue(account, "classic", now)

    def stable_token(self, shop: None, body: dict, request: Request) -> dict:
        if body.get("grant_type") != "client_credential":
            raise WxError(40002)
        account = self._account(body.get("appid"), body.get("secret"))
        force = body.get("force_refresh", False)
        if not isinstance(force, bool):
            raise _invalid("force_refresh must be a boolean")
        now = time.time()
        for token in self.tokens.values():
            if token.shop == account.slug and token.kind == "stable" and token.superseded_at is None:
                if not force and token.expires_at > now:
                    return {"access_token": token.value, "expires_in": int(token.expires_at - now)}
                token.superseded_at = now
        return self._issue(account, "stable", now)

    def _account(self, appid: object, secret: object) -> WxShop:
        account = next((s for s in self.shop_data.values() if s.appid == appid), None)
        if account is None:
            raise WxError(40013)
        if secret != account.secret:
            # WeChat answers a wrong AppSecret with 40001 ("AppSecret error or access_token invalid").
            raise WxError(40001, "invalid appsecret")
        return account

    def _issue(self, account: WxShop, kind: str, now: float) -> dict:
        ttl = float(self.app.faults.get(f"{NAME}.token_ttl_s"))  # type: ignore[arg-type]
        value = "".join(self.tokens_rng.choices(_ALNUM + "_-", k=136))
        self.tokens[value] = WxToken(value, account.slug, kind, now + ttl)
        return {"access_token": value, "expires_in": int(ttl)}

    def _shop_for_token(self, value: str | None) -> WxShop:
        if not value:
            raise WxError(41001)
        token = self.tokens.get(value)
        if token is None:
            raise WxError(40001)
        expire = self.app.faults.get(f"{NAME}.expire_tokens")
        now = time.time()
        if expire is True or (isinstance(expire, list) and token.shop in expire) or token.expires_at <= now:
            raise WxError(42001)
        if token.superseded_at is not None and now > token.superseded_at + TOKEN_GRACE_S:
            raise WxError(40001, "a newer access_token was issued")
        return self.shop_data[token.shop]

    # ------------------------------------------------------------------------------------------- orders

    def basics_info(self, shop: WxShop, body: dict, request: Request) -> dict:
        return {"info": {"nickname": shop.name, "headimg_url": "", "subject_type": "企业"}}

    def order_list(self, shop: WxShop, body: dict, request: Request) -> dict:
        create = _time_range(body, "create_time_range", "start_time", "end_time", MAX_ORDER_WINDOW_S)
        update = _time_range(body, "update_time_range", "start_time", "end_time", MAX_ORDER_WINDOW_S)
        if create is None and update is None:
            raise _invalid("create_time_range or update_time_range is required")
        status = body.get("status")
        if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
            raise _invalid("status must be an integer")
        # §3.2: filter 20 (待发货) includes partially shipped orders.
        statuses = None if status is None else ({PAID, PART_SHIPPED} if status == PAID else {status})
        openid = body.get("openid") or None
        page_size = _page_size(body)
        sort_field = "update_time" if update is not None else "create_time"
        filters = {"c": create, "u": update, "s": status, "o": openid}
        searched = time.time()

        def matches(order: WxOrder) -> bool:
            data = order.data
            return (order.shop == shop.slug and order.visible_at <= searched
                    and (create is None or create[0] <= data["create_time"] <= create[1])
                    and (update is None or update[0] <= data["update_time"] <= update[1])
                    and (statuses is None or data["status"] in statuses)
                    and (openid is None or data["openid"] == openid))

        rows = [(o.data[sort_field], int(o.order_id), o.order_id) for o in self.orders.values() if matches(o)]
        page, next_key, has_more = _keyset_page(rows, body.get("next_key"), filters, page_size)
        return {"order_id_list": page, "next_key": next_key, "has_more": has_more}

    def order_get(self, shop: WxShop, body: dict, request: Request) -> dict:
        order = self._own_order(shop, body.get("order_id"))
        data = copy.deepcopy(order.data)
        if order.malformed == "missing_order_id":
            del data["order_id"]
        return {"order": data}

    def _own_order(self, shop: WxShop, order_id: object) -> WxOrder:
        if not isinstance(order_id, str) or not order_id:
            # Ids above 2**53 must travel as strings; a JSON number is refused rather than rounded silently.
            raise _invalid("order_id must be a non-empty string")
        order = self.orders.get(order_id)
        if order is None or order.shop != shop.slug:
            raise WxError(100002)
        return order

    def delivery_companies(self, shop: WxShop, body: dict, request: Request) -> dict:
        return {"company_list": [{"delivery_id": code, "delivery_name": name} for code, name in TOP_CARRIERS.items()]}

    def delivery_send(self, shop: WxShop, body: dict, request: Request) -> dict:
        order = self._own_order(shop, body.get("order_id"))
        writeback = self.writebacks.setdefault(order.order_id, WxWriteback())
        try:
            shipments = self._plan_delivery(order, body.get("delivery_list"))
        except WxError:
            writeback.rejected += 1
            raise
        now = self.app.now()
        self._touch(order, now)
        stamp = order.data["update_time"]
        info = order.data["order_detail"]["delivery_info"]
        for entry, lines in shipments:
            for index, count in lines:
                order.shipped[index] += count
            record = {"waybill_id": entry.get("waybill_id", ""), "delivery_id": entry.get("delivery_id", ""),
                      "delivery_name": TOP_CARRIERS.get(entry.get("delivery_id", ""), ""), "delivery_time": stamp,
                      "deliver_type": entry["deliver_type"],
                      "product_infos": [{"product_id": order.lines[index]["product_id"],
                                         "sku_id": order.lines[index]["sku_id"], "product_cnt": count}
                                        for index, count in lines]}
            info["delivery_product_info"].append(record)
            writeback.waybills.append({"waybill_id": record["waybill_id"], "delivery_id": record["delivery_id"]})
        finished = all(done >= line["sku_cnt"] for done, line in zip(order.shipped, order.lines))
        order.data["status"] = SHIPPED if finished else PART_SHIPPED
        if finished:
            info["ship_done_time"] = stamp
        writeback.accepted += 1
        self._event(order, "channels_ec_order_deliver", finish_delivery=1 if finished else 0)
        return {}

    def _plan_delivery(self, order: WxOrder, delivery_list: object) -> list[tuple[dict, list[tuple[int, int]]]]:
        """Validate a delivery_list; returns (entry, [(line index, units)]) per parcel, changing nothing."""
        if order.data["status"] not in (PAID, PART_SHIPPED):
            raise WxError(100003, f"order {order.order_id} has status {order.data['status']}; 订单已发货或不可发货")
        if not isinstance(delivery_list, list) or not delivery_list:
            raise _invalid("delivery_list must be a non-empty list")
        remaining = [line["sku_cnt"] - done for line, done in zip(order.lines, order.shipped)]
        plan = []
        for entry in delivery_list:
            if not isinstance(entry, dict):
                raise _invalid("delivery_list entries must be objects")
            deliver_type = entry.get("deliver_type")
            if deliver_type not in (1, 3):
                raise _invalid("deliver_type must be 1 (express) or 3 (virtual); 2/4 are deprecated")
            if deliver_type == 1:
                if entry.get("delivery_id") not in TOP_CARRIERS:
                    raise _invalid(f"unknown delivery_id {entry.get('delivery_id')!r}; see deliverycompanylist/get")
                if not isinstance(entry.get("waybill_id"), str) or not entry["waybill_id"]:
                    raise _invalid("waybill_id is required for deliver_type 1")
            infos = entry.get("product_infos")
            lines: list[tuple[int, int]] = []
            if infos is None:
                # Omitted product_infos ship everything still unshipped (UNCONFIRMED in §3.3; sandbox choice).
                lines = [(index, left) for index, left in enumerate(remaining) if left > 0]
            else:
                if not isinstance(infos, list) or not infos:
                    raise _invalid("product_infos must be a non-empty list when given")
                for info in infos:
                    index = next((i for i, ln in enumerate(order.lines) if isinstance(info, dict)
                                  and ln["product_id"] == str(info.get("product_id"))
                                  and ln["sku_id"] == str(info.get("sku_id"))), None)
                    count = info.get("product_cnt") if isinstance(info, dict) else None
                    if index is None:
                        raise _invalid(f"product {info!r} is not in order {order.order_id}")
                    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                        raise _invalid("product_cnt must be a positive integer")
                    lines.append((index, count))
            for index, count in lines:
                remaining[index] -= count
                if remaining[index] < 0:
                    raise WxError(100003, f"sku {order.lines[index]['sku_id']} ships more than ordered; 商品已发货")
            if not lines:
                raise WxError(100003, f"order {order.order_id} has nothing left to ship")
            plan.append((entry, lines))
        return plan

    # ------------------------------------------------------------------------------------------- products, stock

    def product_list(self, shop: WxShop, body: dict, request: Request) -> dict:
        page_size = _page_size(body, default=30)
        status = body.get("status", 5)
        ids = sorted({p.product_id for p in self.products.values()}) if status == 5 else []
        rows = [(0, int(pid), pid) for pid in ids]
        rows.sort(key=lambda row: row[1], reverse=True)
        page, next_key, has_more = _keyset_page(rows, body.get("next_key"), {"s": status}, page_size)
        return {"product_ids": page, "next_key": next_key, "total_num": len(ids), "has_more": has_more}

    def product_get(self, shop: WxShop, body: dict, request: Request) -> dict:
        product_id = str(body.get("product_id") or "")
        skus = [p for p in self.products.values() if p.product_id == product_id]
        if not skus:
            raise _invalid(f"product {product_id!r} not found")
        first = skus[0].sku
        return {"product": {
            "product_id": product_id, "out_product_id": first.outer_iid, "title": first.title, "status": 5,
            "skus": [{"sku_id": p.sku_id, "out_sku_id": p.sku.outer_sku_id, "sku_code": p.sku.outer_sku_id,
                      "sale_price": _fen(p.sku.price), "market_price": _fen(p.sku.price * Decimal("1.2")),
                      "stock_num": self.stock[shop.slug].get(p.sku.outer_sku_id, 0),
                      "sku_attrs": _sku_attrs(p.sku)} for p in skus],
        }}

    def _product(self, body: dict) -> WxProduct:
        product_id, sku_id = str(body.get("product_id") or ""), str(body.get("sku_id") or "")
        if not product_id or not sku_id:
            raise _invalid("product_id and sku_id are required")
        found = next((p for p in self.products.values() if p.product_id == product_id and p.sku_id == sku_id), None)
        if found is None:
            raise _invalid(f"sku {product_id}/{sku_id} not found")
        return found

    def stock_update(self, shop: WxShop, body: dict, request: Request) -> dict:
        product = self._product(body)
        diff_type, num = body.get("diff_type"), body.get("num")
        if diff_type not in DIFF_TYPES:
            raise _invalid("diff_type must be 1 (increase), 2 (decrease) or 3 (set)")
        if isinstance(num, bool) or not isinstance(num, int) or num < 0:
            raise _invalid("num must be a non-negative integer")
        code = product.sku.outer_sku_id
        current = self.stock[shop.slug].get(code, 0)
        after = {1: current + num, 2: current - num, 3: num}[diff_type]
        if after < 0:
            raise _invalid(f"stock would become negative ({current} - {num}); 库存不足")
        self.stock[shop.slug][code] = after
        self.stock_told[shop.slug].setdefault(code, []).append({
            "qty": -num if diff_type == 2 else num, "mode": DIFF_TYPES[diff_type], "diff_type": diff_type,
            "at": clock.format_wire(self.app.now()), "result": after,
            "product_id": product.product_id, "sku_id": product.sku_id})
        return {}

    def stock_get(self, shop: WxShop, body: dict, request: Request) -> dict:
        product = self._product(body)
        qty = self.stock[shop.slug].get(product.sku.outer_sku_id, 0)
        return {"data": {"normal_stock_num": qty, "limited_discount_stock_num": 0, "warehouse_stocks": [],
                         "total_stock_num": qty}}

    # ------------------------------------------------------------------------------------------- after-sales

    def aftersale_list(self, shop: WxShop, body: dict, request: Request) -> dict:
        create = _flat_range(body, "begin_create_time", "end_create_time")
        update = _flat_range(body, "begin_update_time", "end_update_time")
        if create is None and update is None:
            raise _invalid("begin_create_time/end_create_time or begin_update_time/end_update_time is required")
        page_size = _page_size(body, default=MAX_PAGE_SIZE)
        sort_field = "update_time" if update is not None else "create_time"
        searched = time.time()
        rows = [(a.data[sort_field], int(a.id), a.id) for a in self.aftersales.values()
                if a.shop == shop.slug and a.visible_at <= searched
                and (create is None or create[0] <= a.data["create_time"] <= create[1])
                and (update is None or update[0] <= a.data["update_time"] <= update[1])]
        page, next_key, has_more = _keyset_page(rows, body.get("next_key"), {"c": create, "u": update}, page_size)
        return {"after_sale_order_id_list": page, "next_key": next_key, "has_more": has_more}

    def aftersale_get(self, shop: WxShop, body: dict, request: Request) -> dict:
        return {"after_sale_order": copy.deepcopy(self._own_aftersale(shop, body).data)}

    def _own_aftersale(self, shop: WxShop, body: dict) -> WxAftersale:
        after_sale_id = body.get("after_sale_order_id")
        if not isinstance(after_sale_id, str) or not after_sale_id:
            raise _invalid("after_sale_order_id must be a non-empty string")
        aftersale = self.aftersales.get(after_sale_id)
        if aftersale is None or aftersale.shop != shop.slug:
            raise _invalid(f"after-sale {after_sale_id} not found")
        return aftersale

    def aftersale_accept(self, shop: WxShop, body: dict, request: Request) -> dict:
        aftersale = self._own_aftersale(shop, body)
        status, kind = aftersale.data["status"], aftersale.data["type"]
        if status == "MERCHANT_PROCESSING":
            target = "MERCHANT_REFUND_SUCCESS" if kind == "REFUND" else "USER_WAIT_RETURN"
        elif status == "MERCHANT_WAIT_RECEIPT":
            target = "MERCHANT_RETURN_SUCCESS"
        else:
            raise WxError(100003, f"after-sale {aftersale.id} is {status}")
        self._set_aftersale_status(aftersale, target, self.app.now())
        return {}

    def aftersale_reject(self, shop: WxShop, body: dict, request: Request) -> dict:
        aftersale = self._own_aftersale(shop, body)
        if aftersale.data["status"] not in ("MERCHANT_PROCESSING", "MERCHANT_WAIT_RECEIPT"):
            raise WxError(100003, f"after-sale {aftersale.id} is {aftersale.data['status']}")
        target = "MERCHANT_REJECT_REFUND" if aftersale.data["type"] == "REFUND" else "MERCHANT_REJECT_RETURN"
        self._set_aftersale_status(aftersale, target, self.app.now())
        return {}

    # ------------------------------------------------------------------------------------------- world writes

    def _visible_at(self) -> float:
        return time.time() + float(self.app.faults.get(f"{NAME}.late_index_s"))  # type: ignore[arg-type]

    def _touch(self, order: WxOrder, at: datetime) -> None:
        """update_time = max(at, previous + 1 s): every change is visible to an update-window reader."""
        order.updated = max(at.replace(microsecond=0), order.updated + timedelta(seconds=1))
        order.data["update_time"] = _unix(order.updated)
        order.visible_at = self._visible_at()

    def _wx_product(self, code: str) -> WxProduct:
        known = self.products.get(code)
        if known is None:
            # An unknown merchant code becomes an ad-hoc listing, as in World._listing.
            sku = self.app.world._listing(code)
            digits = int(hashlib.sha256(code.encode()).hexdigest()[:8], 16)
            known = WxProduct(str(19000000000 + digits % 10**9), str(29000000000 + digits % 10**9), sku)
            self.products[code] = known
            for slug in self.stock:
                self.stock[slug].setdefault(code, 0)
        return known

    def create_orders(self, shop: str, count: int, at: datetime | None, malformed: str | None,
                      lines: list[dict] | None) -> list[str]:
        if shop not in self.shop_data:
            raise WorldError(f"unknown {NAME} shop {shop!r}; known: {', '.join(self.shop_data)}")
        if malformed is not None and malformed not in MALFORMED_KINDS:
            raise WorldError(f"malformed must be one of {', '.join(MALFORMED_KINDS)}")
        if lines is not None and (not isinstance(lines, list) or not lines or not all(
                isinstance(line, dict) and isinstance(line.get("sku"), str)
                and isinstance(line.get("num", 1), int) and line.get("num", 1) >= 1 for line in lines)):
            raise WorldError('lines must be a list like [{"sku": "SKU-001-RED-M", "num": 2}]')
        with self.app.lock:
            moment = at or self.app.now()
            chosen = [(self._wx_product(line["sku"]), int(line.get("num", 1))) for line in lines] if lines else None
            return [self._new_order(self.shop_data[shop], moment, malformed, chosen).order_id for _ in range(count)]

    def _new_order(self, shop: WxShop, at: datetime, malformed: str | None,
                   chosen: list[tuple[WxProduct, int]] | None) -> WxOrder:
        rng = self.orders_rng
        order_id = str(self.next_order_id)
        self.next_order_id += 1
        if chosen is None:
            picks = rng.sample(list(self.app.world.catalogue), rng.randint(1, 3))
            chosen = [(self.products[sku.outer_sku_id], rng.randint(1, 3)) for sku in picks]
        buyer = rng.choice(self.app.world.buyers)
        stamp = _unix(at)
        product_infos = []
        for product, count in chosen:
            sale = _fen(product.sku.price)
            merchant_discount = sale * count * rng.choice((0, 0, 5, 10)) // 100
            # 达人/platform subsidy: the buyer pays less, the merchant still receives it (finder_discounted_price).
            finder_discount = rng.choice((0, 0, 0, 300)) if sale * count > 5000 else 0
            product_infos.append({
                "product_id": product.product_id, "sku_id": product.sku_id,
                "out_product_id": product.sku.outer_iid, "out_sku_id": product.sku.outer_sku_id,
                "sku_code": product.sku.outer_sku_id, "title": product.sku.title,
                "thumb_img": f"https://mmecimage.cn/p/{product.product_id}.jpg", "sku_cnt": count,
                "sale_price": sale, "market_price": _fen(product.sku.price * Decimal("1.2")),
                "real_price": sale * count - merchant_discount - finder_discount,
                "estimate_price": sale * count - merchant_discount - finder_discount,
                "change_price": 0, "is_change_price": False,
                "merchant_discounted_price": merchant_discount, "finder_discounted_price": finder_discount,
                "on_aftersale_sku_cnt": 0, "finish_aftersale_sku_cnt": 0, "is_free_gift": False,
                "sku_attrs": _sku_attrs(product.sku), "out_warehouse_id": "",
                "delivery_deadline": stamp + 48 * 3600,
            })
            code = product.sku.outer_sku_id
            # The platform deducts stock on order (never below zero: an oversold order is still an order).
            self.stock[shop.slug][code] = max(0, self.stock[shop.slug].get(code, 0) - count)
        product_price = sum(line["sale_price"] * line["sku_cnt"] for line in product_infos)
        merchant_total = sum(line["merchant_discounted_price"] for line in product_infos)
        finder_total = sum(line["finder_discounted_price"] for line in product_infos)
        freight = 1000 if rng.random() < 0.3 else 0
        order_price = product_price - merchant_total - finder_total + freight
        notes = rng.choice(("", "", "", "请尽快发货", "不要放快递柜"))
        data: dict = {
            "order_id": order_id, "status": PAID, "openid": _openid(buyer, "o"), "unionid": _openid(buyer, "oU"),
            "create_time": stamp, "update_time": stamp,
            "aftersale_detail": {"on_aftersale_order_cnt": 0, "aftersale_order_list": []},
            "order_detail": {
                "product_infos": product_infos,
                "price_info": {
                    "product_price": product_price, "order_price": order_price, "freight": freight,
                    "discounted_price": merchant_total, "original_order_price": product_price + freight,
                    "estimate_product_price": product_price - merchant_total - finder_total,
                    "change_down_price": 0, "change_freight": 0,
                    "merchant_receieve_price": order_price + finder_total,  # (sic) as WeChat spells it
                    "merchant_discounted_price": merchant_total, "finder_discounted_price": finder_total,
                    "deduction_price": 0, "use_deduction": False,
                },
                "pay_info": {"prepay_id": f"wx{stamp}{order_id[-10:]}", "prepay_time": stamp, "pay_time": stamp,
                             "transaction_id": at.strftime("4200%Y%m%d") + "".join(rng.choices(string.digits, k=16)),
                             "payment_method": 1},
                "delivery_info": {
                    "address_info": {
                        "user_name": buyer.masked_name, "tel_number": buyer.phone[:3] + "****" + buyer.phone[-4:],
                        "postal_code": buyer.zip, "province_name": buyer.state, "city_name": buyer.city,
                        "county_name": buyer.district, "detail_info": buyer.masked_address, "house_number": "",
                        "national_code": "", "virtual_order_tel_number": "", "use_tel_number": 0,
                        "hash_code": hashlib.sha256(f"{buyer.name}|{buyer.phone}|{buyer.address}".encode()
                                                    ).hexdigest()[:32],
                    },
                    "delivery_product_info": [], "ship_done_time": 0, "deliver_method": 0,
                },
                "ext_info": {"customer_notes": notes, "merchant_notes": "", "confirm_receipt_time": 0,
                             "finder_id": "", "live_id": "", "order_scene": 1},
                "coupon_info": {"user_coupon_id": ""},
                "commission_infos": [],
                "settle_info": {"predict_commission_fee": order_price // 100, "commission_fee": 0},
            },
        }
        if malformed == "unknown_status":
            data["status"] = UNKNOWN_STATUS
        elif malformed == "bad_amount":
            data["order_detail"]["price_info"]["order_price"] = BAD_AMOUNT
        order = WxOrder(shop=shop.slug, order_id=order_id, buyer=buyer, data=data, updated=at,
                        visible_at=self._visible_at(), malformed=malformed, shipped=[0] * len(product_infos))
        self.orders[order_id] = order
        self._event(order, "channels_ec_order_new")
        self._event(order, "channels_ec_order_pay", pay_time=stamp)
        return order

    def modify_order(self, order_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Admin: ``{"at", "status", "merchant_notes", "customer_notes", "aftersale": {type, sku, count, status,
        reason}}``; returns ``{"order_id", "update_time", "after_sale_order_id"?}``."""
        with self.app.lock:
            order = self.orders.get(str(order_id))
            if order is None:
                raise WorldError(f"no {NAME} order {order_id}", 404)
            at = admin_at(changes, clock.now())
            unknown = set(changes) - {"at", "status", "merchant_notes", "customer_notes", "aftersale"}
            if unknown:
                raise WorldError(f"unknown change(s) {', '.join(sorted(unknown))}")
            result: dict[str, Any] = {"order_id": order.order_id}
            ext = order.data["order_detail"]["ext_info"]
            notes = {key: changes[key] for key in ("merchant_notes", "customer_notes") if key in changes}
            if not all(isinstance(value, str) for value in notes.values()):
                raise WorldError("merchant_notes and customer_notes must be strings")
            status = changes.get("status")
            if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
                raise WorldError(f"status must be an integer, one of {KNOWN_STATUSES}")
            # Validate everything before changing anything: the after-sale is checked (and made) first.
            if "aftersale" in changes:
                result["after_sale_order_id"] = self._new_aftersale(order, changes["aftersale"], at)
            else:
                self._touch(order, at)
            ext.update(notes)
            if notes:
                self._event(order, "channels_ec_order_ext_info_update")
            if status is not None and status != order.data["status"]:
                order.data["status"] = status
                stamp = order.data["update_time"]
                if status == COMPLETED:
                    ext["confirm_receipt_time"] = stamp
                    self._event(order, "channels_ec_order_confirm", confirm_type=1)
                elif status in (CANCELLED_UNPAID, CANCELLED_AFTERSALE, OVERSOLD_CANCEL):
                    cancel_type = {CANCELLED_UNPAID: 1, CANCELLED_AFTERSALE: 3, OVERSOLD_CANCEL: 4}[status]
                    self._event(order, "channels_ec_order_cancel", cancel_type=cancel_type)
                elif status in (SHIPPED, PART_SHIPPED):
                    self._event(order, "channels_ec_order_deliver", finish_delivery=int(status == SHIPPED))
            result["update_time"] = order.data["update_time"]
            return result

    def _new_aftersale(self, order: WxOrder, spec: object, at: datetime) -> str:
        if not isinstance(spec, dict):
            raise WorldError('aftersale must be an object like {"type": "REFUND", "sku": "SKU-001-RED-M", "count": 1}')
        kind = spec.get("type", "REFUND")
        if kind not in ("REFUND", "RETURN"):
            raise WorldError("aftersale.type must be REFUND or RETURN")
        code = spec.get("sku")
        line = next((ln for ln in order.lines if code in (None, ln["out_sku_id"])), None)
        if line is None:
            raise WorldError(f"order {order.order_id} has no line with sku {code!r}")
        free = line["sku_cnt"] - line["on_aftersale_sku_cnt"] - line["finish_aftersale_sku_cnt"]
        count = spec.get("count", free)
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= free:
            raise WorldError(f"aftersale.count must be between 1 and {free}")
        status = spec.get("status", "MERCHANT_PROCESSING")
        if status not in AFTERSALE_STATUSES:
            raise WorldError(f"aftersale.status must be one of {', '.join(AFTERSALE_STATUSES)}")
        after_sale_id = str(self.next_aftersale_id)
        self.next_aftersale_id += 1
        stamp = _unix(at)
        amount = line["real_price"] * count // line["sku_cnt"]
        data = {
            "after_sale_order_id": after_sale_id, "status": "MERCHANT_PROCESSING", "order_id": order.order_id,
            "openid": order.data["openid"],
            "product_info": {"product_id": line["product_id"], "sku_id": line["sku_id"], "count": count},
            "refund_info": {"amount": amount, "refund_reason": spec.get("reason", "不想要了")},
            "return_info": {"waybill_id": "", "delivery_id": "", "delivery_name": ""},
            "type": kind, "reason": "NO_LONGER_WANT", "reason_text": spec.get("reason", "不想要了"),
            "create_time": stamp, "update_time": stamp, "deadline": stamp + 48 * 3600,
        }
        aftersale = WxAftersale(order.shop, data, line, self._visible_at())
        self.aftersales[after_sale_id] = aftersale
        line["on_aftersale_sku_cnt"] += count
        order.data["aftersale_detail"]["aftersale_order_list"].append(
            {"aftersale_order_id": after_sale_id, "status": "MERCHANT_PROCESSING"})
        self._recount(order)
        self._touch(order, at)
        self._aftersale_event(aftersale)
        if status != "MERCHANT_PROCESSING":
            self._set_aftersale_status(aftersale, status, at)
        return after_sale_id

    def aftersale_admin(self, after_sale_id: str, body: dict) -> dict:
        """Admin: move an after-sale on (``{"status", "at", "waybill_id", "delivery_id"}``), as the buyer would."""
        with self.app.lock:
            aftersale = self.aftersales.get(after_sale_id)
            if aftersale is None:
                raise WorldError(f"no {NAME} after-sale {after_sale_id}", 404)
            status = body.get("status")
            if status not in AFTERSALE_STATUSES:
                raise WorldError(f"status must be one of {', '.join(AFTERSALE_STATUSES)}")
            if body.get("waybill_id"):
                delivery_id = str(body.get("delivery_id") or "SF")
                aftersale.data["return_info"] = {"waybill_id": str(body["waybill_id"]), "delivery_id": delivery_id,
                                                 "delivery_name": TOP_CARRIERS.get(delivery_id, "")}
            self._set_aftersale_status(aftersale, status, admin_at(body, clock.now()))
            return {"after_sale_order_id": after_sale_id, "status": status,
                    "update_time": aftersale.data["update_time"]}

    def _set_aftersale_status(self, aftersale: WxAftersale, status: str, at: datetime) -> None:
        order = self.orders[aftersale.data["order_id"]]
        previous = aftersale.data["status"]
        was_open = previous not in AFTERSALE_DONE + AFTERSALE_CLOSED
        count = aftersale.data["product_info"]["count"]
        aftersale.data["status"] = status
        aftersale.data["update_time"] = max(_unix(at), aftersale.data["update_time"] + 1)
        aftersale.visible_at = self._visible_at()
        line = aftersale.line
        if was_open and status in AFTERSALE_DONE + AFTERSALE_CLOSED:
            line["on_aftersale_sku_cnt"] -= count
            if status in AFTERSALE_DONE:
                line["finish_aftersale_sku_cnt"] += count
        for entry in order.data["aftersale_detail"]["aftersale_order_list"]:
            if entry["aftersale_order_id"] == aftersale.id:
                entry["status"] = status
        self._recount(order)
        self._touch(order, at)
        self._aftersale_event(aftersale)
        # Every unit refunded: WeChat cancels the order (status 200, cancel_type 3).
        if all(ln["finish_aftersale_sku_cnt"] >= ln["sku_cnt"] for ln in order.lines) \
                and order.data["status"] != CANCELLED_AFTERSALE:
            order.data["status"] = CANCELLED_AFTERSALE
            self._event(order, "channels_ec_order_cancel", cancel_type=3)

    @staticmethod
    def _recount(order: WxOrder) -> None:
        detail = order.data["aftersale_detail"]
        detail["on_aftersale_order_cnt"] = sum(
            1 for entry in detail["aftersale_order_list"] if entry["status"] not in AFTERSALE_DONE + AFTERSALE_CLOSED)

    # ------------------------------------------------------------------------------------------- push events

    def _event(self, order: WxOrder, event: str, **extra: Any) -> None:
        # order_id travels as a JSON number here (§3.6): a receiver must parse it with big-int support.
        self.pusher.enqueue(order.shop, {
            "ToUserName": self.shop_data[order.shop].username, "FromUserName": order.data["openid"],
            "CreateTime": int(time.time()), "MsgType": "event", "Event": event,
            "order_info": {"order_id": int(order.order_id), **extra}})

    def _aftersale_event(self, aftersale: WxAftersale) -> None:
        data = aftersale.data
        # The wrapper key is UNCONFIRMED in §3.6; the sandbox uses the one the spec names.
        self.pusher.enqueue(aftersale.shop, {
            "ToUserName": self.shop_data[aftersale.shop].username, "FromUserName": data["openid"],
            "CreateTime": int(time.time()), "MsgType": "event", "Event": "channels_ec_aftersale_update",
            "finder_shop_aftersale_status_update": {"after_sale_order_id": data["after_sale_order_id"],
                                                    "status": data["status"], "order_id": data["order_id"]}})

    def callback_admin(self, request: Request) -> dict:
        if request.method == "POST":
            body = _json_body(request)
            url = body.get("url")
            if url is not None:
                parts = urlsplit(url) if isinstance(url, str) else None
                if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
                    raise WorldError("url must be an absolute http(s) URL, or null to stop pushing")
            shop = body.get("shop")
            if shop is not None and shop not in self.shop_data:
                raise WorldError(f"unknown {NAME} shop {shop!r}; known: {', '.join(self.shop_data)}")
            after = body.get("after")
            if after is not None and (isinstance(after, bool) or not isinstance(after, int) or after < 0):
                raise WorldError("after must be a non-negative integer (an event seq)")
            encrypt = body.get("encrypt", True)
            if not isinstance(encrypt, bool):
                raise WorldError("encrypt must be true (safe mode, default) or false (plain mode)")
            if body.get("verify") is True and url is not None:
                for slug in ([shop] if shop else list(self.shop_data)):
                    self._verify_url(url, self.shop_data[slug])
            self.pusher.configure(url, [shop] if shop else list(self.shop_data), after, encrypt)
        return self.pusher.status()

    def _verify_url(self, url: str, shop: WxShop) -> None:
        """The console's URL check (§3.6): GET with signature/timestamp/nonce/echostr; the reply must be echostr."""
        with self.app.lock:
            rng = random.Random(f"{self.push_seed}:verify:{shop.slug}:{url}")
            timestamp, nonce = str(int(time.time())), str(rng.randint(10**8, 10**9 - 1))
            echostr = str(rng.getrandbits(63))
        params = {"signature": signature(shop.callback_token, timestamp, nonce), "timestamp": timestamp,
                  "nonce": nonce, "echostr": echostr}
        try:
            reply = requests.get(url, params=params, timeout=CallbackPusher.REQUEST_TIMEOUT_S)
        except requests.RequestException as exc:
            raise WorldError(f"URL verification failed: {type(exc).__name__}: {exc}") from None
        if reply.status_code != 200 or reply.text != echostr:
            raise WorldError(f"URL verification failed: expected echostr {echostr}, got HTTP {reply.status_code} "
                             f"{reply.text[:100]!r}")

    def build_request(self, event: PushEvent, encrypt: bool) -> tuple[dict, bytes]:
        """Sign (and in safe mode encrypt) one event; deterministic per seed and seq except the wall-clock time."""
        shop = self.shop_data[event.shop]
        rng = random.Random(f"{self.push_seed}:{event.seq}")
        timestamp, nonce = str(int(time.time())), str(rng.randint(10**8, 10**9 - 1))
        message = json.dumps(event.message, ensure_ascii=False, separators=(",", ":"))
        params = {"signature": signature(shop.callback_token, timestamp, nonce), "timestamp": timestamp,
                  "nonce": nonce}
        if not encrypt:
            return params, message.encode("utf-8")
        encrypted = encrypt_message(shop.encoding_aes_key, shop.appid, message, rng.randbytes(16))
        params.update({"encrypt_type": "aes",
                       "msg_signature": signature(shop.callback_token, timestamp, nonce, encrypted)})
        body = json.dumps({"ToUserName": shop.username, "Encrypt": encrypted}, separators=(",", ":"))
        return params, body.encode("utf-8")

    # ------------------------------------------------------------------------------------------- truth

    def truth(self) -> dict[str, Any]:
        with self.app.lock:
            shops: dict[str, Any] = {slug: {"orders": {}, "aftersales": {}, "stock": dict(self.stock[slug])}
                                     for slug in self.shop_data}
            for order in sorted(self.orders.values(), key=lambda o: int(o.order_id)):
                shops[order.shop]["orders"][order.order_id] = {
                    "status": order.data["status"], "update_time": order.data["update_time"],
                    "modified": clock.format_wire(order.updated), "malformed": order.malformed is not None,
                    "malformed_kind": order.malformed}
            for aftersale in self.aftersales.values():
                data = aftersale.data
                shops[aftersale.shop]["aftersales"][aftersale.id] = {
                    "status": data["status"], "order_id": data["order_id"], "type": data["type"],
                    "count": data["product_info"]["count"], "amount": data["refund_info"]["amount"],
                    "update_time": data["update_time"]}
            return {
                "channels": {NAME: shops},
                "writebacks": {NAME: {oid: wb.as_json() for oid, wb in sorted(self.writebacks.items())}},
                "stock_told": {NAME: copy.deepcopy(self.stock_told)},
                "pushes": {NAME: self.pusher.truth()},
            }


class CallbackPusher:
    """At-least-once delivery of callback events, per shop, retried with backoff until the receiver says success.

    Events are logged with a global ``seq`` whether or not a URL is set; ``configure`` queues a shop's events with
    seq > ``after`` (default: only new ones). Each shop's queue is delivered head-of-line in seq order (a failing
    event blocks the newer ones, the harshest order a platform may use); ``out_of_order_push`` takes the newest
    pending event first instead, ``duplicate_push`` sends a delivered event once more.
    """

    MAX_BACKOFF_S = 2.0
    REQUEST_TIMEOUT_S = 5.0

    def __init__(self, system: WechatShop) -> None:
        self.system = system
        self.app = system.app
        self._wakeup = threading.Condition(self.app.lock)
        self._thread: threading.Thread | None = None
        self.reset_state()

    def reset_state(self) -> None:
        self.events: list[PushEvent] = []
        self.targets: dict[str, dict] = {}  # shop -> {"url", "encrypt", "pending": [seq], "next_try", "backoff"}
        self.attempts = self.delivered = self.duplicates = self.failures = 0
        self.last_error: str | None = None
        self._epoch = 0

    def reset(self) -> None:
        with self._wakeup:
            self.reset_state()
            self._epoch += 1
            self._wakeup.notify_all()

    def stop(self) -> None:
        with self._wakeup:
            self._wakeup.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=self.REQUEST_TIMEOUT_S + 1)

    def enqueue(self, shop: str, message: dict) -> None:
        """Log an event (caller holds the app lock) and queue it for the shop's URL, if one is set."""
        event = PushEvent(seq=len(self.events) + 1, shop=shop, message=message)
        self.events.append(event)
        target = self.targets.get(shop)
        if target is not None and target["url"]:
            target["pending"].append(event.seq)
            self._wakeup.notify_all()

    def configure(self, url: str | None, shops: list[str], after: int | None, encrypt: bool) -> None:
        with self._wakeup:
            self._epoch += 1
            last = len(self.events)
            start = last if after is None else min(after, last)
            for shop in shops:
                if url is None:
                    self.targets.pop(shop, None)
                    continue
                self.targets[shop] = {"url": url, "encrypt": encrypt, "next_try": 0.0, "backoff": 0.1,
                                      "pending": [e.seq for e in self.events[start:] if e.shop == shop]}
            self.last_error = None
            if url is not None and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="sandbox-wechat-pusher", daemon=True)
                self._thread.start()
            self._wakeup.notify_all()

    def status(self) -> dict:
        with self.app.lock:
            return {
                "targets": {shop: {"url": t["url"], "encrypt": t["encrypt"], "pending": list(t["pending"])}
                            for shop, t in sorted(self.targets.items())},
                "last_seq": len(self.events), "attempts": self.attempts, "delivered": self.delivered,
                "duplicates": self.duplicates, "failures": self.failures, "last_error": self.last_error,
            }

    def truth(self) -> dict:
        return {str(e.seq): {"shop": e.shop, "event": e.message["Event"], "order_id": _event_order_id(e.message),
                             "attempts": e.attempts, "delivered": e.delivered} for e in self.events}

    def _next(self) -> tuple[float | None, tuple | None]:
        """The next (event, shop target) due now, or how long to wait for one (None = until notified)."""
        now = time.monotonic()
        wait: float | None = None
        lifo = bool(self.app.faults.get(f"{NAME}.out_of_order_push"))
        for shop in sorted(self.targets):
            target = self.targets[shop]
            if not target["pending"]:
                continue
            if target["next_try"] > now:
                delay = target["next_try"] - now
                wait = delay if wait is None else min(wait, delay)
                continue
            seq = target["pending"][-1 if lifo else 0]
            return None, (self.events[seq - 1], target)
        return wait, None

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while True:
                    if self.app.stopping.is_set():
                        return
                    wait, due = self._next()
                    if due is not None:
                        break
                    self._wakeup.wait(wait)
                event, target = due
                epoch, url = self._epoch, target["url"]
                if event.request is None:
                    event.request = self.system.build_request(event, target["encrypt"])
                request = event.request
            ok, error = _post(url, request, self.REQUEST_TIMEOUT_S)
            duplicate = False
            with self._wakeup:
                if epoch != self._epoch:
                    continue  # reconfigured or reset meanwhile; the queue was rebuilt
                self.attempts += 1
                event.attempts += 1
                if ok:
                    if event.seq in target["pending"]:
                        target["pending"].remove(event.seq)
                    event.delivered += 1
                    self.delivered += 1
                    target["backoff"], target["next_try"] = 0.1, 0.0
                    duplicate = self.app.faults.consume(f"{NAME}.duplicate_push") is not None
                else:
                    self.failures += 1
                    self.last_error = error
                    target["next_try"] = time.monotonic() + target["backoff"]
                    target["backoff"] = min(target["backoff"] * 2, self.MAX_BACKOFF_S)
            if duplicate:
                # A redelivery of a message the receiver already acknowledged: identical request, new POST.
                ok, _ = _post(url, request, self.REQUEST_TIMEOUT_S)
                with self._wakeup:
                    self.attempts += 1
                    self.duplicates += 1
                    event.attempts += 1
                    event.delivered += int(ok)


def _post(url: str, request: tuple[dict, bytes], timeout: float) -> tuple[bool, str | None]:
    params, body = request
    try:
        reply = requests.post(url, params=params, data=body, timeout=timeout,
                              headers={"Content-Type": "application/json;charset=utf-8"})
    except requests.RequestException as exc:
        return False, f"{type(exc).__name__}: {exc}"
    if reply.status_code != 200:
        return False, f"HTTP {reply.status_code}"
    # §3.6: the receiver acknowledges with "success" or an empty body; anything else means "send again".
    if reply.text.strip() not in ("success", ""):
        return False, f"reply {reply.text[:100]!r} is not 'success'"
    return True, None


def _event_order_id(message: dict) -> str | None:
    if "order_info" in message:
        return str(message["order_info"]["order_id"])
    return message.get("finder_shop_aftersale_status_update", {}).get("order_id")


# ----------------------------------------------------------------------------------------------- helpers


def _openid(buyer: Buyer, prefix: str) -> str:
    digest = base64.b64encode(hashlib.sha256(f"{prefix}|{buyer.open_uid}".encode()).digest()).decode()
    return (prefix + digest.replace("+", "-").replace("/", "_"))[:28]


def _sku_attrs(sku: Sku) -> list[dict]:
    attrs = []
    for part in sku.sku_properties_name.split(";"):
        if ":" in part:
            key, value = part.split(":", 1)
            attrs.append({"attr_key": key, "attr_value": value})
    return attrs


def _time_range(body: dict, name: str, start_key: str, end_key: str, max_span: int) -> tuple[int, int] | None:
    raw = body.get(name)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _invalid(f"{name} must be an object with {start_key} and {end_key}")
    return _span(raw.get(start_key), raw.get(end_key), name, max_span)


def _flat_range(body: dict, start_key: str, end_key: str) -> tuple[int, int] | None:
    if start_key not in body and end_key not in body:
        return None
    return _span(body.get(start_key), body.get(end_key), f"{start_key}/{end_key}", MAX_AFTERSALE_WINDOW_S)


def _span(start: object, end: object, name: str, max_span: int) -> tuple[int, int]:
    for value in (start, end):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _invalid(f"{name}: times must be unix seconds (integers)")
    assert isinstance(start, int) and isinstance(end, int)
    if end < start:
        raise _invalid(f"{name}: end before start")
    if end - start > max_span:
        raise _invalid(f"{name}: span exceeds {max_span // 3600} hours")
    return start, end


def _page_size(body: dict, default: int = DEFAULT_PAGE_SIZE) -> int:
    size = body.get("page_size", default)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
        raise _invalid(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    return size


def _keyset_page(rows: list[tuple[int, int, str]], next_key: object, filters: dict, page_size: int
                 ) -> tuple[list[str], str, bool]:
    """Newest first by (time, id); ``next_key`` = the last key served plus a fingerprint of the filters.

    A keyset cursor (rather than an offset) means an order created between two page calls cannot shift the pages
    and duplicate or skip another one; an order *updated* meanwhile moves to the front and is left for the next
    sync pass, as on a real incremental feed.
    """
    fingerprint = hashlib.sha1(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:16]
    rows.sort(reverse=True)
    if next_key:
        if not isinstance(next_key, str):
            raise _invalid("next_key must be a string")
        try:
            decoded = json.loads(base64.urlsafe_b64decode(next_key.encode()))
            after, bound_to = (int(decoded["t"]), int(decoded["i"])), decoded["f"]
        except (ValueError, KeyError, TypeError):
            raise _invalid("next_key is not a cursor this API issued") from None
        if bound_to != fingerprint:
            raise WxError(606006)
        rows = [row for row in rows if (row[0], row[1]) < after]
    page = rows[:page_size]
    has_more = len(rows) > page_size
    if page:
        last = page[-1]
        cursor = json.dumps({"t": last[0], "i": last[1], "f": fingerprint}, separators=(",", ":"))
        next_key = base64.urlsafe_b64encode(cursor.encode()).decode()
    return [row[2] for row in page], str(next_key or ""), has_more


def _api_body(request: Request) -> dict:
    raw = request.get_data(cache=True)
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise WxError(47001) from None
    if not isinstance(body, dict):
        raise WxError(47001)
    return body


