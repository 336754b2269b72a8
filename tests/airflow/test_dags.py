"""The DAG file builds every OrderHub DAG from the CLI's YAML, without I/O at parse time, and the tasks run the hub:
a batch sync DAG and the near-real-time DAG under dag.test() put sandbox orders into the hub and the WMS."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa
import yaml

from hub.errors import ConfigurationError, FatalError, InDoubtError, RecordError, TransientError
from hub.store import schema as t
from tests.airflow.conftest import ROOT
from tests.hub.helpers import create_orders, truth

OFFLINE_CONFIG = {
    "database_url": "mysql+pymysql://orderhub@db.invalid:3306/orderhub",  # never contacted at parse time
    "schedules": {"sync": "*/10 * * * *", "dispatch": "*/3 * * * *", "feedback": "*/7 * * * *"},
    "shops": [
        {"channel": "tmall", "shop": "tm-flagship", "gateway": "https://gw.invalid/router/rest",
         "app_key": {"env": "TMALL_APP_KEY"}, "app_secret": {"env": "TMALL_APP_SECRET_NOT_SET"},
         "session": {"airflow_connection": "tmall_tm_flagship", "field": "password"}},
        {"channel": "tmall", "shop": "tm-outlet", "gateway": "https://gw.invalid/router/rest",
         "app_key": {"env": "TMALL_APP_KEY"}, "app_secret": {"env": "TMALL_APP_SECRET_NOT_SET"},
         "session": {"airflow_connection": "tmall_tm_outlet", "field": "password"},
         "sync": {"start_from": "2026-11-01T00:00:00+08:00"}},
        {"channel": "tmall", "shop": "tm-other-app", "gateway": "https://gw.invalid/router/rest",
         "app_key": {"value": "99990000"}, "app_secret": {"env": "X_NOT_SET"}, "session": {"env": "Y_NOT_SET"}},
    ],
    "sinks": [{"kind": "qimen_wms", "name": "wms", "url": "https://wms.invalid/router", "customer_id": "C1",
               "app_key": {"env": "WMS_APP_KEY"}, "app_secret": {"env": "WMS_SECRET_NOT_SET"}}],
}

PARSE_OFFLINE = """
import json, socket, sys
def no_io(*a, **k):
    raise AssertionError("network I/O at DAG-parse time")
socket.socket.connect = no_io
socket.create_connection = no_io
from airflow.dag_processing.dagbag import DagBag  # Airflow's own metadata engine is created on import: allowed
import sqlalchemy, sqlalchemy.engine, hub.store
def no_engine(*a, **k):
    raise AssertionError("a database engine was created at DAG-parse time")
sqlalchemy.create_engine = sqlalchemy.engine.create_engine = hub.store.create_engine_for = no_engine
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "dags": {i: {"tasks": {t.task_id: t.pool for t in d.tasks}, "tags": sorted(d.tags),
                               "catchup": d.catchup, "timetable": type(d.timetable).__name__,
                               "start": d.start_date.isoformat(), "retries": d.default_args.get("retries")}
                           for i, d in bag.dags.items()}}))
"""


def _parse_offline(tmp_path, config: dict) -> dict:
    path = tmp_path / "orderhub.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "ORDERHUB_CONFIG": str(path), "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith(("TMALL_", "WMS_", "AIRFLOW_CONN_"))}
    result = subprocess.run([sys.executable, "-c", PARSE_OFFLINE, str(ROOT / "dags")], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_dag_file_builds_every_dag_from_the_yaml_with_no_io_and_no_credential_at_parse_time(tmp_path):
    parsed = _parse_offline(tmp_path, OFFLINE_CONFIG)
    assert parsed["errors"] == {}
    dags = parsed["dags"]
    assert set(dags) == {
        "orderhub_sync__tmall__tm-flagship__orders", "orderhub_sync__tmall__tm-outlet__orders",
        "orderhub_sync__tmall__tm-other-app__orders", "orderhub_nrt__tmall__tm-flagship",
        "orderhub_nrt__tmall__tm-outlet", "orderhub_nrt__tmall__tm-other-app", "orderhub_dispatch__wms",
        "orderhub_feedback", "orderhub_writeback", "orderhub_quarantine_replay", "orderhub_watch",
        "orderhub_compensation_sweep", "orderhub_push_intake", "orderhub_stock_push", "orderhub_reconciliation"}
    # one pool per platform app key: the two shops on TMALL_APP_KEY share one, the third app has its own
    flagship = dags["orderhub_sync__tmall__tm-flagship__orders"]
    assert flagship["tasks"] == {"pull": "orderhub-tmall-env-tmall_app_key"}
    assert dags["orderhub_sync__tmall__tm-outlet__orders"]["tasks"]["pull"] == "orderhub-tmall-env-tmall_app_key"
    assert dags["orderhub_sync__tmall__tm-other-app__orders"]["tasks"]["pull"] == "orderhub-tmall-99990000"
    assert dags["orderhub_nrt__tmall__tm-flagship"]["tasks"] == {"pull": "orderhub-tmall-env-tmall_app_key",
                                                                "dispatch_wms": "orderhub-qimen_wms-env-wms_app_key"}
    # batch windows are data intervals; a shop with start_from catches up from there, run by run
    assert flagship["timetable"] == "CronDataIntervalTimetable" and flagship["catchup"] is False
    outlet = dags["orderhub_sync__tmall__tm-outlet__orders"]
    assert outlet["catchup"] is True and outlet["start"].startswith("2026-10-31T16:00:00")
    assert dags["orderhub_nrt__tmall__tm-flagship"]["timetable"] == "DeltaTriggerTimetable"
    assert dags["orderhub_dispatch__wms"]["timetable"] == "AssetOrTimeSchedule"
    assert flagship["retries"] == 3 and "orderhub" in flagship["tags"]


def test_a_broken_configuration_shows_as_an_import_error_with_its_line(tmp_path):
    broken = {**OFFLINE_CONFIG, "shops": [{**OFFLINE_CONFIG["shops"][0], "window_minute": 5}]}
    parsed = _parse_offline(tmp_path, broken)
    (message,) = parsed["errors"].values()
    assert "window_minute" in message and "problem" in message


def test_the_optional_dags_appear_when_the_hub_offers_their_step(tmp_path, monkeypatch):
    from hub.config import load_settings
    from hub.runtime import Hub
    from orderhub_airflow.factory import build_dags
    from orderhub_airflow.options import AirflowOptions

    path = tmp_path / "orderhub.yaml"
    path.write_text(yaml.safe_dump(OFFLINE_CONFIG))
    options = AirflowOptions.from_env(path)
    built = build_dags(load_settings(path), options)
    # the hub has every optional step today: sweep, push intake, stock push, reconciliation
    assert {"orderhub_compensation_sweep", "orderhub_push_intake", "orderhub_stock_push",
            "orderhub_reconciliation"} <= set(built)
    monkeypatch.delattr(Hub, "reconcile")  # a hub without the finance room builds no reconciliation DAG
    dags = build_dags(load_settings(path), options)
    assert "orderhub_reconciliation" not in dags and "orderhub_stock_push" in dags


@pytest.mark.parametrize(("error", "retried"), [
    (ConfigurationError("session expired", how_to_fix="re-authorise tm-flagship", shop="tm-flagship"), False),
    (FatalError("unknown response shape"), False),
    (RecordError("escaped the quarantine"), False),
    (TransientError("throttled", retry_after=71), True),
    (InDoubtError("timeout after sending"), True),
])
def test_hub_error_kinds_decide_between_failing_fast_and_retrying(error, retried):
    from airflow.sdk.exceptions import AirflowException, AirflowFailException

    from orderhub_airflow.errors import error_kind, hub_errors

    with pytest.raises(AirflowException) as caught:
        with hub_errors("sync tmall/tm-flagship/orders"):
            raise error
    assert isinstance(caught.value, AirflowFailException) is (not retried)
    assert caught.value.kind == error.kind == error_kind(caught.value)
    assert f"[{error.kind}]" in str(caught.value)
    if isinstance(error, ConfigurationError):
        assert "re-authorise tm-flagship" in str(caught.value) and caught.value.attributes["shop"] == "tm-flagship"


def test_alerts_are_shaped_for_dingtalk_and_wecom_and_signed_for_dingtalk():
    from orderhub_airflow.alerts import message_body, signed_url

    ding = message_body("dingtalk", "OrderHub SLA breach", ["3 orders late"])
    assert ding == {"msgtype": "markdown", "markdown": {"title": "OrderHub SLA breach",
                                                        "text": "### OrderHub SLA breach\n\n- 3 orders late"}}
    assert message_body("wecom", "t", ["a"])["markdown"] == {"content": "### t\n\n- a"}
    url = signed_url("https://oapi.dingtalk.com/robot/send?access_token=x", "SECabc", now_ms=1700000000000)
    assert url.startswith("https://oapi.dingtalk.com/robot/send?access_token=x&timestamp=1700000000000&sign=")


def _dagbag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}, bag.import_errors
    return bag


def test_the_sync_dag_then_the_near_real_time_dag_bring_sandbox_orders_into_the_hub_and_the_wms(
        airflow_db, af_config, sandbox, engine):
    import pendulum

    bag = _dagbag()
    sync_dag = bag.dags["orderhub_sync__tmall__tm-flagship__orders"]
    run_after = pendulum.now("UTC")
    from airflow.timetables.interval import CronDataIntervalTimetable  # the scheduler-side twin of the SDK's

    interval = CronDataIntervalTimetable("*/5 * * * *", "UTC").infer_manual_data_interval(run_after=run_after)
    ago = int((pendulum.now("UTC") - interval.end).total_seconds())
    if ago < 5:  # just past a 5-minute boundary: leave room for an order after the interval's end
        time.sleep(5 - ago)
        ago = 5
    inside = create_orders(sandbox.url, count=5, ago_s=ago + 90)  # paid 90 s before the interval's end
    before = create_orders(sandbox.url, count=1, ago_s=ago + 600 + 60)  # before the first interval's start
    after_end = create_orders(sandbox.url, count=1, ago_s=max(ago - 30, 1))  # after the interval's end

    run = sync_dag.test(logical_date=run_after)
    assert run.state == "success"
    assert (run.data_interval_start, run.data_interval_end) == (interval.start, interval.end)
    # the first run reads its data interval: nothing before its start, nothing after its end
    assert _order_ids(engine) == set(inside)
    with engine.connect() as conn:
        assert conn.execute(sa.select(t.sync_cursors.c.position)).scalar() == interval.end
    assert truth(sandbox.url)["wms"]["delivery_orders"] == {}  # the batch sync pulls; dispatch is its own step

    more = create_orders(sandbox.url, count=2, ago_s=5)
    run = bag.dags["orderhub_nrt__tmall__tm-flagship"].test()
    assert run.state == "success"
    # near-real-time: from the cursor (minus the overlap) to now, then dispatch in the same run
    assert _order_ids(engine) == set(inside) | set(after_end) | set(more)
    delivered = {c for d in truth(sandbox.url)["wms"]["delivery_orders"].values() if d["created"] == 1
                 for c in d["source_order_codes"]}
    assert delivered == set(inside) | set(after_end) | set(more)
    assert not set(before) & delivered


def _order_ids(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(t.orders.c.order_id)).scalars())


def test_the_quarantine_replay_dag_takes_the_cause_as_a_parameter(airflow_db, af_config, sandbox, engine, tmp_path):
    import shutil

    import mappings
    from hub.config import load_settings
    from hub.runtime import Hub

    mapping_dir = tmp_path / "mappings"
    shutil.copytree(mappings.PACKAGED, mapping_dir, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    data = yaml.safe_load(af_config.read_text())
    data["mappings_dir"] = str(mapping_dir)
    af_config.write_text(yaml.safe_dump(data))
    bad = create_orders(sandbox.url, count=2, malformed="unknown_status")
    Hub(load_settings(af_config), engine).sync()
    assert _order_ids(engine) == set()
    path = mapping_dir / "tmall.yaml"  # the fix: map the new status
    path.write_text(path.read_text().replace("    WAIT_SELLER_SEND_GOODS: PAID\n", "    WAIT_SELLER_SEND_GOODS: PAID\n"
                                             "    TRADE_STATUS_FROM_THE_FUTURE: ON_HOLD\n"))
    replay = _dagbag().dags["orderhub_quarantine_replay"]
    run = replay.test(run_conf={"cause": "no such cause"})
    assert run.state == "success" and _order_ids(engine) == set()
    run = replay.test(run_conf={"cause": "unmapped trade_status=TRADE_STATUS_FROM_THE_FUTURE"})
    assert run.state == "success" and _order_ids(engine) == set(bad)
