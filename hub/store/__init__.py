"""The hub's store: schema (SQLAlchemy 2 Core tables), engine setup for SQLite and MySQL/MariaDB, migrations."""

from hub.store.db import create_engine_for, database_url, reading
from hub.store.migrate import upgrade

__all__ = ["create_engine_for", "database_url", "reading", "upgrade"]
