"""Fuzzed channel payloads through the real mapping and ingest path (hypothesis).

Real Tmall records read from the sandbox are mutated (wrong types, missing fields, huge values, bad encodings,
hostile strings, deep nesting) and ingested in one page with good records: nothing raises, every record is
accounted for (landed or quarantined), every quarantined record has a reason and its raw payload, and the good
records of the page land.
"""

from __future__ import annotations

import copy
import json
import os

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.ingest import ingest_records
from hub.store import schema as t
from tests.hub.helpers import create_orders

EXAMPLES = int(os.environ.get("ORDERHUB_CHAOS_EXAMPLES", "150"))  # `make chaos` runs many more
HOSTILE = [
    "", " ", "\x00", "\u202e\u0635\u0648\u0631\u0629", "'; DROP TABLE orders; --", "<script>alert(1)</script>",
    "{{7*7}}", "${jndi:ldap://x}", "\ud800", "\udcff\udcfe", "é" * 5000, "💥" * 300, "NaN", "-1", "1e309",
    "9" * 400, "2026-02-30 25:61:61", "null", "\r\n\t", "%s%s%s%n",
]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(HOSTILE),
    st.text(max_size=40), st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=4),
)


def nested(depth: int):
    value: object = "bottom"
    for i in range(depth):
        value = {"n": value} if i % 2 else [value]
    return value


VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=8), SCALARS, max_size=3),
    st.integers(min_value=1, max_value=400).map(nested),
)
# (path into the record, new value or None to delete)
PATHS = ["tid", "tid_str", "status", "modified", "created", "pay_time", "payment", "total_fee", "post_fee",
         "discount_fee", "receiver_mobile", "receiver_name", "buyer_message", "seller_memo", "orders",
         "orders.order", "orders.order.0", "orders.order.0.oid", "orders.order.0.num", "orders.order.0.price",
         "orders.order.0.outer_sku_id", "orders.order.0.status", "orders.order.0.title", "type"]
MUTATION = st.tuples(st.sampled_from(PATHS), st.one_of(st.just(None), VALUES.map(lambda v: ("set", v))))
WHOLE = st.one_of(st.none(), st.integers(), st.text(max_size=20), st.lists(SCALARS, max_size=3),
                  st.integers(min_value=1, max_value=400).map(nested))


def mutate(record: dict, mutations) -> dict:
    record = copy.deepcopy(record)
    for path, change in mutations:
        parts = path.split(".")
        node = record
        for part in parts[:-1]:
            try:
                node = node[int(part)] if isinstance(node, list) else node[part]
            except (KeyError, IndexError, TypeError, ValueError):
                node = None
                break
        if node is None or not isinstance(node, (dict, list)):
            continue
        last = parts[-1]
        if isinstance(node, list) and not last.isdigit():
            continue
        key = int(last) if isinstance(node, list) else last
        if isinstance(node, list) and not -len(node) <= key < len(node):
            continue
        if change is None:
            if isinstance(node, dict):
                node.pop(key, None)
            else:
                node.pop(key)
        else:
            node[key] = change[1]
    return record


def test_fuzzed_records_are_quarantined_with_a_reason_and_the_good_records_of_the_page_land(hub, sandbox, engine):
    shop = hub.settings.shop("tmall", "tm-flagship")
    stream = hub.source_connector("tmall").open_streams(shop)["orders"]
    source = hub.source(shop, stream)
    tids = create_orders(sandbox.url, count=6)
    originals = [stream.fetch_one(tid) for tid in tids]
    base, goods = originals[0], originals[1:]
    seen = {"quarantined": 0, "landed": 0}

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(st.one_of(st.lists(MUTATION, min_size=1, max_size=4).map(lambda m: mutate(base, m)), WHOLE),
                    min_size=1, max_size=3))
    def one_page(fuzzed):
        with engine.connect() as conn:
            before = conn.execute(sa.select(sa.func.count()).select_from(t.quarantine)).scalar()
        page = [*goods[:2], *fuzzed, *goods[2:]]
        result = ingest_records(engine, source, page)  # must not raise, whatever the page holds
        assert result.received == len(page)
        # every record is accounted for; copies of one order within a page collapse into its newest version
        distinct = len({json.dumps(r, sort_keys=True, default=str) for r in page if isinstance(r, dict)})
        accounted = result.new + result.changed + result.unchanged + result.quarantined
        assert min(distinct, len(page) - len(fuzzed)) <= accounted <= len(page)
        assert result.quarantined >= sum(1 for r in fuzzed if not isinstance(r, dict))
        with engine.connect() as conn:
            stored = set(conn.execute(sa.select(t.orders.c.order_id)).scalars())
            rows = list(conn.execute(sa.select(t.quarantine).where(t.quarantine.c.id > before)))
        assert {str(g["tid"]) for g in goods} <= stored  # the good records of the page landed
        for row in rows:
            assert row.reason and row.group_key and row.error_kind == "record" and row.status == "open"
            json.loads(row.payload)  # the raw payload is kept, as JSON
        seen["quarantined"] += result.quarantined
        seen["landed"] += result.new

    one_page()
    # the deepest JSON a channel's parser still accepts, and text decoded with the wrong codec, in one page
    deep = mutate(base, [("seller_memo", ("set", nested(990)))])
    mojibake = mutate(base, [("buyer_message", ("set", b"\xff\xfe\xe4\xbd".decode("utf-8", "surrogateescape")))])
    built = mutate(base, [("seller_memo", ("set", nested(5000)))])  # deeper than JSON allows: built in code
    result = ingest_records(engine, source, [deep, mojibake, built, *goods])
    assert result.quarantined == 3 and result.unchanged == len(goods)
    with engine.connect() as conn:
        reasons = set(conn.execute(sa.select(t.quarantine.c.group_key).where(t.quarantine.c.id > 0)).scalars())
    assert {"unserialisable record", "invalid text encoding"} <= reasons
    assert seen["quarantined"] > 30  # the fuzzing did reach the quarantine, many times
    with engine.connect() as conn:
        doubles = conn.execute(sa.select(t.orders.c.order_id).group_by(t.orders.c.order_id)
                               .having(sa.func.count() > 1)).all()
    assert doubles == []
