"""Settings of one Pinduoduo shop: gateway, app credentials (client_id/client_secret), the merchant's tokens."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hub.config import Credential, ShopBase


class PddShopSettings(ShopBase):
    channel: Literal["pdd"] = "pdd"
    gateway: str = Field("https://gw-api.pinduoduo.com/api/router", description="PDD router URL (specs §4)")
    client_id: str = Field(description="the app's client_id")
    client_secret: Credential = Field(description="the app's client_secret (signs every call)")
    access_token: Credential = Field(description="the merchant's token; expires: refresh or re-authorise")
    refresh_token: Credential | None = Field(None, description=(
        "with it an expired access token is refreshed once (pdd.pop.auth.token.refresh); the new tokens live in "
        "this process's memory, so store them when the log says so"))
    throttle_wait_s: float = Field(1.0, ge=0, description="wait at least this long after a throttling answer")
