"""TOP's daily call quota (code 7, limited-by-app-access-count): the sync stops early and cleanly, the cursor stays
where the data is, status says until when, and the next run after the reset goes on from there."""

from __future__ import annotations

import time

from typer.testing import CliRunner

from hub.cli import app
from hub.config import load_settings
from hub.runtime import Hub
from hub.status import collect
from tests.conftest import write_sandbox_config
from tests.hub.helpers import create_orders, cursor, set_faults, versions
from tests.sources.test_tmall_sweep import assert_nothing_lost_or_duplicated

runner = CliRunner()


def test_an_exhausted_daily_quota_stops_the_sync_cleanly_and_the_next_run_resumes_from_the_cursor(
        tmp_path, sandbox, db_url, engine):
    set_faults(sandbox.url, wms__auto_ship=False)
    tids = create_orders(sandbox.url, count=5)
    config = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, window_minutes=10)
    hub = Hub(load_settings(config), engine)
    set_faults(sandbox.url, top__daily_quota=3)  # six 10-minute windows to read, three calls allowed today
    started = time.monotonic()
    report, = hub.sync(shop="tm-flagship")
    assert time.monotonic() - started < 10  # not retried until midnight
    assert report.windows == 3 and report.stopped and report.stopped.startswith("quota exhausted until ")
    assert not versions(engine)  # the orders are in the last window, not read yet
    stopped_at = cursor(engine)
    assert stopped_at is not None and report.cursor == stopped_at  # the end of the third window, no further

    problems = collect(engine)["source_problems"]
    assert [p["state"] for p in problems] == ["quota_exhausted"] and problems[0]["until"]
    shown = runner.invoke(app, ["status", "--config", str(config)])
    assert "quota exhausted until" in shown.output and "tmall/tm-flagship/orders" in shown.output
    strict = runner.invoke(app, ["status", "--strict", "--config", str(config)])
    assert strict.exit_code == 1
    cli_sync = runner.invoke(app, ["sync", "--shop", "tm-flagship", "--config", str(config)])
    assert cli_sync.exit_code == 0 and "quota exhausted until" in cli_sync.output  # a clean stop, not a failure

    set_faults(sandbox.url, top__daily_quota=0)  # the quota has reset
    resumed, = hub.sync(shop="tm-flagship")
    assert resumed.stopped is None and set(versions(engine)) == set(tids)
    assert collect(engine)["source_problems"] == []
    assert_nothing_lost_or_duplicated(sandbox, engine)
