"""The sandbox's deterministic world: credentials, shops, catalogue, buyers, Tmall trades and the record of truth.

Everything here derives from one integer seed through private ``random.Random`` instances (never the global RNG),
so two worlds built with the same seed and driven by the same sequence of admin calls hold identical data; only
timestamps taken from the wall clock (when a caller omits ``at``) differ. The gateways in ``top.py`` and ``qimen.py``
are views over this state; they never invent data themselves.

Money is ``Decimal`` throughout and rendered as TOP does (spec §1.7): strings in yuan with two decimals.
Buyer personal data (plain name, phone, address) lives only in :class:`Buyer`; the wire sees the masked forms.

Besides trades the world keeps what a Tmall shop accumulates around them: OAuth tokens (issued, refreshed, expiring),
refunds with their lifecycle (spec §1.7/§1.8), buyer and seller reviews, item/SKU quantities with every stock push a
channel was told, and the TMC queue (:mod:`sandbox.tmc`) that every change publishes to.

The world is not thread-safe on its own; ``SandboxApp`` serialises every access behind its single lock.
"""

from __future__ import annotations

import hashlib
import random
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sandbox import clock
from sandbox.tmc import TmcBroker

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

# Trade and line ids share one counter per world. They start above 2**53 on purpose: TOP ids are int64 and a client
# that parses JSON numbers into doubles silently corrupts them (spec §1.7), which is exactly what the sandbox must
# expose. 3817000000000000001 is the value used in the spec's examples.
FIRST_TRADE_ID = 3817000000000000001

MALFORMED_KINDS = ("unknown_status", "bad_amount", "missing_tid")
# Lifecycle shapes a new trade can take (``"kind"`` of POST /_sandbox/orders). ``mixed`` draws one per trade from the
# orders stream (70 % normal), so a seed always yields the same mix.
ORDER_KINDS = ("normal", "presale", "cod", "forbid_consign", "closed", "mixed")
_MIXED_WEIGHTS = (("normal", 70), ("presale", 8), ("cod", 8), ("forbid_consign", 7), ("closed", 7))
UNKNOWN_STATUS = "TRADE_STATUS_FROM_THE_FUTURE"
BAD_AMOUNT = "12.3.4"

# Spec §1.8. Line statuses are the trade statuses minus SELLER_CONSIGNED_PART.
TRADE_STATUSES = (
    "TRADE_NO_CREATE_PAY",
    "WAIT_BUYER_PAY",
    "SELLER_CONSIGNED_PART",
    "WAIT_SELLER_SEND_GOODS",
    "WAIT_BUYER_CONFIRM_GOODS",
    "TRADE_BUYER_SIGNED",
    "TRADE_FINISHED",
    "TRADE_CLOSED",
    "TRADE_CLOSED_BY_TAOBAO",
    "PAY_PENDING",
    "WAIT_PRE_AUTH_CONFIRM",
    "PAID_FORBID_CONSIGN",
)
FINAL_STATUSES = ("TRADE_FINISHED", "TRADE_CLOSED", "TRADE_CLOSED_BY_TAOBAO")
CONSIGNED_STATUSES = ("WAIT_BUYER_CONFIRM_GOODS", "TRADE_BUYER_SIGNED", "TRADE_FINISHED")

# Carriers accepted by taobao.logistics.offline.send (company_code -> display name used in order.logistics_company).
TOP_CARRIERS = {
    "SF": "顺丰速运",
    "YTO": "圆通速递",
    "ZTO": "中通快递",
    "STO": "申通快递",
    "YUNDA": "韵达快递",
    "EMS": "EMS",
    "POST": "中国邮政",
    "ZJS": "宅急送",
    "JD": "京东物流",
    "OTHER": "其他",
}

# Fixed far-future token expiry: a date derived from "now" would make two same-seed worlds differ.
DEFAULT_TOKEN_EXPIRY = "2099-12-31 23:59:59"
# Lifetime of tokens issued by token.create / refresh when top.session_ttl_s is 0 (production varies by app type;
# UNCONFIRMED). The refresh token outlives its access token by REFRESH_GRACE so "expired -> refresh" can be rehearsed.
DEFAULT_TOKEN_TTL = timedelta(days=30)
REFRESH_GRACE = timedelta(days=30)
AUTH_CODE_TTL = timedelta(minutes=10)

# Refund ids are strings on the wire (spec §1.7); a counter of their own keeps the trade id sequence unchanged.
FIRST_REFUND_ID = 218000000000000001
REFUND_OPEN = ("WAIT_SELLER_AGREE", "WAIT_BUYER_RETURN_GOODS", "WAIT_SELLER_CONFIRM_GOODS", "SELLER_REFUSE_BUYER")
REFUND_STATUSES = (*REFUND_OPEN, "CLOSED", "SUCCESS")
# Allowed moves of the refund state machine (admin API); a refund may also be created directly in any status.
REFUND_MOVES = {
    "WAIT_SELLER_AGREE": {"WAIT_BUYER_RETURN_GOODS", "SUCCESS", "SELLER_REFUSE_BUYER", "CLOSED"},
    "WAIT_BUYER_RETURN_GOODS": {"WAIT_SELLER_CONFIRM_GOODS", "CLOSED"},
    "WAIT_SELLER_CONFIRM_GOODS": {"SUCCESS", "SELLER_REFUSE_BUYER"},
    "SELLER_REFUSE_BUYER": {"WAIT_SELLER_AGREE", "SUCCESS", "CLOSED"},
    "CLOSED": set(),
    "SUCCESS": set(),
}
REFUND_TOPICS = {
    "WAIT_SELLER_AGREE": "taobao_refund_RefundCreated",
    "WAIT_BUYER_RETURN_GOODS": "taobao_refund_RefundSellerAgreeAgreement",
    "WAIT_SELLER_CONFIRM_GOODS": "taobao_refund_RefundBuyerReturnGoods",
    "SELLER_REFUSE_BUYER": "taobao_refund_RefundSellerRefuseAgreement",
    "CLOSED": "taobao_refund_RefundClosed",
    "SUCCESS": "taobao_refund_RefundSuccess",
}
_REFUND_REASONS = ("不想要了", "尺码拍错", "七天无理由退换货", "商品与描述不符", "未按约定时间发货")
RATE_RESULTS = ("good", "neutral", "bad")
_RATE_TEXTS = {
    "good": ("质量很好，物流也快", "宝贝不错，好评", "和描述一致，满意"),
    "neutral": ("一般般吧", "还行，尺码偏大"),
    "bad": ("质量太差，和描述不符", "发货太慢，包装破损"),
}

# (title, unit price, leaf category id, variants as (colour code, colour name, size)); "F" = one size.
_SPUS = (
    ("纯棉圆领T恤", "79.00", 50000436, (("RED", "红色", "M"), ("RED", "红色", "L"))),
    ("水洗直筒牛仔裤", "199.00", 50010167, (("BLU", "蓝色", "30"), ("BLU", "蓝色", "32"))),
    ("加绒连帽卫衣", "159.00", 50008898, (("GRY", "灰色", "M"), ("BLK", "黑色", "L"))),
    ("轻薄羽绒服", "399.00", 50008899, (("BLK", "黑色", "M"), ("WHT", "白色", "M"))),
    ("运动短袜三双装", "29.90", 50006843, (("WHT", "白色", "F"), ("BLK", "黑色", "F"))),
    ("帆布托特包", "89.00", 50012010, (("BEI", "米色", "F"), ("BLK", "黑色", "F"))),
    ("防晒棒球帽", "59.00", 50009032, (("NAV", "藏青", "F"), ("PNK", "粉色", "F"))),
    ("桑蚕丝围巾", "268.00", 50009047, (("RED", "红色", "F"), ("GRN", "绿色", "F"))),
    ("休闲运动鞋", "329.00", 50012027, (("WHT", "白色", "40"), ("WHT", "白色", "42"))),
    ("不锈钢保温杯500ml", "129.00", 50012345, (("SLV", "银色", "F"), ("BLK", "黑色", "F"))),
)

# (receiver_state, receiver_city, receiver_district, receiver_zip, street) - real place names, fake streets numbers.
_REGIONS = (
    ("浙江省", "杭州市", "西湖区", "310012", "文三路"),
    ("浙江省", "宁波市", "鄞州区", "315100", "天童南路"),
    ("上海", "上海市", "浦东新区", "200120", "世纪大道"),
    ("北京", "北京市", "朝阳区", "100020", "建国路"),
    ("广东省", "深圳市", "南山区", "518057", "科技园南路"),
    ("广东省", "广州市", "天河区", "510620", "天河路"),
    ("江苏省", "南京市", "鼓楼区", "210008", "中山北路"),
    ("江苏省", "苏州市", "姑苏区", "215005", "观前街"),
    ("四川省", "成都市", "武侯区", "610041", "人民南路"),
    ("湖北省", "武汉市", "洪山区", "430074", "珞喻路"),
    ("山东省", "青岛市", "市南区", "266071", "香港中路"),
    ("福建省", "厦门市", "思明区", "361001", "湖滨南路"),
)
_SURNAMES = "张王李赵陈刘杨黄周吴徐孙"
_GIVEN = "伟芳娜敏静丽强磊洋艳军杰"
_BUYER_MESSAGES = ("请尽快发货，谢谢", "周末才有人收货", "不要放快递柜", "送人的，请不要放价格单")
_ALNUM = string.ascii_letters + string.digits


def money(value: Decimal) -> str:
    """Render yuan as TOP does: a string with exactly two decimals."""
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _token(rng: random.Random, length: int) -> str:
    return "".join(rng.choices(_ALNUM, k=length))


@dataclass(frozen=True)
class Sku:
    """One sellable SKU as both TOP (num_iid/sku_id) and the merchant (outer_iid/outer_sku_id = WMS itemCode) see it."""

    outer_sku_id: str
    outer_iid: str
    num_iid: int
    sku_id: str
    title: str
    sku_properties_name: str
    price: Decimal
    cid: int

    def as_json(self) -> dict:
        return {
            "outer_sku_id": self.outer_sku_id,
            "outer_iid": self.outer_iid,
            "num_iid": self.num_iid,
            "sku_id": self.sku_id,
            "title": self.title,
            "sku_properties_name": self.sku_properties_name,
            "price": money(self.price),
        }


@dataclass(frozen=True)
class Buyer:
    """A buyer with a consignee address. Plain fields never leave the world; the wire gets the masked ones."""

    nick: str
    open_uid: str
    name: str
    phone: str
    state: str
    city: str
    district: str
    zip: str
    address: str
    street: str
    oaid: str

    @property
    def masked_nick(self) -> str:
        return f"{self.nick[0]}**{self.nick[-1]}"

    @property
    def masked_name(self) -> str:
        return f"{self.name[0]}**"

    @property
    def masked_mobile(self) -> str:
        return "*" * 7 + self.phone[-4:]

    @property
    def masked_address(self) -> str:
        return f"{self.street}**"


@dataclass
class TmallShop:
    """A seller; ``session``/``refresh_token``/``expires_at`` mirror its *current* token (the latest issued)."""

    slug: str
    seller_nick: str
    session: str
    refresh_token: str
    expires_at: datetime
    user_id: int = 0


@dataclass
class TmallToken:
    """One OAuth grant: the access token is the TOP ``session``; the refresh token is single-use."""

    shop: str
    access_token: str
    refresh_token: str
    expires_at: datetime
    refresh_expires_at: datetime
    refresh_used: bool = False


@dataclass
class Refund:
    """A refund (退款) of one line, with the wire fields of spec §1.7 kept in typed attributes."""

    refund_id: str
    shop: str
    tid: int
    oid: int
    status: str
    phase: str
    refund_fee: Decimal
    total_fee: Decimal
    has_good_return: bool
    good_status: str
    reason: str
    created: datetime
    modified: datetime
    version: int
    visible_at: datetime
    sid: str | None = None
    company_name: str | None = None

    def wire(self, trade: Trade) -> dict:
        line = next(line for line in trade.lines if line["oid"] == self.oid)
        data = {
            "refund_id": self.refund_id,
            "tid": self.tid,
            "oid": self.oid,
            "title": line["title"],
            "buyer_nick": trade.data["buyer_nick"],
            "buyer_open_uid": trade.data["buyer_open_uid"],
            "seller_nick": trade.data["seller_nick"],
            "num": line["num"],
            "num_iid": line["num_iid"],
            "sku": line["sku_id"],
            "outer_id": line["outer_sku_id"],
            "total_fee": money(self.total_fee),
            "refund_fee": money(self.refund_fee),
            "payment": money(self.total_fee - self.refund_fee),
            "status": self.status,
            "order_status": line["status"],
            "good_status": self.good_status,
            "has_good_return": self.has_good_return,
            "refund_phase": self.phase,
            "refund_version": self.version,
            "reason": self.reason,
            "desc": self.reason,
            "created": clock.format_wire(self.created),
            "modified": clock.format_wire(self.modified),
            "dispute_type": "REFUND_AND_RETURN" if self.has_good_return else "REFUND",
        }
        if self.sid:
            data["sid"] = self.sid
            data["company_name"] = self.company_name
        return data


@dataclass
class TradeRate:
    """A review: ``role`` is who wrote it (buyer reviews the shop's item, seller reviews the buyer)."""

    tid: int
    oid: int
    shop: str
    num_iid: int
    role: str
    nick: str
    rated_nick: str
    result: str
    created: datetime
    item_title: str
    item_price: str
    content: str

    def wire(self) -> dict:
        return {
            "tid": self.tid, "oid": self.oid, "num_iid": self.num_iid, "role": self.role, "nick": self.nick,
            "rated_nick": self.rated_nick, "result": self.result, "created": clock.format_wire(self.created),
            "item_title": self.item_title, "item_price": self.item_price, "content": self.content,
            "valid_score": True,
        }


@dataclass
class StockTold:
    qty: int
    mode: str
    at: datetime
    result: int | None

    def as_json(self) -> dict:
        return {"qty": self.qty, "mode": self.mode, "at": clock.format_wire(self.at), "result": self.result}


@dataclass(frozen=True)
class TmallApp:
    app_key: str
    app_secret: str
    sign_method: str = "md5"


@dataclass(frozen=True)
class QimenWms:
    app_key: str
    app_secret: str
    customer_id: str
    warehouses: tuple[str, ...]


@dataclass
class Trade:
    """A Tmall trade: ``data`` holds the wire fields (minus ``orders``), ``lines`` the wire line objects.

    ``tid`` is kept outside ``data`` because a ``missing_tid`` trade must still be addressable by the admin API and
    the truth while its wire form has no id.
    """

    shop: str
    tid: int
    modified: datetime
    created: datetime
    data: dict
    lines: list[dict]
    buyer: Buyer
    malformed: str | None
    visible_at: datetime
    kind: str = "normal"

    @property
    def status(self) -> str:
        return self.data["status"]


class WorldError(Exception):
    """A request the world cannot honour (unknown shop, tid ...); the admin API turns it into HTTP 4xx."""

    def __init__(self, message: str, http_status: int = 400) -> None:
        super().__init__(message)
        self.http_status = http_status


class ConsignRejected(Exception):
    """taobao.logistics.offline.send refused on business grounds; ``reason`` picks the TOP sub_code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Writeback:
    accepted: int = 0
    rejected: int = 0
    out_sid: str | None = None
    company_code: str | None = None

    def as_json(self) -> dict:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "out_sid": self.out_sid,
            "company_code": self.company_code,
        }


@dataclass
class World:
    """All seeded data plus the mutable trade book. Build with :meth:`World.build`."""

    seed: int
    tmall_app: TmallApp
    shops: dict[str, TmallShop]
    wms: QimenWms
    catalogue: tuple[Sku, ...]
    buyers: tuple[Buyer, ...]
    orders_rng: random.Random
    next_id: int = FIRST_TRADE_ID
    trades: dict[int, Trade] = field(default_factory=dict)
    writebacks: dict[int, Writeback] = field(default_factory=dict)
    tmc: TmcBroker = field(default_factory=lambda: TmcBroker(random.Random(0)))
    tokens: dict[str, TmallToken] = field(default_factory=dict)
    auth_codes: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    next_refund_id: int = FIRST_REFUND_ID
    rates: list[TradeRate] = field(default_factory=list)
    # Bumped by every write that can move a trade in or out of a list search (a new trade, a touch); the TOP
    # gateway's search cache is only valid at the version it was computed at. See TopGateway._trade_page.
    book_version: int = 0
    search_cache: dict = field(default_factory=dict, repr=False, compare=False)
    # (shop, num_iid, sku_id) -> quantity on the shelf; (shop, outer_sku_id) -> every push the channel was told
    stock: dict[tuple[str, int, str], int] = field(default_factory=dict)
    stock_told: dict[tuple[str, str], list[StockTold]] = field(default_factory=dict)
    token_rng: random.Random = field(default_factory=lambda: random.Random(0))

    @classmethod
    def build(cls, seed: int) -> World:
        # One master Random(seed) hands out a sub-seed per concern, so e.g. adding a buyer to the pool never shifts
        # the credentials or the order stream of an existing seed.
        master = random.Random(seed)
        creds_rng = random.Random(master.getrandbits(64))
        buyers_rng = random.Random(master.getrandbits(64))
        orders_rng = random.Random(master.getrandbits(64))

        tmall_app = TmallApp(
            app_key=str(creds_rng.randint(10_000_000, 99_999_999)),
            app_secret=f"{creds_rng.getrandbits(128):032x}",
        )
        expires_at = clock.parse_wire(DEFAULT_TOKEN_EXPIRY)
        shops = {}
        for number, (slug, nick) in enumerate((("tm-flagship", "橙舍官方旗舰店"), ("tm-outlet", "橙舍奥莱店")), 1):
            shops[slug] = TmallShop(
                slug=slug,
                seller_nick=nick,
                # TOP session keys are opaque; real ones start with 6100/6101/6102, which some tools sniff.
                session=f"6100{creds_rng.getrandbits(160):040x}",
                refresh_token=f"6101{creds_rng.getrandbits(160):040x}",
                expires_at=expires_at,
                user_id=2200000000000 + number,
            )
        wms = QimenWms(
            app_key=str(creds_rng.randint(10_000_000, 99_999_999)),
            app_secret=f"{creds_rng.getrandbits(128):032x}",
            customer_id="C001",
            warehouses=("WH01", "WH02"),
        )
        # Streams added after the first three take their own named seeds, so existing streams never shift.
        catalogue = _build_catalogue()
        stock_rng = random.Random(f"{seed}:stock")
        world = cls(
            seed=seed,
            tmall_app=tmall_app,
            shops=shops,
            wms=wms,
            catalogue=catalogue,
            buyers=_build_buyers(buyers_rng, 24),
            orders_rng=orders_rng,
            tmc=TmcBroker(random.Random(f"{seed}:tmc")),
            token_rng=random.Random(f"{seed}:tokens"),
        )
        for shop in shops.values():
            world._register_token(TmallToken(shop.slug, shop.session, shop.refresh_token, expires_at, expires_at))
            for sku in catalogue:
                world.stock[(shop.slug, sku.num_iid, sku.sku_id)] = stock_rng.randint(50, 500)
        return world

    # ----------------------------------------------------------------------------------------------- lookups

    def shop_for_session(self, session: str) -> TmallShop | None:
        token = self.tokens.get(session)
        return self.shops[token.shop] if token is not None else None

    def sku(self, outer_sku_id: str) -> Sku | None:
        for sku in self.catalogue:
            if sku.outer_sku_id == outer_sku_id:
                return sku
        return None

    def trade(self, tid: int | str) -> Trade:
        try:
            key = int(tid)
        except (TypeError, ValueError):
            raise WorldError(f"tid must be an integer, got {tid!r}", 400) from None
        if key not in self.trades:
            raise WorldError(f"no Tmall trade {key}", 404)
        return self.trades[key]

    def _take_id(self) -> int:
        value = self.next_id
        self.next_id += 1
        return value

    # ----------------------------------------------------------------------------------------------- writes

    def create_trades(
        self, shop_slug: str, count: int, at: datetime, malformed: str | None, visible_at: datetime,
        lines: list[dict] | None = None, kind: str | None = None,
    ) -> list[Trade]:
        """Create ``count`` trades in ``shop_slug`` with created = modified = ``at``.

        ``lines`` (``[{"sku": "SKU-001-RED-M", "num": 2}, ...]``) fixes what every trade buys instead of a random
        pick; a merchant code the catalogue does not know becomes an ad-hoc listing (price 99.00), which is how a
        shop's new or mistyped outer_sku_id reaches an order hub. ``kind`` picks the lifecycle shape (ORDER_KINDS;
        default ``normal``: paid, waiting to ship).
        """
        if shop_slug not in self.shops:
            raise WorldError(f"unknown Tmall shop {shop_slug!r}; known: {', '.join(self.shops)}")
        if malformed is not None and malformed not in MALFORMED_KINDS:
            raise WorldError(f"unknown malformed kind {malformed!r}; known: {', '.join(MALFORMED_KINDS)}")
        if kind is not None and kind not in ORDER_KINDS:
            raise WorldError(f"unknown order kind {kind!r}; known: {', '.join(ORDER_KINDS)}")
        chosen = [(self._listing(str(line["sku"])), int(line.get("num", 1))) for line in lines] if lines else None
        trades = []
        for _ in range(count):
            this_kind = kind or "normal"
            if this_kind == "mixed":
                names, weights = zip(*_MIXED_WEIGHTS)
                this_kind = self.orders_rng.choices(names, weights)[0]
            trades.append(self._new_trade(self.shops[shop_slug], at, malformed, visible_at, chosen, this_kind))
        return trades

    def _listing(self, outer_sku_id: str) -> Sku:
        known = self.sku(outer_sku_id)
        if known is not None:
            return known
        digits = int(hashlib.sha256(outer_sku_id.encode()).hexdigest()[:8], 16)
        return Sku(outer_sku_id=outer_sku_id, outer_iid=outer_sku_id.rsplit("-", 1)[0], num_iid=690000000000 + digits
                   % 10**8, sku_id=str(5900000000 + digits % 10**8), title=f"未收录商品 {outer_sku_id}",
                   sku_properties_name="", price=Decimal("99.00"), cid=0)

    def _new_trade(self, shop: TmallShop, at: datetime, malformed: str | None, visible_at: datetime,
                   chosen: list[tuple[Sku, int]] | None = None, kind: str = "normal") -> Trade:
        rng = self.orders_rng
        tid = self._take_id()
        if chosen:
            skus, nums = [sku for sku, _ in chosen], [num for _, num in chosen]
        else:
            skus = rng.sample(self.catalogue, rng.randint(1, 3))
            nums = [rng.randint(1, 3) for _ in skus]
        # Item-level promotions: 0, 5 or 10 % of the line, as order.discount_fee.
        line_discounts = [
            (sku.price * num * rng.choice((0, 0, 5, 10)) / 100).quantize(CENT, ROUND_HALF_UP)
            for sku, num in zip(skus, nums)
        ]
        line_totals = [sku.price * num - disc for sku, num, disc in zip(skus, nums, line_discounts)]
        goods_after_items = sum(line_totals, ZERO)
        # A shop coupon (满减) spread over the lines; it is why divide_order_fee differs from order.payment.
        coupon = Decimal(rng.choice((0, 0, 5, 10, 20))) if goods_after_items > 100 else ZERO
        post_fee = Decimal("10.00") if rng.random() < 0.3 else ZERO

        total_fee = sum((sku.price * num for sku, num in zip(skus, nums)), ZERO)
        discount_fee = sum(line_discounts, ZERO) + coupon
        payment = total_fee - discount_fee + post_fee
        shares = _allocate(coupon, line_totals)

        buyer = rng.choice(self.buyers)
        message = rng.choice(_BUYER_MESSAGES) if rng.random() < 0.3 else None
        alipay_no = at.strftime("%Y%m%d") + "2200" + "".join(rng.choices(string.digits, k=16))

        lines = []
        for sku, num, disc, line_total, share in zip(skus, nums, line_discounts, line_totals, shares):
            oid = self._take_id()
            # Spec §1.7: a single-line trade's order.payment equals trade.payment (postage included); on multi-line
            # trades it is price*num + adjust_fee - discount_fee. divide_order_fee is the net after the coupon.
            line_payment = payment if len(skus) == 1 else line_total
            lines.append(
                {
                    "oid": oid,
                    "oid_str": str(oid),
                    "num_iid": sku.num_iid,
                    "sku_id": sku.sku_id,
                    "outer_iid": sku.outer_iid,
                    "outer_sku_id": sku.outer_sku_id,
                    "title": sku.title,
                    "sku_properties_name": sku.sku_properties_name,
                    "num": num,
                    "price": money(sku.price),
                    "total_fee": money(line_total),
                    "discount_fee": money(disc),
                    "adjust_fee": "0.00",
                    "payment": money(line_payment),
                    "divide_order_fee": money(line_total - share),
                    "part_mjz_discount": money(share),
                    "status": "WAIT_SELLER_SEND_GOODS",
                    "refund_status": "NO_REFUND",
                    "cid": sku.cid,
                    "is_oversold": False,
                }
            )

        stamp = clock.format_wire(at)
        data: dict = {
            "tid": tid,
            "tid_str": str(tid),
            "status": "WAIT_SELLER_SEND_GOODS",
            "type": "fixed",
            "seller_nick": shop.seller_nick,
            "buyer_nick": buyer.masked_nick,
            "buyer_open_uid": buyer.open_uid,
            "created": stamp,
            "pay_time": stamp,
            "modified": stamp,
            "total_fee": money(total_fee),
            "discount_fee": money(discount_fee),
            "adjust_fee": "0.00",
            "post_fee": money(post_fee),
            "payment": money(payment),
            "received_payment": "0.00",
            "commission_fee": "0.00",
            "point_fee": 0,
            "real_point_fee": 0,
            "has_buyer_message": message is not None,
            "seller_flag": 0,
            "alipay_no": alipay_no,
            "shipping_type": "express",
            "receiver_name": buyer.masked_name,
            "receiver_mobile": buyer.masked_mobile,
            "receiver_state": buyer.state,
            "receiver_city": buyer.city,
            "receiver_district": buyer.district,
            "receiver_address": buyer.masked_address,
            "receiver_zip": buyer.zip,
            "oaid": buyer.oaid,
            "is_part_consign": False,
        }
        # TOP leaves absent text fields out of the JSON instead of sending "" or null; so does the sandbox, which
        # makes seller_memo (empty on a new trade) and buyer_message (usually absent) missing keys.
        if message is not None:
            data["buyer_message"] = message

        _apply_kind(kind, data, lines, at)

        if malformed == "unknown_status":
            data["status"] = UNKNOWN_STATUS
        elif malformed == "bad_amount":
            data["payment"] = BAD_AMOUNT
        elif malformed == "missing_tid":
            del data["tid"], data["tid_str"]

        trade = Trade(
            shop=shop.slug,
            tid=tid,
            modified=at,
            created=at,
            data=data,
            lines=lines,
            buyer=buyer,
            malformed=malformed,
            visible_at=visible_at,
            kind=kind,
        )
        self.trades[tid] = trade
        self.book_version += 1
        if kind != "closed":
            # Tmall takes stock off the shelf when an order is placed (拍下减库存); never below zero.
            for sku, num in zip(skus, nums):
                key = (shop.slug, sku.num_iid, sku.sku_id)
                if key in self.stock:
                    self.stock[key] = max(self.stock[key] - num, 0)
        self.publish_trade(trade, "taobao_trade_TradeCreate")
        if data["status"] == "WAIT_SELLER_SEND_GOODS" and kind != "cod":
            self.publish_trade(trade, "taobao_trade_TradeBuyerPay")
        elif kind == "closed":
            self.publish_trade(trade, "taobao_trade_TradeClose")
        return trade

    # ----------------------------------------------------------------------------------------------- TMC

    def publish_trade(self, trade: Trade, topic: str, oid: int | None = None) -> None:
        """Put a trade message on the TMC queue (dropped unless the shop called taobao.tmc.user.permit)."""
        shop = self.shops[trade.shop]
        content = {
            "tid": trade.tid,
            "oid": oid if oid is not None else trade.tid,
            "buyer_nick": trade.buyer.masked_nick,
            "buyer_open_uid": trade.buyer.open_uid,
            "seller_nick": shop.seller_nick,
            "payment": trade.data.get("payment"),
            "status": trade.status,
            "type": trade.data["type"],
        }
        self.tmc.publish(shop.slug, shop.user_id, shop.seller_nick, topic, content, trade.modified)

    def publish_refund(self, refund: Refund, topic: str) -> None:
        shop = self.shops[refund.shop]
        trade = self.trades[refund.tid]
        # Refund message fields are UNCONFIRMED (spec §1.10, §11); these are the ones the spec lists.
        content = {
            "refund_id": refund.refund_id,
            "tid": refund.tid,
            "oid": refund.oid,
            "refund_fee": money(refund.refund_fee),
            "refund_phase": refund.phase,
            "refund_version": refund.version,
            "buyer_nick": trade.buyer.masked_nick,
            "seller_nick": shop.seller_nick,
            "modified": clock.format_wire(refund.modified),
        }
        self.tmc.publish(shop.slug, shop.user_id, shop.seller_nick, topic, content, refund.modified)

    def touch(self, trade: Trade, at: datetime, visible_at: datetime) -> None:
        """Advance ``modified`` to max(at, previous + 1 s) so every change is visible to a modified-window reader."""
        self.book_version += 1
        trade.modified = max(at.replace(microsecond=0), trade.modified + timedelta(seconds=1))
        trade.data["modified"] = clock.format_wire(trade.modified)
        trade.visible_at = visible_at

    def modify_trade(
        self,
        tid: int | str,
        at: datetime,
        visible_at: datetime,
        seller_memo: str | None = None,
        status: str | None = None,
        receiver_city: str | None = None,
    ) -> Trade:
        trade = self.trade(tid)
        if seller_memo is not None:
            if seller_memo:
                trade.data["seller_memo"] = seller_memo
            else:
                trade.data.pop("seller_memo", None)
        if status is not None:
            if not isinstance(status, str) or not status:
                raise WorldError("status must be a non-empty string")
            trade.data["status"] = status
            # Lines follow the trade, except for the trade-only aggregate SELLER_CONSIGNED_PART.
            if status != "SELLER_CONSIGNED_PART":
                for line in trade.lines:
                    line["status"] = status
        if receiver_city is not None:
            trade.data["receiver_city"] = receiver_city
            # A new consignee address yields a new oaid on TOP; derive it so the world stays deterministic.
            digest = hashlib.sha256(f"{trade.data['oaid']}|{receiver_city}".encode()).hexdigest()
            trade.data["oaid"] = digest[:56]
        self.touch(trade, at, visible_at)
        if status in FINAL_STATUSES:
            trade.data["end_time"] = trade.data["modified"]
        if seller_memo is not None:
            self.publish_trade(trade, "taobao_trade_TradeMemoModified")
        if receiver_city is not None:
            self.publish_trade(trade, "taobao_trade_TradeLogisticsAddressChanged")
        if status is not None:
            topic = {"TRADE_FINISHED": "taobao_trade_TradeSuccess", "TRADE_CLOSED": "taobao_trade_TradeClose",
                     "TRADE_CLOSED_BY_TAOBAO": "taobao_trade_TradeClose"}.get(status, "taobao_trade_TradeChanged")
            self.publish_trade(trade, topic)
            if status == "TRADE_FINISHED":
                self._auto_rates(trade, at)
        return trade

    def flag_trade(self, trade: Trade, at: datetime, visible_at: datetime) -> None:
        """A seller flags a trade (seller_flag 1 -> 2 ...): a change that moves ``modified`` and nothing else."""
        trade.data["seller_flag"] = (int(trade.data.get("seller_flag", 0)) % 5) + 1
        self.touch(trade, at, visible_at)
        self.publish_trade(trade, "taobao_trade_TradeMemoModified")

    def pay_final(self, tid: int | str, at: datetime, visible_at: datetime) -> Trade:
        """A presale (step) trade's balance is paid: FRONT_PAID_FINAL_NOPAID -> FRONT_PAID_FINAL_PAID, ready to ship."""
        trade = self.trade(tid)
        if trade.data.get("step_trade_status") != "FRONT_PAID_FINAL_NOPAID":
            raise WorldError(f"trade {trade.tid} is not a presale trade waiting for its final payment")
        self.touch(trade, at, visible_at)
        trade.data["step_trade_status"] = "FRONT_PAID_FINAL_PAID"
        trade.data["step_paid_fee"] = trade.data["payment"]
        trade.data["status"] = "WAIT_SELLER_SEND_GOODS"
        trade.data["pay_time"] = trade.data["modified"]
        for line in trade.lines:
            line["status"] = "WAIT_SELLER_SEND_GOODS"
        self.publish_trade(trade, "taobao_trade_TradeBuyerPay")
        return trade

    def consign(
        self,
        trade: Trade,
        out_sid: str,
        company_code: str,
        sub_oids: list[int] | None,
        at: datetime,
        visible_at: datetime,
    ) -> None:
        """Apply taobao.logistics.offline.send: mark lines shipped with the waybill, move the trade status on.

        Raises :class:`ConsignRejected` (and counts a rejected write-back) when TOP would refuse.
        """
        writeback = self.writebacks.setdefault(trade.tid, Writeback())
        try:
            targets = self._consign_targets(trade, sub_oids)
        except ConsignRejected:
            writeback.rejected += 1
            raise

        self.touch(trade, at, visible_at)
        stamp = trade.data["modified"]
        for line in targets:
            line["status"] = "WAIT_BUYER_CONFIRM_GOODS"
            line["consign_time"] = stamp
            line["logistics_company"] = TOP_CARRIERS[company_code]
            line["invoice_no"] = out_sid
        # Lines closed by a refund need no parcel: the rest being shipped ships the trade.
        all_shipped = all(line["status"] in ("WAIT_BUYER_CONFIRM_GOODS", "TRADE_CLOSED") for line in trade.lines)
        trade.data["status"] = "WAIT_BUYER_CONFIRM_GOODS" if all_shipped else "SELLER_CONSIGNED_PART"
        trade.data["is_part_consign"] = not all_shipped
        trade.data["consign_time"] = stamp
        writeback.accepted += 1
        writeback.out_sid = out_sid
        writeback.company_code = company_code
        if all_shipped:
            self.publish_trade(trade, "taobao_trade_TradeSellerShip")
        else:
            for line in targets:
                self.publish_trade(trade, "taobao_trade_TradePartlySellerShip", oid=line["oid"])

    @staticmethod
    def _consign_targets(trade: Trade, sub_oids: list[int] | None) -> list[dict]:
        status = trade.data["status"]
        if status in CONSIGNED_STATUSES:
            raise ConsignRejected(
                "already_consigned", f"订单已发货，不能重复发货 (trade {trade.tid} is already consigned: {status})"
            )
        if status not in ("WAIT_SELLER_SEND_GOODS", "SELLER_CONSIGNED_PART"):
            raise ConsignRejected("bad_status", f"当前订单状态不允许发货 (trade {trade.tid} is {status})")
        if not sub_oids:
            targets = [line for line in trade.lines if line["status"] == "WAIT_SELLER_SEND_GOODS"]
        else:
            by_oid = {line["oid"]: line for line in trade.lines}
            unknown = [oid for oid in sub_oids if oid not in by_oid]
            if unknown:
                raise ConsignRejected("bad_sub_tid", f"子订单不属于该交易: {','.join(map(str, unknown))}")
            targets = [by_oid[oid] for oid in sub_oids]
            if any(line["status"] != "WAIT_SELLER_SEND_GOODS" for line in targets):
                raise ConsignRejected("already_consigned",
                                      "子订单已发货，不能重复发货 (a sub order is already consigned)")
        if not targets:
            raise ConsignRejected("already_consigned",
                                  f"订单已发货，不能重复发货 (trade {trade.tid} is already consigned)")
        return targets

    def reject_writeback(self, trade: Trade) -> None:
        """Count a refused write-back that failed parameter checks before reaching :meth:`consign`."""
        self.writebacks.setdefault(trade.tid, Writeback()).rejected += 1

    # ----------------------------------------------------------------------------------------------- OAuth

    def _register_token(self, token: TmallToken) -> None:
        self.tokens[token.access_token] = token
        shop = self.shops[token.shop]
        shop.session, shop.refresh_token, shop.expires_at = token.access_token, token.refresh_token, token.expires_at

    def token_for_refresh(self, refresh_token: str) -> TmallToken | None:
        for token in self.tokens.values():
            if token.refresh_token == refresh_token:
                return token
        return None

    def issue_auth_code(self, shop_slug: str, now: datetime) -> str:
        """What the seller's browser brings back from the OAuth consent page: a single-use, 10-minute code."""
        if shop_slug not in self.shops:
            raise WorldError(f"unknown Tmall shop {shop_slug!r}; known: {', '.join(self.shops)}")
        code = "".join(self.token_rng.choices(_ALNUM, k=32))
        self.auth_codes[code] = (shop_slug, now + AUTH_CODE_TTL)
        return code

    def redeem_auth_code(self, code: str, now: datetime) -> str | None:
        """The shop slug of a valid code (consumed), or None."""
        entry = self.auth_codes.pop(code, None)
        if entry is None or entry[1] <= now:
            return None
        return entry[0]

    def issue_token(self, shop_slug: str, now: datetime, ttl: timedelta) -> TmallToken:
        """A new grant for the shop; earlier access tokens stay valid until their own expiry."""
        token = TmallToken(
            shop=shop_slug,
            access_token=f"6100{self.token_rng.getrandbits(160):040x}",
            refresh_token=f"6101{self.token_rng.getrandbits(160):040x}",
            expires_at=now + ttl,
            refresh_expires_at=now + ttl + REFRESH_GRACE,
        )
        self._register_token(token)
        return token

    def expire_shop_tokens(self, shop_slug: str, at: datetime) -> None:
        """Every access token of the shop expires at ``at`` (refresh tokens stay usable)."""
        if shop_slug not in self.shops:
            raise WorldError(f"unknown Tmall shop {shop_slug!r}; known: {', '.join(self.shops)}")
        for token in self.tokens.values():
            if token.shop == shop_slug:
                token.expires_at = min(token.expires_at, at)
        self.shops[shop_slug].expires_at = min(self.shops[shop_slug].expires_at, at)

    # ----------------------------------------------------------------------------------------------- refunds

    def create_refunds(self, tid: int | str, at: datetime, visible_at: datetime, oid: int | str | None = None,
                       phase: str | None = None, amount: str | None = None, status: str | None = None,
                       reason: str | None = None) -> list[Refund]:
        """A buyer asks for money back on one line (``oid``) or on every line of the trade (one refund per line).

        Before shipping it is a refund only; after shipping the buyer returns the goods (``has_good_return``).
        ``phase`` defaults to ``aftersale`` on a finished trade and ``onsale`` otherwise (售中/售后). ``amount``
        (yuan, only with one line) defaults to the line's ``divide_order_fee``. ``status`` jumps straight to a
        later state, applying its effects.
        """
        trade = self.trade(tid)
        if oid is not None:
            try:
                wanted = int(oid)
            except (TypeError, ValueError):
                raise WorldError(f"oid must be an integer, got {oid!r}") from None
            lines = [line for line in trade.lines if line["oid"] == wanted]
            if not lines:
                raise WorldError(f"trade {trade.tid} has no line {wanted}", 404)
        else:
            lines = [line for line in trade.lines if line["status"] != "TRADE_CLOSED"]
        if phase is not None and phase not in ("onsale", "aftersale"):
            raise WorldError("phase must be onsale or aftersale")
        if status is not None and status not in REFUND_STATUSES:
            raise WorldError(f"status must be one of {', '.join(REFUND_STATUSES)}")
        if not lines:
            raise WorldError(f"trade {trade.tid} has no open line to refund")
        if amount is not None and len(lines) != 1:
            raise WorldError("amount needs a single line: give oid as well")
        if status in ("WAIT_BUYER_RETURN_GOODS", "WAIT_SELLER_CONFIRM_GOODS") and any(
                line["status"] not in CONSIGNED_STATUSES for line in lines):
            raise WorldError(f"status {status} needs shipped lines: nothing to return before shipping")
        for line in lines:
            if line.get("refund_status") in REFUND_OPEN:
                raise WorldError(f"line {line['oid']} already has an open refund {line.get('refund_id')}")
            if line["status"] in ("TRADE_CLOSED", "TRADE_CLOSED_BY_TAOBAO", "WAIT_BUYER_PAY", "TRADE_NO_CREATE_PAY"):
                raise WorldError(f"line {line['oid']} is {line['status']}: nothing was paid to refund")
        fees = []
        for line in lines:  # validate everything before changing anything
            full = Decimal(line["divide_order_fee"])
            fee = full
            if amount is not None:
                try:
                    fee = Decimal(str(amount)).quantize(CENT)
                except ArithmeticError:
                    raise WorldError(f"amount must be yuan like '12.50', got {amount!r}") from None
                if not ZERO < fee <= full:
                    raise WorldError(f"amount must be > 0 and <= the line's divide_order_fee {money(full)}")
            fees.append((full, fee))
        refunds = []
        self.touch(trade, at, visible_at)
        for line, (full, fee) in zip(lines, fees):
            shipped = line["status"] in CONSIGNED_STATUSES
            refund = Refund(
                refund_id=str(self.next_refund_id),
                shop=trade.shop,
                tid=trade.tid,
                oid=line["oid"],
                status="WAIT_SELLER_AGREE",
                phase=phase or ("aftersale" if trade.status == "TRADE_FINISHED" else "onsale"),
                refund_fee=fee,
                total_fee=full,
                has_good_return=shipped,
                good_status="BUYER_RECEIVED" if shipped else "BUYER_NOT_RECEIVED",
                reason=reason or random.Random(f"{self.seed}:refund:{self.next_refund_id}").choice(_REFUND_REASONS),
                created=trade.modified,
                modified=trade.modified,
                version=_version(trade.modified, 0),
                visible_at=visible_at,
            )
            self.next_refund_id += 1
            self.refunds[refund.refund_id] = refund
            line["refund_id"] = refund.refund_id
            line["refund_status"] = refund.status
            self.publish_refund(refund, REFUND_TOPICS["WAIT_SELLER_AGREE"])
            refunds.append(refund)
        for refund in refunds:
            if status is not None and status != "WAIT_SELLER_AGREE":
                self._refund_to(refund, status, trade.modified, visible_at)
        return refunds

    def refund(self, refund_id: str) -> Refund:
        refund = self.refunds.get(str(refund_id))
        if refund is None:
            raise WorldError(f"no Tmall refund {refund_id}", 404)
        return refund

    def advance_refund(self, refund_id: str, status: str, at: datetime, visible_at: datetime,
                       sid: str | None = None, company_code: str | None = None) -> Refund:
        """Move a refund along its state machine (REFUND_MOVES), as the buyer, the seller or the platform would."""
        refund = self.refund(refund_id)
        if status not in REFUND_STATUSES:
            raise WorldError(f"status must be one of {', '.join(REFUND_STATUSES)}")
        if status not in REFUND_MOVES[refund.status]:
            raise WorldError(f"refund {refund.refund_id} cannot go from {refund.status} to {status}")
        if status == "WAIT_BUYER_RETURN_GOODS" and not refund.has_good_return:
            raise WorldError(f"refund {refund.refund_id} is a refund without return (nothing was shipped)")
        if company_code is not None and company_code not in TOP_CARRIERS:
            raise WorldError(f"unknown company_code {company_code!r}")
        if status == "WAIT_SELLER_CONFIRM_GOODS":
            refund.sid = sid
            refund.company_name = TOP_CARRIERS[company_code] if company_code else None
        self._refund_to(refund, status, at, visible_at)
        return refund

    def _refund_to(self, refund: Refund, status: str, at: datetime, visible_at: datetime) -> None:
        trade = self.trades[refund.tid]
        self.touch(trade, at, visible_at)
        refund.status = status
        refund.modified = trade.modified
        # refund_version only grows: a consumer keeps the highest one it saw (spec §1.7, "use for idempotency").
        refund.version = _version(refund.modified, refund.version)
        refund.visible_at = visible_at
        if status == "WAIT_SELLER_CONFIRM_GOODS":
            # The buyer sent the goods back: a return waybill (deterministic per refund unless given).
            refund.good_status = "BUYER_RETURNED_GOODS"
            if not refund.sid:
                refund.sid = f"RT{random.Random(f'{self.seed}:return:{refund.refund_id}').randrange(10**11, 10**12)}"
            refund.company_name = refund.company_name or TOP_CARRIERS["YTO"]
        line = next(line for line in trade.lines if line["oid"] == refund.oid)
        line["refund_status"] = status
        self.publish_refund(refund, REFUND_TOPICS[status])
        if status != "SUCCESS":
            return
        if refund.refund_fee < refund.total_fee:
            self.publish_trade(trade, "taobao_trade_TradePartlyRefund", oid=refund.oid)
            return
        # A line refunded in full is closed; when every line is closed the trade is TRADE_CLOSED (spec §1.8).
        line["status"] = "TRADE_CLOSED"
        line["end_time"] = trade.data["modified"]
        if all(other["status"] == "TRADE_CLOSED" for other in trade.lines):
            trade.data["status"] = "TRADE_CLOSED"
            trade.data["end_time"] = trade.data["modified"]
            self.publish_trade(trade, "taobao_trade_TradeClose")
            return
        if trade.status in ("WAIT_SELLER_SEND_GOODS", "SELLER_CONSIGNED_PART") and all(
                other["status"] in ("TRADE_CLOSED", *CONSIGNED_STATUSES) for other in trade.lines):
            # The unshipped rest was refunded: what is left has all been shipped.
            trade.data["status"] = "WAIT_BUYER_CONFIRM_GOODS"
            trade.data["is_part_consign"] = False
        self.publish_trade(trade, "taobao_trade_TradeCloseAndModifyDetailOrder", oid=refund.oid)

    # ----------------------------------------------------------------------------------------------- reviews

    def _auto_rates(self, trade: Trade, at: datetime) -> None:
        """Reviews on a finished trade, drawn from a stream of its own so they never shift other data.

        They are dated ``at`` (the time of the change), not the trade's ``modified``, which may run a second ahead.
        """
        at = at.replace(microsecond=0)
        if any(rate.tid == trade.tid for rate in self.rates):
            return
        rng = random.Random(f"{self.seed}:rate:{trade.tid}")
        for line in trade.lines:
            result = rng.choices(RATE_RESULTS, (85, 10, 5))[0]
            self._add_rate(trade, line, "buyer", result, rng.choice(_RATE_TEXTS[result]), at)
            self._add_rate(trade, line, "seller", "good", "欢迎再次光临", at)

    def rate_trade(self, tid: int | str, at: datetime, result: str = "bad", content: str | None = None,
                   oid: int | str | None = None) -> list[TradeRate]:
        """A buyer reviews a trade (every line, or one ``oid``); the admin uses it to plant a bad review."""
        trade = self.trade(tid)
        if result not in RATE_RESULTS:
            raise WorldError(f"result must be one of {', '.join(RATE_RESULTS)}")
        lines = trade.lines if oid is None else [line for line in trade.lines if str(line["oid"]) == str(oid)]
        if not lines:
            raise WorldError(f"trade {trade.tid} has no line {oid}", 404)
        rates = [self._add_rate(trade, line, "buyer", result, content or _RATE_TEXTS[result][0],
                                at.replace(microsecond=0)) for line in lines]
        self.publish_trade(trade, "taobao_trade_TradeRated")
        return rates

    def _add_rate(self, trade: Trade, line: dict, role: str, result: str, content: str, at: datetime) -> TradeRate:
        buyer, seller = trade.buyer.masked_nick, trade.data["seller_nick"]
        rate = TradeRate(tid=trade.tid, oid=line["oid"], shop=trade.shop, num_iid=line["num_iid"], role=role,
                         nick=buyer if role == "buyer" else seller, rated_nick=seller if role == "buyer" else buyer,
                         result=result, created=at, item_title=line["title"], item_price=line["price"],
                         content=content)
        self.rates.append(rate)
        line["buyer_rate" if role == "buyer" else "seller_rate"] = True
        return rate

    # ----------------------------------------------------------------------------------------------- stock

    def sku_by_id(self, num_iid: int, sku_id: str) -> Sku | None:
        for sku in self.catalogue:
            if sku.num_iid == num_iid and sku.sku_id == sku_id:
                return sku
        return None

    def item_skus(self, num_iid: int) -> list[Sku]:
        return [sku for sku in self.catalogue if sku.num_iid == num_iid]

    def stock_levels(self) -> dict:
        """``{shop: {outer_sku_id: quantity}}`` for every catalogue SKU."""
        levels: dict = {slug: {} for slug in self.shops}
        for (slug, num_iid, sku_id), qty in self.stock.items():
            sku = self.sku_by_id(num_iid, sku_id)
            if sku is not None:
                levels[slug][sku.outer_sku_id] = qty
        return levels

    def set_quantity(self, shop_slug: str, sku: Sku, qty: int, mode: str, at: datetime, clamp: bool) -> int | None:
        """Apply a stock push (``full`` overwrite or ``delta``) and record it; returns the new quantity.

        A delta that would go below zero is clamped to 0 (``clamp``, skus.quantity.update) or refused with None
        (item.quantity.update), following spec §1.7.
        """
        key = (shop_slug, sku.num_iid, sku.sku_id)
        current = self.stock.get(key, 0)
        result: int | None = qty if mode == "full" else current + qty
        if result is not None and result < 0:
            result = 0 if clamp else None
        told = self.stock_told.setdefault((shop_slug, sku.outer_sku_id), [])
        told.append(StockTold(qty, mode, at, result))
        if result is not None:
            self.stock[key] = result
        return result

    # ----------------------------------------------------------------------------------------------- truth

    def channels_truth(self) -> dict:
        shops: dict = {slug: {"orders": {}} for slug in self.shops}
        for trade in sorted(self.trades.values(), key=lambda t: t.tid):
            shops[trade.shop]["orders"][str(trade.tid)] = {
                "status": trade.status,
                "modified": clock.format_wire(trade.modified),
                "malformed": trade.malformed is not None,
                "malformed_kind": trade.malformed,
            }
        return {"tmall": shops}

    def writebacks_truth(self) -> dict:
        return {"tmall": {str(tid): wb.as_json() for tid, wb in sorted(self.writebacks.items())}}

    def refunds_truth(self) -> dict:
        shops: dict = {slug: {} for slug in self.shops}
        for refund in self.refunds.values():
            shops[refund.shop][refund.refund_id] = {
                "tid": str(refund.tid), "oid": str(refund.oid), "status": refund.status,
                "refund_fee": money(refund.refund_fee), "refund_version": refund.version,
                "modified": clock.format_wire(refund.modified), "phase": refund.phase,
            }
        return shops

    def rates_truth(self) -> dict:
        shops: dict = {slug: [] for slug in self.shops}
        for rate in self.rates:
            shops[rate.shop].append({"tid": str(rate.tid), "oid": str(rate.oid), "role": rate.role,
                                     "result": rate.result})
        return shops

    def stock_truth(self) -> dict:
        told: dict = {slug: {} for slug in self.shops}
        for (slug, outer_sku_id), pushes in self.stock_told.items():
            told[slug][outer_sku_id] = [push.as_json() for push in pushes]
        return told


def _version(moment: datetime, previous: int) -> int:
    """refund_version: epoch milliseconds of the change, strictly above the previous version."""
    return max(int(moment.timestamp() * 1000), previous + 1)


def _apply_kind(kind: str, data: dict, lines: list[dict], at: datetime) -> None:
    """Reshape a freshly built paid trade into its lifecycle ``kind`` (spec §1.8 statuses)."""
    stamp = data["created"]
    if kind == "presale":
        # 预售: the deposit is paid, the balance is not; shipping must wait for FRONT_PAID_FINAL_PAID. The trade
        # status while the balance is open is WAIT_BUYER_PAY (UNCONFIRMED: ERPs also report WAIT_SELLER_SEND_GOODS).
        deposit = (Decimal(data["payment"]) * Decimal("0.2")).quantize(CENT, ROUND_HALF_UP)
        data.update(type="step", status="WAIT_BUYER_PAY", step_trade_status="FRONT_PAID_FINAL_NOPAID",
                    step_paid_fee=money(deposit))
        del data["pay_time"]
        line_status = "WAIT_BUYER_PAY"
    elif kind == "cod":
        # 货到付款: nothing paid online; ships like a paid trade, the courier collects, then TRADE_BUYER_SIGNED.
        data.update(type="cod", cod_fee="0.00", cod_status="NEW_CREATED")
        del data["pay_time"]
        line_status = "WAIT_SELLER_SEND_GOODS"
    elif kind == "forbid_consign":
        # Paid but the platform blocks shipping (e.g. a group buy still forming): never ship it yet.
        data["status"] = line_status = "PAID_FORBID_CONSIGN"
    elif kind == "closed":
        # Never paid and closed by the platform: must never be shipped.
        data.update(status="TRADE_CLOSED_BY_TAOBAO", end_time=stamp)
        del data["pay_time"]
        line_status = "TRADE_CLOSED_BY_TAOBAO"
    else:
        return
    for line in lines:
        line["status"] = line_status


def _allocate(amount: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Split ``amount`` over lines proportionally to ``weights`` in cents; the last line takes the rounding rest."""
    total = sum(weights, ZERO)
    if amount == 0 or total == 0:
        return [ZERO for _ in weights]
    shares = [(amount * w / total).quantize(CENT, ROUND_HALF_UP) for w in weights[:-1]]
    shares.append(amount - sum(shares, ZERO))
    return shares


def _build_catalogue() -> tuple[Sku, ...]:
    skus = []
    for spu_no, (title, price, cid, variants) in enumerate(_SPUS, start=1):
        for colour_code, colour_name, size in variants:
            skus.append(
                Sku(
                    outer_sku_id=f"SKU-{spu_no:03d}-{colour_code}-{size}",
                    outer_iid=f"SPU-{spu_no:03d}",
                    num_iid=600000000000 + spu_no,
                    sku_id=str(5000000000 + len(skus) + 1),
                    title=title,
                    sku_properties_name=f"颜色:{colour_name};尺码:{'均码' if size == 'F' else size}",
                    price=Decimal(price),
                    cid=cid,
                )
            )
    return tuple(skus)


def _build_buyers(rng: random.Random, count: int) -> tuple[Buyer, ...]:
    buyers = []
    for _ in range(count):
        state, city, district, zip_code, street = rng.choice(_REGIONS)
        buyers.append(
            Buyer(
                nick="tb" + "".join(rng.choices(string.digits, k=9)),
                open_uid="AAF" + _token(rng, 21),
                name=rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.randint(1, 2))),
                phone="1" + rng.choice(("38", "39", "58", "86", "77", "35")) + "".join(rng.choices(string.digits, k=8)),
                state=state,
                city=city,
                district=district,
                zip=zip_code,
                street=street,
                address=f"{street}{rng.randint(1, 999)}号{rng.randint(1, 30)}幢{rng.randint(101, 2505)}室",
                oaid=_token(rng, 56),
            )
        )
    return tuple(buyers)
