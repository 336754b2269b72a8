"""The lost-connection policy (hub.retry.retry_on_lost_connection) on its own, with made-up driver errors and the
sleep injected: it repeats a transaction whose connection was lost, never one whose statement was wrong, gives up
after a bounded number of attempts with a TransientError that says how to fix it, and logs each retry with the
error's class and code only, never the SQL parameters (they may hold buyer data).
"""

from __future__ import annotations

import sqlite3

import pymysql
import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from hub.errors import TransientError
from hub.retry import DB_ATTEMPTS, is_lost_connection, retry_on_lost_connection

PHONE = "13812345678"  # a buyer's phone in the failing statement's parameters


def _error(orig: Exception, *, invalidated: bool = False, kind=sa.exc.OperationalError) -> sa.exc.DBAPIError:
    return kind("INSERT INTO orders (receiver_mobile) VALUES (%s)", (PHONE,), orig,
                connection_invalidated=invalidated)


class FakeEngine:
    """Counts how often the policy empties the pool."""

    def __init__(self) -> None:
        self.disposed = 0

    def dispose(self) -> None:
        self.disposed += 1


def _failing(*errors: Exception):
    """A unit of work that raises ``errors`` one per call, then returns "written"."""
    calls = {"n": 0}

    def work() -> str:
        calls["n"] += 1
        if calls["n"] <= len(errors):
            raise errors[calls["n"] - 1]
        return "written"

    return work, calls


@pytest.mark.parametrize("error", [
    _error(pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"), invalidated=True),
    _error(pymysql.err.OperationalError(2006, "MySQL server has gone away")),
    _error(pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")),
    _error(pymysql.err.OperationalError(1927, "Connection was killed")),
    _error(pymysql.err.OperationalError(4031, "The client was disconnected by the server because of inactivity")),
    _error(pymysql.err.OperationalError(2003, "Can't connect to MySQL server on '127.0.0.1'")),
    _error(sqlite3.ProgrammingError("Cannot operate on a closed database."), kind=sa.exc.ProgrammingError),
], ids=["invalidated", "2006", "2013", "1927", "4031", "2003", "sqlite-closed"])
def test_a_lost_connection_is_retried_and_the_unit_of_work_then_succeeds(error):
    work, calls = _failing(error)
    sleeps: list[float] = []
    engine = FakeEngine()
    assert is_lost_connection(error)
    assert retry_on_lost_connection(work, engine=engine, sleep=sleeps.append) == "written"
    assert calls["n"] == 2 and len(sleeps) == 1 and 0.1 <= sleeps[0] <= 2.1  # a short backoff
    # a loss SQLAlchemy flagged has already invalidated the pool; one it did not flag is cleaned up here
    assert engine.disposed == (0 if error.connection_invalidated else 1)


@pytest.mark.parametrize("error", [
    _error(pymysql.err.IntegrityError(1062, "Duplicate entry 'x' for key 'uq'"), kind=sa.exc.IntegrityError),
    _error(sqlite3.IntegrityError("UNIQUE constraint failed: orders.order_id"), kind=sa.exc.IntegrityError),
    _error(pymysql.err.OperationalError(1205, "Lock wait timeout exceeded")),
    _error(pymysql.err.ProgrammingError(1064, "You have an error in your SQL syntax"), kind=sa.exc.ProgrammingError),
    ValueError("not a database error"),
], ids=["mysql-duplicate", "sqlite-unique", "lock-wait", "syntax", "not-db"])
def test_other_errors_are_not_retried_but_raised_as_they_are(error):
    work, calls = _failing(error)
    sleeps: list[float] = []
    with pytest.raises(type(error)) as raised:
        retry_on_lost_connection(work, engine=FakeEngine(), sleep=sleeps.append)
    assert raised.value is error and calls["n"] == 1 and sleeps == []


def test_a_connection_lost_on_every_attempt_gives_up_after_n_attempts_with_a_transient_error_saying_how_to_fix_it():
    lost = _error(pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"), invalidated=True)
    work, calls = _failing(*[lost] * 10)
    sleeps: list[float] = []
    with pytest.raises(TransientError) as raised:
        retry_on_lost_connection(work, what="page 2 of window W", sleep=sleeps.append)
    assert calls["n"] == DB_ATTEMPTS and len(sleeps) == DB_ATTEMPTS - 1
    error = raised.value
    assert "database connection was lost" in error.message and "page 2 of window W" in error.message
    assert "database server is up" in error.attributes["how_to_fix"]
    assert error.attributes["code"] == 2013 and error.attributes["db_error"] == "OperationalError"
    assert error.to_dict()["kind"] == "transient"
    assert error.__cause__ is lost.orig  # chained to the driver's error, whose text has no SQL parameters
    assert PHONE not in str(error) and PHONE not in repr(error.to_dict())


def test_the_attempts_are_bounded_by_the_caller():
    lost = _error(pymysql.err.OperationalError(2006, "MySQL server has gone away"))
    work, calls = _failing(*[lost] * 10)
    with pytest.raises(TransientError):
        retry_on_lost_connection(work, attempts=5, sleep=lambda _s: None)
    assert calls["n"] == 5


def test_a_disconnect_after_a_retry_then_a_constraint_error_is_raised_as_the_constraint_error():
    lost = _error(pymysql.err.OperationalError(2013, "Lost connection"), invalidated=True)
    duplicate = _error(pymysql.err.IntegrityError(1062, "Duplicate entry"), kind=sa.exc.IntegrityError)
    work, calls = _failing(lost, duplicate)
    with pytest.raises(sa.exc.IntegrityError):
        retry_on_lost_connection(work, sleep=lambda _s: None)
    assert calls["n"] == 2


def test_each_retry_is_logged_as_a_warning_with_the_error_class_and_code_but_never_the_parameters():
    lost = _error(pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"), invalidated=True)
    work, _calls = _failing(lost, lost)
    with capture_logs() as logs:
        retry_on_lost_connection(work, what="page 1 of window W", sleep=lambda _s: None)
    retries = [entry for entry in logs if entry["event"] == "database connection lost, retrying"]
    assert [entry["attempt"] for entry in retries] == [1, 2]
    assert all(entry["log_level"] == "warning" and entry["error"] == "OperationalError" and entry["code"] == 2013
               and entry["what"] == "page 1 of window W" for entry in retries)
    assert PHONE not in repr(logs) and "INSERT" not in repr(logs)
