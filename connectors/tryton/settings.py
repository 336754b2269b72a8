"""Settings of one Tryton ERP (8.x) reached over JSON-RPC: server, database, user, and how parties and products are
found or created."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hub.config import Credential, SinkBase


class TrytonSettings(SinkBase):
    kind: Literal["tryton"] = "tryton"
    url: str = Field(description="the server, e.g. https://erp.example.com (calls go to <url>/<database>/rpc/)")
    database: str
    username: str
    password: Credential
    language: str = "en"
    party_by: Literal["shop", "buyer"] = Field(
        "shop", description="one party per shop, or one per buyer (the channel's buyer_ref)")
    parties: dict[str, str] = Field(default_factory=dict,
                                    description="shop slug -> code of an existing party; others: <CHANNEL>-<SHOP>")
    create_products: bool = Field(
        True, description="create a missing product from the master SKU (code = master SKU); false: a missing "
                          "product refuses the document (map it in Tryton first)")
    products: dict[str, str] = Field(default_factory=dict, description="master SKU -> an existing product code")
    product_category: str = Field("Goods", description="account category of created products (by name)")
    unit: str = Field("Unit", description="unit of measure of created products and sale lines (by name)")
    payment_term: str | None = Field(None, description="by name; default: the first payment term")
    confirm: bool = Field(True, description="quote and confirm each sale (confirm creates shipment and invoice)")
