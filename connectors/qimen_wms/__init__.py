"""Qimen-standard WMS sink: delivery orders out, ship confirmations back (client, sink, confirms, settings)."""

from connectors.qimen_wms.confirms import poll
from connectors.qimen_wms.settings import QimenWmsSettings
from connectors.qimen_wms.sink import QimenWmsSink
from hub.connector import SinkConnector

SINK = SinkConnector(kind="qimen_wms", settings_type=QimenWmsSettings, open=QimenWmsSink, poll_feedback=poll)
