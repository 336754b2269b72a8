"""Airflow's real services against the sandbox: the API server, scheduler and dag-processor of `airflow standalone`
run the near-real-time DAG triggered over the REST API, and headless Chromium, logged in, shows the run and the
OrderHub page of the plugin. Screenshots land in .artifacts/airflow/ (ORDERHUB_SCREENSHOT_DIR)."""

from __future__ import annotations

import struct

import pytest
import requests

from orderhub_airflow import launcher
from tests.airflow.conftest import SCREENSHOT_DIR
from tests.hub.helpers import create_orders, set_faults, truth

NRT = "orderhub_nrt__tmall__tm-flagship"


@pytest.fixture
def airflow(tmp_path, af_config):
    with launcher.standalone(tmp_path / "airflow_home", af_config, ORDERHUB_AIRFLOW_NRT_SECONDS="3600") as af:
        yield af


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_a_run_triggered_over_rest_succeeds_and_the_logged_in_ui_shows_it_and_the_hub_page(
        airflow, af_config, sandbox):
    from hub.config import load_settings
    from orderhub_airflow.options import AirflowOptions
    from orderhub_airflow.pools import required_pools
    from orderhub_airflow.screenshot import screenshot

    set_faults(sandbox.url, wms__auto_ship=False)
    create_orders(sandbox.url, count=4)
    create_orders(sandbox.url, count=1, malformed="unknown_status")
    token = airflow.token()
    api = airflow.api(token)
    launcher.ensure_pools_over_rest(api, airflow.url, required_pools(load_settings(af_config),
                                                                     AirflowOptions.from_env(af_config)))
    dag_ids = {d["dag_id"] for d in api.get(f"{airflow.url}/api/v2/dags", params={"limit": 100}).json()["dags"]}
    assert {NRT, "orderhub_dispatch__wms", "orderhub_quarantine_replay", "orderhub_watch"} <= dag_ids

    launcher.unpause(api, airflow.url, NRT)
    run_id = launcher.trigger(api, airflow.url, NRT)
    assert launcher.wait_for_run(api, airflow.url, NRT, run_id) == "success"
    tis = api.get(f"{airflow.url}/api/v2/dags/{NRT}/dagRuns/{run_id}/taskInstances").json()["task_instances"]
    assert {ti["task_id"]: ti["state"] for ti in tis} == {"pull": "success", "dispatch_wms": "success"}
    assert sum(d["created"] for d in truth(sandbox.url)["wms"]["delivery_orders"].values()) == 4

    # the hub page is behind Airflow's login: no token, no page
    assert requests.get(f"{airflow.url}/orderhub/api/state", timeout=10).status_code in (401, 403)
    state = api.get(f"{airflow.url}/orderhub/api/state", timeout=10).json()
    assert state["orders"] == 4 and state["quarantine_open"] == 1
    assert {s["sink"]: s["done"] for s in state["sinks"]}["wms"] == 4

    run_shot = screenshot(f"{airflow.url}/dags/{NRT}/runs/{run_id}", SCREENSHOT_DIR / "airflow_nrt_run.png", token,
                          wait_for=[NRT, "dispatch_wms", "success"])
    assert NRT in run_shot.text and "dispatch_wms" in run_shot.text and "pull" in run_shot.text
    assert "success" in run_shot.text.lower() and "Sign into Airflow" not in run_shot.text
    assert _png_size(run_shot.path.read_bytes()) == (1400, 900) and run_shot.path.stat().st_size > 20_000

    hub_shot = screenshot(f"{airflow.url}/plugin/orderhub", SCREENSHOT_DIR / "airflow_orderhub_page.png", token,
                          wait_for=["OrderHub: business state", "Quarantine by reason"])
    text = hub_shot.text
    assert "OrderHub: business state" in text and "Outbox per sink" in text
    assert "unmapped trade_status=TRADE_STATUS_FROM_THE_FUTURE" in text  # quarantine grouped by reason
    assert "Unclosed sync windows per shop" in text and "tmall/tm-flagship" in text
    assert "Orders breaching the paid → WMS SLA" in text
    assert hub_shot.path.stat().st_size > 20_000
