"""The connector contract: the same promises, checked against every source connector in the registry with the sandbox.

Parametrized from ``connectors.registry.SOURCES``, so a connector joins the suite the moment its registry line is
added. Per-channel differences (which sandbox knob provokes late indexing, a page shift, throttling, token expiry)
live in the connector's profile ``connectors/<name>/contract.py`` (see connectors/contract.py); a connector without
one fails here with what to add, and a capability its profile declares not applicable is skipped with that reason.
Every scenario ends by comparing the hub with the sandbox's record of truth: 0 lost, 0 duplicated.
"""

from __future__ import annotations

import importlib
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
import sqlalchemy as sa
import yaml

import mappings
from connectors.contract import ContractProfile, Fault, NotApplicable
from connectors.registry import SOURCES
from hub.config import load_settings
from hub.connector import SourceConnector
from hub.entities import model_for
from hub.errors import ConfigurationError, RecordError
from hub.runtime import Hub
from hub.store import schema as t
from hub.sync import get_cursor

CHANNELS = sorted(SOURCES)
SHANGHAI = ZoneInfo("Asia/Shanghai")


def profile_of(channel: str, connector: SourceConnector | None = None) -> ContractProfile:
    """The connector's ``CONTRACT``, found next to its settings module; a failing test saying what to add if not."""
    connector = connector or SOURCES[channel]
    package = connector.settings_type.__module__.rpartition(".")[0] or f"connectors.{channel}"
    try:
        module = importlib.import_module(f"{package}.contract")
    except ModuleNotFoundError as exc:
        if exc.name != f"{package}.contract":
            raise
        pytest.fail(f"source connector {channel!r} has no contract profile: add {package.replace('.', '/')}/"
                    "contract.py with CONTRACT = ContractProfile(shop=..., late_index=..., page_shift=..., "
                    "throttle=..., token_expiry=...) (see connectors/contract.py and connectors/README.md)")
    contract = getattr(module, "CONTRACT", None)
    if not isinstance(contract, ContractProfile):
        pytest.fail(f"{package}.contract must define CONTRACT = ContractProfile(...), found {contract!r}")
    return contract


def capability(contract: ContractProfile, name: str) -> Fault:
    value = contract.capability(name)
    if isinstance(value, NotApplicable):
        pytest.skip(f"not applicable: {value.reason}")
    return value


# -- driving the sandbox and the hub ---------------------------------------------------------------------------------

def set_faults(url: str, knobs) -> None:
    if knobs:
        requests.post(f"{url}/_sandbox/faults", json=dict(knobs), timeout=10).raise_for_status()


def create_orders(url: str, channel: str, contract: ContractProfile, count: int, ago_s: int = 60) -> list[str]:
    at = (datetime.now(SHANGHAI) - timedelta(seconds=ago_s)).strftime("%Y-%m-%d %H:%M:%S")
    resp = requests.post(f"{url}/_sandbox/orders", timeout=30, json={
        "channel": channel, "shop": contract.shop, "count": count, "at": at, **contract.create_body})
    resp.raise_for_status()
    return [str(i) for i in resp.json()["ids"]]


def make_hub(tmp_path: Path, sandbox_url: str, db_url: str, engine, channel: str, contract: ContractProfile,
             fault: Fault | None = None) -> Hub:
    from sandbox.configuration import SHOP_BUILDERS, orderhub_config

    if channel not in SHOP_BUILDERS:
        pytest.fail(f"sandbox/configuration.py has no shop builder for {channel!r}: add one to SHOP_BUILDERS")
    data = orderhub_config(sandbox_url, db_url, channels=(channel,))
    shops = [s for s in data["shops"] if s["shop"] == contract.shop]
    assert shops, f"the sandbox configuration has no shop {contract.shop!r} for {channel}"
    shop = shops[0]
    shop["streams"] = [contract.orders_stream]
    shop["sync"].update({"initial_lookback_hours": 1, "lag_seconds": 0, "settle_seconds": 0,
                         "page_size": contract.page_size, **((fault.sync if fault else {}) or {})})
    shop["http"] = {"timeout_s": 3, "attempts": 4}
    for key, value in {**contract.shop_settings, **((fault.shop if fault else {}) or {})}.items():
        if value is None:
            shop.pop(key, None)
        else:
            shop[key] = value
    for sink in data["sinks"]:
        sink["http"] = {"timeout_s": 3, "attempts": 4}
    data["shops"] = [shop]
    path = tmp_path / "orderhub.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return Hub(load_settings(path), engine)


def truth_ids(url: str, channel: str, contract: ContractProfile) -> set[str]:
    truth = requests.get(f"{url}/_sandbox/truth", timeout=30).json()
    orders = truth["channels"][channel].get(contract.shop, {}).get("orders", {})
    return {str(order_id) for order_id, entry in orders.items() if contract.is_order(entry)}


def hub_ids(engine, channel: str, shop: str) -> list[str]:
    with engine.connect() as conn:
        return [r.order_id for r in conn.execute(sa.select(t.orders.c.order_id).where(
            t.orders.c.channel == channel, t.orders.c.shop == shop))]


def assert_nothing_lost_or_duplicated(url: str, engine, channel: str, contract: ContractProfile) -> None:
    expected = truth_ids(url, channel, contract)
    held = hub_ids(engine, channel, contract.shop)
    lost = expected - set(held)
    duplicated = {i for i in held if held.count(i) > 1}
    assert not lost and not duplicated, f"lost {sorted(lost)}, duplicated {sorted(duplicated)}"
    assert set(held) <= expected, f"the hub holds orders the channel does not have: {set(held) - expected}"


def sweep_until_settled(hub: Hub, shop: str, rounds: int = 3) -> None:
    for _ in range(rounds):
        reports = hub.sweep(shop=shop)
        if all(r.still_open == 0 for r in reports):
            return


# -- the contract ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channel", CHANNELS)
def test_the_connector_has_a_contract_profile_that_names_every_capability(channel, tmp_path, sandbox, db_url,
                                                                          engine):
    contract = profile_of(channel)
    for name in ("late_index", "page_shift", "throttle", "token_expiry"):
        value = contract.capability(name)
        assert isinstance(value, Fault) or value.reason.strip(), f"{name}: a not-applicable needs its reason"
    hub = make_hub(tmp_path, sandbox.url, db_url, engine, channel, contract)
    streams = SOURCES[channel].open_streams(hub.settings.shop(channel, contract.shop))
    assert streams[contract.orders_stream].entity == "order"


@pytest.mark.parametrize("channel", CHANNELS)
def test_every_mapping_case_maps_to_a_valid_model_or_to_its_stated_quarantine(channel):
    connector = SOURCES[channel]
    from hub.mapping import load_mapping

    for entity, file in {"order": connector.mapping_file, **connector.mapping_files}.items():
        load_mapping(mappings.path(file), model_for(entity), transforms=connector.transforms,
                     computes=connector.computes)  # every map the connector names loads and checks
    case_file = mappings.path("cases") / f"{channel}.yaml"
    assert case_file.exists(), f"add mappings/cases/{channel}.yaml with recorded payloads of {channel}"
    cases = (yaml.safe_load(case_file.read_text(encoding="utf-8")) or {}).get("cases") or []
    assert cases, f"mappings/cases/{channel}.yaml has no cases"
    order_map = load_mapping(mappings.path(connector.mapping_file), model_for("order"),
                             transforms=connector.transforms, computes=connector.computes)
    mapped = 0
    for case in cases:
        record = case.get("record")
        if record is None:
            import json

            record = json.loads((case_file.parent / case["payload"]).read_text(encoding="utf-8"))
        context = {"channel": channel, "shop": str(case.get("shop", "case"))}
        quarantine = (case.get("expect") or {}).get("quarantine")
        if quarantine:
            with pytest.raises(RecordError) as caught:
                order_map.to_model(record, context)
            assert caught.value.attributes.get("group_key") == quarantine, case["name"]
        else:
            order = order_map.to_model(record, context)
            assert order.platform == channel and order.order_id, case["name"]
            mapped += 1
    assert mapped, f"mappings/cases/{channel}.yaml needs at least one case that maps"


@pytest.mark.parametrize("channel", CHANNELS)
def test_pagination_ends_and_every_page_is_read(channel, tmp_path, sandbox, db_url, engine):
    contract = profile_of(channel)
    hub = make_hub(tmp_path, sandbox.url, db_url, engine, channel, contract)
    ids = create_orders(sandbox.url, channel, contract, count=2 * contract.page_size + 1)
    shop = hub.settings.shop(channel, contract.shop)
    stream = SOURCES[channel].open_streams(shop)[contract.orders_stream]
    now = datetime.now(SHANGHAI)
    pages = []
    for page in stream.read_window(now - timedelta(minutes=10), now):
        pages.append(page)
        assert len(pages) < 100, "the reader does not stop paging"
    assert pages and pages[-1].is_last and not any(p.is_last for p in pages[:-1])
    assert len(pages) >= 2, "a window larger than one page must take more than one page"
    assert set(ids) <= {stream.external_id(r) for p in pages for r in p.records}
    report, = hub.sync(shop=contract.shop)
    assert report.result.new >= len(ids)
    assert_nothing_lost_or_duplicated(sandbox.url, engine, channel, contract)


@pytest.mark.parametrize("channel", CHANNELS)
def test_the_cursor_never_moves_back(channel, tmp_path, sandbox, db_url, engine):
    contract = profile_of(channel)
    hub = make_hub(tmp_path, sandbox.url, db_url, engine, channel, contract)
    create_orders(sandbox.url, channel, contract, count=2)
    key = (channel, contract.shop, contract.orders_stream)
    hub.sync(shop=contract.shop)
    with engine.connect() as conn:
        first = get_cursor(conn, *key)
    assert first is not None
    time.sleep(1.1)  # windows are whole seconds
    hub.sync(shop=contract.shop)
    with engine.connect() as conn:
        second = get_cursor(conn, *key)
    assert second >= first
    hub.sync(shop=contract.shop, now=first.replace(tzinfo=first.tzinfo or ZoneInfo("UTC")) - timedelta(hours=2))
    with engine.connect() as conn:
        assert get_cursor(conn, *key) == second  # a run with an older clock reads behind, never moves it back
    assert_nothing_lost_or_duplicated(sandbox.url, engine, channel, contract)


@pytest.mark.parametrize("channel", CHANNELS)
def test_replaying_a_window_changes_nothing(channel, tmp_path, sandbox, db_url, engine):
    contract = profile_of(channel)
    hub = make_hub(tmp_path, sandbox.url, db_url, engine, channel, contract)
    ids = create_orders(sandbox.url, channel, contract, count=3)
    hub.sync(shop=contract.shop)
    with engine.connect() as conn:
        before = (dict(conn.execute(sa.select(t.orders.c.order_id, t.orders.c.version)).all()),
                  conn.execute(sa.select(sa.func.count()).select_from(t.outbox)).scalar())
    assert set(ids) <= set(before[0])
    report, = hub.sweep(shop=contract.shop)  # the sweep re-reads every window through the same ingest path
    assert report.rescanned >= 1 and report.result.new == 0 and report.result.changed == 0
    assert report.result.unchanged >= len(ids)
    with engine.connect() as conn:
        after = (dict(conn.execute(sa.select(t.orders.c.order_id, t.orders.c.version)).all()),
                 conn.execute(sa.select(sa.func.count()).select_from(t.outbox)).scalar())
    assert after == before
    assert_nothing_lost_or_duplicated(sandbox.url, engine, channel, contract)


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_late_indexed_order_is_found_by_the_sweep(channel, tmp_path, sandbox, db_url, engine):
    contract = profile_of(channel)
    fault = capability(contract, "late_index")
    hub = make_hub(tmp_path, sandbox.url, db_url, engine, channel, contract, fault)
    hub.sync(shop=contract.shop)  # the cursor is at now before the late orders exist
    set_faults(sandbox.url, fault.knobs)
    ids = create_orders(sandbox.url, channel, contract, count=fault.count, ago_s=fault.ago_s)
    time.sleep(1.1)
    hub.sync(shop=contract.shop)
    if fault.first_pass_misses:
        assert not set(ids) & set(hub_ids(engine, channel, contract.shop)), "the knob did not hide the orders"
    time.sleep(fault.wait_s)
    sweep_until_settled(hub, contract.shop)
    assert set(ids) <= set(hub_ids(engine, channel, contract.shop))
    assert_nothing_lost_or_duplicated(sandbox.url, engine, channel, contract)


@pytest.mark.parametrize("channel", CHANNELS)
def test_a_page_shift_loses_nothing(channel, tmp_path, sandbox, db_url, engine):
    contract = profile_of(channel)
    fault = capability(contract, "page_shift")
    hub = make_hub(tmp_path, sandbox.url, db_url, engine, channel, contract, fault)
    ids = create_orders(sandbox.url, channel, contract, count=fault.count, ago_s=fault.ago_s)
    set_faults(sandbox.url, fault.knobs)
    hub.sync(shop=contract.shop)
    time.sleep(fault.wait_s)
    sweep_until_settled(hub, contract.shop)
    assert set(ids) <= set(hub_ids(engine, channel, contract.shop))
    assert_nothing_lost_or_duplicated(sandbox.url, engine, channel, contract)


@pytest.mark.parametrize("channel", CHANNELS)
def test_token_expiry_surfaces_as_a_configuration_error_naming_the_shop(channel, tmp_path, sandbox, db_url, engine):
    contract = profile_of(channel)
    fault = capability(contract, "token_expiry")
    hub = make_hub(tmp_path, sandbox.url, db_url, engine, channel, contract, fault)
    create_orders(sandbox.url, channel, contract, count=1)
    set_faults(sandbox.url, fault.knobs)
    with pytest.raises(ConfigurationError) as caught:
        hub.sync(shop=contract.shop)
    error = caught.value
    assert error.how_to_fix, "an expired token must say how to re-authorise"
    assert contract.shop in error.message or error.attributes.get("shop") == contract.shop
    with engine.connect() as conn:
        health = conn.execute(sa.select(t.source_health).where(t.source_health.c.shop == contract.shop)).first()
    assert health is not None and health.state == "configuration"  # visible in `orderhub status`, never silent


@pytest.mark.parametrize("channel", CHANNELS)
def test_throttling_is_waited_out(channel, tmp_path, sandbox, db_url, engine):
    contract = profile_of(channel)
    fault = capability(contract, "throttle")
    hub = make_hub(tmp_path, sandbox.url, db_url, engine, channel, contract, fault)
    ids = create_orders(sandbox.url, channel, contract, count=fault.count, ago_s=fault.ago_s)
    set_faults(sandbox.url, fault.knobs)
    report, = hub.sync(shop=contract.shop)
    assert report.stopped is None
    assert set(ids) <= set(hub_ids(engine, channel, contract.shop))
    assert_nothing_lost_or_duplicated(sandbox.url, engine, channel, contract)
