"""Tmall/Taobao source connector over the TOP gateway (client, streams, settings, write-back; quirks in README)."""

from connectors.tmall.client import TopClient
from connectors.tmall.mapping_functions import COMPUTES
from connectors.tmall.push import open_queues
from connectors.tmall.refunds import RefundsStream
from connectors.tmall.reviews import REVIEW_COMPUTES, ReviewsStream
from connectors.tmall.settings import TmallShopSettings
from connectors.tmall.stock import push_stock
from connectors.tmall.streams import OrdersStream
from connectors.tmall.writeback import ship
from hub.connector import SourceConnector


def open_streams(settings: TmallShopSettings) -> dict:
    client = TopClient(settings)
    return {"orders": OrdersStream(client, page_size=settings.sync.page_size),
            "refunds": RefundsStream(client, page_size=settings.sync.page_size),
            "reviews": ReviewsStream(client, page_size=settings.sync.page_size)}


SOURCE = SourceConnector(
    channel="tmall",
    settings_type=TmallShopSettings,
    mapping_file="tmall.yaml",
    mapping_files={"refund": "tmall_refunds.yaml", "review": "tmall_reviews.yaml"},
    computes={**COMPUTES, **REVIEW_COMPUTES},
    open_streams=open_streams,
    ship=ship,
    open_push_queues=open_queues,
    push_stock=push_stock,
)
