"""Store POS source connector over the POS middleware's REST API (client, streams, settings; quirks in README).

Streams: ``orders`` (sale receipts), ``refunds`` (return receipts), ``stock_levels`` (store stock). No push, no
stock push (the hub reads store stock, it does not write it), and no real write-back (see writeback.py).
"""

from datetime import timedelta

from connectors.pos.client import PosClient
from connectors.pos.mapping_functions import COMPUTES, TRANSFORMS
from connectors.pos.settings import PosShopSettings
from connectors.pos.streams import ReceiptsStream, StockStream
from connectors.pos.writeback import ship
from hub.connector import SourceConnector


def open_streams(settings: PosShopSettings) -> dict:
    client = PosClient(settings)
    page = settings.sync.page_size
    return {
        "orders": ReceiptsStream(client, name="orders", entity="order", receipt_type="SALE", page_size=page),
        "refunds": ReceiptsStream(client, name="refunds", entity="refund", receipt_type="RETURN", page_size=page),
        "stock_levels": StockStream(client, present=settings.sync.lag + timedelta(minutes=2)),
    }


SOURCE = SourceConnector(
    channel="pos",
    settings_type=PosShopSettings,
    mapping_file="pos.yaml",
    mapping_files={"refund": "pos_refunds.yaml", "stock_level": "pos_stock.yaml"},
    transforms=TRANSFORMS,
    computes=COMPUTES,
    open_streams=open_streams,
    ship=ship,
)
