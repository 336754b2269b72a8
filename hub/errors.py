"""The four kinds of failure, split by who must act (STYLE.md §3).

- ConfigurationError: a person must fix something (credentials, mapping, config); never retried; says how to fix it.
- TransientError: the other side is slow, throttling or briefly down; retried by the one retry policy (hub.retry),
  honouring ``retry_after`` hints such as TOP's "This ban will last for 71 more seconds".
- RecordError: one record is bad; it is quarantined with its reason and raw payload and the batch goes on.
- FatalError: the run must stop (a broken invariant, an unknown response shape).
Errors carry structured attributes (channel, shop, endpoint, code, sub_code, request_id...) and are never flattened
into strings, so logs, quarantine rows and Airflow task failures can all show them.
"""

from __future__ import annotations

from typing import Any


class OrderHubError(Exception):
    """Base class: a message plus structured attributes."""

    kind: str = "error"

    def __init__(self, message: str, **attributes: Any) -> None:
        super().__init__(message)
        self.message = message
        self.attributes: dict[str, Any] = {k: v for k, v in attributes.items() if v is not None}

    def __str__(self) -> str:
        if not self.attributes:
            return self.message
        attrs = ", ".join(f"{k}={v}" for k, v in sorted(self.attributes.items()))
        return f"{self.message} ({attrs})"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "error": type(self).__name__, "message": self.message, **self.attributes}


class ConfigurationError(OrderHubError):
    """A person must change configuration, credentials or a mapping. Never retried."""

    kind = "configuration"

    def __init__(self, message: str, *, how_to_fix: str | None = None, **attributes: Any) -> None:
        super().__init__(message, how_to_fix=how_to_fix, **attributes)
        self.how_to_fix = how_to_fix


class TransientError(OrderHubError):
    """The call may succeed later. ``retry_after`` (seconds) is the other side's hint, if it gave one."""

    kind = "transient"

    def __init__(self, message: str, *, retry_after: float | None = None, **attributes: Any) -> None:
        super().__init__(message, retry_after=retry_after, **attributes)
        self.retry_after = retry_after


class InDoubtError(TransientError):
    """A call may or may not have taken effect (timeout, connection dropped after sending)."""

    kind = "in_doubt"


class RecordError(OrderHubError):
    """One record cannot be taken in as it is; it goes to quarantine and the batch continues."""

    kind = "record"


class FatalError(OrderHubError):
    """The run must stop: continuing could lose or duplicate data."""

    kind = "fatal"
