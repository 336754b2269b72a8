"""SKU mapping to master SKUs (explicit, bundles, auto-match), and what an order's state means for fulfilment:
presale waits for the final payment, COD carries the amount to collect, refunded orders and lines never ship."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import ConfigError
from hub.processing.plan import plan_order
from hub.processing.skus import ChannelSku, load_skus, parse_import
from tests.processing.factory import NOW, order, rules, skus

TEE = ("SKU-001-RED-M", 1, 7900)


def plan(o, tables=None, *rule_items):
    return plan_order(o, tables or skus(), rules(*rule_items), now=NOW)


def test_a_bundle_expands_into_its_components_with_the_line_s_money_split_by_list_price():
    tables = skus(bundles={"GIFTSET": {"components": [{"sku": "SKU-001-RED-M", "qty": 1},
                                                      {"sku": "SKU-005-WHT-F", "qty": 2}]}})
    o = order(("GIFTSET", 3, 9900), shipping_fee=1000, paid_total=28700, discount_total=1000,
              line_overrides={0: {"line_paid": 27700}})
    p = plan(o, tables)
    lines = p.groups[0].lines
    assert [(line.master_sku, line.qty, line.bundle) for line in lines] == [
        ("SKU-001-RED-M", 3, "GIFTSET"), ("SKU-005-WHT-F", 6, "GIFTSET")]
    # weights 7900 : 2 x 2990 -> the 27700 fen of goods and 1000 fen of freight split 7900:5980, exactly
    assert [line.goods_fen for line in lines] == [15766, 11934]
    assert [line.shipping_fen for line in lines] == [569, 431]
    assert sum(line.allocated_paid_fen for line in lines) == 28700
    assert ("sku-map", "bundle") in [(d.rule, d.action) for d in p.decisions]


def test_explicit_mappings_win_over_auto_match_and_the_most_specific_shop_wins():
    tables = skus(channel_skus=[
        {"merchant_code": "6901234567890", "master": "SKU-001-RED-M"},
        {"channel": "tmall", "shop": "tm-flagship", "merchant_code": "6901234567890", "master": "SKU-002-BLU-30"},
        {"platform_sku_id": "5000000099", "master": "SKU-005-WHT-F"},
    ])
    assert plan(order(("6901234567890", 1, 100)), tables).groups[0].lines[0].master_sku == "SKU-002-BLU-30"
    assert plan(order(("6901234567890", 1, 100), shop_id="tm-outlet"), tables).groups[0].lines[0].master_sku == \
        "SKU-001-RED-M"
    by_id = order(("WHATEVER", 1, 100), line_overrides={0: {"platform_sku_id": "5000000099"}})
    assert plan(by_id, tables).groups[0].lines[0].master_sku == "SKU-005-WHT-F"


def test_an_unmapped_merchant_code_blocks_the_order_grouped_by_that_code():
    p = plan(order(TEE, ("6901234567890", 1, 9900), ("6909999999999", 1, 100)))
    assert p.status == "blocked"
    assert p.group_key == "unmapped sku 6901234567890"
    assert p.missing == ["6901234567890", "6909999999999"]
    stale = skus(channel_skus=[{"merchant_code": "OLD-1", "master": "SKU-099-GONE"}])
    # a mapping to a code the catalogue no longer has (skus.yaml refuses this; an old import may still say it)
    assert plan(order(("OLD-1", 1, 100)), stale).group_key == "unknown master sku SKU-099-GONE"


def test_presale_orders_wait_for_the_final_payment_then_release():
    deposit = plan(order(TEE, status="PENDING_PAYMENT", presale_stage="deposit_paid"))
    assert deposit.status == "waiting" and deposit.decisions[-1].rule == "presale"
    assert "final payment" in deposit.decisions[-1].detail
    assert plan(order(TEE, presale_stage="final_paid")).status == "released"
    assert plan(order(TEE, status="PENDING_PAYMENT")).status == "waiting"   # any unpaid order waits


def test_a_cod_order_carries_the_amount_to_collect_split_over_its_parcels():
    cod = plan(order(TEE, ("SKU-002-BLU-30", 1, 19900), shipping_fee=1000, is_cod=True))
    assert cod.cod_amount_fen == 28800 and cod.groups[0].cod_amount_fen == 28800
    part_paid = order(TEE, is_cod=True, payments=[{"payment_id": "p1", "method": "alipay", "amount": 2000}])
    assert plan(part_paid).cod_amount_fen == 5900
    assert plan(order(TEE)).cod_amount_fen == 0


def test_orders_cancelled_or_refunded_before_shipping_are_never_released_and_refunded_lines_are_left_out():
    for status in ("CANCELLED", "CLOSED_REFUNDED"):
        p = plan(order(TEE, status=status))
        assert p.status == "cancelled" and p.groups == []
    partly = plan(order(TEE, ("SKU-002-BLU-30", 1, 19900), line_overrides={1: {"refund_status": "SUCCESS"}}))
    assert partly.status == "released"
    assert [line.master_sku for line in partly.groups[0].lines] == ["SKU-001-RED-M"]
    assert sum(a.allocated_paid_fen for a in partly.allocation) == 27800  # finance still sees every line
    everything = plan(order(TEE, line_overrides={0: {"refund_status": "SUCCESS"}}))
    assert everything.status == "cancelled"


def test_an_order_the_channel_already_shipped_needs_nothing_more():
    assert plan(order(TEE, status="SHIPPED")).status == "closed"


def test_skus_yaml_refuses_unknown_keys_and_dangling_references_with_their_lines(tmp_path: Path):
    path = tmp_path / "skus.yaml"
    path.write_text("masters:\n  A: {name: a}\nchannel_skus:\n  - {merchant_code: X, master: A, note: hi}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_skus(path)
    assert [p.render("f") for p in exc.value.problems][0].startswith("f:4: channel_skus[0].note: Extra inputs")
    path.write_text("masters:\n  A: {}\nbundles:\n  BOX:\n    components:\n      - {sku: B}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_skus(path)
    assert exc.value.problems[0].render("f") == ("f:6: bundles.BOX.components[0].sku: component B is not a master "
                                                  "SKU -> add it under masters: or fix the code")


def test_an_import_file_is_read_from_csv_or_yaml_and_every_bad_row_is_named(tmp_path: Path):
    csv_file = tmp_path / "map.csv"
    csv_file.write_text("\ufeffmerchant_code,master_sku,shop\n6901234567890,SKU-001-RED-M,\n,SKU-002-BLU-30,x\n",
                        encoding="utf-8")
    entries, problems = parse_import(csv_file)
    assert entries == [ChannelSku(merchant_code="6901234567890", master="SKU-001-RED-M")]
    assert [p.render("map.csv") for p in problems] == [
        "map.csv:3: row 3: Value error, give exactly one of merchant_code or platform_sku_id"]
    yaml_file = tmp_path / "map.yaml"
    yaml_file.write_text("channel_skus:\n  - {channel: tmall, platform_sku_id: '59', master: SKU-005-WHT-F}\n",
                         encoding="utf-8")
    assert parse_import(yaml_file)[0][0].key == ("platform_sku_id", "59")
