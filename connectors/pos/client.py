"""POS middleware wire client: GET with the ``X-Api-Key`` header, and ``classify`` of the answer.

The middleware answers errors as ``{"error": {"code", "message"}}`` with an HTTP status (sandbox/docs/pos.md).
``classify`` is pure and holds all knowledge of them: a refused key or an unknown store needs a person
(configuration error naming the store and how to fix it), 5xx and unreadable answers are the other side's trouble
(transient, retried by hub.retry), a 400 means this client sent something the API does not accept (fatal: a bug
here, not a bad record). Every call is a read, so a timeout is simply transient: reading again is harmless.
"""

from __future__ import annotations

from typing import Any

import requests

from hub.errors import ConfigurationError, FatalError, TransientError
from hub.logging import get_logger
from hub.retry import call_with_retry

log = get_logger(__name__)


def classify(endpoint: str, status_code: int, body: Any, *, store: str) -> dict[str, Any]:
    """Return the JSON answer, or raise the error kind the middleware's answer means."""
    attrs: dict[str, Any] = {"channel": "pos", "shop": store, "endpoint": endpoint, "status": status_code}
    error = body.get("error") if isinstance(body, dict) else None
    code = str(error.get("code")) if isinstance(error, dict) and error.get("code") else None
    message = str(error.get("message")) if isinstance(error, dict) and error.get("message") else None
    if status_code >= 500:
        raise TransientError(f"POS middleware answered HTTP {status_code}", code=code, detail=message, **attrs)
    if status_code == 401:
        raise ConfigurationError(
            f"POS middleware refused the API key for store {store}", code=code, how_to_fix=(
                f"put the merchant tenant's current API key in the credential that api_key of shop {store} "
                "references (the middleware's admin console issues it; a rotated key invalidates the old one)"),
            **attrs)
    if status_code == 404 and code == "STORE_NOT_FOUND":
        raise ConfigurationError(
            f"POS middleware does not know store {store}", code=code, how_to_fix=(
                "set 'store' (or the shop slug) to the middleware's store slug, as listed in its admin console"),
            **attrs)
    if status_code != 200:
        raise FatalError(f"POS middleware rejected the request: {code or status_code}", code=code, detail=message,
                         **attrs)
    if not isinstance(body, dict):
        raise TransientError("POS middleware answered without a JSON object", **attrs)
    return body


class PosClient:
    """One store's view of the middleware (the key covers the tenant; ``store=`` picks the store)."""

    def __init__(self, settings, *, http: requests.Session | None = None) -> None:
        self.settings = settings
        self.http = http or requests.Session()
        self.store = settings.store_slug
        self.base = settings.base_url.rstrip("/")

    def get_once(self, endpoint: str, **params: Any) -> dict[str, Any]:
        url = f"{self.base}/{endpoint}"
        headers = {self.settings.api_key_header: self.settings.api_key.reveal(), "Accept": "application/json"}
        query = {"store": self.store, **{k: v for k, v in params.items() if v is not None}}
        try:
            resp = self.http.get(url, params=query, headers=headers, timeout=self.settings.http.timeout_s)
        except requests.RequestException as exc:  # reads only: lost answers are re-read, nothing is in doubt
            raise TransientError(f"POS middleware unreachable: {type(exc).__name__}", channel="pos",
                                 shop=self.store, endpoint=endpoint) from exc
        try:
            body = resp.json()
        except ValueError:
            body = None
        return classify(endpoint, resp.status_code, body, store=self.store)

    def get(self, endpoint: str, **params: Any) -> dict[str, Any]:
        return call_with_retry(lambda: self.get_once(endpoint, **params), attempts=self.settings.http.attempts)
