"""Pinduoduo (拼多多) source connector: orders and after-sales over ``api/router`` (client, streams, settings,
write-back; the platform's quirks in README.md). Made with `orderhub connector new pdd`, registered with one line in
connectors/registry.py.
"""

from connectors.pdd.client import PddClient
from connectors.pdd.mapping_functions import COMPUTES, TRANSFORMS
from connectors.pdd.settings import PddShopSettings
from connectors.pdd.streams import OrdersStream, RefundsStream
from connectors.pdd.writeback import ship
from hub.connector import SourceConnector


def open_streams(settings: PddShopSettings) -> dict:
    client = PddClient(settings)
    return {"orders": OrdersStream(client, page_size=settings.sync.page_size),
            "refunds": RefundsStream(client, page_size=settings.sync.page_size)}


SOURCE = SourceConnector(
    channel="pdd",
    settings_type=PddShopSettings,
    mapping_file="pdd.yaml",
    mapping_files={"refund": "pdd_refunds.yaml"},
    transforms=TRANSFORMS,
    computes=COMPUTES,
    open_streams=open_streams,
    ship=ship,
)
