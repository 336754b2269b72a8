"""The sandbox's deterministic world: credentials, shops, catalogue, buyers, Tmall trades and the record of truth.

Everything here derives from one integer seed through private ``random.Random`` instances (never the global RNG),
so two worlds built with the same seed and driven by the same sequence of admin calls hold identical data; only
timestamps taken from the wall clock (when a caller omits ``at``) differ. The gateways in ``top.py`` and ``qimen.py``
are views over this state; they never invent data themselves.

Money is ``Decimal`` throughout and rendered as TOP does (spec §1.7): strings in yuan with two decimals.
Buyer personal data (plain name, phone, address) lives only in :class:`Buyer`; the wire sees the masked forms.

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

CENT = Decimal("0.01")
ZERO = Decimal("0.00")

# Trade and line ids share one counter per world. They start above 2**53 on purpose: TOP ids are int64 and a client
# that parses JSON numbers into doubles silently corrupts them (spec §1.7), which is exactly what the sandbox must
# expose. 3817000000000000001 is the value used in the spec's examples.
FIRST_TRADE_ID = 3817000000000000001

MALFORMED_KINDS = ("unknown_status", "bad_amount", "missing_tid")
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
    slug: str
    seller_nick: str
    session: str
    refresh_token: str
    expires_at: datetime


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
        for slug, nick in (("tm-flagship", "橙舍官方旗舰店"), ("tm-outlet", "橙舍奥莱店")):
            shops[slug] = TmallShop(
                slug=slug,
                seller_nick=nick,
                # TOP session keys are opaque; real ones start with 6100/6101/6102, which some tools sniff.
                session=f"6100{creds_rng.getrandbits(160):040x}",
                refresh_token=f"6101{creds_rng.getrandbits(160):040x}",
                expires_at=expires_at,
            )
        wms = QimenWms(
            app_key=str(creds_rng.randint(10_000_000, 99_999_999)),
            app_secret=f"{creds_rng.getrandbits(128):032x}",
            customer_id="C001",
            warehouses=("WH01", "WH02"),
        )
        return cls(
            seed=seed,
            tmall_app=tmall_app,
            shops=shops,
            wms=wms,
            catalogue=_build_catalogue(),
            buyers=_build_buyers(buyers_rng, 24),
            orders_rng=orders_rng,
        )

    # ----------------------------------------------------------------------------------------------- lookups

    def shop_for_session(self, session: str) -> TmallShop | None:
        for shop in self.shops.values():
            if shop.session == session:
                return shop
        return None

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
        lines: list[dict] | None = None,
    ) -> list[Trade]:
        """Create ``count`` paid trades in ``shop_slug`` with created = pay_time = modified = ``at``.

        ``lines`` (``[{"sku": "SKU-001-RED-M", "num": 2}, ...]``) fixes what every trade buys instead of a random
        pick; a merchant code the catalogue does not know becomes an ad-hoc listing (price 99.00), which is how a
        shop's new or mistyped outer_sku_id reaches an order hub.
        """
        if shop_slug not in self.shops:
            raise WorldError(f"unknown Tmall shop {shop_slug!r}; known: {', '.join(self.shops)}")
        if malformed is not None and malformed not in MALFORMED_KINDS:
            raise WorldError(f"unknown malformed kind {malformed!r}; known: {', '.join(MALFORMED_KINDS)}")
        chosen = [(self._listing(str(line["sku"])), int(line.get("num", 1))) for line in lines] if lines else None
        return [self._new_trade(self.shops[shop_slug], at, malformed, visible_at, chosen) for _ in range(count)]

    def _listing(self, outer_sku_id: str) -> Sku:
        known = self.sku(outer_sku_id)
        if known is not None:
            return known
        digits = int(hashlib.sha256(outer_sku_id.encode()).hexdigest()[:8], 16)
        return Sku(outer_sku_id=outer_sku_id, outer_iid=outer_sku_id.rsplit("-", 1)[0], num_iid=690000000000 + digits
                   % 10**8, sku_id=str(5900000000 + digits % 10**8), title=f"未收录商品 {outer_sku_id}",
                   sku_properties_name="", price=Decimal("99.00"), cid=0)

    def _new_trade(self, shop: TmallShop, at: datetime, malformed: str | None, visible_at: datetime,
                   chosen: list[tuple[Sku, int]] | None = None) -> Trade:
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
        )
        self.trades[tid] = trade
        return trade

    @staticmethod
    def touch(trade: Trade, at: datetime, visible_at: datetime) -> None:
        """Advance ``modified`` to max(at, previous + 1 s) so every change is visible to a modified-window reader."""
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
        all_shipped = all(line["status"] == "WAIT_BUYER_CONFIRM_GOODS" for line in trade.lines)
        trade.data["status"] = "WAIT_BUYER_CONFIRM_GOODS" if all_shipped else "SELLER_CONSIGNED_PART"
        trade.data["is_part_consign"] = not all_shipped
        trade.data["consign_time"] = stamp
        writeback.accepted += 1
        writeback.out_sid = out_sid
        writeback.company_code = company_code

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
                raise ConsignRejected("already_consigned", "子订单已发货，不能重复发货 (a sub order is already consigned)")
        if not targets:
            raise ConsignRejected("already_consigned", f"订单已发货，不能重复发货 (trade {trade.tid} is already consigned)")
        return targets

    def reject_writeback(self, trade: Trade) -> None:
        """Count a refused write-back that failed parameter checks before reaching :meth:`consign`."""
        self.writebacks.setdefault(trade.tid, Writeback()).rejected += 1

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
