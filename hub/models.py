"""Canonical records every connector maps into and every sink maps out of (specs/platform-apis.md §10).

Rules these models enforce, because every later step relies on them:
- money is an integer number of fen (minor units) next to an explicit ISO currency, never a float;
- datetimes are timezone-aware (the store keeps UTC; channels speak Asia/Shanghai);
- ids are strings (TOP tids and JD order ids exceed 2**53);
- the canonical status is derived by the mapping, and the channel's raw status is kept beside it.
Models are strict (no silent coercion) and forbid unknown fields, so a mapping typo fails loudly.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, model_validator


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware (channel times are Asia/Shanghai, the store keeps UTC)")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
Fen = Annotated[int, Field(description="amount in fen (1/100 of the currency unit)")]
NonNegativeFen = Annotated[int, Field(ge=0, description="non-negative amount in fen")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Id = Annotated[str, Field(min_length=1, max_length=128)]


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    PARTIALLY_SHIPPED = "PARTIALLY_SHIPPED"
    SHIPPED = "SHIPPED"
    DELIVERED = "DELIVERED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    CLOSED_REFUNDED = "CLOSED_REFUNDED"
    ON_HOLD = "ON_HOLD"


class RefundStatus(StrEnum):
    REQUESTED = "REQUESTED"
    WAIT_RETURN = "WAIT_RETURN"
    RETURNED = "RETURNED"
    REJECTED = "REJECTED"
    SUCCESS = "SUCCESS"
    CLOSED = "CLOSED"


class PresaleStage(StrEnum):
    """Where a presale (deposit, 定金预售) order stands: it must not ship before the final payment."""

    DEPOSIT_UNPAID = "deposit_unpaid"
    DEPOSIT_PAID = "deposit_paid"
    FINAL_PAID = "final_paid"


class RefundType(StrEnum):
    REFUND_ONLY = "refund_only"
    RETURN_REFUND = "return_refund"
    EXCHANGE = "exchange"


# Enum fields accept their member's value as a string (mappings produce strings); anything else is still refused.
OrderStatusField = Annotated[OrderStatus, Strict(False)]
RefundStatusField = Annotated[RefundStatus, Strict(False)]
RefundTypeField = Annotated[RefundType, Strict(False)]
PresaleStageField = Annotated[PresaleStage, Strict(False)]


class CanonicalModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=False, validate_assignment=True)


class Receiver(CanonicalModel):
    """Where a parcel goes. Channels serve these masked; ``receiver_ref`` (TOP oaid, WeChat hash_code) is the key."""

    name: str | None = None
    phone: str | None = None
    province: str | None = None
    city: str | None = None
    district: str | None = None
    town: str | None = None
    address: str | None = None
    zip: str | None = None
    receiver_ref: str | None = None


class OrderLine(CanonicalModel):
    line_id: Id
    platform_item_id: str | None = None
    platform_sku_id: str | None = None
    merchant_item_code: str | None = None
    merchant_sku_code: str | None = None
    title: str | None = None
    sku_desc: str | None = None
    qty: int = Field(gt=0)
    unit_price: NonNegativeFen
    line_total: NonNegativeFen
    line_discount: Fen = 0
    line_adjust: Fen = 0
    line_paid: NonNegativeFen
    is_gift: bool = False
    status: OrderStatusField
    raw_status: str
    refund_status: str | None = Field(
        None, description="the line's after-sales state as a canonical RefundStatus value; None when there is none "
                          "(kept a plain string so documents stored before the mapping's table existed still load)")


class Payment(CanonicalModel):
    payment_id: Id
    method: str
    channel_txn_id: str | None = None
    amount: NonNegativeFen
    currency: Currency = "CNY"
    paid_at: AwareDatetime | None = None


class ShipmentLineRef(CanonicalModel):
    line_id: Id
    qty: int = Field(gt=0)


class Shipment(CanonicalModel):
    shipment_id: Id
    order_id: Id
    carrier_code: str = Field(description="canonical carrier code (Qimen logisticsCode)")
    platform_carrier_code: str | None = None
    waybill_no: Id
    line_refs: list[ShipmentLineRef] = Field(default_factory=list)
    shipped_at: AwareDatetime
    source: str = Field(pattern=r"^(platform|wms)$")


class Refund(CanonicalModel):
    refund_id: Id
    platform: str
    shop_id: str
    order_id: Id
    line_id: str | None = None
    type: RefundTypeField
    status: RefundStatusField
    raw_status: str
    requested_amount: NonNegativeFen
    refunded_amount: NonNegativeFen = 0
    currency: Currency = "CNY"
    reason: str | None = None
    return_waybill: str | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    version: str | None = None


class PlatformStockPush(CanonicalModel):
    platform: str
    platform_item_id: str | None = None
    platform_sku_id: str | None = None
    mode: str = Field(pattern=r"^(full|delta)$")
    qty: int
    pushed_at: AwareDatetime


class StockLevel(CanonicalModel):
    merchant_sku_code: Id
    warehouse_code: Id
    available: int
    locked: int = 0
    platform_pushes: list[PlatformStockPush] = Field(default_factory=list)


class Review(CanonicalModel):
    review_id: Id
    platform: str
    order_id: Id
    line_id: str | None = None
    platform_item_id: str | None = None
    rating: str = Field(description="1-5, or good/neutral/bad as the channel rates")
    content: str | None = None
    created_at: AwareDatetime
    reply: str | None = None
    author_nick: str | None = None


class Order(CanonicalModel):
    """One channel order (a Tmall trade, a JD order, a POS receipt), as the hub stores and dispatches it."""

    platform: str
    shop_id: str
    order_id: Id
    parent_order_id: str | None = None
    status: OrderStatusField
    raw_status: str
    created_at: AwareDatetime
    paid_at: AwareDatetime | None = None
    shipped_at: AwareDatetime | None = None
    completed_at: AwareDatetime | None = None
    updated_at: AwareDatetime
    buyer_ref: str | None = None
    buyer_note: str | None = None
    seller_note: str | None = None
    seller_flag: int | None = None
    goods_total: NonNegativeFen
    discount_total: Fen = 0
    platform_discount: Fen = 0
    seller_discount: Fen = 0
    shipping_fee: NonNegativeFen = 0
    adjust_total: Fen = 0
    paid_total: NonNegativeFen
    currency: Currency = "CNY"
    is_cod: bool = Field(False, description="cash on delivery: the carrier collects what the buyer has not paid")
    presale_stage: PresaleStageField | None = Field(
        None, description="presale (deposit) orders only: deposit_unpaid | deposit_paid | final_paid")
    receiver: Receiver = Field(default_factory=Receiver)
    lines: list[OrderLine] = Field(min_length=1)
    payments: list[Payment] = Field(default_factory=list)
    shipments: list[Shipment] = Field(default_factory=list)
    refunds: list[Refund] = Field(default_factory=list)

    @model_validator(mode="after")
    def _lines_are_unique(self) -> Order:
        ids = [line.line_id for line in self.lines]
        if len(ids) != len(set(ids)):
            raise ValueError(f"order {self.order_id} has duplicate line ids")
        return self
