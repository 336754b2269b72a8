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


SEEDED = {"13800138001": "王小明", "15011112203": "韩梅梅"}
SEEDED_ADDRESS = "朝阳区建国路88号3单元"


def test_a_full_run_with_failures_leaks_seeded_personal_data_and_secrets_into_no_log_line_and_no_error(
        tmp_path, sandbox, db_url, engine, monkeypatch):
    """Every step of a run, with faults on every side and encryption at rest on: the captured logs (DEBUG, stdlib
    included), the errors raised, and every error text the hub stores (quarantine, parked dispatches, source
    health) hold none of the seeded phones, names, address, nor any credential or the encryption key."""
    import sqlalchemy as sa
    import yaml

    from hub import crypto
    from hub.config import load_settings
    from hub.errors import OrderHubError
    from hub.runtime import Hub
    from hub.store import schema as t
    from tests.conftest import write_sandbox_config

    key = "redaction-test-key-5e0c1d2b7a9f"
    config = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url)
    data = yaml.safe_load(config.read_text())
    data["personal_data"] = {"encryption_key": {"env": "ORDERHUB_TEST_PII_KEY"}}
    config.write_text(yaml.safe_dump(data, allow_unicode=True))
    monkeypatch.setenv("ORDERHUB_TEST_PII_KEY", key)
    buffer = io.StringIO()
    configure_logging("DEBUG", json=True, stream=buffer)
    errors: list[str] = []
    try:
        hub = Hub(load_settings(config), engine)
        shop = hub.settings.shop("tmall", "tm-flagship")
        stream = hub.source_connector("tmall").open_streams(shop)["orders"]
        tids = create_orders(sandbox.url, count=len(SEEDED))
        records = []
        for tid, (phone, name) in zip(tids, SEEDED.items()):
            record = stream.fetch_one(tid)
            record.update(receiver_mobile=phone, receiver_name=name, receiver_address=SEEDED_ADDRESS,
                          buyer_message=f"call {phone}")
            records.append(record)
        broken = dict(records[0], tid=1, tid_str="1", payment=f"{PHONE}.5.5", receiver_mobile=PHONE)
        ingest_records(hub.engine, hub.source(shop, stream), [*records, broken])
        create_orders(sandbox.url, count=2, malformed="bad_amount")
        set_faults(sandbox.url, top__throttle={"calls": 2, "ban_seconds": 1}, top__http_500={"calls": 1},
                   wms__fail_create={"calls": 40}, wms__timeout_after_success={"calls": 1, "mode": "drop"})
        hub.run_once()  # the WMS refuses: events park with its error text
        set_faults(sandbox.url, top__expire_sessions=True)
        try:
            hub.run_once()
        except OrderHubError as exc:  # expired sessions stop the run with a ConfigurationError
            errors.append(str(exc))
            errors.append(str(exc.to_dict()))
        with engine.connect() as conn:
            for row in conn.execute(sa.select(t.quarantine.c.reason, t.quarantine.c.group_key,
                                              t.quarantine.c.attributes)):
                errors.append(str(tuple(row)))
            for row in conn.execute(sa.select(t.dispatches.c.last_error).where(t.dispatches.c.last_error.isnot(None))):
                errors.append(str(row.last_error))
            for row in conn.execute(sa.select(t.source_health.c.message, t.source_health.c.how_to_fix)):
                errors.append(str(tuple(row)))
    finally:
        configure_logging("WARNING")
        crypto.configure(None)
    text = buffer.getvalue()
    assert "record quarantined" in text and "retrying" in text  # the failures were met, and logged
    assert any("parked" in e or "failure" in e or "system-error" in e for e in errors)
    secrets = [shop.app_key.reveal(), shop.app_secret.reveal(), shop.session.reveal(), key]
    secrets += [sink.app_secret.reveal() for sink in hub.settings.sinks]
    everything = text + "\n".join(errors)
    for needle in [*SEEDED, *SEEDED.values(), SEEDED_ADDRESS, PHONE, *secrets]:
        assert needle not in everything, f"{needle!r} leaked"
