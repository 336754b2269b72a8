"""TOP wire client: sign, POST, and classify the answer (errors arrive as HTTP 200 with an ``error_response``).

``classify`` is pure and holds all knowledge of TOP's error codes (specs/platform-apis.md §1.5):
throttling (code 7) is transient with the ban length as retry hint, except the app's daily quota which is a
transient error until the quota resets; a bad signature, app key or expired session needs a person
(configuration error saying how to fix it); ``isp.*`` sub-codes are the platform's own trouble (transient);
other ``isv.*`` business errors belong to the record at hand.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests

from connectors.top_signing import sign
from hub.errors import ConfigurationError, FatalError, InDoubtError, RecordError, TransientError
from hub.logging import get_logger
from hub.retry import call_with_retry

SHANGHAI = ZoneInfo("Asia/Shanghai")
_BAN = re.compile(r"ban will last for (\d+) more seconds")
log = get_logger(__name__)


def top_time(moment: datetime) -> str:
    """TOP wants 'yyyy-MM-dd HH:mm:ss' in GMT+8."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def response_key(method: str) -> str:
    """'taobao.trades.sold.increment.get' -> 'trades_sold_increment_get_response'."""
    return method.removeprefix("taobao.").replace(".", "_") + "_response"


def _seconds_to_midnight_shanghai(now: datetime | None = None) -> float:
    now = (now or datetime.now(UTC)).astimezone(SHANGHAI)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=5, microsecond=0)
    return (midnight - now).total_seconds()


def classify(method: str, status_code: int, body: Any, *, shop: str | None = None) -> dict[str, Any]:
    """Return the method's response object, or raise the error kind TOP's answer means."""
    attrs = {"channel": "tmall", "shop": shop, "endpoint": method}
    if status_code >= 500:
        raise TransientError(f"TOP gateway answered HTTP {status_code}", status=status_code, **attrs)
    if status_code != 200 or not isinstance(body, dict):
        raise TransientError(f"TOP gateway answered HTTP {status_code} without a JSON object", status=status_code,
                             **attrs)
    if "error_response" in body:
        err = body["error_response"] or {}
        code = int(err.get("code") or 0)
        sub_code = str(err.get("sub_code") or "")
        sub_msg = str(err.get("sub_msg") or "")
        details = {**attrs, "code": code, "sub_code": sub_code or None, "sub_msg": sub_msg or None,
                   "request_id": err.get("request_id")}
        msg = str(err.get("msg") or "TOP error")
        if code == 7:
            if sub_code.endswith("limited-by-app-access-count"):
                raise TransientError("TOP daily call quota used up; resuming after it resets",
                                     retry_after=_seconds_to_midnight_shanghai(), quota=True, **details)
            ban = _BAN.search(sub_msg)
            raise TransientError("TOP throttling (App Call Limited)", retry_after=float(ban.group(1)) if ban else 1.0,
                                 **details)
        if code in (24, 25):
            raise ConfigurationError("TOP rejected the signature", how_to_fix=(
                "check app_secret and sign_method of this shop: the secret must belong to the app_key"), **details)
        if code in (26, 27):
            raise ConfigurationError(
                f"TOP session of shop {shop} is invalid or expired",
                how_to_fix=f"re-authorise shop {shop} in the seller console (OAuth) and store the new access token "
                           "in the credential its 'session' references", **details)
        if code in (28, 29):
            raise ConfigurationError("TOP does not know this app_key", how_to_fix="check app_key of this shop",
                                     **details)
        if code in (11, 12):
            raise ConfigurationError(f"TOP permission missing for {method}", how_to_fix=(
                "grant the API package to the app in the TOP console, or have the seller re-authorise it"), **details)
        if code in (30, 31):
            raise TransientError("TOP rejected the timestamp (clock skew > 10 min?)", **details)
        if code == 10 or sub_code.startswith("isp."):
            raise TransientError(f"TOP platform error: {msg}", **details)
        if code in (21, 22, 23, 32, 33, 34):
            raise FatalError(f"TOP rejected the request shape: {msg}", **details)
        raise RecordError(f"TOP business error: {msg} {sub_msg}".strip(), **details)
    key = response_key(method)
    if key in body:
        return body[key] or {}
    # simplify=true answers without the wrapper
    return body


class TopClient:
    """One shop's TOP client. ``call`` signs and sends one request, retrying transient errors under the one policy."""

    def __init__(self, settings, *, http: requests.Session | None = None) -> None:
        self.settings = settings
        self.http = http or requests.Session()
        self._app_key = settings.app_key.reveal()
        self._secret = settings.app_secret.reveal()
        self._session = settings.session.reveal()

    def _params(self, method: str, business: dict[str, Any]) -> dict[str, str]:
        params = {
            "method": method,
            "app_key": self._app_key,
            "session": self._session,
            "timestamp": top_time(datetime.now(UTC)),
            "format": "json",
            "v": "2.0",
            "sign_method": self.settings.sign_method,
            **{k: str(v) for k, v in business.items() if v is not None},
        }
        params["sign"] = sign(params, self._secret, self.settings.sign_method)
        return params

    def call_once(self, method: str, *, write: bool = False, **business: Any) -> dict[str, Any]:
        params = self._params(method, business)
        try:
            resp = self.http.post(self.settings.gateway, data=params, timeout=self.settings.http.timeout_s)
        except (requests.ConnectTimeout, requests.ConnectionError) as exc:
            if write and not isinstance(exc, requests.ConnectTimeout):
                raise InDoubtError(f"connection lost during {method}", channel="tmall", shop=self.settings.shop,
                                   endpoint=method) from exc
            raise TransientError(f"cannot reach TOP gateway: {type(exc).__name__}", channel="tmall",
                                 shop=self.settings.shop, endpoint=method) from exc
        except requests.Timeout as exc:
            cls = InDoubtError if write else TransientError
            raise cls(f"TOP gateway timed out on {method}", channel="tmall", shop=self.settings.shop,
                      endpoint=method) from exc
        try:
            body = resp.json()
        except ValueError:
            body = None
        return classify(method, resp.status_code, body, shop=self.settings.shop)

    def call(self, method: str, *, write: bool = False, **business: Any) -> dict[str, Any]:
        return call_with_retry(lambda: self.call_once(method, write=write, **business),
                               attempts=self.settings.http.attempts)
