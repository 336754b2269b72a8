"""Settings of one store behind the POS middleware: the middleware's URL, the tenant's API key and the store slug."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hub.config import Credential, ShopBase


class PosShopSettings(ShopBase):
    channel: Literal["pos"] = "pos"
    base_url: str = Field(description="the middleware's API root, e.g. https://pos.example.com/api (receipts and "
                                      "stock live under it)")
    api_key: Credential = Field(description="the merchant tenant's API key (sent as the X-Api-Key header); one key "
                                            "covers every store of the tenant")
    store: str | None = Field(None, description="the middleware's store slug (store=...); default: the shop slug")
    api_key_header: str = Field("X-Api-Key", description="header the key travels in")

    @property
    def store_slug(self) -> str:
        return self.store or self.shop
