"""The one request-level retry policy (STYLE.md §4): bounded, exponential with jitter, honouring throttling hints;
and its database counterpart for a lost connection.

Only TransientError (and its InDoubtError subclass) is retried; configuration, record and fatal errors go straight
through. Longer outages are the scheduler's business (Airflow task retries), not this layer's.

``retry_on_lost_connection`` repeats one unit of work that is a single database transaction when the connection
under it was lost (MariaDB restarted or KILLed it, the network cut it, SQLite's connection was closed). Such a unit
is safe to repeat: a transaction that died with its connection rolled back whole, and one whose COMMIT landed just
before the connection went is replayed into the hub's version guard, which makes it a no-op. Nothing else is
retried here: a constraint violation or bad SQL fails at once, since repeating it would fail the same way. When
the attempts run out the last loss becomes a TransientError, so the CLI exits 4 and Airflow retries the task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from sqlalchemy.exc import DBAPIError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)
from tenacity.wait import wait_fixed, wait_random_exponential

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


# -- lost database connections --------------------------------------------------------------------------------------

DB_ATTEMPTS = 3
# MySQL/MariaDB client and server codes of a connection that is gone, for errors that reach us without SQLAlchemy's
# ``connection_invalidated`` (raised outside a Connection's own error handling): 2006 server has gone away, 2013 lost
# connection during query, 1927 connection was killed, 4031 disconnected by the server for inactivity, and 2003
# can't connect (the reconnect of a retry while the server is still restarting: nothing was sent, so it is safe).
MYSQL_DISCONNECT_CODES = frozenset({2003, 2006, 2013, 1927, 4031})
SQLITE_CLOSED = "Cannot operate on a closed database"
# Short: a lost connection is replaced at once (a fresh one from the pool), so the wait only has to let a KILL or a
# network blip settle (hence the small floor under the jitter). A server that stays down is Airflow's retry's
# business, minutes later, not this loop's.
_db_backoff = wait_fixed(0.1) + wait_random_exponential(multiplier=0.2, max=2)


def driver_error_code(exc: BaseException) -> int | None:
    """The driver's numeric error code (pymysql and mysqlclient put it first in ``args``), or None."""
    orig = getattr(exc, "orig", exc)
    args = getattr(orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def is_lost_connection(exc: BaseException) -> bool:
    """True when ``exc`` says the database connection is gone, not that the statement was wrong."""
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    # The driver's own message only (never str(exc): SQLAlchemy's text carries the SQL and its parameters).
    return driver_error_code(exc) in MYSQL_DISCONNECT_CODES or SQLITE_CLOSED in str(exc.orig)


def _error_fields(exc: BaseException | None) -> dict[str, Any]:
    """What a log line or an error may say about a database error: its class and code. Never the SQL parameters,
    which may hold buyer data."""
    orig = getattr(exc, "orig", None) or exc
    return {"error": type(orig).__name__ if orig is not None else None,
            "code": driver_error_code(exc) if exc is not None else None}


def _discard_dead_connections(engine: Any, exc: BaseException | None) -> None:
    """Make sure the next attempt cannot check the dead connection out of the pool again.

    A loss SQLAlchemy flagged (``connection_invalidated``) needs nothing: it has already invalidated that connection
    and marked the whole pool, so every connection older than the loss is replaced at its next checkout. That is
    what SQLite relies on, having no pre-ping; MySQL's ``pool_pre_ping`` would catch a dead one as well. A loss
    recognised only by its code or message was not seen by SQLAlchemy, so the pool is emptied here.
    """
    if engine is not None and isinstance(exc, DBAPIError) and not exc.connection_invalidated:
        engine.dispose()


def retry_on_lost_connection(fn: Callable[[], T], *, engine: Any = None, what: str = "a database transaction",
                             attempts: int = DB_ATTEMPTS, sleep: Callable[[float], None] | None = None) -> T:
    """Run ``fn``, one database transaction, again when its connection was lost; at most ``attempts`` times.

    ``fn`` must be safe to repeat: a single transaction whose inputs are still there for the next attempt (a list,
    not an iterator that the first attempt used up). ``what`` names the unit in the log and in the final error.
    ``engine`` lets a loss that SQLAlchemy did not flag be cleaned up before the next attempt. ``sleep`` is
    injectable so tests need not wait.
    """

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        _discard_dead_connections(engine, exc)
        log.warning("database connection lost, retrying", what=what, attempt=state.attempt_number,
                    sleep_s=round(state.next_action.sleep, 2) if state.next_action else None, **_error_fields(exc))

    kwargs: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    policy = Retrying(retry=retry_if_exception(is_lost_connection), wait=_db_backoff,
                      stop=stop_after_attempt(attempts), before_sleep=before_sleep, reraise=True, **kwargs)
    try:
        return policy(fn)
    except DBAPIError as exc:
        if not is_lost_connection(exc):
            raise
        _discard_dead_connections(engine, exc)  # the caller's next transaction (its health record) needs one too
        fields = _error_fields(exc)
        # chained to the driver's error, not to SQLAlchemy's wrapper, whose text carries the SQL parameters
        raise TransientError(
            f"the database connection was lost on each of {attempts} attempts at writing {what}; "
            "each attempt's transaction went with its connection, so nothing of it is half-written",
            how_to_fix="check that the database server is up and reachable (restart, failover, network, "
                       "max_connections, wait_timeout); then run again (Airflow retries the task by itself): "
                       "the work is done again from where the last commit left it, nothing is lost or doubled",
            db_error=fields["error"], code=fields["code"], attempts=attempts,
        ) from exc.orig
