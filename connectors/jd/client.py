"""JD JOS wire client: sign, POST to ``routerjson``, and classify the answer (specs/platform-apis.md §2.1-2.4).

Every answer is HTTP 200 + JSON. Two layers can fail, and both must be read:

* the gateway: ``{"error_response": {"code": "<string>", "zh_desc", "en_desc"}}``. JD publishes only code 19 (invalid
  or expired access_token); the rest are UNCONFIRMED, so ``classify`` reads them through a table (``ERROR_KINDS``)
  that a shop's ``error_codes`` setting can override;
* the business: the method's envelope ``<method_with_underscores>_responce`` (sic) says ``code "0"`` and the inner
  result reports the failure (``apiResult.success false``, ``sopjosshipment_result.success false``, ...). A client
  that only looks at the outer code takes a refusal for a success; ``business_result`` reads the inner one.

``classify`` is pure (status, body in; result out or an hub.errors error raised). ``JdClient`` adds the token
lifecycle: refresh before expiry and after a 19, once per shop at a time (single flight, across processes too), the
new grant stored by hub.tokens for every later process (JD's refresh token is single use), and a configuration error
naming the shop and how to re-authorise when JD will not refresh.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
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

# Gateway code -> kind. Only 19 is confirmed (§2.4); 12/15 follow public client code; 66 is retried by JD's .NET SDK;
# the throttling code is UNCONFIRMED (the sandbox answers 90). Unknown codes are transient: retried under the one
# policy, then the run stops loudly with the code in the source health.
ERROR_KINDS: dict[str, str] = {
    "11": "fatal",           # missing system parameter: our bug
    "12": "configuration",   # invalid signature: app_secret does not belong to app_key
    "13": "transient",       # timestamp outside the gateway's tolerance (clock skew)
    "14": "configuration",   # unknown app_key
    "15": "configuration",   # method unknown / not granted to the app
    "16": "fatal",           # unsupported API version
    "18": "token",           # missing access_token
    "19": "token",           # invalid / expired access_token (confirmed)
    "20": "fatal",           # 360buy_param_json not a JSON object
    "66": "throttled",       # system busy
    "90": "throttled",       # app call limited
    # "quota": no daily-quota code is published; map one with the shop's error_codes when JD answers it
}

# apiResult.numberCode / error codes meaning "no such record" (sandbox choice, UNCONFIRMED in the spec).
NOT_FOUND_CODES = frozenset({"10200"})


def jd_time(moment: datetime) -> str:
    """JOS wants ``yyyy-MM-dd HH:mm:ss`` in GMT+8 (timestamp and business dates)."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def _seconds_to_midnight_shanghai(now: datetime | None = None) -> float:
    now = (now or datetime.now(UTC)).astimezone(SHANGHAI)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=5, microsecond=0)
    return (midnight - now).total_seconds()


def sign(params: Mapping[str, Any], secret: str) -> str:
    """§2.2: ``UPPER(MD5_hex(secret + Σ sorted(key + value) + secret))`` over every param except ``sign``, UTF-8,
    ``360buy_param_json`` as its exact text, empty values skipped (as JD's .NET SDK does)."""
    text = "".join(f"{key}{params[key]}" for key in sorted(params)
                   if key != "sign" and params[key] is not None and str(params[key]) != "")
    return hashlib.md5(f"{secret}{text}{secret}".encode()).hexdigest().upper()


def response_key(method: str) -> str:
    """'jingdong.pop.order.search' -> 'jingdong_pop_order_search_responce' (JD's historical misspelling)."""
    return method.replace(".", "_") + "_responce"


def classify(method: str, status_code: int, body: Any, *, shop: str | None = None,
             error_kinds: Mapping[str, str] | None = None, throttle_wait_s: float = 1.0) -> dict[str, Any]:
    """Return the method's inner result, or raise the error kind JD's answer means."""
    attrs = {"channel": "jd", "shop": shop, "endpoint": method}
    if status_code >= 500:
        raise TransientError(f"JD gateway answered HTTP {status_code}", status=status_code, **attrs)
    if status_code != 200 or not isinstance(body, dict):
        raise TransientError(f"JD gateway answered HTTP {status_code} without a JSON object", status=status_code,
                             **attrs)
    if "error_response" in body:
        err = body["error_response"] or {}
        code = str(err.get("code") or "")
        desc = str(err.get("en_desc") or err.get("zh_desc") or "JD gateway error")
        details = {**attrs, "code": code, "zh_desc": err.get("zh_desc"), "en_desc": err.get("en_desc")}
        kind = {**ERROR_KINDS, **(error_kinds or {})}.get(code, "transient")
        if kind == "throttled":
            raise TransientError(f"JD throttling (code {code}: {desc})", retry_after=throttle_wait_s, **details)
        if kind == "quota":
            # JD publishes no daily-quota code; a shop that meets one maps it here (error_codes). Like TOP's, the
            # quota resets at midnight GMT+8: the sync stops cleanly and the next run after the reset goes on.
            raise TransientError(f"JD call quota used up (code {code}: {desc}); resuming after it resets",
                                 retry_after=_seconds_to_midnight_shanghai(), quota=True, **details)
        if kind == "token":
            raise ConfigurationError(
                f"JD access_token of shop {shop} is invalid or expired (code {code})",
                how_to_fix=f"re-authorise shop {shop} in the JD seller console (open-oauth.jd.com/oauth2/to_login) "
                           "and store the new access token (and refresh token) where its 'access_token' and "
                           "'refresh_token' references point", token=True, **details)
        if kind == "configuration":
            raise ConfigurationError(f"JD refused the call: {desc} (code {code})", how_to_fix=(
                "check app_key and app_secret of this shop (the secret must belong to the app) and that the app "
                f"has been granted {method} in the JOS console"), **details)
        if kind == "fatal":
            raise FatalError(f"JD rejected the request shape: {desc} (code {code})", **details)
        raise TransientError(f"JD gateway error {code}: {desc}", **details)
    key = response_key(method)
    envelope = body.get(key)
    if not isinstance(envelope, dict):
        raise TransientError(f"JD answered without the {key} envelope", **attrs)
    if str(envelope.get("code", "0")) != "0":
        raise TransientError(f"JD envelope code {envelope.get('code')}", code=str(envelope.get("code")), **attrs)
    return business_result(method, envelope, shop=shop)


def business_result(method: str, envelope: Mapping[str, Any], *, shop: str | None = None) -> dict[str, Any]:
    """Read the inner success flag each JOS method has its own way of reporting (§2.4); return the result object.

    A refusal of a record (not found, not shippable) is a RecordError with JD's own code and reason; a refusal of
    our parameters is a FatalError (a bug to fix, not a record to park).
    """
    attrs = {"channel": "jd", "shop": shop, "endpoint": method}
    for name in ("searchorderinfo_result", "orderInfoResult", "orderDetailInfo"):
        if name in envelope:
            result = envelope[name] or {}
            api = result.get("apiResult") or {}
            if api.get("success", True) is False:
                number = str(api.get("numberCode") or "")
                reason = str(api.get("englishErrCode") or api.get("chineseErrCode") or "failed")
                cls = RecordError if number in NOT_FOUND_CODES else FatalError
                raise cls(f"JD {method} failed: {reason}", code=number, reason=api.get("chineseErrCode"), **attrs)
            return result
    if "sopjosshipment_result" in envelope:
        result = envelope["sopjosshipment_result"] or {}
        if result.get("success") is not True:
            code = str(result.get("error_code") or "")
            reason = str(result.get("english_err_code") or result.get("chinese_err_code") or "shipment refused")
            raise RecordError(f"JD refused the shipment: {reason} (error_code {code})", code=code,
                              reason=result.get("chinese_err_code"), group_key=f"jd shipment refused {code}",
                              **attrs)
        return result
    if "resultExport" in envelope:
        result = envelope["resultExport"] or {}
        if result.get("success") is False:
            raise FatalError(f"JD {method} failed: {result.get('englishMsg') or result.get('resultMsg')}",
                             code=str(result.get("resultCode") or ""), **attrs)
        return result
    if "resultCode" in envelope and str(envelope.get("resultCode")) != "0":
        code = str(envelope.get("resultCode"))
        message = str(envelope.get("englishMsg") or envelope.get("resultMsg") or "failed")
        cls = RecordError if code in NOT_FOUND_CODES else FatalError
        raise cls(f"JD {method} failed: {message}", code=code, **attrs)
    if envelope.get("success") is False:
        raise RecordError(f"JD {method} failed: {envelope.get('englishMsg') or envelope.get('resultMsg')}",
                          code=str(envelope.get("resultCode") or ""), **attrs)
    return dict(envelope)


# Refreshed tokens per (gateway, app key, shop): this process's copy of what hub.tokens stores for every process.
_GRANTS: dict[tuple[str, str, str], Grant] = {}


class JdClient:
    """One shop's JOS client. ``call`` signs and sends one method, retrying transient errors under hub.retry.

    Token lifecycle (§2.3): JD refreshes only before expiry, so a token whose end is known (``token_expires_at``, or
    the ``expires_in`` of a refresh this process made) is refreshed once it is within ``refresh_margin_hours`` of it;
    an "invalid access_token" (19) answer triggers one refresh too (the token may have been revoked or replaced).
    Single flight: a lock per shop in this process and the shop's row in ``channel_tokens`` across processes;
    whoever waited uses the token the winner got. The refresh token is single use and the refresh kills the old
    access token, so the new grant is stored (hub.tokens) before anyone uses it and every client reads the newest
    stored grant when it is built: the next process (the next Airflow task) never tries the spent configured refresh
    token. The configuration only holds references and is not rewritten. Without a refresh token, or when JD
    refuses it, the 19 stays a ConfigurationError naming the shop and how to re-authorise.
    """

    def __init__(self, settings, *, http: requests.Session | None = None) -> None:
        self.settings = settings
        self.http = http or requests.Session()
        self._app_key = settings.app_key.reveal()
        self._secret = settings.app_secret.reveal()
        self._configured_token = settings.access_token.reveal()
        self._key = (str(settings.gateway), self._app_key, str(settings.shop))
        self._account = " ".join(self._key)
        store = tokens.current_store()
        stored = store.load("jd", self._account) if store is not None else None
        if stored is not None:  # refreshed by an earlier process (or this one): the configured tokens may be spent
            _GRANTS[self._key] = stored

    @property
    def shop(self) -> str:
        return str(self.settings.shop)

    @property
    def access_token(self) -> str:
        grant = _GRANTS.get(self._key)
        return grant.access_token if grant else self._configured_token

    def _refresh_token(self) -> str | None:
        grant = _GRANTS.get(self._key)
        if grant is not None:
            return grant.refresh_token
        return self._configured_refresh_token()

    def _configured_refresh_token(self) -> str | None:
        reference = self.settings.refresh_token
        return reference.reveal() if reference is not None else None

    def _expires_at(self) -> datetime | None:
        grant = _GRANTS.get(self._key)
        return grant.expires_at if grant is not None else self.settings.token_expires_at

    # -- token lifecycle ----------------------------------------------------------------------------------------------

    def refresh_access_token(self, stale: str) -> None:
        """Refresh the shop's token unless someone already replaced ``stale`` (single flight per shop)."""
        shop = self.shop
        with tokens.refreshing("jd", self._account) as slot:  # single flight: threads and processes
            if slot.current is not None and slot.current.access_token != stale:
                _GRANTS[self._key] = slot.current  # another process refreshed while we waited for its row
            if self.access_token != stale:
                return  # another caller refreshed while we waited for the lock
            refresh_token = self._refresh_token()
            if not refresh_token:
                raise ConfigurationError(
                    f"JD access_token of shop {shop} is invalid or expired and no refresh_token is configured",
                    how_to_fix=f"re-authorise shop {shop} in the JD seller console (open-oauth.jd.com/oauth2/"
                               "to_login) and store the new access token where its 'access_token' reference points "
                               "(add 'refresh_token' to have it refreshed automatically)",
                    channel="jd", shop=shop, token=True)
            answer = self._post_refresh(refresh_token)
            configured = self._configured_refresh_token()
            if _refused(answer) and configured and configured != refresh_token:
                # The stored grant is dead (revoked, or JD refused its refresh token) and the configuration holds
                # another refresh token: the shop was re-authorised and a person stored the new tokens where the
                # references point, as the error below tells them to. Those are the newest a person gave: use them.
                # Nothing is stored unless JD accepts them, so a refusal here loses nothing.
                log.info("JD refused the stored refresh token; trying the configured one (re-authorised shop?)",
                         shop=shop, code=answer.get("code"))
                answer = self._post_refresh(configured)
            if _refused(answer):
                raise ConfigurationError(
                    f"JD refused to refresh the access_token of shop {shop}: {answer.get('msg') or 'no token'}",
                    how_to_fix=f"re-authorise shop {shop} in the JD seller console (a token cannot be refreshed "
                               "after it expired, and a refresh token is spent once used); store the new access and "
                               "refresh tokens where 'access_token' and 'refresh_token' point",
                    channel="jd", shop=shop, token=True, code=answer.get("code"))
            access = str(answer["access_token"])
            new_refresh = str(answer.get("refresh_token") or "") or None
            register_secret(access)
            register_secret(new_refresh)
            expires_in = answer.get("expires_in")
            lifetime = timedelta(seconds=float(expires_in)) if expires_in else None
            grant = Grant(access, new_refresh, datetime.now(UTC) + lifetime if lifetime else None, lifetime)
            slot.save(grant)  # stored before anyone uses it: the configured refresh token is spent from now on
            _GRANTS[self._key] = grant
            if tokens.current_store() is None:
                log.warning("JD access token refreshed; the new tokens are kept in this process's memory only",
                            shop=shop, expires_in=expires_in,
                            how_to_fix=f"run the connector through the Hub so that shop {shop}'s new tokens are "
                                       "stored in the hub database (the configured refresh token is spent): a "
                                       "restarted process would otherwise need a re-authorisation")
            else:
                log.info("JD access token refreshed and stored for every process", shop=shop, expires_in=expires_in)

    def _post_refresh(self, refresh_token: str) -> dict[str, Any]:
        params = {"app_key": self._app_key, "app_secret": self._secret, "grant_type": "refresh_token",
                  "refresh_token": refresh_token}

        def once() -> dict[str, Any]:
            try:
                resp = self.http.post(self.settings.refresh_url, data=params, timeout=self.settings.http.timeout_s)
            except requests.RequestException as exc:
                raise TransientError(f"cannot reach JD's OAuth endpoint: {type(exc).__name__}", channel="jd",
                                     shop=self.shop, endpoint="oauth2/refresh_token") from exc
            if resp.status_code >= 500:
                raise TransientError(f"JD's OAuth endpoint answered HTTP {resp.status_code}", channel="jd",
                                     shop=self.shop, endpoint="oauth2/refresh_token")
            try:
                body = resp.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                raise TransientError("JD's OAuth endpoint answered without a JSON object", channel="jd",
                                     shop=self.shop, endpoint="oauth2/refresh_token")
            return body

        return call_with_retry(once, attempts=self.settings.http.attempts)

    def _refresh_if_due(self) -> None:
        expires_at = self._expires_at()
        if expires_at is None or not self._refresh_token():
            return  # the token's end is unknown: a 19 answer triggers the refresh
        if expires_at - datetime.now(UTC) <= timedelta(hours=self.settings.refresh_margin_hours):
            self.refresh_access_token(self.access_token)

    # -- calls --------------------------------------------------------------------------------------------------------

    def params(self, method: str, business: Mapping[str, Any]) -> dict[str, str]:
        params = {
            "method": method,
            "app_key": self._app_key,
            "access_token": self.access_token,
            "timestamp": jd_time(datetime.now(UTC)),
            "v": "2.0",
            "format": "json",
            "360buy_param_json": json.dumps(dict(business), ensure_ascii=False, separators=(",", ":")),
        }
        params["sign"] = sign(params, self._secret)
        return params

    def call_once(self, method: str, business: Mapping[str, Any], *, write: bool = False) -> dict[str, Any]:
        params = self.params(method, business)
        attrs = {"channel": "jd", "shop": self.shop, "endpoint": method}
        try:
            resp = self.http.post(self.settings.gateway, data=params, timeout=self.settings.http.timeout_s)
        except (requests.ConnectTimeout, requests.ConnectionError) as exc:
            if write and not isinstance(exc, requests.ConnectTimeout):
                raise InDoubtError(f"connection lost during {method}", **attrs) from exc
            raise TransientError(f"cannot reach JD gateway: {type(exc).__name__}", **attrs) from exc
        except requests.Timeout as exc:
            cls = InDoubtError if write else TransientError
            raise cls(f"JD gateway timed out on {method}", **attrs) from exc
        try:
            body = resp.json()
        except ValueError:
            body = None
        return classify(method, resp.status_code, body, shop=self.shop, error_kinds=self.settings.error_codes,
                        throttle_wait_s=self.settings.throttle_wait_s)

    def call(self, method: str, business: Mapping[str, Any] | None = None, *, write: bool = False
             ) -> dict[str, Any]:
        """One JOS method with its business params; transient errors retried (hub.retry), a 19 refreshed once."""
        business = business or {}

        def once() -> dict[str, Any]:
            try:
                self._refresh_if_due()
                token = self.access_token
                try:
                    return self.call_once(method, business, write=write)
                except ConfigurationError as exc:
                    if not exc.attributes.get("token") or not self._refresh_token():
                        raise
                    self.refresh_access_token(token)
                    return self.call_once(method, business, write=write)
            except TransientError as exc:
                if exc.attributes.get("quota"):
                    # hours until the reset, not seconds: retrying now only burns calls. It goes straight up so
                    # the sync stops cleanly and says until when (hub.sync).
                    raise _NotRetried(exc) from exc
                raise

        try:
            return call_with_retry(once, attempts=self.settings.http.attempts)
        except _NotRetried as wrapped:
            raise wrapped.error from None


def _refused(answer: Mapping[str, Any]) -> bool:
    """JD's OAuth answer carries no new token: ``{"code": 401..404, "msg"}`` (sandbox choice, UNCONFIRMED)."""
    return str(answer.get("code", "")) not in ("0", "") or not answer.get("access_token")


class _NotRetried(Exception):
    """Carries an error past the retry policy untouched (only TransientError is retried)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error
