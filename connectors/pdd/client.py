"""Pinduoduo wire client: sign, POST to ``api/router``, classify the answer (specs/platform-apis.md §4).

Every answer is HTTP 200 JSON: ``<root>_response`` or ``{"error_response": {"error_code", "error_msg", "sub_code",
"sub_msg"}}``. The spec leaves the numeric codes UNCONFIRMED, so ``classify`` reads them through ``ERROR_KINDS`` (the
sandbox's choices, sandbox/docs/pdd.md) and falls back to the ``sub_code`` text. ``PddClient`` adds the token
lifecycle: one refresh per shop at a time (single flight) after a token error when a refresh token is configured,
otherwise a ConfigurationError naming the shop and how to re-authorise.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

import requests

from hub.errors import ConfigurationError, FatalError, InDoubtError, RecordError, TransientError
from hub.logging import get_logger, register_secret
from hub.retry import call_with_retry

log = get_logger(__name__)

ERROR_KINDS: dict[int, str] = {
    10000: "fatal",          # a parameter we sent is wrong: our bug
    10001: "configuration",  # method unknown / not granted to the app
    10016: "configuration",  # unknown client_id
    10017: "configuration",  # signature: client_secret does not belong to client_id
    10018: "transient",      # timestamp outside ±10 minutes (clock skew)
    10019: "token",          # access_token invalid or expired
    20004: "record",         # no such order
    70031: "throttled",      # call frequency limited
}
_BAN = re.compile(r"(\d+(?:\.\d+)?)\s*(?:more\s+)?s(?:ec|econds)?", re.IGNORECASE)


def sign(params: Mapping[str, Any], secret: str) -> str:
    """§4: ``UPPER(MD5_hex(client_secret + Σ sorted(key + value) + client_secret))`` over all params but sign."""
    text = "".join(f"{key}{params[key]}" for key in sorted(params) if key != "sign" and params[key] is not None)
    return hashlib.md5(f"{secret}{text}{secret}".encode()).hexdigest().upper()


def classify(method: str, status_code: int, body: Any, *, shop: str, throttle_wait_s: float = 1.0
             ) -> dict[str, Any]:
    """The method's result object, or the hub.errors error PDD's answer means."""
    attrs: dict[str, Any] = {"channel": "pdd", "shop": shop, "endpoint": method}
    if status_code >= 500 or status_code != 200 or not isinstance(body, dict):
        raise TransientError(f"PDD gateway answered HTTP {status_code}", status=status_code, **attrs)
    if "error_response" in body:
        err = body["error_response"] or {}
        code = int(err.get("error_code") or 0)
        sub_code = str(err.get("sub_code") or "")
        text = f"{err.get('error_msg') or ''} {err.get('sub_msg') or ''}".strip()
        details = {**attrs, "code": code, "sub_code": sub_code}
        kind = ERROR_KINDS.get(code) or ("throttled" if "limit" in sub_code else
                                         "token" if "token" in sub_code else "transient")
        if kind == "throttled":
            ban = _BAN.search(str(err.get("sub_msg") or ""))
            wait = max(throttle_wait_s, float(ban.group(1)) if ban else 0.0)
            raise TransientError(f"PDD throttling (code {code})", retry_after=wait, **details)
        if kind == "token":
            raise ConfigurationError(
                f"PDD access_token of shop {shop} is invalid or expired (code {code})",
                how_to_fix=f"re-authorise shop {shop} in the Pinduoduo merchant backend (mms.pinduoduo.com, app "
                           "authorisation) and store the new access token (and refresh token) where its "
                           "'access_token' and 'refresh_token' references point", token=True, **details)
        if kind == "configuration":
            raise ConfigurationError(f"PDD refused the call: {text} (code {code})", how_to_fix=(
                f"check client_id and client_secret of shop {shop} and that the app is granted {method}"), **details)
        if kind == "record":
            raise RecordError(f"PDD {method}: {text} (code {code})", group_key=f"pdd {sub_code or code}", **details)
        if kind == "fatal":
            raise FatalError(f"PDD rejected the request: {text} (code {code})", **details)
        raise TransientError(f"PDD gateway error {code}: {text}", **details)
    roots = [key for key in body if key.endswith("_response")]
    if len(roots) != 1 or not isinstance(body[roots[0]], dict):
        raise TransientError("PDD answered without a *_response object", **attrs)
    return body[roots[0]]


# Tokens this process refreshed, per (gateway, client_id, shop): (access_token, refresh_token).
_GRANTS: dict[tuple[str, str, str], tuple[str, str | None]] = {}
_LOCKS: dict[tuple[str, str, str], threading.Lock] = {}
_GUARD = threading.Lock()


class PddClient:
    def __init__(self, settings, *, http: requests.Session | None = None) -> None:
        self.settings = settings
        self.http = http or requests.Session()
        self._secret = settings.client_secret.reveal()
        self._key = (str(settings.gateway), str(settings.client_id), str(settings.shop))
        with _GUARD:
            self._lock = _LOCKS.setdefault(self._key, threading.Lock())

    @property
    def shop(self) -> str:
        return str(self.settings.shop)

    @property
    def access_token(self) -> str:
        grant = _GRANTS.get(self._key)
        return grant[0] if grant else self.settings.access_token.reveal()

    def _refresh_token(self) -> str | None:
        grant = _GRANTS.get(self._key)
        if grant:
            return grant[1]
        return self.settings.refresh_token.reveal() if self.settings.refresh_token else None

    def refresh(self, stale: str) -> None:
        """Single flight: whoever waited for the lock uses the token the first caller got."""
        with self._lock:
            if self.access_token != stale:
                return
            refresh_token = self._refresh_token()
            if not refresh_token:
                raise ConfigurationError(
                    f"PDD access_token of shop {self.shop} is invalid or expired and no refresh_token is configured",
                    how_to_fix=f"re-authorise shop {self.shop} in the Pinduoduo merchant backend and store the new "
                               "access token where its 'access_token' reference points (add 'refresh_token' to have "
                               "it refreshed automatically)", channel="pdd", shop=self.shop, token=True)
            answer = self.call_once("pdd.pop.auth.token.refresh", {"refresh_token": refresh_token}, token=False)
            access, new_refresh = str(answer["access_token"]), answer.get("refresh_token")
            register_secret(access)
            register_secret(new_refresh)
            _GRANTS[self._key] = (access, str(new_refresh) if new_refresh else None)
            log.warning("PDD access token refreshed; the new tokens are kept in this process's memory only",
                        shop=self.shop, how_to_fix=f"store the new tokens of shop {self.shop} where 'access_token' "
                                                   "and 'refresh_token' point")

    def params(self, method: str, business: Mapping[str, Any], token: bool = True) -> dict[str, str]:
        params = {"type": method, "client_id": str(self.settings.client_id), "timestamp": str(int(time.time())),
                  "data_type": "JSON", "version": "V1", **{k: str(v) for k, v in business.items()}}
        if token:
            params["access_token"] = self.access_token
        params["sign"] = sign(params, self._secret)
        return params

    def call_once(self, method: str, business: Mapping[str, Any], *, token: bool = True, write: bool = False
                  ) -> dict[str, Any]:
        attrs = {"channel": "pdd", "shop": self.shop, "endpoint": method}
        try:
            resp = self.http.post(self.settings.gateway, data=self.params(method, business, token),
                                  timeout=self.settings.http.timeout_s)
        except requests.ConnectTimeout as exc:
            raise TransientError(f"cannot reach PDD gateway: {type(exc).__name__}", **attrs) from exc
        except (requests.Timeout, requests.ConnectionError) as exc:
            cls = InDoubtError if write else TransientError  # a read is harmless to repeat
            raise cls(f"PDD gateway lost the answer to {method}: {type(exc).__name__}", **attrs) from exc
        try:
            body = resp.json()
        except ValueError:
            body = None
        return classify(method, resp.status_code, body, shop=self.shop,
                        throttle_wait_s=self.settings.throttle_wait_s)

    def call(self, method: str, business: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One method, transient errors retried under hub.retry, a token error refreshed once."""
        business = business or {}

        def once() -> dict[str, Any]:
            stale = self.access_token
            try:
                return self.call_once(method, business)
            except ConfigurationError as exc:
                if not exc.attributes.get("token") or not self._refresh_token():
                    raise
                self.refresh(stale)
                return self.call_once(method, business)

        return call_with_retry(once, attempts=self.settings.http.attempts)
