"""Matched receipts reach finance: reconciliation -> ``receipt.matched`` -> one Kingdee GL voucher per receipt (the
sinks room's Kingdee sink), read back from the sandbox's tenant; reconciling the day again creates none."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
import yaml

from hub.config import load_settings
from hub.runtime import Hub
from hub.store.schema_finance import receipts
from sandbox.configuration import finance_config, orderhub_config
from tests.finance.conftest import SH, create, yesterday_at
from tests.hub.helpers import set_faults, truth


def test_each_matched_receipt_becomes_exactly_one_kingdee_voucher(tmp_path, sandbox, db_url, engine):
    data = orderhub_config(sandbox.url, db_url, kingdee=True)
    hours = (datetime.now(SH) - yesterday_at(19)).total_seconds() / 3600
    for shop in data["shops"]:
        shop["streams"] = ["orders"]
        shop["sync"].update({"initial_lookback_hours": hours, "window_minutes": 1440})
    path = tmp_path / "orderhub.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    (tmp_path / "finance.yaml").write_text(yaml.safe_dump(finance_config(sandbox.url), allow_unicode=True),
                                           encoding="utf-8")
    hub = Hub(load_settings(path), engine)
    set_faults(sandbox.url, wms__auto_ship=False)
    tids = create(sandbox.url, 3, yesterday_at(20))
    hub.sync()
    day = yesterday_at(0).date()
    summary = hub.reconcile(day)
    assert summary["sources"][0]["new_receipts"] == 3
    hub.dispatch("erp")
    vouchers = truth(sandbox.url)["sinks"]["kingdee"].get("GL_VOUCHER", {})
    assert len(vouchers) == 3 and all(v["created"] == 1 and v["status"] == "C" for v in vouchers.values())
    with engine.connect() as conn:
        stored = conn.execute(sa.select(receipts.c.txn_id, receipts.c.order_id)).all()
    assert sorted(r.order_id for r in stored) == sorted(tids)
    assert sorted(vouchers) == sorted(f"RC-ALIPAY-{r.txn_id}" for r in stored)
    hub.reconcile(day)
    hub.dispatch("erp")
    again = truth(sandbox.url)["sinks"]["kingdee"].get("GL_VOUCHER", {})
    assert {k: v["created"] for k, v in again.items()} == {k: 1 for k in vouchers}
