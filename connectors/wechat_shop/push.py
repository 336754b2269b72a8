"""WeChat shop message push (callbacks, specs §3.6): a verifying receiver, a durable inbox, and the push queue that
``Hub.intake_pushes`` drains.

WeChat POSTs each event to the URL set in the shop console, at least once (a reply other than ``success`` or an
empty body is retried with the identical request). The receiver answers fast and does no hub work: it verifies the
request and writes the notice into the **inbox** (a SQLite file, ``push_inbox`` of the shop), then says
``success``. A request that fails verification (signature, msg_signature, decryption, AppID, unknown shop) is
refused with HTTP 403 and recorded in the inbox's ``refused`` table with the reason and the raw request, never
ingested. Verification: ``signature = sha1(sorted(token, timestamp, nonce))`` always; in safe mode also
``msg_signature = sha1(sorted(token, timestamp, nonce, Encrypt))`` and AES-256-CBC decryption with the
EncodingAESKey (``iv = key[:16]``, PKCS#7 to 32-byte blocks) whose trailing AppID must be the shop's. Plain mode is
refused unless the shop allows it. The timestamp is not checked for freshness: WeChat retries the identical request
(same timestamp) for as long as the receiver refuses it, and a replayed notice only makes the hub re-read an order
by id, which the version guard makes harmless.

A notice only *names* what changed: the push intake re-reads the order with ``order/get`` (the same ingest path as
the pull) and confirms the notices only after that commit, so a crash in between means a redelivery. Polling and the
sweep stay the safety net for pushes lost upstream.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sqlite3
import struct
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hub.errors import ConfigurationError
from hub.logging import get_logger

log = get_logger(__name__)
CONSUME_QUANTITY = 100
RAW_LIMIT = 65536  # characters of a refused request kept in the inbox


class CallbackRefused(Exception):
    """A callback that failed verification; ``reason`` says which check."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- crypto (wechatpy WeChatCrypto-compatible) ---------------------------------------------------------------------

def signature(token: str, timestamp: str, nonce: str, encrypt: str | None = None) -> str:
    parts = [token, timestamp, nonce] + ([encrypt] if encrypt is not None else [])
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def decrypt(encoding_aes_key: str, encrypted: str) -> tuple[str, str]:
    """``Encrypt`` -> ``(message, appid)``; CallbackRefused when it is not a ciphertext of this key."""
    try:
        key = base64.b64decode(encoding_aes_key + "=")
        data = base64.b64decode(encrypted, validate=True)
    except (ValueError, TypeError) as exc:
        raise CallbackRefused("Encrypt is not base64") from exc
    if len(key) != 32 or not data or len(data) % 16:
        raise CallbackRefused("Encrypt is not an AES-256-CBC ciphertext of this EncodingAESKey")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= 32 or plain[-pad:] != bytes([pad]) * pad or len(plain) - pad < 20:
        raise CallbackRefused("bad PKCS#7 padding after decryption (wrong EncodingAESKey?)")
    plain = plain[:-pad]
    (length,) = struct.unpack(">I", plain[16:20])
    if 20 + length > len(plain):
        raise CallbackRefused("decrypted length field exceeds the message")
    try:
        return plain[20:20 + length].decode("utf-8"), plain[20 + length:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CallbackRefused("decrypted message is not UTF-8") from exc


def encrypt(encoding_aes_key: str, appid: str, message: str, random16: bytes) -> str:
    """The inverse of :func:`decrypt` (tests and tools that play WeChat)."""
    key = base64.b64decode(encoding_aes_key + "=")
    body = message.encode("utf-8")
    plain = random16 + struct.pack(">I", len(body)) + body + appid.encode("utf-8")
    pad = 32 - len(plain) % 32
    plain += bytes([pad]) * pad
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")


# -- the durable inbox -------------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup TEXT NOT NULL UNIQUE,
    shop TEXT NOT NULL,
    event TEXT NOT NULL,
    order_id TEXT,
    after_sale_order_id TEXT,
    received_at TEXT NOT NULL,
    deliveries INTEGER NOT NULL DEFAULT 1,
    payload TEXT NOT NULL,
    confirmed_at TEXT
);
CREATE INDEX IF NOT EXISTS notices_open ON notices (confirmed_at, id);
CREATE TABLE IF NOT EXISTS refused (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    reason TEXT NOT NULL,
    query TEXT NOT NULL,
    body TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Notice:
    """One inbox row: its id (to confirm), the shop, the event and the order id it names (None: not an order)."""

    message_id: int
    topic: str
    shop: str | None
    external_id: str | None
    after_sale_order_id: str | None = None


class Inbox:
    """Callback notices on disk (SQLite, WAL): written by the receiver, read and confirmed by the push intake. A
    notice survives a crash of either side until it is confirmed; the same request delivered twice is one row."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # durable: a notice acknowledged to WeChat is on disk
            yield conn
        finally:
            conn.close()

    def add(self, dedup: str, shop: str, message: Mapping[str, Any]) -> bool:
        """Store a verified notice; False when the identical request was stored before (a redelivery)."""
        info = message.get("order_info") if isinstance(message.get("order_info"), Mapping) else {}
        after = message.get("finder_shop_aftersale_status_update")
        after = after if isinstance(after, Mapping) else {}
        order_id = info.get("order_id", after.get("order_id"))
        row = (dedup, shop, str(message.get("Event") or ""),
               None if order_id in (None, "") else str(order_id),
               None if after.get("after_sale_order_id") in (None, "") else str(after["after_sale_order_id"]),
               datetime.now(UTC).isoformat(), json.dumps(message, ensure_ascii=False))
        with self._lock, self._connect() as conn:
            cur = conn.execute("INSERT OR IGNORE INTO notices (dedup, shop, event, order_id, after_sale_order_id, "
                               "received_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            if cur.rowcount == 0:
                conn.execute("UPDATE notices SET deliveries = deliveries + 1 WHERE dedup = ?", (dedup,))
                return False
            return True

    def refuse(self, reason: str, query: Mapping[str, Any], body: bytes) -> None:
        with self._lock, self._connect() as conn:
            conn.execute("INSERT INTO refused (received_at, reason, query, body) VALUES (?, ?, ?, ?)",
                         (datetime.now(UTC).isoformat(), reason, json.dumps(dict(query), sort_keys=True),
                          body.decode("utf-8", "replace")[:RAW_LIMIT]))

    def pending(self, shops: Sequence[str], limit: int = CONSUME_QUANTITY) -> list[Notice]:
        marks = ",".join("?" for _ in shops)
        with self._connect() as conn:
            rows = conn.execute(f"SELECT id, event, shop, order_id, after_sale_order_id FROM notices "  # noqa: S608
                                f"WHERE confirmed_at IS NULL AND shop IN ({marks}) ORDER BY id LIMIT ?",
                                (*shops, limit)).fetchall()
        return [Notice(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def confirm(self, ids: Sequence[int]) -> None:
        ids = list(dict.fromkeys(ids))
        now = datetime.now(UTC).isoformat()
        with self._lock, self._connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                conn.execute(f"UPDATE notices SET confirmed_at = ? WHERE id IN ({','.join('?' for _ in chunk)})"  # noqa: S608
                             " AND confirmed_at IS NULL", (now, *chunk))

    def refused_rows(self) -> list[dict[str, Any]]:
        with self._connect() as conn:
            rows = conn.execute("SELECT id, received_at, reason, query, body FROM refused ORDER BY id").fetchall()
        return [{"id": r[0], "received_at": r[1], "reason": r[2], "query": json.loads(r[3]), "body": r[4]}
                for r in rows]

    def counts(self) -> dict[str, int]:
        with self._connect() as conn:
            notices, open_, deliveries = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(confirmed_at IS NULL), 0), COALESCE(SUM(deliveries), 0) "
                "FROM notices").fetchone()
            refused = conn.execute("SELECT COUNT(*) FROM refused").fetchone()[0]
        return {"notices": notices, "open": open_, "deliveries": deliveries, "refused": refused}


# -- verification -----------------------------------------------------------------------------------------------------

class CallbackVerifier:
    """Verifies callbacks for the configured shops (one URL may serve several: told apart by ``ToUserName``)."""

    def __init__(self, shops: Sequence[Any]) -> None:
        self.shops = [s for s in shops if s.callback_token is not None]
        if not self.shops:
            raise ConfigurationError("no WeChat shop has a callback_token: callbacks cannot be verified",
                                     how_to_fix="set callback_token (and encoding_aes_key for safe mode) of each "
                                                "WeChat shop to the Token / EncodingAESKey of the shop console's "
                                                "message push settings")

    def _candidates(self, username: Any) -> list[Any]:
        named = [s for s in self.shops if s.username and s.username == username]
        return named or [s for s in self.shops if not s.username]

    def _signed_by(self, shops: Sequence[Any], query: Mapping[str, str]) -> list[Any]:
        timestamp, nonce, sent = query.get("timestamp", ""), query.get("nonce", ""), query.get("signature", "")
        if not (timestamp and nonce and sent):
            raise CallbackRefused("signature, timestamp or nonce missing")
        return [s for s in shops
                if hmac.compare_digest(signature(s.callback_token.reveal(), timestamp, nonce), sent.lower())]

    def verify_url(self, query: Mapping[str, str]) -> str:
        """The console's URL check (GET with echostr): the reply is echostr when a shop's token signed it."""
        if not self._signed_by(self.shops, query):
            raise CallbackRefused("URL verification: signature matches no shop's token")
        return query.get("echostr", "")

    def verify(self, query: Mapping[str, str], body: bytes) -> tuple[Any, dict[str, Any]]:
        """-> (shop settings, plaintext message) or CallbackRefused."""
        try:
            outer = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise CallbackRefused("body is not JSON") from exc
        if not isinstance(outer, dict):
            raise CallbackRefused("body is not a JSON object")
        candidates = self._candidates(outer.get("ToUserName"))
        if not candidates:
            raise CallbackRefused("ToUserName names no configured shop")
        signed = self._signed_by(candidates, query)
        if not signed:
            raise CallbackRefused("signature does not match the shop's token")
        if "Encrypt" in outer or query.get("encrypt_type") == "aes":
            message, shop = self._decrypt(signed, query, outer)
        else:
            shop = signed[0]
            if not shop.allow_plain_callbacks:
                raise CallbackRefused("plain-mode callback refused: the shop accepts safe mode (AES) only")
            message = outer
        if shop.username and message.get("ToUserName") != shop.username:
            raise CallbackRefused("decrypted ToUserName is not the shop's")
        return shop, message

    def _decrypt(self, shops: Sequence[Any], query: Mapping[str, str], outer: Mapping[str, Any]
                 ) -> tuple[dict[str, Any], Any]:
        encrypted = outer.get("Encrypt")
        if not isinstance(encrypted, str) or not encrypted:
            raise CallbackRefused("safe mode without Encrypt")
        sent = query.get("msg_signature", "")
        for shop in shops:
            if shop.encoding_aes_key is None:
                continue
            expected = signature(shop.callback_token.reveal(), query["timestamp"], query["nonce"], encrypted)
            if not hmac.compare_digest(expected, sent.lower()):
                continue
            text, appid = decrypt(shop.encoding_aes_key.reveal(), encrypted)
            if appid != shop.appid:
                raise CallbackRefused("decrypted AppID is not the shop's")
            try:
                message = json.loads(text)
            except ValueError as exc:
                raise CallbackRefused("decrypted message is not JSON") from exc
            if not isinstance(message, dict):
                raise CallbackRefused("decrypted message is not a JSON object")
            return message, shop
        raise CallbackRefused("msg_signature does not match (or the shop has no encoding_aes_key)")


def _inbox_for(shop: Any, cache: dict[Path, Inbox]) -> Inbox:
    if shop.push_inbox is None:
        raise ConfigurationError(f"WeChat shop {shop.shop} has no push_inbox", how_to_fix=(
            f"set push_inbox of shop {shop.shop} to a file path both the callback receiver and the hub can reach"))
    path = Path(shop.push_inbox)
    if path not in cache:
        cache[path] = Inbox(path)
    return cache[path]


class CallbackHandler:
    """``handle(method, query, body) -> (HTTP status, reply text)``: verify, then store in the shop's inbox."""

    def __init__(self, shops: Sequence[Any]) -> None:
        self.verifier = CallbackVerifier(shops)
        self._inboxes: dict[Path, Inbox] = {}
        for shop in self.verifier.shops:
            _inbox_for(shop, self._inboxes)

    def _refuse(self, reason: str, query: Mapping[str, str], body: bytes) -> tuple[int, str]:
        # recorded in every inbox the receiver serves: the request names no shop we could trust
        for inbox in self._inboxes.values():
            inbox.refuse(reason, query, body)
        log.warning("WeChat callback refused", reason=reason)
        return 403, "forbidden"

    def handle(self, method: str, query: Mapping[str, str], body: bytes) -> tuple[int, str]:
        try:
            if method == "GET":
                return 200, self.verifier.verify_url(query)
            shop, message = self.verifier.verify(query, body)
        except CallbackRefused as refused:
            return self._refuse(refused.reason, query, body)
        # the identical request (same timestamp, nonce, body) is a redelivery: one row
        dedup = hashlib.sha256("\n".join([query.get("timestamp", ""), query.get("nonce", ""),
                                          body.decode("utf-8", "replace")]).encode()).hexdigest()
        new = _inbox_for(shop, self._inboxes).add(dedup, shop.shop, message)
        log.info("WeChat callback stored", shop=shop.shop, push_event=message.get("Event"), new=new)
        return 200, "success"


class CallbackReceiver:
    """A small threaded HTTP server around :class:`CallbackHandler` (the URL set in the shop console points here;
    behind a TLS-terminating proxy in production). ``start()`` serves in a thread, ``stop()`` ends it."""

    def __init__(self, shops: Sequence[Any], host: str = "127.0.0.1", port: int = 0, path: str = "/wechat/callback"
                 ) -> None:
        self.handler = CallbackHandler(shops)
        self.path = path
        receiver = self

        class _Http(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                parts = urlsplit(self.path)
                if parts.path != receiver.path:
                    self._reply(404, "not found")
                    return
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    status, text = receiver.handler.handle(method, query, body)
                except Exception as exc:  # never answer "success" for what was not stored: WeChat sends it again
                    log.error("WeChat callback could not be stored", error=repr(exc))
                    status, text = 500, "error"
                self._reply(status, text)

            def _reply(self, status: int, text: str) -> None:
                data = text.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def log_message(self, *args: Any) -> None:  # the query holds signatures; structlog logs what matters
                return

        self._server = ThreadingHTTPServer((host, port), _Http)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.path}"

    def start(self) -> CallbackReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever, name="wechat-callbacks", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> CallbackReceiver:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# -- the push queue Hub.intake_pushes drains ------------------------------------------------------------------------

class WxPushQueue:
    """The inbox of the WeChat shops that share one ``push_inbox`` file."""

    def __init__(self, shops: Sequence[Any]) -> None:
        self.shops = list(shops)
        self.inbox = Inbox(self.shops[0].push_inbox)
        self.key = f"wechat:{'+'.join(s.shop for s in self.shops)}"

    def permit(self, shop_settings: Any) -> None:
        """Nothing to call: WeChat pushes once the URL/Token/EncodingAESKey are set in the shop console."""
        log.info("WeChat pushes need no subscription call; the shop console's push settings enable them",
                 shop=shop_settings.shop)

    def consume(self) -> list[Notice]:
        return self.inbox.pending([s.shop for s in self.shops])

    def confirm(self, message_ids: Sequence[int]) -> None:
        self.inbox.confirm(message_ids)


def open_queues(shops: Sequence[Any]) -> list[WxPushQueue]:
    """One queue per inbox file among the given enabled WeChat shops (shops without ``push_inbox``: pull only)."""
    groups: dict[Path, list[Any]] = {}
    for shop in shops:
        if shop.push_inbox is not None:
            groups.setdefault(Path(shop.push_inbox).resolve(), []).append(shop)
    return [WxPushQueue(group) for group in groups.values()]

