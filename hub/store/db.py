"""Engines for the embedded default (SQLite file) and production (MySQL/MariaDB through pymysql).

SQLite: WAL so readers never block the writer; ``BEGIN IMMEDIATE`` so a write transaction takes the write lock up
front and waits (busy_timeout) instead of failing halfway with SQLITE_BUSY when two processes overlap.
MySQL/MariaDB: READ COMMITTED (fewer gap locks on upserts), utf8mb4, pre-ping so a restarted server is survived.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

from hub import jsontext

DEFAULT_DATABASE_URL = "sqlite:///orderhub.db"
READ_ONLY = "orderhub_read_only"
ENV_VAR = "ORDERHUB_DATABASE_URL"


def database_url(configured: str | None = None) -> str:
    """``ORDERHUB_DATABASE_URL`` wins over the configuration file, which wins over the embedded default."""
    return os.environ.get(ENV_VAR) or configured or DEFAULT_DATABASE_URL


def create_engine_for(url: str, **kwargs) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": 30}, json_serializer=jsontext.compact, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see "begin" below).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            # 64 MiB of page cache instead of SQLite's 2 MiB default: the order, binding and raw-payload indexes of a
            # Double 11 day do not fit in 2 MiB, and every insert then re-reads index pages from the OS.
            cursor.execute("PRAGMA cache_size=-65536")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # Reads (opened with ``reading``) share the database under WAL; everything else takes the write lock
            # at BEGIN, so two writers queue instead of one failing halfway with SQLITE_BUSY.
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        query = dict(parsed.query)
        query.setdefault("charset", "utf8mb4")
        parsed = parsed.set(query=query)
        return sa.create_engine(parsed, pool_pre_ping=True, pool_recycle=3600, isolation_level="READ COMMITTED",
                                json_serializer=jsontext.compact, **kwargs)
    return sa.create_engine(url, **kwargs)


def reading(engine: Engine) -> Connection:
    """A connection for reads only: on SQLite it does not take the write lock, so it never waits for a writer."""
    return engine.connect().execution_options(**{READ_ONLY: True})
