"""TOP wire client: sign, POST, and classify the answer (errors arrive as HTTP 200 with an ``error_response``).

``classify`` is pure and holds all knowledge of TOP's error codes (specs/platform-apis.md §1.5):
throttling (code 7) is transient with the ban length as retry hint, except the app's daily quota which is a
transient error until the quota resets; a bad signature, app key or expired session needs a person
(configuration error saying how to fix it); ``isp.*`` sub-codes are the platform's own trouble (transient);
other ``isv.*`` business errors belong to the record at hand.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests

from connectors.top_signing import sign
from hub import tokens
from hub.errors import ConfigurationError, FatalError, InDoubtError, RecordError, TransientError
from hub.logging import get_logger, register_secret
from hub.retry import call_with_retry
from hub.tokens import Grant

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


# Refreshed sessions per (gateway, app key, shop): this process's copy of what hub.tokens stores for every process.
_GRANTS: dict[tuple[str, str, str], Grant] = {}
REFRESH_MARGIN = timedelta(minutes=10)  # refresh a known-expiring session this long before it ends (or half its life)


class TopClient:
    """One shop's TOP client. ``call`` signs and sends one request, retrying transient errors under the one policy.

    Session lifecycle (specs §1.3): when the shop has a ``refresh_token``, an "Invalid session" (27) answer, or a
    refreshed session nearing its end, triggers ``taobao.top.auth.token.refresh`` once per shop (single flight: a
    lock per shop in this process and the shop's row in ``channel_tokens`` across processes; whoever waited uses the
    new token) and the call goes on. The refresh token is single use, so the new grant is stored by hub.tokens for
    every later process (the configuration only holds references and is not rewritten). Without a refresh token, or
    when TOP refuses it, the expired session stays a ConfigurationError naming the shop and how to re-authorise.
    """

    def __init__(self, settings, *, http: requests.Session | None = None) -> None:
        self.settings = settings
        self.http = http or requests.Session()
        self._app_key = settings.app_key.reveal()
        self._secret = settings.app_secret.reveal()
        self._configured_session = settings.session.reveal()
        self._key = (str(settings.gateway), self._app_key, str(settings.shop))
        self._account = " ".join(self._key)
        store = tokens.current_store()
        stored = store.load("tmall", self._account) if store is not None else None
        if stored is not None:  # refreshed by an earlier process (or this one): the configured session may be spent
            _GRANTS[self._key] = stored

    @property
    def _session(self) -> str:
        grant = _GRANTS.get(self._key)
        return grant.access_token if grant else self._configured_session

    def _refresh_token(self) -> str | None:
        grant = _GRANTS.get(self._key)
        if grant is not None:
            return grant.refresh_token
        reference = getattr(self.settings, "refresh_token", None)
        return reference.reveal() if reference is not None else None

    def refresh_session(self, stale: str) -> None:
        """Refresh the shop's session unless someone already replaced ``stale`` (single flight per shop)."""
        shop = self.settings.shop
        with tokens.refreshing("tmall", self._account) as slot:  # single flight: threads and processes
            if slot.current is not None and slot.current.access_token != stale:
                _GRANTS[self._key] = slot.current  # another process refreshed while we waited for its row
            if self._session != stale:
                return  # another caller refreshed while we waited for the lock
            refresh_token = self._refresh_token()
            if not refresh_token:
                raise ConfigurationError(
                    f"TOP session of shop {shop} is invalid or expired and no refresh_token is configured",
                    how_to_fix=f"re-authorise shop {shop} in the seller console (OAuth) and store the new access "
                               "token in the credential its 'session' references (add 'refresh_token' to have it "
                               "refreshed automatically)", channel="tmall", shop=shop)
            try:
                body = self.call_once("taobao.top.auth.token.refresh", with_session=False,
                                      refresh_token=refresh_token)
            except RecordError as exc:
                raise ConfigurationError(
                    f"TOP refused the refresh token of shop {shop} (used, expired or revoked)",
                    how_to_fix=f"re-authorise shop {shop} in the seller console (OAuth) and store the new access "
                               "token and refresh token in the credentials 'session' and 'refresh_token' reference",
                    channel="tmall", shop=shop, code=exc.attributes.get("code"),
                    sub_code=exc.attributes.get("sub_code")) from exc
            raw = body.get("token_result", body)
            token = json.loads(raw) if isinstance(raw, str) else dict(raw)
            access = str(token.get("access_token") or "")
            if not access:
                raise FatalError("TOP answered token.refresh without an access_token", channel="tmall", shop=shop)
            new_refresh = token.get("refresh_token")
            register_secret(access)
            register_secret(new_refresh)
            lifetime = timedelta(seconds=float(token["expires_in"])) if token.get("expires_in") else None
            grant = Grant(access, new_refresh, datetime.now(UTC) + lifetime if lifetime else None, lifetime)
            slot.save(grant)  # stored before anyone uses it: the configured refresh token is spent from now on
            _GRANTS[self._key] = grant
            if tokens.current_store() is None:
                log.warning("TOP session refreshed; the new tokens are kept in this process's memory only",
                            shop=shop, expires_in=token.get("expires_in"),
                            how_to_fix=f"run the connector through the Hub so that shop {shop}'s new tokens are "
                                       "stored in the hub database (the configured refresh token is spent)")
            else:
                log.info("TOP session refreshed and stored for every process", shop=shop,
                         expires_in=token.get("expires_in"))

    def _refresh_if_due(self) -> None:
        grant = _GRANTS.get(self._key)
        if grant is None or grant.expires_at is None or not grant.refresh_token:
            return  # the configured session's end is unknown here: an "Invalid session" answer triggers the refresh
        margin = min(REFRESH_MARGIN, grant.lifetime / 2) if grant.lifetime else REFRESH_MARGIN
        if grant.expires_at - datetime.now(UTC) <= margin:
            self.refresh_session(grant.access_token)

    def _params(self, method: str, business: dict[str, Any], with_session: bool = True) -> dict[str, str]:
        params = {
            "method": method,
            "app_key": self._app_key,
            **({"session": self._session} if with_session else {}),
            "timestamp": top_time(datetime.now(UTC)),
            "format": "json",
            "v": "2.0",
            "sign_method": self.settings.sign_method,
            **{k: str(v) for k, v in business.items() if v is not None},
        }
        params["sign"] = sign(params, self._secret, self.settings.sign_method)
        return params

    def call_once(self, method: str, *, write: bool = False, with_session: bool = True, **business: Any
                  ) -> dict[str, Any]:
        params = self._params(method, business, with_session)
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
        def once() -> dict[str, Any]:
            try:
                self._refresh_if_due()
                session = self._session
                try:
                    return self.call_once(method, write=write, **business)
                except ConfigurationError as exc:
                    if exc.attributes.get("code") != 27 or not self._refresh_token():
                        raise
                    self.refresh_session(session)
                    return self.call_once(method, write=write, **business)
            except TransientError as exc:
                if exc.attributes.get("quota"):
                    # the daily quota resets at midnight GMT+8: hours, not seconds; retrying now only burns calls.
                    # It goes straight up so the sync can stop cleanly and say until when.
                    raise _NotRetried(exc) from exc
                raise

        try:
            return call_with_retry(once, attempts=self.settings.http.attempts)
        except _NotRetried as wrapped:
            raise wrapped.error from None


class _NotRetried(Exception):
    """Carries an error past the retry policy untouched (only TransientError is retried)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error
