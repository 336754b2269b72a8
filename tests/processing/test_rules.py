"""Every rule kind of mappings/rules.yaml, decided by the pure plan function, each decision naming its rule."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

import mappings
from hub.config import ConfigError
from hub.processing.plan import plan_order
from hub.processing.rules import load_rules
from hub.processing.skus import load_skus
from tests.processing.factory import NOW, order, rules, skus

TEE = ("SKU-001-RED-M", 1, 7900)
JEANS = ("SKU-002-BLU-30", 2, 19900)


def plan(o, *rule_items, stock=None, approved_by=None, tables=None, now=NOW):
    return plan_order(o, tables or skus(), rules(*rule_items), now=now, stock=stock, approved_by=approved_by)


def test_a_plain_paid_order_is_released_as_one_delivery_order_coded_from_the_channel_order():
    p = plan(order(TEE, JEANS, order_id="3817"))
    assert p.status == "released" and p.decisions == []
    (group,) = p.groups
    assert group.document_code == "TMALL-3817" and group.warehouse is None
    assert [(line.master_sku, line.qty) for line in group.lines] == [("SKU-001-RED-M", 1), ("SKU-002-BLU-30", 2)]


@pytest.mark.parametrize("condition, fields, detail", [
    ({"buyer_note": "present"}, {"buyer_note": "请尽快发货"}, "buyer note present"),
    ({"paid_total_above_fen": 40000}, {}, "paid 47700 fen > 40000 fen"),
    ({"address_incomplete": True}, {"receiver": {"city": None}}, "address missing city"),
    ({"status_in": ["ON_HOLD"]}, {"status": "ON_HOLD"}, "status ON_HOLD"),
    ({"seller_flag_in": [1]}, {"seller_flag": 1}, "seller flag 1"),
])
def test_a_hold_rule_holds_the_order_and_names_itself_and_why(condition, fields, detail):
    rule = {"name": "check-first", "kind": "hold", "when": condition}
    assert plan(order(TEE), rule).status == "released"
    held = plan(order(TEE, JEANS, **fields), rule)
    assert held.status == "held"
    assert [(d.rule, d.action, d.detail) for d in held.decisions] == [("check-first", "hold", detail)]


def test_an_approval_releases_overridable_holds_but_not_the_channel_s_own_on_hold_or_a_firm_rule():
    note = {"name": "read-the-note", "kind": "hold", "when": {"buyer_note": "present"}}
    firm = {"name": "fix-the-address", "kind": "hold", "when": {"address_incomplete": True}, "overridable": False}
    approved = plan(order(TEE, buyer_note="gift wrap"), note, firm, approved_by="li.lei")
    assert approved.status == "released"
    assert [(d.rule, d.action) for d in approved.decisions] == [("read-the-note", "hold-approved")]
    assert plan(order(TEE, receiver={"address": ""}), note, firm, approved_by="li.lei").status == "held"
    on_hold = plan(order(TEE, status="ON_HOLD", buyer_note="x"), note, approved_by="li.lei")
    assert on_hold.status == "held" and ("order-status", "hold") in [(d.rule, d.action) for d in on_hold.decisions]


def test_a_refund_in_progress_is_held_by_the_packaged_rule():
    packaged = load_rules(mappings.path("rules.yaml"))
    o = order(TEE, JEANS, line_overrides={1: {"refund_status": "REQUESTED"}})
    p = plan_order(o, skus(), packaged, now=NOW)
    assert p.status == "held" and p.decisions[0].rule == "hold-refund-in-progress"


def test_a_review_delay_waits_until_its_time_then_releases():
    delay = {"name": "review-delay", "kind": "delay", "minutes": 10}
    o = order(TEE, paid_at=NOW - timedelta(minutes=3))
    waiting = plan(o, delay)
    assert waiting.status == "waiting" and waiting.recheck_at == NOW + timedelta(minutes=7)
    assert waiting.decisions[0].rule == "review-delay"
    assert plan(o, delay, now=NOW + timedelta(minutes=8)).status == "released"


def test_route_rules_pick_the_warehouse_by_province_whatever_its_suffix_first_match_wins():
    north = {"name": "north-from-wh02", "kind": "route", "when": {"province_in": ["北京", "河北省"]},
             "warehouses": ["WH02"]}
    rest = {"name": "rest-from-wh01", "kind": "route", "warehouses": ["WH01"]}
    beijing = plan(order(TEE, receiver={"province": "北京市"}), north, rest)
    assert beijing.groups[0].warehouse == "WH02"
    assert (beijing.decisions[0].rule, beijing.decisions[0].detail) == ("north-from-wh02", "WH02: province 北京市")
    assert plan(order(TEE), north, rest).groups[0].warehouse == "WH01"


def test_routing_by_stock_takes_the_first_candidate_that_has_everything_and_says_when_it_cannot_know():
    route = {"name": "by-stock", "kind": "route", "warehouses": ["WH01", "WH02"], "by": "stock"}
    stock = {"WH01": {"SKU-001-RED-M": 5}, "WH02": {"SKU-001-RED-M": 5, "SKU-002-BLU-30": 9}}
    assert plan(order(TEE, JEANS), route, stock=stock).groups[0].warehouse == "WH02"
    blind = plan(order(TEE, JEANS), route)
    assert blind.groups[0].warehouse == "WH01" and "no stock snapshot" in blind.decisions[0].detail


def test_split_by_warehouse_sends_each_line_where_it_is_in_stock_as_numbered_delivery_orders():
    route = {"name": "by-stock", "kind": "route", "warehouses": ["WH01", "WH02"], "by": "stock"}
    split = {"name": "split-by-warehouse", "kind": "split", "by": "warehouse"}
    stock = {"WH01": {"SKU-001-RED-M": 5}, "WH02": {"SKU-002-BLU-30": 9}}
    o = order(TEE, JEANS, order_id="77", shipping_fee=1000)
    assert len(plan(o, route, stock=stock).groups) == 1  # without the split rule: one parcel, priority warehouse
    p = plan(o, route, split, stock=stock)
    assert [(g.document_code, g.warehouse, [line.master_sku for line in g.lines]) for g in p.groups] == [
        ("TMALL-77-1", "WH01", ["SKU-001-RED-M"]), ("TMALL-77-2", "WH02", ["SKU-002-BLU-30"])]
    assert sum(g.paid_fen for g in p.groups) == o.paid_total
    assert "split-by-warehouse" in p.rules_fired()


def test_split_by_presale_line_ships_in_stock_lines_now_and_the_presale_line_apart():
    split = {"name": "presale-apart", "kind": "split", "by": "presale_line"}
    p = plan(order(TEE, ("SKU-011-NEW-F", 1, 5000), order_id="88"), split)
    assert [(g.document_code, g.presale, [line.master_sku for line in g.lines]) for g in p.groups] == [
        ("TMALL-88-1", False, ["SKU-001-RED-M"]), ("TMALL-88-2", True, ["SKU-011-NEW-F"])]


def test_a_gift_rule_adds_a_free_line_to_the_first_parcel():
    gift = {"name": "socks-over-400", "kind": "gift", "when": {"paid_total_above_fen": 40000},
            "sku": "SKU-005-WHT-F", "qty": 2}
    assert plan(order(TEE), gift).groups[0].lines[-1].master_sku == "SKU-001-RED-M"
    p = plan(order(TEE, JEANS), gift)
    line = p.groups[0].lines[-1]
    assert (line.master_sku, line.qty, line.is_gift, line.allocated_paid_fen) == ("SKU-005-WHT-F", 2, True, 0)
    assert sum(g.paid_fen for g in p.groups) == 47700
    assert p.decisions[0].rule == "socks-over-400"


def test_a_merge_rule_marks_single_parcel_orders_of_one_buyer_and_address_as_merge_candidates():
    merge = {"name": "merge-same-buyer", "kind": "merge", "when": {"channel_in": ["tmall"]}, "within_minutes": 30}
    a, b = plan(order(TEE, order_id="1"), merge), plan(order(JEANS, order_id="2"), merge)
    other_address = plan(order(TEE, order_id="3", receiver={"receiver_ref": "oaid-2"}), merge)
    assert a.merge.key == b.merge.key != other_address.merge.key
    assert plan(order(TEE, is_cod=True), merge).merge is None      # one COD amount per parcel: never merged
    assert plan(order(TEE), {**merge, "when": {"channel_in": ["jd"]}}).merge is None


def test_the_packaged_tables_auto_match_the_sandbox_catalogue_by_merchant_code():
    packaged_skus = load_skus(mappings.path("skus.yaml"))
    packaged_rules = load_rules(mappings.path("rules.yaml"), known_sku=packaged_skus.is_known)
    p = plan_order(order(TEE, ("SKU-010-BLK-F", 1, 12900)), packaged_skus, packaged_rules, now=NOW)
    assert p.status == "released" and p.decisions == []


def test_a_misspelt_condition_kind_or_reference_fails_at_load_with_its_line_and_rule(tmp_path: Path):
    path = tmp_path / "rules.yaml"
    path.write_text("warehouses: [WH01]\nrules:\n  - name: notes\n    kind: hold\n    when: {buyer_notes: present}\n"
                    "  - name: north\n    kind: rout\n  - name: far\n    kind: route\n    warehouses: [WH09]\n"
                    "  - name: socks\n    kind: gift\n    sku: NOPE\n", encoding="utf-8")
    with pytest.raises(ConfigError) as schema:
        load_rules(path)
    rendered = [p.render(str(path)) for p in schema.value.problems]
    assert any(":5: rules[0].when.buyer_notes (rule notes): Extra inputs are not permitted" in r for r in rendered)
    assert any(":7: rules[1].kind (rule north): Input tag 'rout'" in r and "use one of the kinds" in r
               for r in rendered)
    path.write_text("warehouses: [WH01]\nrules:\n  - name: far\n    kind: route\n    warehouses: [WH09]\n"
                    "  - name: socks\n    kind: gift\n    sku: NOPE\n", encoding="utf-8")
    with pytest.raises(ConfigError) as refs:
        load_rules(path, known_sku=skus().is_known)
    rendered = [p.render(str(path)) for p in refs.value.problems]
    assert rendered == [f"{path}:5: rules[0].warehouses[0] (rule far): unknown warehouse 'WH09' -> add it to "
                        f"warehouses: (WH01)",
                        f"{path}:8: rules[1].sku (rule socks): unknown master SKU 'NOPE' -> add it to masters: in "
                        f"skus.yaml or fix the code"]
