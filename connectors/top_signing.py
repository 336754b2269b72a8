"""TOP-family request signing (Taobao Open Platform and the Qimen ERP<->WMS standard built on it).

One implementation serves the Tmall client, the Qimen client and the sandbox gateways, and is pinned by the worked
examples of specs/platform-apis.md §1.4 (TOP) and §6.1 (Qimen: the same md5 rule with the raw body appended).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

SIGN_METHODS = ("md5", "hmac", "hmac-sha256")


def signing_string(params: Mapping[str, object], body: str | None = None) -> str:
    """Concatenate ``name + value`` of every non-empty parameter except ``sign``, names in byte order.

    Values are raw (not URL-encoded); empty values are skipped as the Java SDK's ``areNotEmpty`` does; a raw request
    body (Qimen XML or JSON) is appended after the parameters.
    """
    parts = [
        f"{name}{value}"
        for name, value in sorted(params.items(), key=lambda kv: kv[0].encode("utf-8"))
        if name != "sign" and value is not None and str(value) != ""
    ]
    return "".join(parts) + (body or "")


def sign(params: Mapping[str, object], secret: str, sign_method: str = "md5", body: str | None = None) -> str:
    """Return the upper-case hex signature TOP expects in the ``sign`` parameter.

    ``sign_method`` is a parameter of the request itself, so callers must put the same value in ``params`` first.
    """
    payload = signing_string(params, body).encode("utf-8")
    key = secret.encode("utf-8")
    if sign_method == "md5":
        digest = hashlib.md5(key + payload + key).hexdigest()
    elif sign_method == "hmac":
        digest = hmac.new(key, payload, hashlib.md5).hexdigest()
    elif sign_method == "hmac-sha256":
        digest = hmac.new(key, payload, hashlib.sha256).hexdigest()
    else:
        raise ValueError(f"unknown TOP sign_method {sign_method!r}; use one of {', '.join(SIGN_METHODS)}")
    return digest.upper()


def verify(params: Mapping[str, object], secret: str, body: str | None = None) -> bool:
    """True when ``params['sign']`` matches the signature computed with ``secret`` (constant-time compare)."""
    given = str(params.get("sign") or "")
    method = str(params.get("sign_method") or "md5")
    if method not in SIGN_METHODS:
        return False
    return hmac.compare_digest(given.upper(), sign(params, secret, method, body))
