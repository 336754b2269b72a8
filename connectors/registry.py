"""Every connector OrderHub ships, listed explicitly (no discovery magic): channel slug / sink kind -> connector.

A new channel is one folder under connectors/, one mapping file under mappings/, and one line here.
"""

from __future__ import annotations

from pydantic import BaseModel

import connectors.jd as jd
import connectors.kingdee as kingdee
import connectors.logistics as logistics
import connectors.pdd as pdd
import connectors.pos as pos
import connectors.qimen_wms as qimen_wms
import connectors.tmall as tmall
import connectors.tryton as tryton
import connectors.wechat_shop as wechat_shop
from hub.connector import SinkConnector, SourceConnector

SOURCES: dict[str, SourceConnector] = {
    "tmall": tmall.SOURCE,
    "jd": jd.SOURCE,
    "pos": pos.SOURCE,
    "wechat_shop": wechat_shop.SOURCE,
    "pdd": pdd.SOURCE,
}

SINKS: dict[str, SinkConnector] = {
    "qimen_wms": qimen_wms.SINK,
    "kingdee": kingdee.SINK,
    "tryton": tryton.SINK,
    "logistics": logistics.SINK,
}


def source_settings_type(channel: str) -> type[BaseModel] | None:
    connector = SOURCES.get(channel)
    return connector.settings_type if connector else None


def sink_settings_type(kind: str) -> type[BaseModel] | None:
    connector = SINKS.get(kind)
    return connector.settings_type if connector else None
