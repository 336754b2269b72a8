"""Wire clients of the two waybill services (specs §8): SF 丰桥 CSIM and the Cainiao e-waybill LINK gateway.

Both are form POSTs with a Base64(MD5(…)) digest; both de-duplicate on our key (SF on ``orderId``, Cainiao on
``objectId`` + ``cpCode``), so a create whose answer was lost can be sent again and returns the same waybill.
Errors are told apart on codes, never texts (the code lists are UNCONFIRMED in the spec): signature / unknown
partner -> ConfigurationError, gateway or system failures -> TransientError, a refused order -> RecordError; a write
that times out or loses its connection after sending -> InDoubtError (dispatch probes or re-sends it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.parse
import uuid
from typing import Any

import requests

from hub.errors import ConfigurationError, InDoubtError, RecordError, TransientError
from hub.retry import call_with_retry


def sf_digest(msg_data: str, timestamp: str, check_word: str) -> str:
    """§8.1: Base64 of the raw MD5 of quote_plus(msgData + timestamp + checkWord)."""
    encoded = urllib.parse.quote_plus(msg_data + timestamp + check_word).encode("utf-8")
    return base64.b64encode(hashlib.md5(encoded).digest()).decode("ascii")


def cainiao_digest(content: str, secret: str) -> str:
    """§8.2 LINK: Base64 of the raw MD5 of logistics_interface + appSecret (UTF-8)."""
    return base64.b64encode(hashlib.md5((content + secret).encode("utf-8")).digest()).decode("ascii")


def _compact(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


class _FormClient:
    service_name = "carrier"

    def __init__(self, settings, http: requests.Session | None = None) -> None:
        self.settings = settings
        self.http = http or requests.Session()

    def _post(self, form: dict[str, str], what: str, *, write: bool) -> Any:
        attrs = {"sink": self.settings.name, "endpoint": what}
        try:
            resp = self.http.post(self.settings.url, data=form, timeout=self.settings.http.timeout_s)
        except requests.ConnectTimeout as exc:
            raise TransientError(f"cannot reach {self.service_name}", **attrs) from exc
        except (requests.Timeout, requests.ConnectionError) as exc:
            cls = InDoubtError if write else TransientError
            raise cls(f"{self.service_name} call {what} did not answer", **attrs) from exc
        if resp.status_code != 200:
            raise TransientError(f"{self.service_name} answered HTTP {resp.status_code}", status=resp.status_code,
                                 **attrs)
        try:
            return resp.json()
        except ValueError as exc:
            raise TransientError(f"{self.service_name} answered something that is not JSON", **attrs) from exc


class SfClient(_FormClient):
    service_name = "SF"
    CREATE, SEARCH = "EXP_RECE_CREATE_ORDER", "EXP_RECE_SEARCH_ORDER_RESP"
    NOT_FOUND = "8018"

    def __init__(self, settings, http: requests.Session | None = None) -> None:
        super().__init__(settings, http)
        self._check_word = settings.check_word.reveal()

    def once(self, service: str, msg: dict[str, Any], *, write: bool) -> dict[str, Any]:
        msg_data = _compact(msg)
        timestamp = str(int(time.time() * 1000))
        form = {"partnerID": self.settings.partner_id, "requestID": uuid.uuid4().hex, "serviceCode": service,
                "timestamp": timestamp, "msgDigest": sf_digest(msg_data, timestamp, self._check_word),
                "msgData": msg_data}
        return self.classify(service, self._post(form, service, write=write))

    def classify(self, service: str, body: dict[str, Any]) -> dict[str, Any]:
        attrs = {"sink": self.settings.name, "endpoint": service}
        code = str(body.get("apiResultCode") or "")
        if code in ("A1004", "A1006"):
            raise ConfigurationError(f"SF refused our credentials ({code})", code=code,
                                     how_to_fix="check partner_id and check_word of this sink against 丰桥", **attrs)
        if code != "A1000":
            raise TransientError(f"SF gateway answered {code}: {body.get('apiErrorMsg')}", code=code, **attrs)
        try:
            result = json.loads(body.get("apiResultData") or "{}")
        except ValueError as exc:
            raise TransientError("SF apiResultData is not JSON", **attrs) from exc
        if not result.get("success"):
            err = str(result.get("errorCode") or "")
            if err.startswith("S") or err in ("", "1000"):
                raise TransientError(f"SF failure {err}: {result.get('errorMsg')}", code=err or None, **attrs)
            raise RecordError(f"SF refused the order ({err}): {result.get('errorMsg')}", code=err, **attrs)
        return result.get("msgData") or {}

    def call(self, service: str, msg: dict[str, Any], *, write: bool = False) -> dict[str, Any]:
        return call_with_retry(lambda: self.once(service, msg, write=write), attempts=self.settings.http.attempts)


class CainiaoClient(_FormClient):
    service_name = "Cainiao"
    GET = "TMS_WAYBILL_GET"

    def __init__(self, settings, http: requests.Session | None = None) -> None:
        super().__init__(settings, http)
        self._token = settings.logistic_provider_id.reveal()
        self._secret = settings.app_secret.reveal()

    def once(self, msg_type: str, content: dict[str, Any], *, write: bool) -> dict[str, Any]:
        text = _compact(content)
        form = {"msg_type": msg_type, "logistic_provider_id": self._token, "logistics_interface": text,
                "data_digest": cainiao_digest(text, self._secret)}
        body = self._post(form, msg_type, write=write)
        if body.get("success"):
            return body
        code = str(body.get("errorCode") or "")
        attrs = {"sink": self.settings.name, "endpoint": msg_type, "code": code or None}
        if code in ("S02", "S03"):
            raise ConfigurationError(f"Cainiao refused our credentials ({code})", **attrs,
                                     how_to_fix="check logistic_provider_id and app_secret of this sink")
        if code.startswith("S") or not code:
            raise TransientError(f"Cainiao failure {code}: {body.get('errorMsg')}", **attrs)
        raise RecordError(f"Cainiao refused the waybill ({code}): {body.get('errorMsg')}", **attrs)

    def call(self, msg_type: str, content: dict[str, Any], *, write: bool = False) -> dict[str, Any]:
        return call_with_retry(lambda: self.once(msg_type, content, write=write),
                               attempts=self.settings.http.attempts)
