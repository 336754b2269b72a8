"""Kingdee Cloud Galaxy (金蝶云星空) ERP sink: customers and audited sales orders (client, sink, settings)."""

from connectors.kingdee.settings import KingdeeSettings
from connectors.kingdee.sink import KingdeeSink
from hub.connector import SinkConnector

SINK = SinkConnector(kind="kingdee", settings_type=KingdeeSettings, open=KingdeeSink)
