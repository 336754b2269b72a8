"""JD (京东 JOS) source connector: orders, after-sales and reviews over routerjson (client, streams, settings,
write-back; quirks in README), and the available-to-sell push in stock.py (written by the stock room)."""

from datetime import timedelta

from connectors.jd.client import JdClient
from connectors.jd.mapping_functions import COMPUTES, TRANSFORMS
from connectors.jd.settings import JdShopSettings
from connectors.jd.stock import push_stock
from connectors.jd.streams import OrdersStream, RefundsStream, ReviewsStream
from connectors.jd.writeback import ship
from hub.connector import SourceConnector


def open_streams(settings: JdShopSettings) -> dict:
    client = JdClient(settings)
    return {
        "orders": OrdersStream(client, page_size=settings.sync.page_size),
        "refunds": RefundsStream(client, timedelta(days=settings.afs_follow_up_days), settings.vender_id),
        "reviews": ReviewsStream(client),
    }


SOURCE = SourceConnector(
    channel="jd",
    settings_type=JdShopSettings,
    mapping_file="jd.yaml",
    mapping_files={"refund": "jd_refunds.yaml", "review": "jd_reviews.yaml"},
    transforms=TRANSFORMS,
    computes=COMPUTES,
    open_streams=open_streams,
    ship=ship,
    push_stock=push_stock,
)
