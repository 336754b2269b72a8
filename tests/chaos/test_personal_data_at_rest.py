"""Buyer personal data encrypted at rest: with a key configured, no table holds a plaintext phone, name or address,
and the warehouse still receives the real receiver (checked on the bytes that crossed the wire to the WMS).

The channels of the sandbox serve masked receivers (as TOP, JOS and WeChat do for most apps), so the test seeds
plaintext personal data into real records read from the sandbox, as a decrypting connector would hand them over.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import yaml

from hub import crypto
from hub.config import load_settings
from hub.errors import ConfigurationError
from hub.ingest import ingest_records, load_order
from hub.runtime import Hub
from hub.store.schema import metadata
from tests.chaos.proxy import TcpProxy
from tests.conftest import write_sandbox_config
from tests.hub.helpers import create_orders, truth

KEY = "chaos-test-key-8b1f0c6e9a2d4e57b3"
PHONES = ["13800138001", "13912345602", "15011112203", "18688886604"]
NAMES = ["王小明", "李雷", "韩梅梅", "张伟"]
ADDRESSES = ["朝阳区建国路88号3单元", "文三路478号华星大厦", "中关村大街1号", "南京西路1266号"]


@pytest.fixture
def no_key_after():
    yield
    crypto.configure(None)  # the key is process-wide: leave the next test as it found the process


def every_stored_text(engine) -> str:
    """Every row of every table, as text: what someone with a copy of the database would read."""
    parts = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                parts.append(json.dumps([v if isinstance(v, (dict, list)) else str(v) for v in row],
                                        ensure_ascii=False))
    return "\n".join(parts)


def test_with_a_key_the_database_holds_no_plaintext_phone_and_the_wms_still_gets_the_real_receiver(
        tmp_path, sandbox, db_url, engine, monkeypatch, no_key_after):
    target = urlsplit(sandbox.url)
    with TcpProxy(target.hostname, target.port, record=True) as wire:
        config = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url)
        data = yaml.safe_load(config.read_text())
        data["personal_data"] = {"encryption_key": {"env": "ORDERHUB_TEST_PII_KEY"}}
        for sink in data["sinks"]:  # the WMS is reached through the recording proxy
            sink["url"] = sink["url"].replace(f":{target.port}/", f":{wire.port}/")
        config.write_text(yaml.safe_dump(data, allow_unicode=True))
        monkeypatch.setenv("ORDERHUB_TEST_PII_KEY", KEY)
        hub = Hub(load_settings(config), engine)
        shop = hub.settings.shop("tmall", "tm-flagship")
        stream = hub.source_connector("tmall").open_streams(shop)["orders"]

        good = create_orders(sandbox.url, count=len(PHONES))
        (bad,) = create_orders(sandbox.url, count=1, malformed="bad_amount")
        records = []
        for tid, phone, name, address in zip([*good, bad], [*PHONES, "13700001105"], [*NAMES, "赵六"],
                                             [*ADDRESSES, "人民路5号"]):
            record = stream.fetch_one(tid)
            record.update(receiver_mobile=phone, receiver_name=name, receiver_address=address,
                          buyer_message=f"到了请打 {phone}")
            records.append(record)
        result = ingest_records(hub.engine, hub.source(shop, stream), records)
        assert (result.new, result.quarantined) == (len(PHONES), 1)
        hub.run_once()  # sync (same versions: unchanged), process, dispatch to the WMS, feedback, write-back

        state = truth(sandbox.url)
        sent = wire.recorded().decode("utf-8", errors="replace")
    for tid, phone in zip(good, PHONES):
        (delivery,) = [d for d in state["wms"]["delivery_orders"].values() if tid in d["source_order_codes"]]
        assert delivery["created"] == 1
        assert phone in sent  # the warehouse was told the real number, in clear, over its own protocol
        assert state["writebacks"]["tmall"][tid]["accepted"] == 1

    stored = every_stored_text(engine)
    assert crypto.PREFIX in stored
    for needle in [*PHONES, "13700001105", *NAMES, "赵六", *ADDRESSES, "人民路5号", KEY]:
        assert needle not in stored, f"{needle!r} is stored in clear"
    with engine.connect() as conn:
        hub_ids = dict(conn.execute(sa.select(sa.text("order_id"), sa.text("hub_id")).select_from(sa.text("orders"))
                                    ).all())
        for tid, phone, name in zip(good, PHONES, NAMES):
            order, _version = load_order(conn, hub_ids[tid])
            assert (order.receiver.phone, order.receiver.name) == (phone, name)
            assert order.buyer_note == f"到了请打 {phone}"

        crypto.configure(None)  # a process without the key cannot read the receivers, and says why
        with pytest.raises(ConfigurationError, match="no personal_data.encryption_key"):
            load_order(conn, hub_ids[good[0]])
        crypto.use_key("another-key-of-enough-length")
        with pytest.raises(ConfigurationError, match="cannot be opened with the configured key"):
            load_order(conn, hub_ids[good[0]])


def test_without_a_key_nothing_is_sealed_and_a_short_key_is_refused_with_how_to_fix(no_key_after):
    crypto.configure(None)
    record = {"tid": 13812345678, "receiver_mobile": "13812345678"}
    assert crypto.seal_record(record) is record
    crypto.use_key("short")
    with pytest.raises(ConfigurationError) as caught:
        crypto.seal_record(record)
    assert "token_urlsafe" in caught.value.how_to_fix


def test_sealing_is_deterministic_keeps_ids_and_is_idempotent(no_key_after):
    crypto.use_key(KEY)
    record = {"tid": 13812345678, "tid_str": "13812345678", "receiver_mobile": "13812345678",
              "orders": {"order": [{"oid": 13812345679, "title": "T恤 13812345678"}]}}
    once = crypto.seal_record(record)
    assert once == crypto.seal_record(record) and crypto.seal_record(once) == once
    assert once["tid"] == 13812345678 and once["tid_str"] == "13812345678"  # ids stay readable
    assert once["orders"]["order"][0]["oid"] == 13812345679
    assert "13812345678" not in json.dumps(once["orders"]) and crypto.open_all(once) == {
        **record, "tid": 13812345678, "orders": {"order": [{"oid": 13812345679, "title": "T恤 13812345678"}]}}
