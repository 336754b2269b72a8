"""Settings of one JD (京东 JOS) POP shop: gateway, app credentials, the seller's OAuth tokens and JD's knobs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from hub.config import Credential, ShopBase

# What a gateway error code means to OrderHub (see connectors/jd/client.py ``classify``).
ErrorKind = Literal["throttled", "quota", "token", "configuration", "transient", "fatal"]


class JdShopSettings(ShopBase):
    channel: Literal["jd"] = "jd"
    gateway: str = Field("https://api.jd.com/routerjson", description="JOS router URL (routerjson)")
    refresh_url: str = Field("https://open-oauth.jd.com/oauth2/refresh_token",
                             description="JD OAuth refresh endpoint (specs §2.3)")
    app_key: Credential
    app_secret: Credential
    access_token: Credential = Field(description="the seller's OAuth access token; expires: refresh or re-authorise")
    refresh_token: Credential | None = Field(None, description=(
        "the seller's refresh token: with it the access token is refreshed before it expires and after an "
        "'invalid access_token' (19) answer; the new tokens live in this process's memory, so store them when the "
        "log says so"))
    token_expires_at: datetime | None = Field(None, description=(
        "when the configured access token expires (tz-aware); within refresh_margin_hours of it the token is "
        "refreshed before the next call (JD only refreshes in the last 24 h, never after expiry)"))
    refresh_margin_hours: float = Field(24, gt=0, le=24)
    vender_id: str | None = Field(None, description="JD venderId (buId of the after-sales API)")
    throttle_wait_s: float = Field(1.0, ge=0, description=(
        "wait at least this long after a throttling answer (JD's codes carry no ban length)"))
    afs_follow_up_days: float = Field(15, ge=0, description=(
        "after-sales can only be searched by apply time, so every refunds window also re-reads the services "
        "applied this many days before it: their status changes are found that way"))
    error_codes: dict[str, ErrorKind] = Field(default_factory=dict, description=(
        "override or extend the gateway error-code table (JD publishes only code 19; specs §2.4)"))

    @field_validator("token_expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("token_expires_at needs a timezone, e.g. 2027-01-01T00:00:00+08:00")
        return value
