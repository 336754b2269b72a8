"""Tryton ERP sink over JSON-RPC: parties, products and confirmed sales (client, sink, settings)."""

from connectors.tryton.settings import TrytonSettings
from connectors.tryton.sink import TrytonSink
from hub.connector import SinkConnector

SINK = SinkConnector(kind="tryton", settings_type=TrytonSettings, open=TrytonSink)
