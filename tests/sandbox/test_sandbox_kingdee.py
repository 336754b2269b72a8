"""The simulated Kingdee Cloud Galaxy WebAPI (sandbox/kingdee.py): login/session, header signing, Save / Submit /
Audit / View / ExecuteBillQuery on the four forms, duplicate FBillNo, the record of truth and every fault knob.

All calls go over HTTP as a client would make them (spec §7.1): JSON body, ``{server}/k3cloud/<service>.common.kdsvc``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import pytest
import requests

from sandbox.kingdee import x_kd_signature
from sandbox.server import running_sandbox

TIMEOUT_S = 5
FORM = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService."
VALIDATE = "Kingdee.BOS.WebApi.ServicesStub.AuthService.ValidateUser"
BY_APP_SECRET = "Kingdee.BOS.WebApi.ServicesStub.AuthService.LoginByAppSecret"


def test_x_kd_signature_matches_the_spec_worked_example() -> None:
    app_id = "123456_AbCdEfGhIjKlMnOpQrStUvWxYz012345"
    app_data = base64.b64encode(b"6123a1b2c3d4e5,demo_user,2052,100").decode()
    assert app_data == "NjEyM2ExYjJjM2Q0ZTUsZGVtb191c2VyLDIwNTIsMTAw"
    assert x_kd_signature(app_id, "6123a1b2c3d4e5,demo_user,2052,100", "kd_app_secret") == (
        "M2JiOGIxYjVhNTI5NmEyYjZmNjliYjExMzQ4MzIzZTMyYjQ2ZmQwOTdiMThkNDA4Y2VhNDU2NjYzMGE2OTdhYg==")


@pytest.fixture
def kd(sbx, creds) -> dict:
    return creds["kingdee"]


def _url(base: str, service: str) -> str:
    return f"{base}/k3cloud/{service}.common.kdsvc"


def login(session: requests.Session, base: str, kd: dict, password: str | None = None) -> dict:
    body = {"format": 1, "useragent": "ApiClient", "rid": "1", "timestamp": "2026-01-01", "v": "1.0",
            "parameters": [kd["acct_id"], kd["username"], password or kd["password"], kd["lcid"]]}
    return session.post(_url(base, VALIDATE), json=body, timeout=TIMEOUT_S).json()


@pytest.fixture
def client(sbx, kd) -> Callable[..., object]:
    """``client(operation, formid, data)`` over a logged-in ``requests.Session`` (cookies kept)."""
    base = sbx.url + kd["server_path"]
    session = requests.Session()
    assert login(session, base, kd)["LoginResultType"] == 1

    def call(operation: str, formid: str | None, data: dict, timeout: float = TIMEOUT_S) -> object:
        body = {"data": data} if formid is None else {"formid": formid, "data": data}
        response = session.post(_url(base, FORM + operation), json=body, timeout=timeout)
        assert response.status_code == 200, response.text
        return response.json()

    call.session = session  # type: ignore[attr-defined]
    call.base = base  # type: ignore[attr-defined]
    return call


def order_model(bill_no: str | None = "TM-3817000000000000001", sku: str = "SKU-001-RED-M", qty: int = 2) -> dict:
    model = {
        "FID": 0, "FBillTypeID": {"FNUMBER": "XSDD01_SYS"}, "FDate": "2026-03-01",
        "FSaleOrgId": {"FNumber": "100"}, "FCustId": {"FNumber": "CUST-TMALL"},
        "FSalerId": {"FNumber": "EMP001"}, "FSettleId": {"FNumber": "CUST-TMALL"},
        "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": "PRE001"}, "FIsIncludedTax": True},
        "FSaleOrderEntry": [{"FMaterialId": {"FNumber": sku}, "FUnitID": {"FNumber": "Pcs"}, "FQty": qty,
                             "FTaxPrice": 99.0, "FDeliveryDate": "2026-03-02", "FReserveType": "1",
                             "FOUTLMTUNIT": "SAL"}],
    }
    if bill_no:
        model["FBillNo"] = bill_no
    return {"NeedUpDateFields": [], "NeedReturnFields": ["FBillNo", "FCustId.FNumber"], "IsDeleteEntry": "true",
            "Model": model}


def query(client, filter_string: str, keys: str = "FBillNo,FDocumentStatus,FDate") -> list:
    return client("ExecuteBillQuery", None, {"FormId": "SAL_SaleOrder", "FieldKeys": keys,
                                             "FilterString": filter_string, "OrderString": "FBillNo",
                                             "TopRowCount": 0, "StartRow": 0, "Limit": 2000})


def test_login_sets_session_cookies_and_rejects_a_wrong_password(sbx, kd) -> None:
    base = sbx.url + kd["server_path"]
    session = requests.Session()
    answer = login(session, base, kd)
    assert answer["LoginResultType"] == 1 and answer["IsSuccessByAPI"] is True
    assert session.cookies["kdservice-sessionid"] == answer["KDSVCSessionId"] == session.cookies["ASP.NET_SessionId"]
    bad = login(requests.Session(), base, kd, password="wrong")
    assert bad["LoginResultType"] == 0 and bad["KDSVCSessionId"] is None and "密码" in bad["Message"]
    by_app = requests.post(_url(base, BY_APP_SECRET), json={"parameters": [
        kd["acct_id"], kd["username"], kd["app_id"], kd["app_secret"], 2052]}, timeout=TIMEOUT_S).json()
    assert by_app["LoginResultType"] == 1


def test_business_call_without_session_reports_session_lost(sbx, kd) -> None:
    base = sbx.url + kd["server_path"]
    answer = requests.post(_url(base, FORM + "Save"), json={"formid": "SAL_SaleOrder", "data": order_model()},
                           timeout=TIMEOUT_S).json()
    status = answer["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False and status["ErrorCode"] == 500 and status["MsgCode"] == 1
    assert status["Errors"][0]["Message"] == "会话信息已丢失，请重新登录"
    # ExecuteBillQuery wraps its error in an array of arrays.
    rows = requests.post(_url(base, FORM + "ExecuteBillQuery"), json={"data": {"FormId": "SAL_SaleOrder",
                         "FieldKeys": "FBillNo"}}, timeout=TIMEOUT_S).json()
    assert rows[0][0]["Result"]["ResponseStatus"]["IsSuccess"] is False


def test_save_submit_audit_view_and_query_a_sales_order(client, sbx) -> None:
    saved = client("Save", "SAL_SaleOrder", order_model())
    status = saved["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is True and status["MsgCode"] == 0 and status["Errors"] == []
    bill_id = saved["Result"]["Id"]
    assert saved["Result"]["Number"] == "TM-3817000000000000001"
    assert status["SuccessEntitys"] == [{"Id": bill_id, "Number": "TM-3817000000000000001", "DIndex": 0}]
    assert saved["Result"]["NeedReturnData"] == [{"FBillNo": "TM-3817000000000000001", "FCustId.FNumber": "CUST-TMALL"}]

    assert query(client, "FBillNo='TM-3817000000000000001'") == [["TM-3817000000000000001", "A",
                                                                  "2026-03-01T00:00:00"]]
    audit_too_early = client("Audit", "SAL_SaleOrder", {"Numbers": ["TM-3817000000000000001"]})
    assert audit_too_early["Result"]["ResponseStatus"]["IsSuccess"] is False
    submitted = client("Submit", "SAL_SaleOrder", {"Numbers": ["TM-3817000000000000001"], "Ids": "",
                                                    "InterationFlags": "", "IsVerifyProcInst": True})
    assert submitted["Result"]["ResponseStatus"]["IsSuccess"] is True
    audited = client("Audit", "SAL_SaleOrder", {"Ids": str(bill_id)})
    assert audited["Result"]["ResponseStatus"]["SuccessEntitys"][0]["Number"] == "TM-3817000000000000001"

    view = client("View", "SAL_SaleOrder", {"Number": "TM-3817000000000000001"})
    assert view["Result"]["Result"]["FDocumentStatus"] == "C" and view["Result"]["Result"]["Id"] == bill_id
    rows = query(client, "FDocumentStatus = 'C' and FDate>='2026-03-01'",
                 keys="FBillNo,FCustId.FNumber,FMaterialId.FNumber,FQty")
    assert rows == [["TM-3817000000000000001", "CUST-TMALL", "SKU-001-RED-M", 2]]
    assert query(client, "FDate>'2026-03-01'") == []

    truth = sbx.app.truth()["sinks"]["kingdee"]["SAL_SaleOrder"]["TM-3817000000000000001"]
    assert truth == {"received": 1, "created": 1, "duplicates": 0, "updates": 0, "status": "C", "id": bill_id}


def test_a_repeated_fbillno_is_rejected_and_the_probe_finds_the_first(client, sbx) -> None:
    first = client("Save", "SAL_SaleOrder", order_model("TM-42"))
    again = client("Save", "SAL_SaleOrder", order_model("TM-42", qty=5))
    status = again["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False and status["MsgCode"] == 11
    assert status["Errors"][0]["FieldName"] == "FBillNo" and "TM-42" in status["Errors"][0]["Message"]
    # The probe a hub makes before retrying: one row, the first save's content.
    assert query(client, "FBillNo='TM-42'", keys="FID,FBillNo,FQty") == [[first["Result"]["Id"], "TM-42", 2]]
    truth = sbx.app.truth()["sinks"]["kingdee"]["SAL_SaleOrder"]["TM-42"]
    assert (truth["received"], truth["created"], truth["duplicates"]) == (2, 1, 1)


def test_save_validation_errors_name_the_field(client) -> None:
    model = order_model(sku="SKU-NOPE")
    status = client("Save", "SAL_SaleOrder", model)["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False and status["Errors"][0]["FieldName"] == "FMaterialId"
    model = order_model()
    model["Model"]["FCustId"] = {"FNumber": "CUST-UNKNOWN"}
    assert client("Save", "SAL_SaleOrder", model)["Result"]["ResponseStatus"]["Errors"][0]["FieldName"] == "FCustId"
    unknown_form = client("Save", "XX_Nothing", order_model())["Result"]["ResponseStatus"]
    assert unknown_form["IsSuccess"] is False


def test_auto_number_and_update_by_fid(client, sbx) -> None:
    saved = client("Save", "SAL_SaleOrder", order_model(None))
    number, bill_id = saved["Result"]["Number"], saved["Result"]["Id"]
    assert number == "XSDD000001"
    model = order_model(None, qty=7)
    model["Model"]["FID"] = bill_id
    updated = client("Save", "SAL_SaleOrder", model)
    assert updated["Result"]["Id"] == bill_id
    assert query(client, f"FBillNo='{number}'", keys="FQty") == [[7]]
    truth = sbx.app.truth()["sinks"]["kingdee"]["SAL_SaleOrder"][number]
    assert (truth["received"], truth["created"], truth["updates"]) == (2, 1, 1)
    bad_paging = client("ExecuteBillQuery", None, {"FormId": "SAL_SaleOrder", "FieldKeys": "FBillNo",
                                                   "StartRow": "abc"})
    assert bad_paging[0][0]["Result"]["ResponseStatus"]["IsSuccess"] is False


def test_customer_receivable_and_voucher(client, sbx) -> None:
    customer = client("Save", "BD_Customer", {"Model": {"FCUSTID": 0, "FNumber": "CUST-VIP-1", "FName": "大客户",
                                                         "FCreateOrgId": {"FNumber": "100"}}})
    assert customer["Result"]["Number"] == "CUST-VIP-1"
    dup = client("Save", "BD_Customer", {"Model": {"FNumber": "CUST-VIP-1", "FName": "大客户"}})
    assert dup["Result"]["ResponseStatus"]["MsgCode"] == 11

    receivable = {"Model": {"FBillNo": "AR-TM-1", "FDATE": "2026-03-01", "FCUSTOMERID": {"FNUMBER": "CUST-VIP-1"},
                            "FSETTLEORGID": {"FNumber": "100"},
                            "FEntityDetail": [{"FMATERIALID": {"FNumber": "SKU-001-RED-M"}, "FPriceQty": 1,
                                               "FTaxPrice": 99.0}]}}
    assert client("Save", "AR_receivable", receivable)["Result"]["ResponseStatus"]["IsSuccess"] is True

    entries = [{"FACCOUNTID": {"FNumber": "1122"}, "FDEBIT": 99.0, "FCREDIT": 0},
               {"FACCOUNTID": {"FNumber": "6001"}, "FDEBIT": 0, "FCREDIT": 99.0}]
    voucher = {"Model": {"FBillNo": "PZ-TM-1", "FDate": "2026-03-01", "FAccountBookID": {"FNumber": "001"},
                         "FEntity": entries}}
    assert client("Save", "GL_VOUCHER", voucher)["Result"]["ResponseStatus"]["IsSuccess"] is True
    entries[1]["FCREDIT"] = 98.99
    voucher["Model"]["FBillNo"] = "PZ-TM-2"
    unbalanced = client("Save", "GL_VOUCHER", voucher)["Result"]["ResponseStatus"]
    assert unbalanced["IsSuccess"] is False and "借贷不平衡" in unbalanced["Errors"][0]["Message"]

    sinks = sbx.app.truth()["sinks"]["kingdee"]
    assert sinks["BD_Customer"]["CUST-VIP-1"]["received"] == 2
    assert sinks["AR_receivable"]["AR-TM-1"]["created"] == 1
    assert sinks["GL_VOUCHER"]["PZ-TM-1"]["created"] == 1 and sinks["GL_VOUCHER"]["PZ-TM-2"]["created"] == 0


def test_header_signing_works_without_login(sbx, kd) -> None:
    app_data = f"{kd['acct_id']},{kd['username']},2052,100"
    # The signature covers appId + the plain appData; the header carries appData in base64 (§7.1).
    headers = {"X-Kd-Appkey": kd["app_id"], "X-Kd-Appdata": base64.b64encode(app_data.encode()).decode(),
               "X-Kd-Signature": x_kd_signature(kd["app_id"], app_data, kd["app_secret"]),
               "X-Api-Auth-Version": "2.0"}
    url = _url(sbx.url + kd["server_path"], FORM + "Save")
    ok = requests.post(url, json={"formid": "SAL_SaleOrder", "data": order_model()}, headers=headers,
                       timeout=TIMEOUT_S).json()
    assert ok["Result"]["ResponseStatus"]["IsSuccess"] is True
    headers["X-Kd-Signature"] = x_kd_signature(kd["app_id"], headers["X-Kd-Appdata"], kd["app_secret"])
    bad = requests.post(url, json={"formid": "SAL_SaleOrder", "data": order_model("X")}, headers=headers,
                        timeout=TIMEOUT_S).json()
    assert bad["Result"]["ResponseStatus"]["IsSuccess"] is False and bad["Result"]["ResponseStatus"]["MsgCode"] == 2


def test_expire_sessions_then_relogin_and_replay(client, sbx, kd) -> None:
    sbx.app.faults.merge({"kingdee.expire_sessions": {"calls": 1}})
    lost = client("Save", "SAL_SaleOrder", order_model("TM-7"))["Result"]["ResponseStatus"]
    assert lost["MsgCode"] == 1 and lost["Errors"][0]["Message"] == "会话信息已丢失，请重新登录"
    # The session stays dead...
    assert client("Save", "SAL_SaleOrder", order_model("TM-7"))["Result"]["ResponseStatus"]["MsgCode"] == 1
    # ...until the client logs in again and replays.
    assert login(client.session, client.base, kd)["LoginResultType"] == 1
    assert client("Save", "SAL_SaleOrder", order_model("TM-7"))["Result"]["ResponseStatus"]["IsSuccess"] is True
    assert sbx.app.truth()["sinks"]["kingdee"]["SAL_SaleOrder"]["TM-7"]["created"] == 1


def test_session_ttl(client, sbx) -> None:
    sbx.app.faults.merge({"kingdee.session_ttl_s": 0.5})
    time.sleep(1.1)
    assert client("View", "SAL_SaleOrder", {"Number": "X"})["Result"]["ResponseStatus"]["MsgCode"] == 1


def test_http_500_and_latency(client, sbx) -> None:
    sbx.app.faults.merge({"kingdee.http_500": {"calls": 1}, "kingdee.latency_ms": 300})
    response = client.session.post(_url(client.base, FORM + "Save"), json={"formid": "SAL_SaleOrder",
                                   "data": order_model()}, timeout=TIMEOUT_S)
    assert response.status_code == 500 and "<html>" in response.text
    started = time.monotonic()
    assert client("Save", "SAL_SaleOrder", order_model())["Result"]["ResponseStatus"]["IsSuccess"] is True
    assert time.monotonic() - started >= 0.3
    assert sbx.app.faults.get("kingdee.http_500") == {"calls": 0}


@pytest.mark.parametrize("mode", ["sleep", "drop"])
def test_timeout_after_success_saves_then_loses_the_reply(client, sbx, mode) -> None:
    sbx.app.faults.merge({"kingdee.timeout_after_success": {"calls": 1, "methods": ["Save"], "sleep_s": 3,
                                                            "mode": mode}})
    with pytest.raises(requests.RequestException):
        client("Save", "SAL_SaleOrder", order_model("TM-LOST"), timeout=0.5)
    # The save happened: the probe finds it and a blind retry is refused as a duplicate.
    assert query(client, "FBillNo='TM-LOST'", keys="FBillNo") == [["TM-LOST"]]
    retry = client("Save", "SAL_SaleOrder", order_model("TM-LOST"))["Result"]["ResponseStatus"]
    assert retry["MsgCode"] == 11
    truth = sbx.app.truth()["sinks"]["kingdee"]["SAL_SaleOrder"]["TM-LOST"]
    assert (truth["received"], truth["created"]) == (2, 1)


def test_standalone_serves_the_real_k3cloud_paths() -> None:
    with running_sandbox(seed=1, system="kingdee") as handle:
        kd = requests.get(f"{handle.url}/_sandbox/credentials", timeout=TIMEOUT_S).json()["kingdee"]
        session = requests.Session()
        assert login(session, handle.url, kd)["LoginResultType"] == 1
        saved = session.post(_url(handle.url, FORM + "Save"), json={"formid": "SAL_SaleOrder",
                             "data": order_model()}, timeout=TIMEOUT_S).json()
        assert saved["Result"]["ResponseStatus"]["IsSuccess"] is True
        assert requests.post(f"{handle.url}/kingdee/k3cloud/{VALIDATE}.common.kdsvc", json={},
                             timeout=TIMEOUT_S).status_code == 404


def test_official_python_sdk_against_the_standalone_server() -> None:
    """``kingdee-cdp-webapi-sdk`` 8.2.0 (header signing, no login call) works by changing only the server URL."""
    sdk = pytest.importorskip("k3cloud_webapi_sdk.main")
    with running_sandbox(seed=1, system="kingdee") as handle:
        kd = requests.get(f"{handle.url}/_sandbox/credentials", timeout=TIMEOUT_S).json()["kingdee"]
        api = sdk.K3CloudApiSdk(f"{handle.url}/k3cloud/", timeout=TIMEOUT_S)
        api.InitConfig(kd["acct_id"], kd["username"], kd["app_id"], kd["app_secret"], f"{handle.url}/k3cloud/",
                       lcid=kd["lcid"], org_num=int(kd["org_number"]))
        saved = json.loads(api.Save("SAL_SaleOrder", order_model("TM-SDK")))
        assert saved["Result"]["ResponseStatus"]["IsSuccess"] is True
        assert api.cookiesStore.SID  # the server handed the signed caller a kdservice-sessionid
        assert json.loads(api.Submit("SAL_SaleOrder", {"Numbers": ["TM-SDK"]}))["Result"]["ResponseStatus"][
            "IsSuccess"] is True
        assert json.loads(api.Audit("SAL_SaleOrder", {"Numbers": ["TM-SDK"]}))["Result"]["ResponseStatus"][
            "IsSuccess"] is True
        rows = json.loads(api.ExecuteBillQuery({"FormId": "SAL_SaleOrder", "FieldKeys": "FBillNo,FDocumentStatus",
                                                "FilterString": "FBillNo='TM-SDK'"}))
        assert rows == [["TM-SDK", "C"]]
        duplicate = json.loads(api.Save("SAL_SaleOrder", order_model("TM-SDK")))
        assert duplicate["Result"]["ResponseStatus"]["MsgCode"] == 11
        view = json.loads(api.View("SAL_SaleOrder", {"Number": "TM-SDK"}))
        assert view["Result"]["Result"]["FDocumentStatus"] == "C"
