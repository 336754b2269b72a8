"""Settings of one WeChat Channels shop (微信小店): the shop app's AppID/AppSecret and its message-push secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from hub.config import Credential, ShopBase


class WechatShopSettings(ShopBase):
    channel: Literal["wechat_shop"] = "wechat_shop"
    api_base: str = Field("https://api.weixin.qq.com", description="WeChat API base URL (no trailing slash)")
    appid: str = Field(pattern=r"^wx[0-9a-zA-Z]{16}$", description="the shop app's AppID (self-developed shop app)")
    secret: Credential = Field(description="the shop app's AppSecret (WeChat shop console: 设置 -> 开发设置)")
    token_kind: Literal["stable", "classic"] = Field("stable", description=(
        "'stable' (cgi-bin/stable_token, several processes share one token) or 'classic' (cgi-bin/token: every "
        "fetch supersedes the previous token, so only one system may use it)"))
    throttle_wait_s: float = Field(5.0, ge=0, description=(
        "wait after errcode 45011 (API called too frequently, a per-minute quota) before the call is retried"))
    # message push (§3.6): the console's URL / Token / EncodingAESKey; without a token callbacks are refused
    username: str | None = Field(None, description="the shop's original id (gh_...): ToUserName of its pushes")
    callback_token: Credential | None = Field(None, description="the push Token set in the console")
    encoding_aes_key: Credential | None = Field(None, description="the 43-char EncodingAESKey (safe mode)")
    allow_plain_callbacks: bool = Field(False, description=(
        "accept plain-mode pushes (signature only, body unencrypted); off: only safe mode (AES + msg_signature)"))
    push_inbox: Path | None = Field(None, description=(
        "file of the durable callback inbox (SQLite) shared by the receiver and the hub's push intake; "
        "unset: push intake is off for this shop (polling alone)"))
