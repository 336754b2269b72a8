"""Settings of one waybill sink: which carrier service (SF CSIM or Cainiao LINK), its credentials, the sender, and
which released documents it books (per warehouse and/or per shop: the ones the hub ships itself, no WMS)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from hub.config import Credential, SinkBase, StrictModel


class Sender(StrictModel):
    """Who ships: the merchant's own dispatch point (a store, a small warehouse). Not buyer data."""

    name: str
    mobile: str
    company: str | None = None
    province: str
    city: str
    district: str
    address: str


class LogisticsSettings(SinkBase):
    kind: Literal["logistics"] = "logistics"
    provider: Literal["sf", "cainiao"] = Field(description="sf: SF 丰桥 CSIM; cainiao: Cainiao e-waybill (LINK)")
    url: str = Field(description="sf: …/std/service; cainiao: …/gateway/link.do")
    # SF
    partner_id: str | None = Field(None, description="sf: 顾客编码 (partnerID)")
    check_word: Credential | None = Field(None, description="sf: 校验码 (checkWord) signing msgDigest")
    monthly_card: str | None = Field(None, description="sf: 月结卡号 (monthlyCard)")
    express_type: int = Field(1, description="sf: expressTypeId (1 = 顺丰特快; UNCONFIRMED per account)")
    pay_method: int = Field(1, description="sf: payMethod (1 = sender pays)")
    # Cainiao
    logistic_provider_id: Credential | None = Field(None, description="cainiao: the LINK token")
    app_secret: Credential | None = Field(None, description="cainiao: signs data_digest")
    cp_code: str = Field("YTO", description="cainiao: the carrier the e-waybill is issued for (YTO, ZTO, SF…)")
    channel_types: dict[str, str] = Field(
        default_factory=lambda: {"tmall": "TM", "taobao": "TB", "jd": "JD"},
        description="cainiao: channel slug -> orderChannelsType; others are OTHERS")
    # both
    sender: Sender
    warehouses: list[str] = Field(
        default_factory=list, description="book only documents released to these warehouses (empty: any)")
    shops: list[str] = Field(default_factory=list, description="book only orders of these shops (empty: any)")
    record_shipment: bool = Field(
        True, description="record the booked waybill as the hub shipment, so the channel write-back sends it")

    @model_validator(mode="after")
    def _credentials(self) -> LogisticsSettings:
        if self.provider == "sf" and not (self.partner_id and self.check_word):
            raise ValueError("provider sf needs partner_id and check_word")
        if self.provider == "cainiao" and not (self.logistic_provider_id and self.app_secret):
            raise ValueError("provider cainiao needs logistic_provider_id and app_secret")
        return self

    @property
    def carrier_code(self) -> str:
        """The canonical carrier (mappings/carriers.yaml key) of the waybills this sink books."""
        return "SF" if self.provider == "sf" else self.cp_code
