"""Kingdee sink against the in-process sandbox: one audited sales order per released document, whatever answers are
lost on the way, and the pure ``classify`` of the wire client."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from connectors.kingdee.client import (
    DuplicateNumberError,
    KingdeeRefusalError,
    SessionLostError,
    WrongStateError,
    classify,
)
from hub.errors import ConfigurationError, TransientError
from hub.store import schema as t
from tests.hub.helpers import create_orders, set_faults, truth


def _kd(sandbox_url: str) -> dict:
    return truth(sandbox_url)["sinks"]["kingdee"]


def _sales_orders(sandbox_url: str) -> dict:
    return _kd(sandbox_url).get("SAL_SaleOrder", {})


def _status(ok: bool, code: int = 0, message: str = "", field: str | None = None) -> dict:
    return {"IsSuccess": ok, "ErrorCode": 0 if ok else 500, "MsgCode": code, "SuccessEntitys": [],
            "Errors": [] if ok else [{"FieldName": field, "Message": message, "DIndex": 0}]}


# -- classify (pure) --------------------------------------------------------------------------------------------

def test_classify_returns_the_result_of_a_successful_save():
    body = {"Result": {"ResponseStatus": _status(True), "Id": 7, "Number": "TMALL-1"}}
    assert classify("Save", 200, json.dumps(body))["Number"] == "TMALL-1"


@pytest.mark.parametrize(("code", "message", "error"), [
    (11, "编码/单据编号[TMALL-1]已经存在!", DuplicateNumberError),
    (12, "单据已提交", WrongStateError),
    (1, "会话信息已丢失，请重新登录", SessionLostError),
    (2, "签名验证失败", ConfigurationError),
    (13, "字段“FDate”是必填项", KingdeeRefusalError),
])
def test_classify_tells_failures_apart_by_msgcode(code, message, error):
    body = {"Result": {"ResponseStatus": _status(False, code, message, "FBillNo")}}
    with pytest.raises(error) as info:
        classify("Save", 200, json.dumps(body, ensure_ascii=False))
    assert info.value.attributes["code"] == code


def test_classify_reads_query_rows_and_the_error_shape_of_a_query():
    assert classify("ExecuteBillQuery", 200, '[[1, "TMALL-1", "C"]]') == [[1, "TMALL-1", "C"]]
    assert classify("ExecuteBillQuery", 200, "[]") == []
    error = [[{"Result": {"ResponseStatus": _status(False, 4, "不支持的过滤条件")}}]]
    with pytest.raises(KingdeeRefusalError):
        classify("ExecuteBillQuery", 200, json.dumps(error, ensure_ascii=False))


def test_classify_login_failure_is_configuration_and_http_errors_are_transient():
    with pytest.raises(ConfigurationError):
        classify("ValidateUser", 200, json.dumps({"LoginResultType": 0, "Message": "用户名或密码错误！"}))
    assert classify("ValidateUser", 200, json.dumps({"LoginResultType": 1}))["LoginResultType"] == 1
    with pytest.raises(TransientError):
        classify("Save", 500, "<html>500</html>")
    with pytest.raises(ConfigurationError):
        classify("Save", 404, "<html>404</html>")


# -- against the sandbox ----------------------------------------------------------------------------------------

def test_each_released_order_becomes_one_audited_sales_order_for_the_shops_customer(kd_hub, sandbox):
    hub = kd_hub()
    set_faults(sandbox.url, wms__auto_ship=False)
    ids = create_orders(sandbox.url, count=3)
    hub.sync()
    (report,) = hub.dispatch("erp")
    assert report.done == 3
    orders = _sales_orders(sandbox.url)
    assert sorted(orders) == sorted(f"TMALL-{tid}" for tid in ids)
    assert all(o["created"] == 1 and o["status"] == "C" for o in orders.values())
    customers = _kd(sandbox.url)["BD_Customer"]
    assert customers["TMALL-TM-FLAGSHIP"]["created"] == 1 and len(customers) == 1
    with hub.engine.connect() as conn:
        refs = {r.document_ref for r in conn.execute(sa.select(t.dispatches.c.document_ref)
                                                     .where(t.dispatches.c.sink == "erp"))}
    assert refs == set(orders)


def test_a_lost_answer_on_every_first_write_still_leaves_exactly_one_sales_order_per_order(kd_hub, sandbox):
    hub = kd_hub()
    set_faults(sandbox.url, wms__auto_ship=False, kingdee__timeout_after_success={
        "calls": 50, "methods": ["Save", "Submit", "Audit"], "mode": "drop"})
    ids = create_orders(sandbox.url, count=3)
    hub.sync()
    hub.dispatch("erp")
    hub.dispatch("erp")  # whatever was left in doubt is probed and finished
    orders = _sales_orders(sandbox.url)
    assert sorted(orders) == sorted(f"TMALL-{tid}" for tid in ids)
    # every Save took effect and lost its answer; the re-sent one was refused as a duplicate, never created
    assert all(o["created"] == 1 and o["duplicates"] >= 1 and o["status"] == "C" for o in orders.values())
    assert _kd(sandbox.url)["BD_Customer"]["TMALL-TM-FLAGSHIP"]["created"] == 1
    with hub.engine.connect() as conn:
        statuses = [r.status for r in conn.execute(sa.select(t.dispatches.c.status)
                                                   .where(t.dispatches.c.sink == "erp"))]
    assert statuses == ["done"] * 3


def test_an_event_in_doubt_after_the_audit_took_effect_is_found_by_probe(kd_hub, sandbox):
    # no request retry: the doubt reaches dispatch; sales order only (the receivable has its own test)
    hub = kd_hub(http={"timeout_s": 3, "attempts": 1}, receivable=False)
    set_faults(sandbox.url, wms__auto_ship=False, kingdee__timeout_after_success={
        "calls": 1, "methods": ["Audit"], "mode": "drop"})
    (tid,) = create_orders(sandbox.url, count=1)
    hub.sync()
    (first,) = hub.dispatch("erp")
    assert first.in_doubt == 1 and first.done == 0
    (again,) = hub.dispatch("erp")  # the next run probes before sending anything
    assert again.done == 1
    (order,) = _sales_orders(sandbox.url).values()
    assert order["received"] == 1 and order["created"] == 1 and order["status"] == "C"
    with hub.engine.connect() as conn:
        detail = conn.execute(sa.select(t.audit_trail.c.detail).where(
            t.audit_trail.c.action == "dispatch.done", t.audit_trail.c.actor == "erp")).scalar_one()
    assert detail["found_by"] == "probe" and detail["document_ref"] == f"TMALL-{tid}"


def test_an_expired_session_is_renewed_and_the_call_replayed(kd_hub, sandbox):
    hub = kd_hub()
    set_faults(sandbox.url, wms__auto_ship=False, kingdee__expire_sessions={"calls": 2})
    create_orders(sandbox.url, count=2)
    hub.sync()
    (report,) = hub.dispatch("erp")
    assert report.done == 2
    assert all(o["created"] == 1 and o["status"] == "C" for o in _sales_orders(sandbox.url).values())


def test_customers_per_buyer_are_created_once_each(kd_hub, sandbox):
    hub = kd_hub(customer_by="buyer")
    set_faults(sandbox.url, wms__auto_ship=False)
    create_orders(sandbox.url, count=3)
    hub.sync()
    assert hub.dispatch("erp")[0].done == 3
    customers = _kd(sandbox.url)["BD_Customer"]
    assert customers and all(k.startswith("TMALL-B-") and c["created"] == 1 for k, c in customers.items())


def test_replaying_the_whole_outbox_from_position_zero_creates_no_new_sales_order(kd_hub, sandbox):
    hub = kd_hub()
    set_faults(sandbox.url, wms__auto_ship=False)
    create_orders(sandbox.url, count=4)
    hub.sync()
    hub.dispatch("erp")
    before = {k: v["created"] for k, v in _sales_orders(sandbox.url).items()}
    with hub.engine.begin() as conn:  # forget every dispatch of the ERP sink
        conn.execute(sa.delete(t.dispatches).where(t.dispatches.c.sink == "erp"))
        conn.execute(sa.delete(t.subscriptions).where(t.subscriptions.c.name == "erp"))
    (report,) = hub.dispatch("erp")
    assert report.done == 4
    after = _sales_orders(sandbox.url)
    assert {k: v["created"] for k, v in after.items()} == before and len(before) == 4
    assert all(v["status"] == "C" for v in after.values())
