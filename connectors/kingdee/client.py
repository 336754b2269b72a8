"""Kingdee Cloud Galaxy WebAPI wire client (specs §7.1): JSON posts to ``{server}/k3cloud/{Service}.common.kdsvc``,
a login session kept in cookies, and a pure ``classify`` of the ``ResponseStatus`` each answer carries.

Failures come back as HTTP 200 with ``IsSuccess: false``; ``MsgCode`` tells them apart: 1 session lost (log in again
and replay), 2 signature/permission (configuration), 11 duplicate number (the document exists: the sink treats it as
found), 12 wrong document state (already submitted/audited), 13 field validation (the record). ExecuteBillQuery
answers an array of rows, or ``[[{"Result": {"ResponseStatus": …}}]]`` on error.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from hub.errors import ConfigurationError, InDoubtError, RecordError, TransientError
from hub.retry import call_with_retry

AUTH = "Kingdee.BOS.WebApi.ServicesStub.AuthService.ValidateUser"
FORM = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService."
SESSION_LOST_TEXT = "会话信息已丢失"
MSG_SESSION_LOST, MSG_PERMISSION, MSG_REQUEST, MSG_DUPLICATE, MSG_STATE = 1, 2, 4, 11, 12


class KingdeeRefusalError(RecordError):
    """The tenant refused this document (validation, a missing customer or material...)."""


class DuplicateNumberError(KingdeeRefusalError):
    """MsgCode 11: a bill or base-data record with this number already exists (nothing was changed)."""


class WrongStateError(KingdeeRefusalError):
    """MsgCode 12: Submit/Audit on a bill that is not in the state for it (e.g. already submitted)."""


class SessionLostError(TransientError):
    """The session expired or the server dropped it: log in again and replay the call."""


def _status_error(operation: str, status: dict[str, Any]) -> Exception:
    errors = status.get("Errors") or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    message = str(first.get("Message") or status.get("Message") or "no message")
    code = status.get("MsgCode")
    attrs = {"sink": "kingdee", "endpoint": operation, "code": code, "field": first.get("FieldName")}
    if code == MSG_SESSION_LOST or SESSION_LOST_TEXT in message:
        return SessionLostError(f"Kingdee session lost: {message}", **attrs)
    if code == MSG_PERMISSION:
        return ConfigurationError(f"Kingdee refused our credentials or permissions: {message}",
                                  how_to_fix="check acct_id, username and password of this sink and the API user's "
                                             "permissions in Kingdee", **attrs)
    if code == MSG_DUPLICATE:
        return DuplicateNumberError(f"Kingdee: number already exists: {message}", **attrs)
    if code == MSG_STATE:
        return WrongStateError(f"Kingdee: wrong document state: {message}", **attrs)
    return KingdeeRefusalError(f"Kingdee refused {operation}: {message}", **attrs)


def classify(operation: str, status_code: int, text: str) -> Any:
    """The useful part of an answer (``Result`` of a form operation, the rows of a query, the login body), or the
    error it means. Pure: no I/O, unit-tested on recorded shapes."""
    attrs = {"sink": "kingdee", "endpoint": operation, "status": status_code}
    if status_code == 404:
        raise ConfigurationError("Kingdee answered 404: wrong server URL",
                                 how_to_fix="`server` is the part before /k3cloud/", **attrs)
    if status_code != 200:
        raise TransientError(f"Kingdee answered HTTP {status_code}", **attrs)
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise TransientError(f"Kingdee answered something that is not JSON: {exc}", **attrs) from exc
    if operation in ("ValidateUser", "LoginByAppSecret"):
        if isinstance(body, dict) and body.get("LoginResultType") == 1:
            return body
        message = body.get("Message") if isinstance(body, dict) else None
        raise ConfigurationError(f"Kingdee login failed: {message}", how_to_fix="check acct_id, username and "
                                 "password of this sink", **attrs)
    if operation == "ExecuteBillQuery":
        if not isinstance(body, list):
            raise TransientError("Kingdee query answered an unexpected shape", **attrs)
        if (len(body) == 1 and isinstance(body[0], list) and len(body[0]) == 1 and isinstance(body[0][0], dict)
                and "Result" in body[0][0]):
            raise _status_error(operation, body[0][0]["Result"].get("ResponseStatus") or {})
        return body
    result = body.get("Result") if isinstance(body, dict) else None
    status = (result or {}).get("ResponseStatus") if isinstance(result, dict) else None
    if not isinstance(status, dict):
        raise TransientError("Kingdee answered without a ResponseStatus", **attrs)
    if status.get("IsSuccess"):
        return result
    raise _status_error(operation, status)


def quoted(value: str) -> str:
    """A value inside a FilterString: single quotes doubled."""
    return "'" + str(value).replace("'", "''") + "'"


class KingdeeClient:
    def __init__(self, settings, *, http: requests.Session | None = None) -> None:
        self.settings = settings
        self.http = http or requests.Session()
        self.base = settings.server.rstrip("/") + "/k3cloud/"
        self._logged_in = False

    def _post(self, service: str, operation: str, body: dict[str, Any], *, write: bool) -> Any:
        try:
            resp = self.http.post(self.base + service + ".common.kdsvc", json=body,
                                  timeout=self.settings.http.timeout_s)
        except requests.ConnectTimeout as exc:
            raise TransientError("cannot reach Kingdee", sink=self.settings.name, endpoint=operation) from exc
        except (requests.Timeout, requests.ConnectionError) as exc:
            cls = InDoubtError if write else TransientError
            raise cls(f"Kingdee call {operation} did not answer", sink=self.settings.name,
                      endpoint=operation) from exc
        return classify(operation, resp.status_code, resp.text)

    def login(self) -> None:
        s = self.settings
        body = {"format": 1, "useragent": "ApiClient", "rid": "orderhub", "v": "1.0",
                "parameters": [s.acct_id, s.username, s.password.reveal(), s.lcid]}
        self._post(AUTH, "ValidateUser", body, write=False)  # the session comes back as cookies in self.http
        self._logged_in = True

    def _once(self, operation: str, body: dict[str, Any], *, write: bool) -> Any:
        if not self._logged_in:
            self.login()
        try:
            return self._post(FORM + operation, operation, body, write=write)
        except SessionLostError:
            # a lost session refused the call before doing anything: log in again and replay it once
            self.login()
            return self._post(FORM + operation, operation, body, write=write)

    def call(self, operation: str, body: dict[str, Any], *, write: bool = False) -> Any:
        return call_with_retry(lambda: self._once(operation, body, write=write),
                               attempts=self.settings.http.attempts)

    # -- operations -------------------------------------------------------------------------------------------

    def save(self, form_id: str, model: dict[str, Any], return_fields: list[str] | None = None) -> dict[str, Any]:
        return self.call("Save", {"formid": form_id, "data": {"NeedUpDateFields": [], "IsDeleteEntry": "true",
                                                              "NeedReturnFields": return_fields or [],
                                                              "Model": model}}, write=True)

    def submit(self, form_id: str, numbers: list[str]) -> dict[str, Any]:
        return self.call("Submit", {"formid": form_id, "data": {"Numbers": numbers, "Ids": ""}}, write=True)

    def audit(self, form_id: str, numbers: list[str]) -> dict[str, Any]:
        return self.call("Audit", {"formid": form_id, "data": {"Numbers": numbers, "Ids": ""}}, write=True)

    def query(self, form_id: str, fields: list[str], filter_string: str, limit: int = 2000) -> list[list[Any]]:
        return self.call("ExecuteBillQuery", {"data": {"FormId": form_id, "FieldKeys": ",".join(fields),
                                                       "FilterString": filter_string, "OrderString": "",
                                                       "TopRowCount": 0, "StartRow": 0, "Limit": limit}})

    def view(self, form_id: str, number: str) -> dict[str, Any]:
        """The whole bill as the tenant stores it (read back by tests and by people checking a voucher)."""
        return self.call("View", {"formid": form_id, "data": {"Number": number}})
