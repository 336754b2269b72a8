"""Tmall with every fault class switched on at once: late indexing, page shift, timeouts after success, throttling,
HTTP 500s, an expired session, duplicated and shuffled pushes, malformed records. The hub's ordinary steps (push
intake, windowed sync, sweep, dispatch, feedback, write-back) end with 0 lost and 0 duplicated against the sandbox's
record of truth, and every malformed record in quarantine with its reason.
"""

from __future__ import annotations

import time

import requests
import sqlalchemy as sa
import yaml

from connectors.tmall import client as top_client
from hub.config import load_settings
from hub.demo import truth_counts
from hub.runtime import Hub
from hub.store import schema as t
from tests.conftest import write_sandbox_config
from tests.hub.helpers import create_orders, set_faults, truth


def test_every_fault_class_at_once_ends_with_nothing_lost_nothing_duplicated_and_the_bad_records_quarantined(
        tmp_path, sandbox, db_url, engine):
    top_client._GRANTS.clear()
    path = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, settle_seconds=0, lag_seconds=3,
                                window_minutes=10)
    creds = {s["shop"]: s for s in requests.get(f"{sandbox.url}/_sandbox/credentials",
                                               timeout=10).json()["tmall"]["shops"]}
    data = yaml.safe_load(path.read_text())
    for shop in data["shops"]:  # so that the expired session is refreshed, not a stop
        shop["refresh_token"] = {"value": creds[shop["shop"]]["refresh_token"]}
        shop["sync"]["page_size"] = 5  # several pages per window, so that pages can shift
        shop["http"]["attempts"] = 6  # 2 HTTP 500s then 2 bans can hit one call: 5 attempts get through
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    hub = Hub(load_settings(path), engine)
    hub.intake_pushes()  # permit the shops: from now on changes are pushed as well as pulled

    create_orders(sandbox.url, count=12, ago_s=300)
    create_orders(sandbox.url, shop="tm-outlet", count=8, ago_s=300)
    requests.post(f"{sandbox.url}/_sandbox/orders", json={"channel": "tmall", "shop": "tm-flagship", "count": 2,
                                                          "malformed": "unknown_status"}, timeout=30)
    set_faults(sandbox.url, top__index_lag_s=2, top__page_shift={"calls": 3},
               top__timeout_after_success={"calls": 2, "methods": ["taobao.trades.sold.increment.get",
                                                                   "taobao.trade.fullinfo.get"], "sleep_s": 4},
               top__throttle={"calls": 2, "ban_seconds": 1}, top__http_500={"calls": 2},
               top__tmc_duplicate={"calls": 3}, top__tmc_out_of_order=True,
               wms__timeout_after_success={"calls": 3, "methods": ["deliveryorder.create"], "sleep_s": 4})
    requests.post(f"{sandbox.url}/_sandbox/tmall/sessions/tm-flagship/expire", json={"in_s": 0},
                  timeout=10).raise_for_status()
    create_orders(sandbox.url, count=6, ago_s=5)  # written while the index lags

    for _ in range(3):
        hub.intake_pushes()
        hub.run_once()
        time.sleep(1.2)  # the index catches up, the settle time passes
        hub.sweep()
    counts = truth_counts(truth(sandbox.url), engine)
    top_client._GRANTS.clear()
    assert counts["lost"] == 0 and counts["duplicated"] == 0, counts
    assert counts["in_hub"] == counts["on_channel"] - 2 == 26
    assert counts["wms_delivery_orders"] == 26 and counts["written_back"] == 26
    with engine.connect() as conn:
        reasons = [r.reason for r in conn.execute(sa.select(t.quarantine).where(t.quarantine.c.status == "open"))]
    assert len(reasons) == 2 and all("not in table 'trade_status'" in r for r in reasons), reasons
