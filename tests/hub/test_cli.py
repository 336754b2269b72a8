"""The command line as a cron user drives it: init against a sandbox, check, migrate, run once, look at status."""

from __future__ import annotations

import os

import yaml
from typer.testing import CliRunner

from hub.cli import app
from tests.hub.helpers import create_orders, truth

runner = CliRunner()


def test_init_check_upgrade_run_once_and_status_work_against_a_sandbox(tmp_path, sandbox, db_url, monkeypatch):
    monkeypatch.setenv("ORDERHUB_DATABASE_URL", db_url)
    config = tmp_path / "orderhub.yaml"
    result = runner.invoke(app, ["init", "--sandbox", sandbox.url, "--config", str(config)])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(config.read_text())
    assert [s["shop"] for s in data["shops"]] == ["tm-flagship", "tm-outlet"]
    assert data["sinks"][0]["kind"] == "qimen_wms"
    assert runner.invoke(app, ["init", "--sandbox", sandbox.url, "--config", str(config)]).exit_code == 1  # no clobber

    check = runner.invoke(app, ["config", "check", "--config", str(config)])
    assert check.exit_code == 0 and "2 shop(s), 1 sink(s)" in check.output and "inline credentials" in check.output
    assert runner.invoke(app, ["db", "upgrade", "--config", str(config)]).exit_code == 0

    tids = create_orders(sandbox.url, count=4)
    ran = runner.invoke(app, ["run", "--once", "--config", str(config)])
    assert ran.exit_code == 0, ran.output
    assert {tid for tid, w in truth(sandbox.url)["writebacks"]["tmall"].items() if w["accepted"] == 1} == set(tids)

    status = runner.invoke(app, ["status", "--strict", "--config", str(config)])
    assert status.exit_code == 0, status.output
    assert "PAID 4" in status.output and "quarantined (open)" in status.output


def test_status_strict_exits_1_when_something_needs_attention(tmp_path, sandbox, config_path):
    create_orders(sandbox.url, count=1, malformed="bad_amount")
    assert runner.invoke(app, ["sync", "--config", str(config_path)]).exit_code == 0
    status = runner.invoke(app, ["status", "--strict", "--config", str(config_path)])
    assert status.exit_code == 1 and "invalid paid_total: 1" in status.output


def test_sync_by_order_id_fetches_a_single_order(sandbox, config_path):
    (tid,) = create_orders(sandbox.url, count=1)
    result = runner.invoke(app, ["sync", "--channel", "tmall", "--shop", "tm-flagship", "--order-id", tid,
                                 "--config", str(config_path)])
    assert result.exit_code == 0 and "1 fetched: 1 new" in result.output


def test_a_missing_configuration_file_exits_3_with_the_way_out(tmp_path):
    result = runner.invoke(app, ["sync", "--config", str(tmp_path / "none.yaml")])
    assert result.exit_code == 3 and "orderhub init --sandbox" in result.output
    assert os.environ.get("COLUMNS") == "200"


def test_the_demo_command_runs_the_whole_path_against_a_sandbox_process_and_finds_nothing_lost(tmp_path):
    # the full default size: enough requests to fill any unread pipe between the demo and its sandbox process
    result = runner.invoke(app, ["demo", "--workdir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in result.output.splitlines()
            if line.count("│") == 3}
    assert rows["in the hub"] == "400" and rows["written back to the channel"] == "300"  # POS: none to ship
    assert rows["lost (must be 0)"] == "0" and rows["duplicated (must be 0)"] == "0"
    assert (tmp_path / "sandbox.log").stat().st_size > 0
