"""Settings of one Tmall/Taobao shop: TOP gateway, app credentials and the seller's session (OAuth access token)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hub.config import Credential, ShopBase


class TmallShopSettings(ShopBase):
    channel: Literal["tmall"] = "tmall"
    gateway: str = Field("https://eco.taobao.com/router/rest", description="TOP router URL")
    app_key: Credential
    app_secret: Credential
    session: Credential = Field(description="the seller's access token (TOP 'session'); expires: re-authorise")
    refresh_token: Credential | None = Field(None, description=(
        "the seller's refresh token: with it an expired session is refreshed (taobao.top.auth.token.refresh); the "
        "new tokens live in the process's memory only, so update both credentials when the log says so"))
    sign_method: Literal["md5", "hmac", "hmac-sha256"] = "md5"
    seller_nick: str | None = None
