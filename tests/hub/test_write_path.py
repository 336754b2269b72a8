"""The write path's fast parts write what the plain ones would: bulk insert against Core insert, orjson against
``json.dumps``, the integer money parser against Decimal, and time-ordered hub ids."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa

from hub import jsontext
from hub.ingest import new_hub_id, raw_json
from hub.mapping import yuan_to_fen
from hub.store import schema as t
from hub.store.bulk import insert_rows

SHANGHAI = timezone(timedelta(hours=8))


def _order_row(hub_id: str, order_id: str, when: datetime) -> dict:
    return {"hub_id": hub_id, "channel": "tmall", "shop": "tm-flagship", "order_id": order_id,
            "status": "paid", "raw_status": "WAIT_SELLER_SEND_GOODS", "version": 1, "updated_at": when,
            "placed_at": when, "paid_at": None, "paid_total": 19800, "currency": "CNY",
            "document": {"receiver": {"city": "杭州市"}, "note": None, "lines": [{"qty": 2}]},
            "last_written_at": when, "first_seen_at": when}


def test_bulk_insert_stores_byte_for_byte_what_a_core_insert_stores(engine):
    moments = [datetime(2026, 11, 11, 0, 0, 0, tzinfo=SHANGHAI), datetime(2026, 11, 11, 8, 3, 4, 56, tzinfo=UTC),
               datetime(2026, 1, 1, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5)))]
    core = [_order_row(f"core{i}", f"c{i}", when) for i, when in enumerate(moments)]
    bulk = [_order_row(f"bulk{i}", f"b{i}", when) for i, when in enumerate(moments)]
    with engine.begin() as conn:
        conn.execute(sa.insert(t.orders), core)
        insert_rows(conn, t.orders, bulk)
    columns = [c for c in t.orders.columns if c.key not in ("hub_id", "order_id")]
    # compare what the database holds as text, not what SQLAlchemy reads back: formats must match for the
    # version guard's comparisons (updated_at < ?) to hold between rows written either way
    as_text = [sa.cast(c, sa.String(4000)).label(c.key) for c in columns]
    with engine.connect() as conn:
        stored = {row.hub_id: row for row in conn.execute(sa.select(t.orders.c.hub_id, *as_text))}
    for i in range(len(moments)):
        assert stored[f"bulk{i}"][1:] == stored[f"core{i}"][1:]


def test_bulk_insert_of_no_rows_writes_nothing(engine):
    with engine.begin() as conn:
        insert_rows(conn, t.orders, [])
        assert conn.execute(sa.select(sa.func.count()).select_from(t.orders)).scalar() == 0


RECORDS = [
    {"tid": 4234567890123, "receiver_name": "张三", "payment": "198.00", "orders": {"order": [{"oid": 1}]},
     "flags": [True, False, None], "ratio": 0.25, "emoji": "🎁", "quote": 'a"b\\c\n\t\u0001', "z": {}, "a": []},
    {"nested": {"b": 1, "a": {"d": [1, 2, {"y": "x", "x": "y"}]}}, "line_sep": "\u2028\u2029", "slash": "a/b"},
]


@pytest.mark.parametrize("record", RECORDS)
def test_canonical_json_is_what_json_dumps_with_sorted_keys_writes(record):
    expected = json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    assert jsontext.canonical(record) == expected


@pytest.mark.parametrize("record", [{"big": 2**70}, {1: "int key", 2: "b"}, {"when": Decimal("1.10")}])
def test_canonical_json_falls_back_to_the_standard_library_where_orjson_refuses(record):
    assert json.loads(jsontext.canonical(record)) == json.loads(
        json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str))


def test_a_record_with_a_lone_surrogate_is_still_refused_with_its_payload_kept():
    raw, error = raw_json({"tid": "1", "receiver_name": "bad \udcff text"})
    assert error is not None and "not valid Unicode" in error.message
    assert json.loads(raw)["receiver_name"] == "bad \udcff text"


@pytest.mark.parametrize("value", ["0", "0.00", "1.", "1.5", "1.05", "198.00", "007.10", " 12.34 ", "12.345", "-1.00",
                                   "+1.00", ".5", "1e2", "١٢", "1 .0", "", "abc", "9999999999999999.99", 7, 12.5])
def test_money_parses_exactly_as_the_decimal_rules_do(value):
    def by_decimal(v):
        if isinstance(v, float):
            raise ValueError("float")
        amount = Decimal(str(v).strip())
        fen = amount * 100
        if not amount.is_finite() or fen != fen.to_integral_value():
            raise ValueError("decimals")
        return int(fen)

    try:
        expected = by_decimal(value)
    except (ValueError, ArithmeticError):
        with pytest.raises(ValueError):
            yuan_to_fen(value)
        return
    assert yuan_to_fen(value) == expected


def test_hub_ids_are_version_7_uuids_that_sort_by_creation_time():
    ids = []
    for _ in range(3):
        ids.append(new_hub_id())
        sleep_until = datetime.now(UTC) + timedelta(milliseconds=2)
        while datetime.now(UTC) < sleep_until:
            pass
    assert ids == sorted(ids)
    assert all(len(i) == 32 and uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    millis = int(ids[0][:12], 16)
    assert abs(millis / 1000 - datetime.now(UTC).timestamp()) < 5
