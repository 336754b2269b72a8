"""The Pinduoduo connector end to end against the in-process sandbox: windowed sync with every PDD fault class
switched on, the compensation sweep, fetch by id through the CLI, token refresh, and the pure parts (classify, exact
double-yuan money). Every sync test ends with 0 lost and 0 duplicated against the sandbox's record of truth."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from connectors.pdd import client as pdd_client
from connectors.pdd.mapping_functions import pdd_yuan
from hub.cli import app
from hub.config import load_settings
from hub.errors import ConfigurationError, RecordError, TransientError
from hub.runtime import Hub
from hub.store import schema as t
from hub.store.schema_aftersales import refunds
from tests.hub.helpers import set_faults

SHANGHAI = ZoneInfo("Asia/Shanghai")
runner = CliRunner()


@pytest.fixture(autouse=True)
def _forget_refreshed_tokens():
    pdd_client._GRANTS.clear()
    yield
    pdd_client._GRANTS.clear()


def write_pdd_config(path: Path, sandbox_url: str, db_url: str, *, refresh: bool = True, **sync) -> Path:
    from sandbox.configuration import orderhub_config

    data = orderhub_config(sandbox_url, db_url, channels=("pdd",))
    for shop in data["shops"]:
        shop["sync"].update({"initial_lookback_hours": 1, "settle_seconds": 0, **sync})
        shop["http"] = {"timeout_s": 3, "attempts": 6}
        if not refresh:
            shop.pop("refresh_token", None)
    for sink in data["sinks"]:
        sink["http"] = {"timeout_s": 3, "attempts": 4}
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def create(sandbox_url: str, shop: str = "pdd-flagship", count: int = 1, ago_s: float = 60, **extra) -> list[str]:
    at = (datetime.now(SHANGHAI) - timedelta(seconds=ago_s)).strftime("%Y-%m-%d %H:%M:%S")
    resp = requests.post(f"{sandbox_url}/_sandbox/orders", timeout=30,
                         json={"channel": "pdd", "shop": shop, "count": count, "at": at, **extra})
    resp.raise_for_status()
    return resp.json()["ids"]


def stored(engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [(r.shop, r.order_id) for r in conn.execute(
            sa.select(t.orders.c.shop, t.orders.c.order_id).where(t.orders.c.channel == "pdd"))]


def assert_nothing_lost_or_duplicated(sandbox_url: str, engine) -> dict:
    """Every PDD order of the truth is in the hub exactly once, or (malformed) in open quarantine."""
    truth = requests.get(f"{sandbox_url}/_sandbox/truth", timeout=30).json()["channels"]["pdd"]
    in_hub = stored(engine)
    assert len(in_hub) == len(set(in_hub)), "an order is in the hub twice"
    with engine.connect() as conn:
        quarantined = conn.execute(sa.select(t.quarantine.c.shop, t.quarantine.c.external_id, t.quarantine.c.group_key)
                                   .where(t.quarantine.c.channel == "pdd", t.quarantine.c.status == "open")).all()
    lost, malformed = [], 0
    for shop, data in truth.items():
        for order_sn, order in data["orders"].items():
            if order["malformed"]:
                malformed += 1
                assert (shop, order_sn) not in in_hub, f"malformed {order_sn} stored as an order"
                if order["malformed_kind"] == "missing_order_sn":
                    assert any(q.shop == shop and q.external_id is None for q in quarantined), order_sn
                else:
                    assert (shop, order_sn) in {(q.shop, q.external_id) for q in quarantined}, order_sn
            elif (shop, order_sn) not in in_hub:
                lost.append(order_sn)
    assert not lost, f"lost: {lost}"
    return {"in_hub": len(in_hub), "malformed": malformed, "reasons": {q.group_key for q in quarantined}}


def test_every_pdd_fault_at_once_ends_with_every_order_in_the_hub_exactly_once(tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    hub = Hub(load_settings(write_pdd_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, page_size=4)), engine)
    flagship = [sn for ago in (300, 240, 180, 120) for sn in create(sandbox.url, count=4, ago_s=ago)]
    outlet = create(sandbox.url, shop="pdd-outlet", count=5, ago_s=100)
    for kind in ("unknown_status", "bad_amount", "missing_order_sn"):
        create(sandbox.url, count=1, ago_s=90, malformed=kind)
    set_faults(sandbox.url, pdd__late_index_s=6)
    late = create(sandbox.url, count=3, ago_s=30)  # invisible to the list for 6 s
    visible_at = time.monotonic() + 6.5
    set_faults(sandbox.url, pdd__late_index_s=0, pdd__page_shift={"calls": 4, "by": 1},
               pdd__throttle={"calls": 2, "ban_seconds": 0.2}, pdd__expire_tokens=True,
               pdd__timeout_after_success={"calls": 1, "methods": ["pdd.order.number.list.increment.get"],
                                           "sleep_s": 4})

    first = hub.sync(channel="pdd")
    assert {r.shop for r in first} == {"pdd-flagship", "pdd-outlet"} and all(r.stopped is None for r in first)
    held = {sn for _, sn in stored(engine)}
    assert set(flagship + outlet) <= held  # shifted pages, throttling, a lost reply, expired tokens: nothing lost
    assert not set(late) & held  # not indexed yet: only the sweep can find them
    assert len(pdd_client._GRANTS) == 2  # both shops met 10019 and refreshed their token once

    time.sleep(max(0.0, visible_at - time.monotonic()))
    swept = hub.sweep(channel="pdd")
    assert sum(r.result.new for r in swept) == 3 and set(late) <= {sn for _, sn in stored(engine)}
    again = hub.sweep(channel="pdd")
    assert sum(r.result.new + r.result.changed for r in again) == 0

    counts = assert_nothing_lost_or_duplicated(sandbox.url, engine)
    assert counts["in_hub"] == 16 + 5 + 3 and counts["malformed"] == 3
    assert {"unmapped order_status=9", "invalid paid_total"} <= counts["reasons"], counts["reasons"]
    faults = requests.get(f"{sandbox.url}/_sandbox/faults", timeout=10).json()
    assert faults["pdd.page_shift"]["calls"] == 0 and faults["pdd.throttle"]["calls"] == 0  # they all fired


def test_a_pdd_order_is_fetched_by_id_and_orderhub_sync_runs_the_pdd_channel(tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    config = write_pdd_config(tmp_path / "orderhub.yaml", sandbox.url, db_url)
    old = create(sandbox.url, count=2, ago_s=7200)  # older than the first lookback: a sync does not see it
    result = runner.invoke(app, ["sync", "--config", str(config), "--channel", "pdd", "--shop", "pdd-flagship",
                                 "--order-id", old[0]])
    assert result.exit_code == 0, result.output
    assert {sn for _, sn in stored(engine)} == {old[0]}
    fresh = create(sandbox.url, shop="pdd-outlet", count=3)
    result = runner.invoke(app, ["sync", "--config", str(config), "--channel", "pdd"])
    assert result.exit_code == 0, result.output
    assert {sn for _, sn in stored(engine)} == set(fresh) | {old[0]}
    missing = runner.invoke(app, ["sync", "--config", str(config), "--channel", "pdd", "--shop", "pdd-flagship",
                                  "--order-id", "260101-000000000000000"])
    assert missing.exit_code != 0


def test_pdd_after_sales_are_synced_onto_their_order_line_and_follow_its_status(tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    hub = Hub(load_settings(write_pdd_config(tmp_path / "orderhub.yaml", sandbox.url, db_url)), engine)
    sn, other = create(sandbox.url, count=2, ago_s=120)
    hub.sync(shop="pdd-flagship")
    for order_sn, change in ((sn, {"amount": "10.00", "status": 2}), (other, {"status": 7, "type": 3})):
        requests.post(f"{sandbox.url}/_sandbox/orders/pdd/{order_sn}/modify", json={"refund": change},
                      timeout=10).raise_for_status()
    time.sleep(1.1)
    hub.sync(shop="pdd-flagship")
    requests.post(f"{sandbox.url}/_sandbox/orders/pdd/{sn}/modify", json={"refund": {"status": 10}},
                  timeout=10).raise_for_status()
    time.sleep(1.1)
    hub.sync(shop="pdd-flagship")
    with engine.connect() as conn:
        rows = {r.order_id: r for r in conn.execute(sa.select(refunds).where(refunds.c.channel == "pdd"))}
        events = [r.event_type for r in conn.execute(sa.select(t.outbox.c.event_type).where(
            t.outbox.c.entity == "refund").order_by(t.outbox.c.id))]
    assert set(rows) == {sn, other}
    done = rows[sn]
    assert (done.status, done.requested_amount, done.refunded_amount) == ("SUCCESS", 1000, 1000)
    assert done.line_id.startswith(f"{sn}-")
    assert (rows[other].status, rows[other].type) == ("WAIT_RETURN", "return_refund")
    assert sorted(events) == ["refund.changed", "refund.requested", "refund.requested"]
    truth = requests.get(f"{sandbox.url}/_sandbox/truth", timeout=10).json()["channels"]["pdd"]["pdd-flagship"]
    assert {r["order_sn"] for r in truth["refunds"].values()} == set(rows)
    assert_nothing_lost_or_duplicated(sandbox.url, engine)


def test_an_expired_token_without_a_refresh_token_names_the_shop_and_how_to_reauthorise(tmp_path, sandbox, db_url,
                                                                                         engine):
    config = write_pdd_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, refresh=False)
    hub = Hub(load_settings(config), engine)
    set_faults(sandbox.url, pdd__expire_tokens=["pdd-outlet"])
    with pytest.raises(ConfigurationError) as caught:
        hub.sync(shop="pdd-outlet")
    assert caught.value.attributes["shop"] == "pdd-outlet" and "re-authorise" in caught.value.how_to_fix
    hub.sync(shop="pdd-flagship")  # the other shop is unaffected


def test_classify_turns_pdd_answers_into_the_hub_error_kinds():
    def error(code: int, sub_code: str = "", sub_msg: str = "") -> dict:
        return {"error_response": {"error_code": code, "error_msg": "x", "sub_code": sub_code, "sub_msg": sub_msg}}

    with pytest.raises(TransientError) as throttled:
        pdd_client.classify("m", 200, error(70031, sub_msg="This ban will last for 7 more seconds"), shop="s")
    assert throttled.value.attributes["retry_after"] == 7
    with pytest.raises(ConfigurationError) as token:
        pdd_client.classify("m", 200, error(10019), shop="pdd-outlet")
    assert token.value.attributes["token"] and "pdd-outlet" in token.value.message
    with pytest.raises(ConfigurationError):  # an unknown code is read by its sub_code
        pdd_client.classify("m", 200, error(12345, "isv.access-token-revoked"), shop="s")
    with pytest.raises(RecordError):
        pdd_client.classify("m", 200, error(20004), shop="s")
    with pytest.raises(TransientError):
        pdd_client.classify("m", 502, None, shop="s")
    assert pdd_client.classify("m", 200, {"order_info_get_response": {"order_info": {}}}, shop="s") == {
        "order_info": {}}


def test_double_yuan_money_is_read_exactly_or_refused():
    assert [pdd_yuan(v) for v in (12.3, 0.07, 198.0, 3, 1999.99)] == [1230, 7, 19800, 300, 199999]
    for bad in (0.1 + 0.2, "12.30", True, None, 1.005):
        with pytest.raises(ValueError):
            pdd_yuan(bad)
