"""WeChat Channels shop (微信小店 / 视频号小店) source connector: client, streams, settings, write-back and the
signed callback intake (push.py); quirks in README.md."""

from importlib.util import find_spec

from connectors.wechat_shop.client import WxClient
from connectors.wechat_shop.mapping_functions import COMPUTES, TRANSFORMS
from connectors.wechat_shop.push import open_queues
from connectors.wechat_shop.settings import WechatShopSettings
from connectors.wechat_shop.streams import OrdersStream, RefundsStream
from connectors.wechat_shop.writeback import ship
from hub.connector import SourceConnector

# Stock pushes (product/stock/update) live in stock.py, written by the stock room; wired when it is there. An error
# inside it is not swallowed: only the module's absence is tolerated.
if find_spec("connectors.wechat_shop.stock") is not None:
    from connectors.wechat_shop.stock import push_stock
else:
    push_stock = None


def open_streams(settings: WechatShopSettings) -> dict:
    client = WxClient(settings)
    return {"orders": OrdersStream(client, page_size=settings.sync.page_size),
            "refunds": RefundsStream(client, page_size=settings.sync.page_size)}


SOURCE = SourceConnector(
    channel="wechat_shop",
    settings_type=WechatShopSettings,
    mapping_file="wechat_shop.yaml",
    mapping_files={"refund": "wechat_shop_refunds.yaml"},
    transforms=TRANSFORMS,
    computes=COMPUTES,
    open_streams=open_streams,
    ship=ship,
    open_push_queues=open_queues,
    push_stock=push_stock,
)
