"""kill -9 at random points, many times, with faults injected: 0 lost, 0 duplicated, every shipment written back
once, against the sandbox's record of truth (tests/chaos/harness.py; `make chaos` runs 200 kills)."""

from __future__ import annotations

import os

import yaml

from tests.chaos.harness import run_chaos
from tests.conftest import write_sandbox_config

KILLS = int(os.environ.get("ORDERHUB_CHAOS_KILLS", "20"))


def test_twenty_kill9s_during_a_faulty_run_lose_nothing_and_duplicate_nothing(tmp_path, sandbox, db_url, engine):
    config = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, page_size=5)
    data = yaml.safe_load(config.read_text())
    for shop in data["shops"]:
        shop["streams"] = ["orders"]  # the truth checked here is orders; refunds would only make each round slower
    config.write_text(yaml.safe_dump(data, allow_unicode=True))
    result = run_chaos(sandbox.url, db_url, config, tmp_path, kills=KILLS)
    print(f"kill -9 chaos: {result}")
    assert result.failures == [], result.failures[0]
    assert result.kills == KILLS and result.self_kills >= KILLS // 3 and result.timer_kills >= 1
    counts = result.counts
    assert counts["on_channel"] == result.orders and counts["in_hub"] == result.orders
    assert counts["lost"] == 0 and counts["duplicated"] == 0 and counts["quarantined"] == 0
    assert counts["wms_delivery_orders"] == result.orders  # one delivery order per order, created once
    assert result.not_delivered == [] and result.not_written_back == []
    assert counts["written_back"] == result.orders
