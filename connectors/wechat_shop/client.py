"""WeChat shop wire client: access_token lifecycle, JSON POST/GET, and the classification of ``errcode`` answers.

``classify`` is pure and holds all knowledge of WeChat's error codes (specs/platform-apis.md §3.1): every answer is
HTTP 200 JSON with ``errcode``/``errmsg``; a token the platform no longer takes (40001 "invalid credential / not
latest", 42001 "expired", 40014, 41001) is refetched once and the call repeated; a wrong AppID/AppSecret, a missing
API permission or an IP allow-list needs a person (ConfigurationError naming the shop and how to fix it); 45011 (too
frequent) and -1 (system busy) are transient; 45009 (daily quota) waits until the quota resets (midnight GMT+8);
100002/100003/40097 belong to the record at hand; a request shape WeChat refuses (43001/43002/47001/606006) is a bug.

Token lifecycle: the shop app's token is fetched with ``cgi-bin/stable_token`` by default. A stable token is the same
for every process that asks (it is not superseded by a plain fetch, unlike ``cgi-bin/token``), but a ``force_refresh``
rotation, and every classic fetch, makes the previous token answer 40001 five minutes later. So a fetched token is
stored by hub.tokens in the hub database, every client starts from the newest stored one, and the fetch runs holding
the shop's row: the next process (the next Airflow task) uses the token instead of fetching one that would knock out
the token of a process still running, and spends none of the daily token quota. A token is refreshed before it
expires (``REFRESH_MARGIN`` or half its life) and after a token errcode, once per shop at a time (single flight: a lock
per (API base, AppID) in this process and the row across processes; whoever waited uses the new token). A token
refused again right after a refresh is a ConfigurationError: the sync stops for this shop, visibly in
``orderhub status``, never silently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests

from hub import tokens
from hub.errors import ConfigurationError, FatalError, InDoubtError, RecordError, TransientError
from hub.logging import get_logger, register_secret
from hub.retry import call_with_retry
from hub.tokens import Grant

SHANGHAI = ZoneInfo("Asia/Shanghai")
log = get_logger(__name__)

TOKEN_CODES = (40001, 40014, 41001, 42001)  # the token is not (or no longer) taken: refetch, then repeat the call
RECORD_CODES = (40097, 100002, 100003)  # invalid parameter, order not found, status forbids this: the record's own
REFRESH_MARGIN = 300.0  # seconds: refresh a token this long before it ends (or at half its life if shorter)


def _seconds_to_midnight_shanghai(now: datetime | None = None) -> float:
    now = (now or datetime.now(UTC)).astimezone(SHANGHAI)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=5, microsecond=0)
    return (midnight - now).total_seconds()


def _how_to_fix_app(shop: str) -> str:
    return (f"check appid and the credential 'secret' of shop {shop} against the WeChat shop console (微信小店 -> "
            "设置 -> 开发设置 / 开发者ID); if the AppSecret was reset there, store the new one in the credential "
            "'secret' references, then run the sync again")


def classify(path: str, status_code: int, body: Any, *, shop: str | None = None,
             throttle_wait_s: float = 5.0) -> dict[str, Any]:
    """Return the answer object, or raise the error kind WeChat's answer means."""
    attrs = {"channel": "wechat_shop", "shop": shop, "endpoint": path}
    if status_code >= 500:
        raise TransientError(f"WeChat answered HTTP {status_code}", status=status_code, **attrs)
    if status_code != 200 or not isinstance(body, dict):
        raise TransientError(f"WeChat answered HTTP {status_code} without a JSON object", status=status_code, **attrs)
    code = body.get("errcode", 0)
    try:
        code = int(code or 0)
    except (TypeError, ValueError):
        raise TransientError(f"WeChat answered a non-numeric errcode {code!r}", **attrs) from None
    if code == 0:
        return body
    errmsg = str(body.get("errmsg") or "")
    details = {**attrs, "errcode": code, "errmsg": errmsg or None}
    if code in TOKEN_CODES:
        raise ConfigurationError(
            f"WeChat refused the access_token of shop {shop} (errcode {code})",
            how_to_fix=f"the token of shop {shop} is refetched automatically; if this persists, check that the "
                       "shop app is still authorised and that no other system force-refreshes its stable token "
                       "(WeChat shop console -> 设置 -> 开发设置)", token_error=True, **details)
    if code == 45011:
        raise TransientError("WeChat throttling (45011: API called too frequently)", retry_after=throttle_wait_s,
                             **details)
    if code == 45009:
        raise TransientError("WeChat daily API quota used up (45009); resuming after it resets",
                             retry_after=_seconds_to_midnight_shanghai(), quota=True, **details)
    if code in (-1, 45033):  # system busy; 45033: too many concurrent calls
        raise TransientError(f"WeChat is busy (errcode {code})", retry_after=1.0, **details)
    if code == 40013:
        raise ConfigurationError(f"WeChat does not know the AppID of shop {shop} (40013)",
                                 how_to_fix=_how_to_fix_app(str(shop)), **details)
    if code == 40125:
        raise ConfigurationError(f"WeChat refused the AppSecret of shop {shop} (40125)",
                                 how_to_fix=_how_to_fix_app(str(shop)), **details)
    if code in (40164, 61004):
        raise ConfigurationError(f"WeChat refused the caller's IP address for shop {shop} ({code})",
                                 how_to_fix="add this host's outbound IP to the shop app's IP allow-list (API IP "
                                            "白名单) in the WeChat shop console", **details)
    if code in (48001, 48004, 50001, 50002):
        raise ConfigurationError(f"the shop app of shop {shop} may not call {path} ({code})",
                                 how_to_fix="grant the API permission (权限集) to the shop app in the WeChat shop "
                                            "console, then run the sync again", **details)
    if code in RECORD_CODES:
        raise RecordError(f"WeChat refused the request for this record: {code} {errmsg}".strip(), **details)
    if code in (40002, 43001, 43002, 44002, 47001, 606006, 31042):
        raise FatalError(f"WeChat refused the request shape: {code} {errmsg}".strip(), **details)
    raise RecordError(f"WeChat business error: {code} {errmsg}".strip(), **details)


@dataclass
class _Token:
    value: str
    expires_at: float  # time.monotonic() clock
    lifetime: float


# Tokens per (API base, AppID): this process's copy; the stable token itself is shared by WeChat across processes.
_TOKENS: dict[tuple[str, str], _Token] = {}


def forget_tokens() -> None:
    """Drop this process's cached tokens (tests; a reloaded configuration)."""
    _TOKENS.clear()


class WxClient:
    """One shop's WeChat client. ``call`` sends one API request with the shop's token, retrying transient errors
    under the one policy; the token is fetched, refreshed before expiry, and refetched once on a token errcode."""

    def __init__(self, settings, *, http: requests.Session | None = None) -> None:
        self.settings = settings
        self.shop = settings.shop
        self.http = http or requests.Session()
        self.base = str(settings.api_base).rstrip("/")
        self._key = (self.base, settings.appid)
        self._account = " ".join(self._key)
        store = tokens.current_store()
        stored = store.load("wechat_shop", self._account) if store is not None else None
        if stored is not None:  # fetched by an earlier process (or this one): it may have superseded ours
            self._adopt(stored)

    def _adopt(self, grant: Grant) -> bool:
        """Make a stored token this process's, unless WeChat's end of it has passed; True when adopted."""
        left = (grant.expires_at - datetime.now(UTC)).total_seconds() if grant.expires_at else 0.0
        if left <= 0:
            return False
        lifetime = grant.lifetime.total_seconds() if grant.lifetime else left
        _TOKENS[self._key] = _Token(grant.access_token, time.monotonic() + left, max(lifetime, 1.0))
        return True

    # -- token --------------------------------------------------------------------------------------------------------

    @property
    def token(self) -> str:
        """The current token, fetched or refreshed first when there is none or it is near its end."""
        cached = _TOKENS.get(self._key)
        if cached is None:
            return self.refresh_token(None)
        margin = min(REFRESH_MARGIN, cached.lifetime / 2)
        if cached.expires_at - time.monotonic() <= margin:
            return self.refresh_token(cached.value, ahead=True)
        return cached.value

    def refresh_token(self, stale: str | None, *, ahead: bool = False) -> str:
        """Replace ``stale`` (None: no token yet) unless someone already did (single flight per shop app).

        ``ahead``: the token is still valid but near its end. A stable token is served unchanged until it expires,
        so when the fetch returns the same near-expiry token, ``force_refresh`` rotates it (WeChat keeps the old one
        valid for a few minutes, so other processes' calls in flight are not hurt). After a token errcode the plain
        fetch is tried first (another process may already have rotated it), then ``force_refresh``.
        """
        with tokens.refreshing("wechat_shop", self._account) as slot:  # single flight: threads and processes
            if slot.current is not None and slot.current.access_token != stale and self._adopt(slot.current):
                return slot.current.access_token  # another process fetched one while we waited for its row
            current = _TOKENS.get(self._key)
            if current is not None and current.value != stale:
                return current.value  # another caller refreshed while we waited for the lock
            value, lifetime = self._fetch_token(force=False)
            if stale is not None and value == stale and self.settings.token_kind == "stable":
                value, lifetime = self._fetch_token(force=True)
            # stored before anyone uses it: a process still holding the token it replaces finds this one
            slot.save(Grant(value, None, datetime.now(UTC) + timedelta(seconds=lifetime), timedelta(seconds=lifetime)))
            _TOKENS[self._key] = _Token(value, time.monotonic() + lifetime, max(lifetime, 1.0))
            log.info("WeChat access_token fetched", shop=self.shop, kind=self.settings.token_kind,
                     expires_in=int(lifetime), ahead=ahead)
            return value

    def _fetch_token(self, *, force: bool) -> tuple[str, float]:
        secret = self.settings.secret.reveal()

        def once() -> dict[str, Any]:
            try:
                if self.settings.token_kind == "stable":
                    path = "/cgi-bin/stable_token"
                    resp = self.http.post(self.base + path, json={
                        "grant_type": "client_credential", "appid": self.settings.appid, "secret": secret,
                        "force_refresh": force}, timeout=self.settings.http.timeout_s)
                else:
                    path = "/cgi-bin/token"
                    resp = self.http.get(self.base + path, params={
                        "grant_type": "client_credential", "appid": self.settings.appid, "secret": secret},
                        timeout=self.settings.http.timeout_s)
            except requests.RequestException as exc:
                raise TransientError(f"cannot reach WeChat for a token: {type(exc).__name__}",
                                     channel="wechat_shop", shop=self.shop, endpoint="token") from exc
            try:
                body = resp.json()
            except ValueError:
                body = None
            try:
                return classify(path, resp.status_code, body, shop=self.shop,
                                throttle_wait_s=self.settings.throttle_wait_s)
            except ConfigurationError as exc:
                if exc.attributes.get("errcode") == 40001:  # on the token endpoint 40001 means "AppSecret error"
                    raise ConfigurationError(
                        f"WeChat refused the AppSecret of shop {self.shop} (40001 on the token endpoint)",
                        how_to_fix=_how_to_fix_app(self.shop), channel="wechat_shop", shop=self.shop,
                        endpoint=path, errcode=40001) from None
                raise

        body = self._retried(once)
        value = str(body.get("access_token") or "")
        if not value:
            raise FatalError("WeChat answered the token request without an access_token", channel="wechat_shop",
                             shop=self.shop)
        register_secret(value)
        expires_in = body.get("expires_in")
        return value, float(expires_in if expires_in is not None else 7200)

    # -- calls --------------------------------------------------------------------------------------------------------

    def call_once(self, path: str, body: dict[str, Any] | None = None, *, token: str, write: bool = False,
                  method: str = "POST") -> dict[str, Any]:
        url = self.base + path
        try:
            if method == "GET":
                resp = self.http.get(url, params={"access_token": token}, timeout=self.settings.http.timeout_s)
            else:
                resp = self.http.post(url, params={"access_token": token}, json=body or {},
                                      timeout=self.settings.http.timeout_s)
        except (requests.ConnectTimeout, requests.ConnectionError) as exc:
            if write and not isinstance(exc, requests.ConnectTimeout):
                raise InDoubtError(f"connection lost during {path}", channel="wechat_shop", shop=self.shop,
                                   endpoint=path) from exc
            raise TransientError(f"cannot reach WeChat: {type(exc).__name__}", channel="wechat_shop",
                                 shop=self.shop, endpoint=path) from exc
        except requests.Timeout as exc:
            cls = InDoubtError if write else TransientError
            raise cls(f"WeChat timed out on {path}", channel="wechat_shop", shop=self.shop, endpoint=path) from exc
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        return classify(path, resp.status_code, answer, shop=self.shop,
                        throttle_wait_s=self.settings.throttle_wait_s)

    def call(self, path: str, body: dict[str, Any] | None = None, *, write: bool = False, method: str = "POST"
             ) -> dict[str, Any]:
        """One API call; a token errcode refetches the token once (single flight) and repeats the call. A token
        refused again right after is a ConfigurationError naming the shop: the shop needs a person."""
        def once() -> dict[str, Any]:
            token = self.token
            try:
                return self.call_once(path, body, token=token, write=write, method=method)
            except ConfigurationError as exc:
                if not exc.attributes.get("token_error"):
                    raise
                log.info("WeChat refused the token; refetching it", shop=self.shop, errcode=exc.attributes["errcode"])
                fresh = self.refresh_token(token)
            try:
                return self.call_once(path, body, token=fresh, write=write, method=method)
            except ConfigurationError as exc:
                if not exc.attributes.get("token_error"):
                    raise
                raise ConfigurationError(
                    f"WeChat keeps refusing the access_token of shop {self.shop} (errcode "
                    f"{exc.attributes['errcode']}) right after a fresh one was fetched",
                    how_to_fix=f"re-authorise the shop app of shop {self.shop}: check in the WeChat shop console "
                               "(设置 -> 开发设置) that the app is enabled and its AppSecret is the one the credential "
                               "'secret' holds, and that no other system force-refreshes its token; then run the "
                               "sync again", channel="wechat_shop", shop=self.shop, endpoint=path,
                    errcode=exc.attributes["errcode"]) from None

        return self._retried(once)

    def _retried(self, fn):
        def once():
            try:
                return fn()
            except TransientError as exc:
                if exc.attributes.get("quota"):
                    # the daily quota resets at midnight GMT+8: retrying now only burns calls; straight up, so the
                    # sync stops cleanly and says until when
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
