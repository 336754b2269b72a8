"""Settings of one Kingdee Cloud Galaxy (金蝶云星空) tenant: server, data centre, API user, and the preset codes a
sales order needs (bill type, currency, organisation...: tenant-specific, specs §7.1 marks them UNCONFIRMED)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hub.config import Credential, SinkBase


class KingdeeSettings(SinkBase):
    kind: Literal["kingdee"] = "kingdee"
    server: str = Field(description="the part before /k3cloud/, e.g. https://erp.example.com")
    acct_id: str = Field(description="data centre id (acctId)")
    username: str
    password: Credential
    lcid: int = Field(2052, description="2052 = zh-CN")
    org_number: str = Field("100", description="sale, stock and settle organisation (FSaleOrgId...)")
    customer_by: Literal["shop", "buyer"] = Field(
        "shop", description="one customer per shop, or one per buyer (the channel's buyer_ref)")
    customers: dict[str, str] = Field(
        default_factory=dict,
        description="shop slug -> an existing customer number (customer_by: shop); others are created as "
                    "<CHANNEL>-<SHOP>")
    bill_type: str = "XSDD01_SYS"
    currency: str = "PRE001"
    exchange_type: str = "HLTX01_SYS"
    saler_number: str | None = Field(None, description="FSalerId (salesperson); required by most tenants")
    dept_number: str | None = None
    unit: str = "Pcs"
    tax_rate: float = 13
    audit: bool = Field(True, description="Submit and Audit each sales order after Save")
    receivable: bool = Field(True, description="also an AR_receivable (应收单) per released document (AR-<code>)")
    vouchers: bool = Field(True, description="a GL_VOUCHER (凭证) per matched receipt (receipt.matched events)")
    account_book: str = Field("001", description="FAccountBookID of the vouchers")
    voucher_group: str = Field("PRE001", description="FVOUCHERGROUPID (记 voucher word); tenant-specific")
    bank_account: str = Field("1002", description="debited with what the payment provider paid out (银行存款)")
    fee_account: str = Field("6603", description="debited with the provider's fee (财务费用)")
    receivable_account: str = Field("1122", description="credited with the receipt's gross amount (应收账款)")
