"""The hub's error kinds, carried into Airflow task outcomes (STYLE.md §3-4: two retry layers only).

    ConfigurationError -> AirflowFailException: a person must fix config, a credential or a mapping; no retry
    FatalError         -> AirflowFailException: the run stopped to avoid losing or duplicating data; no retry
    RecordError        -> AirflowFailException: should have been quarantined by the hub; escaping it is a bug
    TransientError     -> HubTransientError (an AirflowException): Airflow retries the task (minutes, backoff);
                          the request-level retries (seconds) already ran inside hub.retry

The raised exception keeps the hub error as ``__cause__`` and exposes ``kind``, ``attributes`` and ``how_to_fix``,
so the failure callback can put them into the alert.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from hub.errors import ConfigurationError, FatalError, OrderHubError, TransientError


class _HubFailure:
    kind: str
    attributes: dict[str, Any]
    how_to_fix: str | None


class HubConfigurationFailure(AirflowFailException, _HubFailure):
    """Fails the task at once: retrying cannot help until a person changes something."""


class HubFatalFailure(AirflowFailException, _HubFailure):
    """Fails the task at once: going on could lose or duplicate data."""


class HubTransientError(AirflowException, _HubFailure):
    """Retried by Airflow with the task's retries and exponential backoff."""


def _wrap(cls: type, exc: OrderHubError, step: str) -> Exception:
    how = getattr(exc, "how_to_fix", None)
    text = f"[{exc.kind}] {step}: {exc}"
    if how:
        text += f" -> how to fix: {how}"
    wrapped = cls(text)
    wrapped.kind = exc.kind
    wrapped.attributes = dict(exc.attributes)
    wrapped.how_to_fix = how
    return wrapped


@contextmanager
def hub_errors(step: str) -> Iterator[None]:
    """Run a hub step; translate its error kind into what Airflow should do with the task."""
    try:
        yield
    except ConfigurationError as exc:
        raise _wrap(HubConfigurationFailure, exc, step) from exc
    except TransientError as exc:  # includes InDoubtError: re-sending is safe, the target de-duplicates
        raise _wrap(HubTransientError, exc, step) from exc
    except OrderHubError as exc:  # FatalError, an escaped RecordError, anything else of ours
        raise _wrap(HubFatalFailure, exc, step) from exc


def error_kind(exc: BaseException | None) -> str:
    """The hub error kind behind a task failure (for alerts): configuration, transient, fatal... or airflow."""
    seen = exc
    while seen is not None:
        kind = getattr(seen, "kind", None)
        if isinstance(kind, str):
            return kind
        if isinstance(seen, FatalError):
            return "fatal"
        seen = seen.__cause__
    return "airflow" if exc is not None else "unknown"
