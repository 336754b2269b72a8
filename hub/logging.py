"""Structured logging for every run, with secrets and buyer personal data removed before anything is written.

``configure_logging()`` routes structlog *and* the standard library (requests, urllib3, tenacity, alembic) through one
chain of processors whose last step before rendering is ``redact``. Redaction works on three levels:
1. keys that only ever hold secrets or personal data are replaced whatever their value (``sign``, ``session``,
   ``app_secret``, ``receiver_mobile``, ...);
2. every secret the configuration loaded is registered with ``register_secret`` and scrubbed from any string;
3. patterns that look like personal data (mainland mobile numbers, e-mail addresses) are scrubbed from any string,
   including exception tracebacks and the event text itself.
Bind run context once per run with ``bind_run(connector=..., shop=..., stream=..., window=...)``.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

import structlog

REDACTED = "[redacted]"

# Keys whose values are secrets or buyer personal data whatever they look like (compared lower-case).
SENSITIVE_KEYS = frozenset(
    {
        "sign", "secret", "app_secret", "client_secret", "password", "passwd", "session", "access_token",
        "refresh_token", "token", "authorization", "cookie", "api_key", "secret_key",
        "receiver", "receiver_name", "receiver_mobile", "receiver_phone", "receiver_address", "receiver_zip",
        "receiver_town", "buyer_nick", "buyer_name", "buyer_phone", "buyer_mobile", "mobile", "phone", "tel",
        "tel_number", "name", "address", "detail_address", "detailaddress", "user_name", "id_card", "email",
    }
)

_PATTERNS = (
    re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d{9}(?!\d)"),  # mainland mobile numbers
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"),  # e-mail addresses
    re.compile(r"(?i)\b(sign|session|access_token|app_secret|refresh_token)=[^&\s\"']+"),  # secrets in URLs
)

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secret_listeners: list[Callable[[str], None]] = []


def register_secret(value: str | None) -> None:
    """Make ``value`` disappear from every log line from now on (called for every credential the config loads)."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)
            listeners = list(_secret_listeners)
        for listener in listeners:
            listener(value)


def add_secret_listener(listener: Callable[[str], None]) -> None:
    """Also tell another masker about every secret (e.g. Airflow's ``mask_secret`` for task logs), including the
    ones registered before."""
    with _secrets_lock:
        if listener in _secret_listeners:
            return
        _secret_listeners.append(listener)
        known = list(_secrets)
    for value in known:
        listener(value)


def scrub(text: str) -> str:
    """Remove registered secrets and personal-data patterns from one string."""
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(0).split("=")[0] + "=" + REDACTED if "=" in m.group(0) else REDACTED,
                           text)
    return text


def redact_value(value: Any, key: str | None = None) -> Any:
    """Redact one value, recursing into mappings and sequences."""
    if key is not None and key.lower() in SENSITIVE_KEYS and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [redact_value(v) for v in value]
    if isinstance(value, BaseException):
        return scrub(repr(value))
    return value


def redact(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: the last word before an event is rendered."""
    return {k: (scrub(v) if k == "event" and isinstance(v, str) else redact_value(v, k)) for k, v in event_dict.items()}


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]


def configure_logging(level: str = "INFO", *, json: bool = False, stream: IO[str] | None = None) -> None:
    """Configure structlog and the stdlib root logger once per process (CLI, Airflow task, test)."""
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[structlog.stdlib.filter_by_level, *_shared_processors(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        processor=renderer,
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *_shared_processors()],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_orderhub", False):
            root.removeHandler(old)
    handler._orderhub = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    # urllib3 logs full request URLs at DEBUG; keep it quiet even when OrderHub runs at DEBUG.
    logging.getLogger("urllib3").setLevel(logging.WARNING)


@contextmanager
def bind_run(**context: Any) -> Iterator[None]:
    """Bind run context (run_id, connector, shop, stream, window...) for everything logged inside the block."""
    tokens = structlog.contextvars.bind_contextvars(**{k: v for k, v in context.items() if v is not None})
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
