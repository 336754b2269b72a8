"""Waybill sink (SF 丰桥 CSIM, Cainiao e-waybill LINK) for documents the hub ships itself (client, sink, settings)."""

from connectors.logistics.settings import LogisticsSettings
from connectors.logistics.sink import WaybillSink
from hub.connector import SinkConnector

SINK = SinkConnector(kind="logistics", settings_type=LogisticsSettings, open=WaybillSink)
