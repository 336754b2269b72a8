"""The one request-level retry policy (STYLE.md §4): bounded, exponential with jitter, honouring throttling hints.

Only TransientError (and its InDoubtError subclass) is retried; configuration, record and fatal errors go straight
through. Longer outages are the scheduler's business (Airflow task retries), not this layer's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_random_exponential

from hub.errors import TransientError

T = TypeVar("T")
log = structlog.get_logger(__name__)

DEFAULT_ATTEMPTS = 5
DEFAULT_MAX_DELAY_S = 120.0
_backoff = wait_random_exponential(multiplier=0.2, max=10)


def _wait(state: RetryCallState) -> float:
    """Back off exponentially, but never less than the platform's own 'ban N seconds' hint."""
    delay = _backoff(state)
    exc = state.outcome.exception() if state.outcome else None
    hint = getattr(exc, "retry_after", None)
    if hint:
        delay = max(delay, float(hint))
    return delay


def _before_sleep(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning(
        "retrying",
        attempt=state.attempt_number,
        sleep_s=round(state.next_action.sleep, 2) if state.next_action else None,
        error=exc.to_dict() if hasattr(exc, "to_dict") else repr(exc),
    )


def retrying(
    attempts: int = DEFAULT_ATTEMPTS,
    max_delay_s: float = DEFAULT_MAX_DELAY_S,
    sleep: Callable[[float], None] | None = None,
) -> Retrying:
    """A tenacity ``Retrying`` with the house policy; ``sleep`` is injectable so tests need not wait."""
    kwargs = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    return Retrying(
        retry=retry_if_exception_type(TransientError),
        wait=_wait,
        stop=stop_after_attempt(attempts) | stop_after_delay(max_delay_s),
        before_sleep=_before_sleep,
        reraise=True,
        **kwargs,
    )


def call_with_retry(fn: Callable[[], T], *, attempts: int = DEFAULT_ATTEMPTS, sleep=None) -> T:
    """Run ``fn`` under the house policy and return its result, re-raising the last error when attempts run out."""
    return retrying(attempts=attempts, sleep=sleep)(fn)
