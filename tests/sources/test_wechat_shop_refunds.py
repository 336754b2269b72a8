"""WeChat shop after-sales (the ``refunds`` stream: getaftersalelist by update time + getaftersaleorder) land as
canonical refunds pointing at their order line, follow their status changes once each, and survive the list's index
lag and throttling with nothing lost against the sandbox's record of truth."""

from __future__ import annotations

import time

import requests
import sqlalchemy as sa

from hub.store.db import reading
from hub.store.schema_aftersales import refunds
from tests.hub.helpers import set_faults, truth
from tests.sources.test_wechat_shop_sync import CHANNEL, create_wx_orders, modify_wx_order, wx_hub


def _after_sale(sandbox_url: str, after_sale_id: str, **body) -> None:
    requests.post(f"{sandbox_url}/_sandbox/wechat_shop/aftersales/{after_sale_id}", json=body,
                  timeout=10).raise_for_status()


def _hub_refunds(engine) -> dict[str, dict]:
    with reading(engine) as conn:
        return {r.refund_id: r._asdict() for r in conn.execute(sa.select(refunds).where(refunds.c.channel == CHANNEL))}


def test_after_sales_land_as_refunds_on_their_line_and_follow_their_status_once_each(
        tmp_path, sandbox, db_url, engine):
    hub = wx_hub(tmp_path, sandbox.url, db_url, engine, shops=["wx-store"], settle_seconds=0, lag_seconds=1)
    hub.settings.shops[0].streams = ["orders", "refunds"]
    orders = create_wx_orders(sandbox.url, count=4, ago_s=600,
                              lines=[{"sku": "SKU-001-RED-M", "num": 2}, {"sku": "SKU-005-BLK-F", "num": 1}])
    refund_only = modify_wx_order(sandbox.url, orders[0], aftersale={"type": "REFUND", "sku": "SKU-001-RED-M",
                                                                      "count": 1})["after_sale_order_id"]
    set_faults(sandbox.url, wechat_shop__late_index_s=1, wechat_shop__throttle={"calls": 1, "errcode": 45011})
    returned = modify_wx_order(sandbox.url, orders[1], aftersale={"type": "RETURN", "sku": "SKU-005-BLK-F",
                                                                   "reason": "尺码不合适"})["after_sale_order_id"]
    hub.sync()
    time.sleep(1.2)
    hub.sync()
    hub.sweep()
    stored = _hub_refunds(engine)
    on_channel = truth(sandbox.url)["channels"][CHANNEL]["wx-store"]["aftersales"]
    assert set(stored) == set(on_channel) == {refund_only, returned}
    first = stored[refund_only]
    assert (first["type"], first["status"], first["raw_status"]) == ("refund_only", "REQUESTED", "MERCHANT_PROCESSING")
    assert first["line_id"].startswith(f"{orders[0]}-") and first["refunded_amount"] == 0
    assert first["requested_amount"] == on_channel[refund_only]["amount"] > 0
    assert stored[returned]["type"] == "return_refund" and stored[returned]["document"]["reason"] == "尺码不合适"

    # the merchant accepts the refund; the buyer sends the return back with a waybill
    hub_client = hub.source_connector(CHANNEL).open_streams(hub.settings.shop(CHANNEL, "wx-store"))["refunds"].client
    hub_client.call("/channels/ec/aftersale/acceptapply", {"after_sale_order_id": refund_only}, write=True)
    _after_sale(sandbox.url, returned, status="MERCHANT_WAIT_RECEIPT", waybill_id="SF3000001")
    time.sleep(1.2)
    hub.sync()
    stored = _hub_refunds(engine)
    assert stored[refund_only]["status"] == "SUCCESS" and stored[refund_only]["version"] == 2
    assert stored[refund_only]["refunded_amount"] == stored[refund_only]["requested_amount"]
    assert stored[returned]["status"] == "RETURNED" and stored[returned]["document"]["return_waybill"] == "SF3000001"
    hub.sync()  # nothing new: nothing changes twice
    assert {k: v["version"] for k, v in _hub_refunds(engine).items()} == {refund_only: 2, returned: 2}
