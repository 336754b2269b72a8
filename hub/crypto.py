"""Encryption of buyer personal data at rest (phone, name, address), with a key from configuration.

    personal_data:
      encryption_key: {env: ORDERHUB_PII_KEY}        # any SecretRef; at least 16 characters

When a key is configured, the hub never writes a buyer's phone, name or address in clear to its database:

- ``orders.document``: the receiver's name, phone, address, town and zip, the buyer reference and the buyer's note
  are sealed field by field; ``load_order`` opens them, so processing and every sink see the real receiver.
- ``raw_payloads.payload`` and ``quarantine.payload``: the raw record keeps its JSON shape (quarantine replay maps
  it again), but the values of personal keys (``receiver_*``, ``buyer_nick``, ``mobile``...) and any other string
  that contains a phone number or an e-mail address are sealed. A replayed record carries sealed values into the
  canonical order, where they stay sealed and are opened by ``load_order`` like any other.

Sealing is AES-SIV (RFC 5297, from ``cryptography``), keyed by HKDF-SHA256 of the configured secret. AES-SIV is
deterministic: the same plaintext gives the same token, which keeps the raw archive's content-hash de-duplication
and the quarantine's "same payload seen again" check working, and leaks only equality of values (the price of
that; the alternative, random nonces, would re-archive every record on every window replay). Tokens are strings
``enc:v1:<base64url>``, so they fit wherever the plaintext did in the JSON documents.

The key is process-wide: ``hub.config.load_settings`` hands the configured reference to :func:`configure` and the
secret is revealed only when a value is first sealed or opened (no I/O at load or DAG-parse time). Without a key,
sealing is a no-op and a sealed value met while reading raises a ConfigurationError that says which key is missing.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Mapping
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hub.errors import ConfigurationError

PREFIX = "enc:v1:"
_ASSOCIATED = [b"orderhub personal data v1"]
MIN_KEY_CHARS = 16

# Canonical Order fields that identify or locate a buyer (province/city/district stay readable: rules route by them).
RECEIVER_FIELDS = ("name", "phone", "address", "town", "zip")
ORDER_FIELDS = ("buyer_ref", "buyer_note")

# Raw channel keys (lower-case) whose values are personal data whatever they look like.
PERSONAL_KEYS = frozenset({
    "buyer_nick", "buyer_name", "buyer_phone", "buyer_mobile", "buyer_email", "buyer_message", "buyer_memo",
    "mobile", "phone", "tel", "tel_number", "telnumber", "name", "address", "detail_address", "detailaddress",
    "user_name", "username", "id_card", "email", "consignee", "consignee_name", "consignee_phone",
    "consignee_address", "contact", "contact_phone", "fullname", "full_address",
})
PERSONAL_PREFIXES = ("receiver_", "receiver", "consignee")
# Keys that hold identifiers: never sealed even when their digits look like a phone number (an 11-digit tid).
_ID_PARTS = frozenset({"id", "ids", "tid", "oid", "sid", "iid", "no", "code", "sn", "uid"})


def _id_key(key: str | None) -> bool:
    if not key:
        return False
    low = key.lower()
    return low.endswith("id") or any(part in _ID_PARTS for part in low.split("_"))

_LOOKS_PERSONAL = (
    re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d{9}(?!\d)"),  # mainland mobile numbers
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),  # e-mail addresses
)


class _Revealable(Protocol):
    def reveal(self) -> str: ...


class Cipher:
    """Seal and open strings with one key (AES-SIV, deterministic, authenticated)."""

    def __init__(self, secret: str) -> None:
        if len(secret) < MIN_KEY_CHARS:
            raise ConfigurationError(
                f"personal_data.encryption_key is too short ({len(secret)} characters)",
                how_to_fix=f"use at least {MIN_KEY_CHARS} random characters, e.g. "
                           "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
        key = HKDF(algorithm=hashes.SHA256(), length=64, salt=b"orderhub/personal-data",
                   info=b"aes-siv-512").derive(secret.encode("utf-8"))
        self._aead = AESSIV(key)

    def seal(self, text: str) -> str:
        if text.startswith(PREFIX):
            return text  # already sealed (a replayed raw record): sealing twice would bury it
        token = self._aead.encrypt(text.encode("utf-8"), _ASSOCIATED)
        return PREFIX + base64.urlsafe_b64encode(token).decode("ascii")

    def open(self, token: str) -> str:
        try:
            data = base64.urlsafe_b64decode(token[len(PREFIX):].encode("ascii"))
            return self._aead.decrypt(data, _ASSOCIATED).decode("utf-8")
        except (InvalidTag, ValueError) as exc:
            raise ConfigurationError(
                "a sealed personal-data value in the store cannot be opened with the configured key",
                how_to_fix="configure the personal_data.encryption_key the data was written with "
                           "(keys are not rotated in place)") from exc


_lock = threading.Lock()
_ref: _Revealable | None = None
_cipher: Cipher | None = None


def configure(ref: _Revealable | None) -> None:
    """Use this key reference from now on (None: store personal data as received). Revealed on first use."""
    global _ref, _cipher
    with _lock:
        _ref, _cipher = ref, None


def use_key(secret: str | None) -> None:
    """Use this key directly (tests, tools); None switches encryption off."""
    global _ref, _cipher
    with _lock:
        _ref, _cipher = (None, None) if secret is None else (_Literal(secret), None)


class _Literal:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def reveal(self) -> str:
        return self._secret


def enabled() -> bool:
    return _ref is not None


def _current() -> Cipher | None:
    global _cipher
    if _ref is None:
        return None
    with _lock:
        if _cipher is None and _ref is not None:
            _cipher = Cipher(_ref.reveal())
        return _cipher


def seal_document(document: dict[str, Any]) -> dict[str, Any]:
    """Seal the personal fields of a canonical order document (``Order.model_dump(mode="json")``) in place."""
    cipher = _current()
    if cipher is None:
        return document
    receiver = document.get("receiver")
    if isinstance(receiver, dict):
        for name in RECEIVER_FIELDS:
            value = receiver.get(name)
            if isinstance(value, str) and value:
                receiver[name] = cipher.seal(value)
    for name in ORDER_FIELDS:
        value = document.get(name)
        if isinstance(value, str) and value:
            document[name] = cipher.seal(value)
    return document


def seal_record(record: Any) -> Any:
    """A copy of a raw channel record with its personal values sealed; the record itself when no key is set."""
    cipher = _current()
    if cipher is None:
        return record
    return _seal_value(cipher, record, None)


def _personal_key(key: str | None) -> bool:
    if key is None:
        return False
    low = key.lower()
    if low in PERSONAL_KEYS:
        return True
    return low.startswith(PERSONAL_PREFIXES) and not _id_key(low)


def _seal_value(cipher: Cipher, value: Any, key: str | None) -> Any:
    if isinstance(value, Mapping):
        return {k: _seal_value(cipher, v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_seal_value(cipher, v, key) for v in value]
    if _personal_key(key) and isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != "":
        return cipher.seal(str(value))
    if isinstance(value, str) and not _id_key(key) and any(p.search(value) for p in _LOOKS_PERSONAL):
        return cipher.seal(value)
    return value


def open_all(value: Any) -> Any:
    """Open every sealed string inside ``value`` (a document, a record): what readers call before using it."""
    if isinstance(value, str):
        if value.startswith(PREFIX):
            cipher = _current()
            if cipher is None:
                raise ConfigurationError(
                    "the store holds encrypted personal data but no personal_data.encryption_key is configured",
                    how_to_fix="add personal_data: {encryption_key: {env: ...}} to the configuration, with the key "
                               "the data was written with")
            return cipher.open(value)
        return value
    if isinstance(value, dict):
        return {k: open_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [open_all(v) for v in value]
    return value


def contains_sealed(text: str) -> bool:
    return PREFIX in text
