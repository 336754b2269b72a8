"""Tryton JSON-RPC wire client using only ``requests`` (specs airflow-and-tryton §5.4): ``common.db.login`` gives a
session sent as ``Authorization: Session base64(login:uid:token)``; model calls are ``model.<model>.<method>`` with
the user's preferences as the last positional parameter (the context: without it, creates fail the company rule).

Errors come back as HTTP 200 with ``{"error": [type, args]}`` (``UserError``, ``AccessError``...); only session and
rate-limit problems use 401/403/429 (§5.6). ``classify`` is pure. Writes are **not** retried here: ``sale.reference``
is not unique in Tryton, so a blind re-send could create a second sale; the sink looks first and decides.
"""

from __future__ import annotations

import base64
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import requests

from hub.errors import ConfigurationError, InDoubtError, RecordError, TransientError
from hub.retry import call_with_retry


class TrytonUserError(RecordError):
    """Tryton refused the record (a UserError: missing address, a rule, a domain...)."""


class SessionExpiredError(TransientError):
    """401/403: the session is gone; log in again and replay."""


def encode(value: Any) -> Any:
    """Tryton's JSON tags Decimal (and dates); ``json.dumps(default=encode)``."""
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, date) and not isinstance(value, datetime):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    raise TypeError(f"cannot send {type(value).__name__} to Tryton")


def decode(obj: dict[str, Any]) -> Any:
    if obj.get("__class__") == "Decimal":
        return Decimal(obj["decimal"])
    if obj.get("__class__") == "date":
        return date(obj["year"], obj["month"], obj["day"])
    return obj


def classify(method: str, status_code: int, text: str) -> Any:
    attrs = {"sink": "tryton", "endpoint": method, "status": status_code}
    if status_code in (401, 403):
        raise SessionExpiredError("Tryton refused the session", **attrs)
    if status_code == 429:
        raise TransientError("Tryton throttled the login", retry_after=10, **attrs)
    if status_code == 404:
        raise ConfigurationError("Tryton answered 404", how_to_fix="check url and database of this sink", **attrs)
    if status_code != 200:
        raise TransientError(f"Tryton answered HTTP {status_code}", **attrs)
    try:
        body = json.loads(text, object_hook=decode)
    except ValueError as exc:
        raise TransientError(f"Tryton answered something that is not JSON: {exc}", **attrs) from exc
    error = body.get("error") if isinstance(body, dict) else None
    if not error:
        return body.get("result")
    kind = error[0] if isinstance(error, list) and error else str(error)
    args = error[1] if isinstance(error, list) and len(error) > 1 else None
    message = args[0] if isinstance(args, list) and args else str(args or kind)
    details = {**attrs, "code": kind}
    if kind in ("UserError", "UserWarning"):
        raise TrytonUserError(f"Tryton refused: {message}", **details)
    if kind in ("AccessError", "LoginException") or "'res.user'" in str(kind):
        raise ConfigurationError(f"Tryton: {kind}: {message}",
                                 how_to_fix="check the user's access rights, and that trytond runs with -d <db>",
                                 **details)
    if kind == "ConcurrencyException":
        raise TransientError(f"Tryton: {message}", **details)
    raise RecordError(f"Tryton failed: {kind}: {message}", **details)


class TrytonRPC:
    def __init__(self, settings, *, http: requests.Session | None = None) -> None:
        self.settings = settings
        self.http = http or requests.Session()
        self.url = f"{settings.url.rstrip('/')}/{settings.database}/rpc/"
        self.context: dict[str, Any] | None = None
        self._n = 0

    def _post(self, method: str, params: list[Any], *, write: bool) -> Any:
        self._n += 1
        data = json.dumps({"id": self._n, "method": method, "params": params}, default=encode)
        try:
            resp = self.http.post(self.url, data=data, headers={"Content-Type": "application/json"},
                                  timeout=self.settings.http.timeout_s)
        except requests.ConnectTimeout as exc:
            raise TransientError("cannot reach Tryton", sink=self.settings.name, endpoint=method) from exc
        except (requests.Timeout, requests.ConnectionError) as exc:
            cls = InDoubtError if write else TransientError
            raise cls(f"Tryton call {method} did not answer", sink=self.settings.name, endpoint=method) from exc
        return classify(method, resp.status_code, resp.text)

    def login(self) -> None:
        s = self.settings
        self.http.headers.pop("Authorization", None)
        uid, token, *_ = self._post("common.db.login", [s.username, {"password": s.password.reveal()},
                                                         s.language], write=False)
        session = base64.b64encode(f"{s.username}:{uid}:{token}".encode()).decode()
        self.http.headers["Authorization"] = "Session " + session
        self.context = self._post("model.res.user.get_preferences", [True, {}], write=False)

    def _once(self, method: str, params: list[Any], write: bool) -> Any:
        if self.context is None:
            self.login()
        try:
            return self._post(method, [*params, self.context], write=write)
        except SessionExpiredError:
            self.login()  # refused before doing anything: safe to replay once
            return self._post(method, [*params, self.context], write=write)

    def call(self, model: str, method: str, *args: Any, write: bool = False) -> Any:
        """``model.<model>.<method>(*args, context)``. Reads go through the retry policy; writes are sent once and
        an InDoubtError goes to the caller, who looks before sending again."""
        name = f"model.{model}.{method}"
        if write:
            return self._once(name, list(args), True)
        return call_with_retry(lambda: self._once(name, list(args), False), attempts=self.settings.http.attempts)

    def search_read(self, model: str, domain: list[Any], fields: list[str], limit: int | None = None) -> list[dict]:
        return self.call(model, "search_read", domain, 0, limit, None, fields)
