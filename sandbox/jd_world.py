"""The JD JOS simulator's deterministic world: app and shop credentials, orders, after-sales, reviews, stock.

Everything derives from the sandbox seed through private ``random.Random`` streams (``"<seed>:jd:<concern>"``), never
the global RNG, so a seed plus the same sequence of admin calls always gives the same orders. Only timestamps taken
from the wall clock (when a caller omits ``at``) differ.

Wire shapes follow specs/platform-apis.md §2.5-2.6: every orderInfo scalar is a **string** (ids, money in yuan with
two decimals, quantities), nested ``consigneeInfo`` / ``itemInfoList`` / ``couponDetailList``. Buyer data is masked
as JOS serves it to most apps (§2.5: plain PII needs JD's TDE decryption, which the sandbox does not offer); the plain
values stay in :class:`sandbox.world.Buyer`.

Not thread-safe on its own: :class:`sandbox.jd.JdSystem` holds ``app.lock`` around every use.
"""

from __future__ import annotations

import copy
import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from sandbox import clock
from sandbox.world import CENT, ZERO, Buyer, Sku, WorldError, money

SHOPS = (
    # slug, venderId, shop name
    ("jd-flagship", "10001", "橙舍京东旗舰店"),
    ("jd-outlet", "10002", "橙舍京东奥莱店"),
)
# Order ids are plain 12-digit numbers like the spec's example (280000000001); the wire sends them as strings.
FIRST_ORDER_ID = 280000000001
FIRST_SERVICE_ID = 1500000001
FIRST_COMMENT_ID = 18800000001
# Fixed far-future token expiry, so two same-seed worlds hand out identical credentials.
TOKEN_EXPIRY = "2099-12-31 23:59:59"
# Lifetime the sandbox reports for a refreshed token (the real lifetime is UNCONFIRMED, spec §2.3).
REFRESHED_TOKEN_LIFETIME = timedelta(days=365)

# §2.5 order states. Search requires these English names, not numbers.
ORDER_STATES = (
    "WAIT_SELLER_STOCK_OUT",
    "WAIT_GOODS_RECEIVE_CONFIRM",
    "WAIT_SELLER_DELIVERY",
    "PAUSE",
    "FINISHED_L",
    "TRADE_CANCELED",
    "LOCKED",
    "POP_ORDER_PAUSE",
    "SEND_TO_DISTRIBUTION_CENER",
    "DISTRIBUTION_CENTER_RECEIVED",
    "RECEIPTS_CONFIRM",
)
STATE_REMARKS = {
    "WAIT_SELLER_STOCK_OUT": "等待出库",
    "WAIT_GOODS_RECEIVE_CONFIRM": "等待确认收货",
    "WAIT_SELLER_DELIVERY": "等待发货",
    "PAUSE": "暂停",
    "FINISHED_L": "完成",
    "TRADE_CANCELED": "取消",
    "LOCKED": "已锁定",
    "POP_ORDER_PAUSE": "POP暂停",
}
SHIPPABLE_STATES = ("WAIT_SELLER_STOCK_OUT", "WAIT_SELLER_DELIVERY")
ON_HOLD_STATES = ("LOCKED", "PAUSE", "POP_ORDER_PAUSE")
SHIPPED_STATES = ("WAIT_GOODS_RECEIVE_CONFIRM", "FINISHED_L")
FINAL_STATES = ("FINISHED_L", "TRADE_CANCELED")

# §2.6: JD carrier ids (logiCoprId) from a production mapping table; canonical (Qimen) code -> JD id.
CARRIERS = {
    "467": ("SF", "顺丰速运"),
    "463": ("YTO", "圆通速递"),
    "1499": ("ZTO", "中通快递"),
    "470": ("STO", "申通快递"),
    "1327": ("YUNDA", "韵达快递"),
    "465": ("EMS", "EMS"),
    "336878": ("JD", "京东快递"),
}

# §2.6 after-sales (afs) service statuses.
AFS_STATUSES = {
    10001: "待审核",
    10002: "待客户反馈",
    10004: "审核不通过",
    10005: "待收货",
    10007: "待处理",
    10009: "待用户确认",
    10010: "完成",
    10011: "取消",
}
AFS_CLOSED = (10004, 10010, 10011)
# customerExpect: 10 = return (退货) is JD's code; 50 "仅退款 / 取消订单" for a refund before shipping is a sandbox
# choice (UNCONFIRMED).
EXPECT_RETURN = (10, "退货")
EXPECT_REFUND_ONLY = (50, "仅退款")

MALFORMED_KINDS = ("unknown_status", "bad_amount", "missing_order_id", "no_items")
UNKNOWN_STATE = "ORDER_STATE_FROM_THE_FUTURE"
BAD_AMOUNT = "12.3.4"

# JD province ids (a subset of JD's address tree); city/county ids below are sandbox inventions.
PROVINCE_IDS = {"北京": "1", "上海": "2", "江苏": "12", "山东": "13", "浙江": "15", "福建": "16", "湖北": "17",
                "广东": "19", "四川": "22"}
# Seller-funded coupon types as JD spells them ("<code>-<name>").
ITEM_PROMOTION = "30-单品促销优惠"
SHOP_COUPON = "100-店铺优惠"
_ORDER_REMARKS = ("请尽快发货", "周末送货", "不要放快递柜", "发票随货寄出")
_COMMENTS = {
    5: ("质量很好，物流也快", "和描述一致，很满意", "第二次购买了，推荐"),
    4: ("整体不错，包装一般", "还可以，尺码偏大一点"),
    3: ("一般般吧", "颜色和图片有色差"),
    2: ("做工粗糙", "物流太慢了"),
    1: ("质量很差，已申请退货", "收到就是坏的"),
}


@dataclass(frozen=True)
class JdListing:
    """A JD SKU: JD's own ids (skuId, wareId) plus the merchant code (outerSkuId) and price."""

    sku_id: str
    ware_id: str
    outer_sku_id: str
    name: str
    price: Decimal


@dataclass
class JdShop:
    slug: str
    number: int
    vender_id: str
    name: str
    access_token: str
    refresh_token: str
    expires_at: datetime
    # Generation of the current access_token: 0 = handed out at start, n = issued by the n-th refresh. A refresh
    # replaces the token, so an older one is simply unknown (answers 19).
    token_generation: int = 0
    # Generations up to this one answer 19 (set from the jd.expire_tokens knob by JdSystem); -1 = none.
    expired_upto: int = -1


@dataclass(frozen=True)
class JdApp:
    app_key: str
    app_secret: str


@dataclass
class JdOrder:
    """One JD POP order. ``data`` is the wire orderInfo (all fields); ``order_id`` stays addressable even when a
    ``missing_order_id`` order hides it on the wire."""

    shop: str
    order_id: str
    created: datetime
    modified: datetime
    data: dict
    buyer: Buyer
    malformed: str | None
    visible_at: datetime
    pre_lock_state: str | None = None

    @property
    def state(self) -> str:
        return self.data["orderState"]

    @property
    def search_state(self) -> str:
        """The state the search index files the order under: an ``unknown_status`` order is stored as paid but
        serialised with a state name the connector has never seen (order_state is a required search filter, so
        the order must still match one)."""
        return "WAIT_SELLER_STOCK_OUT" if self.malformed == "unknown_status" and self.state == UNKNOWN_STATE \
            else self.state


@dataclass
class AfsService:
    service_id: int
    shop: str
    order_id: str
    listing: JdListing
    num: int
    status: int
    expect: tuple[int, str]
    apply_time: datetime
    updated: datetime
    refund_amount: Decimal
    buyer: Buyer

    def as_wire(self) -> dict:
        return {
            "afsServiceId": self.service_id,
            "afsApplyId": self.service_id + 700000000,
            "orderId": self.order_id,
            "wareId": self.listing.ware_id,
            "skuId": self.listing.sku_id,
            "wareName": self.listing.name,
            "wareNum": self.num,
            "afsServiceStatus": self.status,
            "afsServiceStatusName": AFS_STATUSES[self.status],
            "customerExpect": self.expect[0],
            "customerExpectName": self.expect[1],
            "afsApplyTime": clock.format_wire(self.apply_time),
            "updateTime": clock.format_wire(self.updated),
            "refundAmount": money(self.refund_amount),
            "customerPin": masked_pin(self.buyer),
        }


@dataclass
class Comment:
    comment_id: str
    shop: str
    order_id: str
    listing: JdListing
    score: int
    content: str
    created: datetime
    buyer: Buyer
    replies: list[dict] = field(default_factory=list)

    def as_wire(self) -> dict:
        return {
            "commentId": self.comment_id,
            "skuid": self.listing.sku_id,
            "orderId": self.order_id,
            "content": self.content,
            "creationTime": clock.format_wire(self.created),
            "score": self.score,
            "nickName": masked_pin(self.buyer),
            "isVenderReply": bool(self.replies),
            "replies": copy.deepcopy(self.replies),
            "images": [],
            "videos": [],
            "status": 1,
            "usefulCount": 0,
            "replyCount": len(self.replies),
        }


@dataclass
class ShipmentWriteback:
    accepted: int = 0
    rejected: int = 0
    waybill: str | None = None
    logistics_id: str | None = None

    def as_json(self) -> dict:
        return {"accepted": self.accepted, "rejected": self.rejected, "waybill": self.waybill,
                "logistics_id": self.logistics_id}


class ShipmentRejected(Exception):
    """jingdong.pop.order.shipment refused; ``error_code`` is the sandbox's code for the reason."""

    def __init__(self, error_code: str, chinese: str, english: str) -> None:
        super().__init__(f"{error_code} {english}")
        self.error_code = error_code
        self.chinese = chinese
        self.english = english


def masked_pin(buyer: Buyer) -> str:
    return f"jd_{buyer.nick[2]}***{buyer.nick[-1]}"


def masked_phone(buyer: Buyer) -> str:
    # JOS desensitised form, as in the spec's example "138****0000".
    return f"{buyer.phone[:3]}****{buyer.phone[-4:]}"


def _digest(*parts: object) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def listing_for(sku: Sku, index: int | None, shop_no: int) -> JdListing:
    """JD ids for a merchant SKU in one shop (JD skuIds belong to a shop's ware, so two shops selling the same
    merchant code see different skuIds): catalogue entries get sequential ids, unknown codes hash-derived ones."""
    spu = sku.outer_iid.rsplit("-", 1)[-1]
    if index is not None:
        sku_id = str(100000000000 + shop_no * 1000 + index + 1)
        ware_id = str(10000000000 + shop_no * 1000 + (int(spu) if spu.isdigit() else index + 1))
    else:
        digits = _digest(shop_no, sku.outer_sku_id)
        sku_id = str(109000000000 + digits % 10**8)
        ware_id = str(19000000000 + digits % 10**8)
    name = f"{sku.title} {sku.sku_properties_name.replace('颜色:', '').replace(';尺码:', ' ')}".strip()
    return JdListing(sku_id=sku_id, ware_id=ware_id, outer_sku_id=sku.outer_sku_id, name=name, price=sku.price)


@dataclass
class JdWorld:
    """All JD state. Build with :meth:`JdWorld.build`; the catalogue and buyer pool come from the shared world."""

    app: JdApp
    shops: dict[str, JdShop]
    listings: dict[str, dict[str, JdListing]]  # shop slug -> skuId -> listing
    stock: dict[str, dict[str, int]]  # shop slug -> skuId -> stockNum as last written (seeded start values)
    orders_rng: random.Random
    creds_rng: random.Random
    catalogue_size: int
    next_order_id: int = FIRST_ORDER_ID
    next_service_id: int = FIRST_SERVICE_ID
    next_comment_id: int = FIRST_COMMENT_ID
    orders: dict[str, JdOrder] = field(default_factory=dict)
    services: dict[int, AfsService] = field(default_factory=dict)
    comments: dict[str, Comment] = field(default_factory=dict)
    writebacks: dict[str, ShipmentWriteback] = field(default_factory=dict)
    stock_told: dict[str, dict[str, list[dict]]] = field(default_factory=dict)

    @classmethod
    def build(cls, seed: int, catalogue: tuple[Sku, ...]) -> JdWorld:
        creds_rng = random.Random(f"{seed}:jd:creds")
        stock_rng = random.Random(f"{seed}:jd:stock")
        app = JdApp(app_key=f"{creds_rng.getrandbits(128):032X}", app_secret=f"{creds_rng.getrandbits(128):032x}")
        expires_at = clock.parse_wire(TOKEN_EXPIRY)
        shops = {}
        for number, (slug, vender_id, name) in enumerate(SHOPS):
            shops[slug] = JdShop(slug=slug, number=number, vender_id=vender_id, name=name,
                                 access_token=f"{creds_rng.getrandbits(128):032x}",
                                 refresh_token=f"{creds_rng.getrandbits(128):032x}", expires_at=expires_at)
        listings: dict[str, dict[str, JdListing]] = {}
        stock: dict[str, dict[str, int]] = {}
        for shop in shops.values():
            listings[shop.slug] = {}
            for index, sku in enumerate(catalogue):
                listing = listing_for(sku, index, shop.number)
                listings[shop.slug][listing.sku_id] = listing
            stock[shop.slug] = {sku_id: stock_rng.randint(0, 200) for sku_id in listings[shop.slug]}
        return cls(app=app, shops=shops, listings=listings, stock=stock,
                   orders_rng=random.Random(f"{seed}:jd:orders"), creds_rng=creds_rng,
                   catalogue_size=len(catalogue), stock_told={slug: {} for slug in shops})

    # ----------------------------------------------------------------------------------------------- lookups

    def shop(self, slug: str) -> JdShop:
        if slug not in self.shops:
            raise WorldError(f"unknown JD shop {slug!r}; known: {', '.join(self.shops)}")
        return self.shops[slug]

    def shop_for_token(self, token: str) -> JdShop | None:
        for shop in self.shops.values():
            if shop.access_token == token:
                return shop
        return None

    def order(self, order_id: str) -> JdOrder:
        order = self.orders.get(str(order_id))
        if order is None:
            raise WorldError(f"no JD order {order_id}", 404)
        return order

    def listing_for_code(self, shop: JdShop, code: str, world_sku: Sku | None) -> JdListing:
        for listing in self.listings[shop.slug].values():
            if listing.outer_sku_id == code:
                return listing
        if world_sku is None:
            world_sku = Sku(outer_sku_id=code, outer_iid=code.rsplit("-", 1)[0], num_iid=0, sku_id="",
                            title=f"未收录商品 {code}", sku_properties_name="", price=Decimal("99.00"), cid=0)
        listing = listing_for(world_sku, None, shop.number)
        # A merchant code the catalogue does not know becomes a listing of its own (stock 0), as a shop's new or
        # mistyped outerSkuId would reach an order hub.
        self.listings[shop.slug][listing.sku_id] = listing
        self.stock[shop.slug].setdefault(listing.sku_id, 0)
        return listing

    # ----------------------------------------------------------------------------------------------- tokens

    def refresh(self, shop: JdShop, now: datetime) -> None:
        shop.token_generation += 1
        shop.access_token = f"{self.creds_rng.getrandbits(128):032x}"
        shop.refresh_token = f"{self.creds_rng.getrandbits(128):032x}"
        shop.expires_at = now + REFRESHED_TOKEN_LIFETIME

    # ----------------------------------------------------------------------------------------------- orders

    def create_order(self, shop: JdShop, at: datetime, visible_at: datetime, malformed: str | None,
                     chosen: list[tuple[JdListing, int]] | None, buyers: tuple[Buyer, ...], cod_ratio: float
                     ) -> JdOrder:
        rng = self.orders_rng
        order_id = str(self.next_order_id)
        self.next_order_id += 1
        if chosen:
            picks = chosen
        else:
            base = list(self.listings[shop.slug].values())[: self.catalogue_size]
            picks = [(listing, rng.randint(1, 3)) for listing in rng.sample(base, rng.randint(1, 3))]
        # Every draw happens whatever the knobs say, so cod_ratio never shifts the stream of later orders.
        promo_rates = [rng.choice((0, 0, 5, 10)) for _ in picks]
        coupon_choice = rng.choice((0, 0, 5, 10, 20))
        freight = Decimal("10.00") if rng.random() < 0.3 else ZERO
        is_cod = rng.random() < cod_ratio
        buyer = rng.choice(buyers)
        remark = rng.choice(_ORDER_REMARKS) if rng.random() < 0.3 else ""
        pay_delay = rng.randint(5, 90)

        gross = [listing.price * num for listing, num in picks]
        promos = [(g * rate / 100).quantize(CENT, ROUND_HALF_UP) for g, rate in zip(gross, promo_rates)]
        after_promo = [g - p for g, p in zip(gross, promos)]
        coupon = Decimal(coupon_choice) if sum(after_promo, ZERO) > 100 else ZERO
        shares = _allocate(coupon, after_promo)
        total = sum(gross, ZERO)
        seller_discount = sum(promos, ZERO) + coupon
        seller_price = total - seller_discount
        payment = seller_price + freight

        coupons = []
        for (listing, _), promo, share in zip(picks, promos, shares):
            if promo:
                coupons.append({"orderId": order_id, "skuId": listing.sku_id, "couponType": ITEM_PROMOTION,
                                "couponPrice": money(promo)})
            if share:
                coupons.append({"orderId": order_id, "skuId": listing.sku_id, "couponType": SHOP_COUPON,
                                "couponPrice": money(share)})
        items = [
            {"skuId": listing.sku_id, "outerSkuId": listing.outer_sku_id, "wareId": listing.ware_id,
             "skuName": listing.name, "jdPrice": money(listing.price), "itemTotal": str(num), "giftPoint": "0",
             "productNo": "", "serviceName": "", "newStoreId": "0"}
            for listing, num in picks
        ]
        # `at` is when the paid order became what a reader sees: modified = at, created and paid shortly before.
        modified = at.replace(microsecond=0)
        paid = modified - timedelta(seconds=1)
        created = paid - timedelta(seconds=pay_delay)
        province = buyer.state.removesuffix("省")
        province_id = PROVINCE_IDS.get(province, "99")
        city_id = str(1000 + _digest(buyer.city) % 9000)
        county_id = str(10000 + _digest(buyer.city, buyer.district) % 90000)
        open_id = f"{_digest('jd-open', buyer.open_uid):x}".rjust(12, "0")
        data = {
            "orderId": order_id,
            "venderId": shop.vender_id,
            "orderType": "22",
            "payType": "1" if is_cod else "4",
            "orderTotalPrice": money(total),
            "orderSellerPrice": money(seller_price),
            "orderPayment": money(payment),
            "freightPrice": money(freight),
            "sellerDiscount": money(seller_discount),
            "orderState": "WAIT_SELLER_STOCK_OUT",
            "orderStateRemark": STATE_REMARKS["WAIT_SELLER_STOCK_OUT"],
            "deliveryType": "任意时间",
            "invoiceInfo": "不需要开具发票",
            "invoiceCode": "",
            "invoiceEasyInfo": {"invoiceType": "0", "invoiceTitle": "", "invoiceContentId": ""},
            "orderRemark": remark,
            "orderStartTime": clock.format_wire(created),
            # Cash on delivery: nothing is paid before delivery, so no payment confirmation time (sandbox choice).
            "paymentConfirmTime": "" if is_cod else clock.format_wire(paid),
            "orderEndTime": "",
            "consigneeInfo": {
                "fullname": buyer.masked_name,
                "telephone": "",
                "mobile": masked_phone(buyer),
                "desen_telephone": "",
                "desen_mobile": masked_phone(buyer),
                "fullAddress": f"{province}{buyer.city}{buyer.district}{buyer.street}****",
                "province": province,
                "city": buyer.city,
                "county": buyer.district,
                "town": "",
                "provinceId": province_id,
                "cityId": city_id,
                "countyId": county_id,
                "townId": "0",
            },
            "itemInfoList": items,
            "couponDetailList": coupons,
            "venderRemark": "",
            "balanceUsed": "0.00",
            "pin": masked_pin(buyer),
            "realPin": masked_pin(buyer),
            "returnOrder": "0",
            "waybill": "",
            "logisticsId": "",
            "modified": clock.format_wire(modified),
            "directParentOrderId": "",
            "parentOrderId": "0",
            "orderSource": "移动端订单",
            "storeOrder": "",
            "serviceFee": "0.00",
            "pauseBizInfo": {},
            "taxFee": "0.00",
            "tuiHuoWuYou": "0",
            "orderSign": "",
            "storeId": "0",
            "orderMarkDesc": "",
            "open_id": open_id,
            "open_id_buyer": open_id,
        }
        if malformed == "unknown_status":
            data["orderState"] = UNKNOWN_STATE
            data["orderStateRemark"] = ""
        elif malformed == "bad_amount":
            data["orderPayment"] = BAD_AMOUNT
        elif malformed == "missing_order_id":
            del data["orderId"]
        elif malformed == "no_items":
            data["itemInfoList"] = []
        order = JdOrder(shop=shop.slug, order_id=order_id, created=created, modified=modified, data=data,
                        buyer=buyer, malformed=malformed, visible_at=visible_at)
        self.orders[order_id] = order
        # JD takes the units off the shelf when the order is placed (下单减库存), never below 0: a shop whose shelf
        # was set too high still gets the order (an oversold order is still an order).
        shelf = self.stock[shop.slug]
        for listing, num in picks:
            shelf[listing.sku_id] = max(0, shelf.get(listing.sku_id, 0) - num)
        return order

    @staticmethod
    def touch(order: JdOrder, at: datetime, visible_at: datetime) -> None:
        """``modified`` = max(at, previous + 1 s): every change is visible to a modification-time window reader."""
        order.modified = max(at.replace(microsecond=0), order.modified + timedelta(seconds=1))
        order.data["modified"] = clock.format_wire(order.modified)
        order.visible_at = visible_at

    @staticmethod
    def set_state(order: JdOrder, state: str) -> None:
        order.data["orderState"] = state
        order.data["orderStateRemark"] = STATE_REMARKS.get(state, "")
        if state in FINAL_STATES and not order.data["orderEndTime"]:
            order.data["orderEndTime"] = order.data["modified"]

    def ship(self, order: JdOrder, logistics_id: str, waybill: str, at: datetime, visible_at: datetime) -> None:
        """Apply jingdong.pop.order.shipment; raises :class:`ShipmentRejected` (counted) when JD would refuse."""
        writeback = self.writebacks.setdefault(order.order_id, ShipmentWriteback())
        try:
            self._check_shippable(order, logistics_id, waybill, writeback)
        except ShipmentRejected:
            writeback.rejected += 1
            raise
        self.touch(order, at, visible_at)
        self.set_state(order, "WAIT_GOODS_RECEIVE_CONFIRM")
        order.data["waybill"] = waybill
        order.data["logisticsId"] = logistics_id
        writeback.accepted += 1
        writeback.waybill = waybill
        writeback.logistics_id = logistics_id

    @staticmethod
    def _check_shippable(order: JdOrder, logistics_id: str, waybill: str, writeback: ShipmentWriteback) -> None:
        if not logistics_id or not waybill:
            raise ShipmentRejected("1006", "参数错误: logiCoprId 和 logiNo 必填", "logiCoprId and logiNo are required")
        state = order.state
        if writeback.accepted or state in SHIPPED_STATES:
            raise ShipmentRejected("1002", "订单已出库，不能重复出库", f"order {order.order_id} is already shipped")
        if state in ON_HOLD_STATES:
            raise ShipmentRejected("1003", "订单已暂停或锁定，不能出库", f"order {order.order_id} is on hold ({state})")
        if state not in SHIPPABLE_STATES:
            raise ShipmentRejected("1004", "当前订单状态不允许出库", f"order {order.order_id} is {state}")
        if logistics_id not in CARRIERS:
            raise ShipmentRejected("1005", "物流公司不存在", f"unknown logiCoprId {logistics_id}")

    def modify(self, order: JdOrder, at: datetime, visible_at: datetime, changes: dict) -> dict:
        """Admin changes: status, vender_remark, refund, afs_status/service_id, comment. Returns what changed."""
        result: dict = {"order_id": order.order_id}
        status = changes.get("status")
        if status is not None:
            if status not in ORDER_STATES:
                raise WorldError(f"status must be one of {', '.join(ORDER_STATES)}")
        remark = changes.get("vender_remark")
        if remark is not None and not isinstance(remark, str):
            raise WorldError("vender_remark must be a string")
        if status is not None or remark is not None:
            self.touch(order, at, visible_at)
        if remark is not None:
            order.data["venderRemark"] = remark
        if status is not None:
            self.set_state(order, status)

        refund = changes.get("refund")
        if refund:
            service = self._open_service(order, at, visible_at, refund)
            result["service_id"] = service.service_id
        afs_status = changes.get("afs_status")
        if afs_status is not None:
            service = self._update_service(order, at, visible_at, afs_status, changes.get("service_id"))
            result["service_id"] = service.service_id
            result["afs_status"] = service.status
        comment = changes.get("comment")
        if comment:
            result["comment_ids"] = self._comment(order, at, comment)
        result["modified"] = order.data["modified"]
        result["state"] = order.state
        return result

    def _open_service(self, order: JdOrder, at: datetime, visible_at: datetime, refund: object) -> AfsService:
        spec = refund if isinstance(refund, dict) else {}
        items = order.data["itemInfoList"] or []
        if not items:
            raise WorldError(f"order {order.order_id} has no items to refund")
        if order.state == "TRADE_CANCELED":
            raise WorldError(f"order {order.order_id} is cancelled; nothing left to refund")
        item = items[0]
        if spec.get("sku"):
            match = [i for i in items if spec["sku"] in (i["outerSkuId"], i["skuId"])]
            if not match:
                raise WorldError(f"order {order.order_id} has no item {spec['sku']!r}")
            item = match[0]
        num = spec.get("num", int(item["itemTotal"]))
        if isinstance(num, bool) or not isinstance(num, int) or not 1 <= num <= int(item["itemTotal"]):
            raise WorldError(f"num must be an integer between 1 and {item['itemTotal']}")
        listing = self.listings[order.shop][item["skuId"]]
        before_shipping = order.state in SHIPPABLE_STATES or order.state in ON_HOLD_STATES
        service = AfsService(
            service_id=self.next_service_id, shop=order.shop, order_id=order.order_id, listing=listing, num=num,
            status=10001, expect=EXPECT_REFUND_ONLY if before_shipping else EXPECT_RETURN,
            apply_time=at.replace(microsecond=0), updated=at.replace(microsecond=0),
            refund_amount=(listing.price * num).quantize(CENT), buyer=order.buyer,
        )
        self.next_service_id += 1
        self.services[service.service_id] = service
        if before_shipping and order.state in SHIPPABLE_STATES:
            # A buyer asking to cancel a paid, unshipped order locks it until the seller decides (must not ship).
            order.pre_lock_state = order.state
            self.touch(order, at, visible_at)
            self.set_state(order, "LOCKED")
        return service

    def _update_service(self, order: JdOrder, at: datetime, visible_at: datetime, status: object,
                        service_id: object) -> AfsService:
        if status not in AFS_STATUSES:
            raise WorldError(f"afs_status must be one of {', '.join(map(str, AFS_STATUSES))}")
        candidates = [s for s in self.services.values() if s.order_id == order.order_id]
        if service_id is not None:
            candidates = [s for s in candidates if str(s.service_id) == str(service_id)]
        if not candidates:
            raise WorldError(f"order {order.order_id} has no after-sales service {service_id or ''}".strip(), 404)
        service = candidates[-1]
        service.status = status  # type: ignore[assignment]
        service.updated = max(at.replace(microsecond=0), service.updated)
        if service.expect == EXPECT_REFUND_ONLY and order.state == "LOCKED" and status in AFS_CLOSED:
            # Refund before shipping: approved -> the order is cancelled; refused/withdrawn -> unlocked again.
            self.touch(order, at, visible_at)
            self.set_state(order, "TRADE_CANCELED" if status == 10010 else order.pre_lock_state or
                           "WAIT_SELLER_STOCK_OUT")
        return service

    def _comment(self, order: JdOrder, at: datetime, spec: object) -> list[str]:
        rng = self.orders_rng
        wanted = spec if isinstance(spec, dict) else {}
        score = wanted.get("score")
        if score is not None and (isinstance(score, bool) or score not in (1, 2, 3, 4, 5)):
            raise WorldError("comment score must be 1-5")
        ids = []
        for item in order.data["itemInfoList"]:
            item_score = score or rng.choice((5, 5, 5, 4, 4, 3, 2, 1))
            content = wanted.get("content") or rng.choice(_COMMENTS[item_score])
            comment = Comment(comment_id=str(self.next_comment_id), shop=order.shop, order_id=order.order_id,
                              listing=self.listings[order.shop][item["skuId"]], score=item_score, content=str(content),
                              created=at.replace(microsecond=0), buyer=order.buyer)
            self.next_comment_id += 1
            self.comments[comment.comment_id] = comment
            ids.append(comment.comment_id)
        return ids

    def tell_stock(self, shop: JdShop, listing: JdListing, qty: int, mode: str, at: datetime) -> None:
        stock = self.stock[shop.slug]
        stock[listing.sku_id] = qty if mode == "full" else stock.get(listing.sku_id, 0) + qty
        self.stock_told[shop.slug].setdefault(listing.sku_id, []).append(
            {"qty": qty, "mode": mode, "at": clock.format_wire(at), "outer_sku_id": listing.outer_sku_id})

    # ----------------------------------------------------------------------------------------------- truth

    def truth(self) -> dict:
        shops: dict = {slug: {"orders": {}, "after_sales": {}, "comments": {}} for slug in self.shops}
        for order in self.orders.values():
            shops[order.shop]["orders"][order.order_id] = {
                "status": order.state,
                "modified": order.data["modified"],
                "pay_type": order.data["payType"],
                "malformed": order.malformed is not None,
                "malformed_kind": order.malformed,
            }
        for service in self.services.values():
            shops[service.shop]["after_sales"][str(service.service_id)] = {
                "order_id": service.order_id, "status": service.status, "sku_id": service.listing.sku_id,
                "customer_expect": service.expect[0], "apply_time": clock.format_wire(service.apply_time),
                "update_time": clock.format_wire(service.updated),
            }
        for comment in self.comments.values():
            shops[comment.shop]["comments"][comment.comment_id] = {
                "order_id": comment.order_id, "sku_id": comment.listing.sku_id, "score": comment.score,
                "replies": len(comment.replies),
            }
        return {
            "channels": {"jd": shops},
            "writebacks": {"jd": {order_id: wb.as_json() for order_id, wb in sorted(self.writebacks.items())}},
            "stock_told": {"jd": copy.deepcopy(self.stock_told)},
        }


def _allocate(amount: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """Split ``amount`` over lines proportionally in cents; the last line takes the rounding rest."""
    total = sum(weights, ZERO)
    if amount == 0 or total == 0:
        return [ZERO for _ in weights]
    shares = [(amount * w / total).quantize(CENT, ROUND_HALF_UP) for w in weights[:-1]]
    shares.append(amount - sum(shares, ZERO))
    return shares
