"""Secrets and buyer personal data never reach a log line, whatever path they take."""

from __future__ import annotations

import io
import logging

from hub.ingest import ingest_records
from hub.logging import configure_logging, get_logger
from tests.hub.helpers import create_orders, set_faults

PHONE = "13812345678"
OTHER_PHONE = "+86 139 0000 1111".replace(" ", "")


def test_seeded_phone_numbers_and_every_credential_never_appear_in_captured_logs(hub, sandbox):
    buffer = io.StringIO()
    configure_logging("DEBUG", json=True, stream=buffer)
    try:
        create_orders(sandbox.url, count=5)
        create_orders(sandbox.url, count=1, malformed="unknown_status")
        set_faults(sandbox.url, top__throttle={"calls": 1, "ban_seconds": 1})  # a retry gets logged with its error
        hub.run_once()
        shop = hub.settings.shop("tmall", "tm-flagship")
        hostile = {
            "tid": 1, "tid_str": "1", "status": "WAIT_SELLER_SEND_GOODS", "modified": "2026-11-11 00:00:00",
            "created": "2026-11-11 00:00:00", "total_fee": "1.00", "payment": f"{PHONE}.5.5",  # fails mapping
            "receiver_mobile": PHONE, "receiver_name": "王小明", "receiver_address": "北京市朝阳区某路1号",
            "buyer_message": f"call me on {OTHER_PHONE} or {PHONE}",
        }
        ingest_records(hub.engine, hub.source(shop), [hostile])
        log = get_logger("test")
        log.info("explicit attempt", session=shop.session.reveal(), receiver_mobile=PHONE,
                 url=f"{shop.gateway}?sign=ABCDEF&session={shop.session.reveal()}")
        logging.getLogger("urllib3.connectionpool").debug("GET /?app_secret=%s", shop.app_secret.reveal())
        log.error("failure text", error=f"boom with {PHONE} and {shop.app_secret.reveal()}")
    finally:
        configure_logging("WARNING")
    text = buffer.getvalue()
    assert "window read" in text and "record quarantined" in text and "retrying" in text  # it did log
    secrets = [shop.app_key.reveal(), shop.app_secret.reveal(), shop.session.reveal()]
    for sink in hub.settings.sinks:
        secrets.append(sink.app_secret.reveal())
    for needle in [PHONE, OTHER_PHONE, "13900001111", "王小明", "北京市朝阳区某路1号", *secrets]:
        assert needle not in text, f"{needle!r} leaked into the logs"
    assert "[redacted]" in text
