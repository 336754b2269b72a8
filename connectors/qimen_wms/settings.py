"""Settings of one Qimen-standard WMS target: router URL, app credentials, owner (customerId), defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from hub.config import Credential, SinkBase, StrictModel


class QimenConfirmFeed(StrictModel):
    mode: Literal["poll", "push"] = Field("poll", description="poll a feed URL, or receive POSTs (push)")
    feed_url: str | None = Field(None, description="poll mode: URL of the WMS's confirm feed")


class QimenWmsSettings(SinkBase):
    kind: Literal["qimen_wms"] = "qimen_wms"
    url: str = Field(description="the WMS's Qimen router URL")
    app_key: Credential
    app_secret: Credential
    customer_id: str = Field(description="the owner (货主) code registered in Qimen")
    warehouse_code: str = Field("WH01", description="default warehouse until routing rules choose one")
    logistics_code: str = Field("SF", description="default carrier (Qimen logisticsCode)")
    platform_codes: dict[str, str] = Field(
        default_factory=lambda: {"tmall": "TM", "taobao": "TB", "jd": "JD", "pos": "POS"},
        description="channel slug -> Qimen sourcePlatformCode; others are sent as OTHER + sourcePlatformName")
    confirms: QimenConfirmFeed = Field(default_factory=QimenConfirmFeed)
    returns_feed_url: str | None = Field(
        None, description="the WMS's return receipt feed (returnorder.confirm), polled by `orderhub feedback`")
    exclude_shops: list[str] = Field(
        default_factory=list, description="shops whose documents another sink ships (a logistics waybill sink)")
