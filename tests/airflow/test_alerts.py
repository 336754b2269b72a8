"""Alerts reach a DingTalk-style webhook: a configuration failure fails the task at once (no retry) and says how to
fix it; the watch DAG reports orders paid longer ago than the SLA that are not in the WMS, and quarantine growth."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml

from tests.hub.helpers import create_orders


@pytest.fixture
def webhook(monkeypatch):
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            body = b'{"errcode": 0, "errmsg": "ok"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("ORDERHUB_ALERT_WEBHOOK", f"http://127.0.0.1:{server.server_port}/robot/send?access_token=t")
    monkeypatch.setenv("ORDERHUB_ALERT_FORMAT", "dingtalk")
    yield received
    server.shutdown()
    server.server_close()


def _bag():
    import os

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert bag.import_errors == {}, bag.import_errors
    return bag


def test_an_expired_credential_fails_the_task_once_without_retry_and_alerts_with_how_to_fix(
        airflow_db, af_config, webhook, monkeypatch):
    data = yaml.safe_load(af_config.read_text())
    data["shops"][0]["session"] = {"env": "ORDERHUB_TEST_SESSION_NOT_SET"}
    af_config.write_text(yaml.safe_dump(data))
    monkeypatch.delenv("ORDERHUB_TEST_SESSION_NOT_SET", raising=False)
    run = _bag().dags["orderhub_nrt__tmall__tm-flagship"].test()
    assert run.state == "failed"
    (pull,) = [ti for ti in run.get_task_instances() if ti.task_id == "pull"]
    assert pull.state == "failed" and pull.try_number == 1  # configuration: no retry
    (alert,) = webhook
    text = alert["markdown"]["text"]
    assert alert["msgtype"] == "markdown" and "configuration" in alert["markdown"]["title"]
    assert "ORDERHUB_TEST_SESSION_NOT_SET" in text and "how to fix" in text and "not retried" in text


def test_the_watch_dag_alerts_on_paid_orders_missing_from_the_wms_and_on_a_growing_quarantine(
        airflow_db, af_config, sandbox, webhook, engine, monkeypatch):
    from hub.config import load_settings
    from hub.runtime import Hub

    monkeypatch.setenv("ORDERHUB_AIRFLOW_SLA_MINUTES", "30")
    late = create_orders(sandbox.url, count=2, ago_s=45 * 60)  # paid 45 min ago
    create_orders(sandbox.url, count=1, ago_s=45 * 60, malformed="unknown_status")
    Hub(load_settings(af_config), engine).sync()  # in the hub, never dispatched: not in the WMS
    from airflow.models.variable import Variable  # the metadata-DB side: this is not a task

    Variable.set("orderhub_quarantine_open", "0")  # the previous check saw an empty quarantine
    run = _bag().dags["orderhub_watch"].test()
    assert run.state == "success"
    titles = [a["markdown"]["title"] for a in webhook]
    assert titles == ["OrderHub SLA breach: paid -> WMS", "OrderHub quarantine growing"]
    sla_text = webhook[0]["markdown"]["text"]
    assert "2 paid order(s) not in the WMS after 30 min" in sla_text and all(tid in sla_text for tid in late)
    assert "open records 0 -> 1" in webhook[1]["markdown"]["text"]
