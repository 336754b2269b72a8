"""The mapping workbench end to end against the sandbox (TOP + Qimen WMS over HTTP), through the command line:
quarantine by missing key, bulk import that releases, replay with diff, split shipments, approvals, check and test.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import requests
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

import mappings
from hub.cli import app
from hub.demo import truth_counts
from hub.store import schema as t
from tests.conftest import write_sandbox_config
from tests.hub.helpers import count, create_orders, set_faults, truth

runner = CliRunner()
BARCODE = "6901234567890"


def cli(*args: str, config: Path, code: int = 0) -> str:
    result = runner.invoke(app, [*args, "--config", str(config)])
    assert result.exit_code == code, result.output
    return result.output


def own_mappings(tmp_path: Path, sandbox, db_url: str, *, rules: str | None = None,
                 presale: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """A config whose mappings_dir is a copy of the packaged mappings (optionally with other rules)."""
    folder = tmp_path / "mappings"
    shutil.copytree(mappings.PACKAGED, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    if rules is not None:
        (folder / "rules.yaml").write_text(rules, encoding="utf-8")
    if presale:
        skus = yaml.safe_load((folder / "skus.yaml").read_text(encoding="utf-8"))
        for code in presale:
            skus["masters"][code]["presale"] = True
        (folder / "skus.yaml").write_text(yaml.safe_dump(skus, allow_unicode=True), encoding="utf-8")
    config = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url)
    data = yaml.safe_load(config.read_text())
    data["mappings_dir"] = str(folder)
    config.write_text(yaml.safe_dump(data, allow_unicode=True))
    return config, folder


def delivery_orders(sandbox_url: str) -> dict:
    return truth(sandbox_url)["wms"]["delivery_orders"]


def test_300_orders_quarantined_on_one_missing_sku_are_all_released_by_one_mapping_import(
        sandbox, config_path, engine, tmp_path):
    create_orders(sandbox.url, count=150, lines=[{"sku": BARCODE, "num": 1}, {"sku": "SKU-003-GRY-M", "num": 1}])
    create_orders(sandbox.url, shop="tm-outlet", count=150, lines=[{"sku": BARCODE, "num": 2}])
    cli("run", "--once", config=config_path)
    assert delivery_orders(sandbox.url) == {}  # the WMS would refuse the code: nothing was sent

    listing = cli("quarantine", "list", config=config_path)
    assert f"unmapped sku {BARCODE}" in listing and "300" in listing
    assert "tmall/tm-flagship, tmall/tm-outlet" in listing
    assert f"unmapped sku {BARCODE}: 300" in cli("status", config=config_path)
    assert f"unmapped sku {BARCODE}: 300 orders across 2 shops" in cli("process", config=config_path)

    mapping = tmp_path / "barcodes.csv"
    mapping.write_text(f"merchant_code,master\n{BARCODE},SKU-001-RED-M\n", encoding="utf-8")
    imported = cli("mapping", "import", str(mapping), config=config_path)
    assert "imported 1 mapping(s)" in imported
    assert "planned 300 stuck order(s) again: 300 released as 300 document(s)" in imported
    assert count(engine, t.quarantine, t.quarantine.c.status == "open") == 0
    exported = cli("mapping", "export", config=config_path)
    assert f'{{"merchant_code": "{BARCODE}", "master": "SKU-001-RED-M"}}' in exported

    cli("run", "--once", config=config_path)
    cli("run", "--once", config=config_path)  # the shipped status comes back: nothing new downstream
    dos = delivery_orders(sandbox.url)
    assert len(dos) == 300 and all(d["created"] == 1 for d in dos.values())
    assert {line["item_code"] for d in dos.values() for line in d["lines"]} == {"SKU-001-RED-M", "SKU-003-GRY-M"}
    counts = truth_counts(truth(sandbox.url), engine)
    assert (counts["written_back"], counts["lost"], counts["duplicated"]) == (300, 0, 0)


def test_replay_shows_the_diff_of_order_plan_and_documents_and_sends_only_when_asked(sandbox, db_url, engine,
                                                                                      tmp_path):
    set_faults(sandbox.url, wms__auto_ship=False)
    config, folder = own_mappings(tmp_path, sandbox, db_url)
    (blocked,) = create_orders(sandbox.url, lines=[{"sku": BARCODE, "num": 1}])
    (sent,) = create_orders(sandbox.url, lines=[{"sku": "SKU-002-BLU-32", "num": 1}])
    cli("run", "--once", config=config)
    assert list(delivery_orders(sandbox.url)) == [f"TMALL-{sent}"]

    mapping = tmp_path / "barcodes.yaml"
    mapping.write_text(f"channel_skus:\n  - {{merchant_code: '{BARCODE}', master: SKU-001-RED-M}}\n")
    assert "nothing released" in cli("mapping", "import", str(mapping), "--no-release", config=config)
    (folder / "rules.yaml").write_text("warehouses: [WH01, WH02]\nrules:\n  - name: all-from-wh02\n"
                                       "    kind: route\n    warehouses: [WH02]\n", encoding="utf-8")
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    shown = cli("replay", "--shop-day", f"tm-flagship:{today}", config=config)
    assert f"tmall:{blocked} (tm-flagship) plan blocked -> released" in shown
    assert "~ status: blocked (unmapped sku 6901234567890) -> released" in shown
    assert "+ [all-from-wh02] route: WH02: always" in shown
    assert f"+ TMALL-{blocked}: new document to WH02: SKU-001-RED-M x1" in shown
    assert f'TMALL-{sent} ~ deliveryOrder.warehouseCode: "WH01" -> "WH02"' in shown
    assert "changed after delivery" in shown  # the warehouse already has it: it would not be silently re-sent
    assert "nothing stored or sent" in shown
    assert list(delivery_orders(sandbox.url)) == [f"TMALL-{sent}"]  # nothing was sent

    sent_now = cli("replay", "--order", f"tmall:{blocked}", "--dispatch", config=config)
    assert "re-planned: 0 event(s), 1 plan(s) changed (released 1)" in sent_now
    dos = delivery_orders(sandbox.url)
    assert dos[f"TMALL-{blocked}"]["warehouse_code"] == "WH02" and dos[f"TMALL-{blocked}"]["created"] == 1
    cli("replay", "--order", f"tmall:{blocked}", "--dispatch", config=config)  # again: nothing new
    assert delivery_orders(sandbox.url)[f"TMALL-{blocked}"]["created"] == 1


def test_replaying_after_a_field_map_fix_shows_the_canonical_change_and_flags_a_hold_the_warehouse_has(
        sandbox, db_url, engine, tmp_path):
    set_faults(sandbox.url, wms__auto_ship=False)
    config, folder = own_mappings(tmp_path, sandbox, db_url)
    (tid,) = create_orders(sandbox.url, lines=[{"sku": "SKU-006-BEI-F", "num": 1}])
    requests.post(f"{sandbox.url}/_sandbox/orders/tmall/{tid}/modify", json={"seller_memo": "不要放快递柜"},
                  timeout=10).raise_for_status()
    cli("run", "--once", config=config)
    field_map = folder / "tmall.yaml"
    field_map.write_text(field_map.read_text(encoding="utf-8").replace(
        "buyer_note: {path: buyer_message, optional: true}", "buyer_note: {path: [buyer_message, seller_memo]}"))
    (folder / "rules.yaml").write_text("rules:\n  - {name: hold-notes, kind: hold, when: {buyer_note: present}}\n")
    shown = cli("replay", "--order", f"tmall:{tid}", config=config)
    assert '~ buyer_note: null -> "不要放快递柜"' in shown
    assert "+ [hold-notes] hold: buyer note present" in shown
    assert f"- TMALL-{tid}: no longer sent" in shown and "'held after delivery'" in shown
    cli("replay", "--order", f"tmall:{tid}", "--dispatch", config=config)
    with engine.connect() as conn:
        assert conn.execute(sa.select(t.orders.c.document)).scalar()["buyer_note"] == "不要放快递柜"
        row = conn.execute(sa.select(t.quarantine).where(t.quarantine.c.entity == "order_processing")).one()
    assert row.group_key == "held after delivery" and "stop or cancel it in the WMS" in row.reason


def test_a_split_order_goes_out_as_numbered_delivery_orders_and_each_parcel_is_written_back(sandbox, db_url,
                                                                                             engine, tmp_path):
    rules = "rules:\n  - name: presale-apart\n    kind: split\n    by: presale_line\n"
    config, _folder = own_mappings(tmp_path, sandbox, db_url, rules=rules, presale=("SKU-010-BLK-F",))
    (tid,) = create_orders(sandbox.url, lines=[{"sku": "SKU-001-RED-M", "num": 1}, {"sku": "SKU-010-BLK-F", "num": 1}])
    cli("run", "--once", config=config)
    dos = delivery_orders(sandbox.url)
    assert sorted(dos) == [f"TMALL-{tid}-1", f"TMALL-{tid}-2"]
    assert [line["item_code"] for line in dos[f"TMALL-{tid}-2"]["lines"]] == ["SKU-010-BLK-F"]
    total = sum(float(d["total_amount"]) for d in dos.values())
    with engine.connect() as conn:
        assert round(total * 100) == conn.execute(sa.select(t.orders.c.paid_total)).scalar()
    assert count(engine, t.shipments) == 2
    trade = truth(sandbox.url)["channels"]["tmall"]["tm-flagship"]["orders"][tid]
    assert trade["status"] == "WAIT_BUYER_CONFIRM_GOODS"  # both parcels written back with their own lines


def test_a_held_order_is_released_by_an_approval_that_is_recorded(sandbox, db_url, engine, tmp_path):
    rules = "rules:\n  - name: hold-big-orders\n    kind: hold\n    when: {paid_total_above_fen: 50000}\n"
    config, _folder = own_mappings(tmp_path, sandbox, db_url, rules=rules)
    (tid,) = create_orders(sandbox.url, lines=[{"sku": "SKU-004-BLK-M", "num": 2}])
    cli("run", "--once", config=config)
    assert delivery_orders(sandbox.url) == {}
    assert "orders held / waiting │ 1 / 0" in cli("status", "--strict", config=config, code=1)
    assert "needs --order" in cli("release", "--approve", "li.lei", config=config, code=2)
    released = cli("release", "--order", f"tmall:{tid}", "--approve", "li.lei", config=config)
    assert "1 released as 1 document(s)" in released
    cli("run", "--once", config=config)
    assert delivery_orders(sandbox.url)[f"TMALL-{tid}"]["created"] == 1
    with engine.connect() as conn:
        detail = conn.execute(sa.select(t.audit_trail.c.detail).where(t.audit_trail.c.action == "plan.released")
                              ).scalar()
    assert detail["decisions"][0]["action"] == "hold-approved" and "li.lei" in detail["decisions"][0]["detail"]


def test_mapping_check_and_test_pass_on_the_packaged_files_and_fail_loudly_on_a_broken_one(sandbox, db_url, tmp_path):
    config, folder = own_mappings(tmp_path, sandbox, db_url)
    checked = cli("mapping", "check", config=config)
    assert "ok" in checked and "master SKUs: 20" in checked
    tested = cli("mapping", "test", config=config)
    assert "0 failed" in tested and "FAIL" not in tested
    (folder / "rules.yaml").write_text("rules:\n  - name: notes\n    kind: hold\n    when: {buyer_notes: present}\n")
    broken = runner.invoke(app, ["mapping", "check", "--config", str(config)])
    assert broken.exit_code == 3
    assert f"{folder / 'rules.yaml'}:4: rules[0].when.buyer_notes (rule notes)" in broken.output
    assert runner.invoke(app, ["run", "--once", "--config", str(config)]).exit_code == 3  # stops before 3 a.m.
    (folder / "rules.yaml").write_text("rules:\n  - {name: notes, kind: hold, when: {buyer_note: absent}}\n")
    failing = runner.invoke(app, ["mapping", "test", "--config", str(config)])
    assert failing.exit_code == 1 and "FAIL" in failing.output and "status held, expected released" in failing.output
