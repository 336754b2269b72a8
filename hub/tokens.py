"""Refreshed channel sessions, shared by every process through the hub's database.

Marketplace refresh tokens are single use (TOP, JD): once one process has refreshed a shop's session, the
configured refresh token is spent, and a second process (the next Airflow task, a restarted worker) that tried it
again would be refused and the shop would stop until a person re-authorised it. So a refreshed grant is written to
``channel_tokens`` before anyone uses it, every client reads the newest grant when it starts, and the refresh itself
runs while holding the account's lock in this process and its row (``SELECT ... FOR UPDATE`` on MySQL, the write
lock on SQLite): a thread or process that waited finds the new grant and uses it instead of refreshing again.

The ``Hub`` installs the store for its database (``use_store``); a connector used without a Hub (a unit test) keeps
grants in memory only. Tokens are secrets: they are registered with the log redactor when read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from hub.logging import register_secret
from hub.store.schema import channel_tokens, utcnow


@dataclass(frozen=True)
class Grant:
    """A session the channel issued on refresh."""

    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    lifetime: timedelta | None


class RefreshSlot:
    """The locked row of one account during a refresh: ``current`` is the newest stored grant, ``save`` stores the
    new one in the same transaction."""

    def __init__(self, conn: Connection | None, connector: str, account: str, current: Grant | None) -> None:
        self._conn = conn
        self.connector = connector
        self.account = account
        self.current = current

    def save(self, grant: Grant) -> None:
        if self._conn is None:
            return
        values = {"access_token": grant.access_token, "refresh_token": grant.refresh_token,
                  "expires_at": grant.expires_at, "refreshed_at": utcnow(),
                  "lifetime_s": int(grant.lifetime.total_seconds()) if grant.lifetime else None}
        where = (channel_tokens.c.connector == self.connector, channel_tokens.c.account == self.account)
        if self._conn.execute(sa.update(channel_tokens).where(*where).values(**values)).rowcount == 0:
            self._conn.execute(sa.insert(channel_tokens).values(connector=self.connector, account=self.account,
                                                                **values))
        self.current = grant


class TokenStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load(self, connector: str, account: str) -> Grant | None:
        with self.engine.connect() as conn:
            return _grant(conn.execute(sa.select(channel_tokens).where(
                channel_tokens.c.connector == connector, channel_tokens.c.account == account[:191])).first())

    @contextmanager
    def refreshing(self, connector: str, account: str) -> Iterator[RefreshSlot]:
        account = account[:191]
        where = (channel_tokens.c.connector == connector, channel_tokens.c.account == account)
        if self.engine.dialect.name != "sqlite":
            # FOR UPDATE locks nothing where no row exists (READ COMMITTED): the account's first refresh gets a
            # placeholder row to lock (an empty access token reads as "no grant"); a duplicate means it is there
            try:
                with self.engine.begin() as conn:
                    conn.execute(sa.insert(channel_tokens).values(connector=connector, account=account,
                                                                  access_token="", refreshed_at=utcnow()))
            except sa.exc.IntegrityError:
                pass
        with self.engine.begin() as conn:  # BEGIN IMMEDIATE on SQLite: the whole refresh is one writer
            row = conn.execute(sa.select(channel_tokens).where(*where).with_for_update()).first()
            yield RefreshSlot(conn, connector, account, _grant(row))


def _grant(row) -> Grant | None:
    if row is None or not row.access_token:  # none yet, or the placeholder of a first refresh
        return None
    register_secret(row.access_token)
    register_secret(row.refresh_token)
    return Grant(row.access_token, row.refresh_token, row.expires_at,
                 timedelta(seconds=row.lifetime_s) if row.lifetime_s else None)


_STORE: TokenStore | None = None


def use_store(store: TokenStore | None) -> None:
    """Make ``store`` the one every channel client of this process reads and writes (the Hub calls this)."""
    global _STORE
    _STORE = store


def current_store() -> TokenStore | None:
    return _STORE


# one lock per account in this process: threads queue here, so only one of them holds the database row at a time
_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _lock_for(connector: str, account: str) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault((connector, account), threading.Lock())


@contextmanager
def refreshing(connector: str, account: str) -> Iterator[RefreshSlot]:
    """Single flight for one account's refresh: the account's lock in this process, then its locked row in the
    store (other processes), or a memory-only slot when no store is installed. Whoever waited finds the winner's
    grant in ``slot.current``."""
    with _lock_for(connector, account):
        if _STORE is None:
            yield RefreshSlot(None, connector, account, None)
            return
        with _STORE.refreshing(connector, account) as slot:
            yield slot
