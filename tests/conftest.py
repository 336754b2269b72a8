"""Shared fixtures: a migrated database (SQLite file by default, MariaDB/MySQL when ORDERHUB_TEST_DATABASE_URL
points there), an in-process sandbox, and a Hub configured against that sandbox.

The MySQL run must not quietly turn into a skip: when the URL is set and the server cannot be reached, the whole
session stops with an error.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from hub.store import create_engine_for, upgrade
from hub.store.schema import metadata

TEST_DB_URL = os.environ.get("ORDERHUB_TEST_DATABASE_URL")
os.environ.setdefault("COLUMNS", "200")  # Rich reads the width when hub.cli creates its consoles


def _is_mysql() -> bool:
    return bool(TEST_DB_URL) and TEST_DB_URL.startswith("mysql")


@pytest.fixture(autouse=True)
def _no_token_store_between_tests():
    """A Hub installs its database as the process's token store (hub/tokens.py); no test inherits another's."""
    from hub import tokens

    tokens.use_store(None)
    yield
    tokens.use_store(None)


@pytest.fixture(scope="session")
def _db_template(tmp_path_factory):
    """Migrate once per session: a template SQLite file to copy, or the MySQL database itself."""
    if _is_mysql():
        engine = create_engine_for(TEST_DB_URL)
        try:
            with engine.connect():
                pass
        except sa.exc.OperationalError as exc:
            pytest.exit(f"MariaDB/MySQL at {TEST_DB_URL} is unreachable: {exc}", returncode=3)
        with engine.begin() as conn:
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
            for (table,) in conn.exec_driver_sql("SHOW TABLES").fetchall():
                conn.exec_driver_sql(f"DROP TABLE `{table}`")
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")
        upgrade(engine)
        engine.dispose()
        return TEST_DB_URL
    template = tmp_path_factory.mktemp("db") / "template.db"
    engine = create_engine_for(f"sqlite:///{template}")
    upgrade(engine)
    engine.dispose()
    return template


@pytest.fixture
def db_url(_db_template, tmp_path) -> str:
    """A clean, migrated database for one test."""
    if _is_mysql():
        engine = create_engine_for(TEST_DB_URL)
        with engine.begin() as conn:
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
            for table in reversed(metadata.sorted_tables):
                conn.exec_driver_sql(f"DELETE FROM `{table.name}`")
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")
        engine.dispose()
        return TEST_DB_URL
    path = tmp_path / "orderhub.db"
    shutil.copy(_db_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def engine(db_url):
    engine = create_engine_for(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sandbox():
    from sandbox import running_sandbox

    with running_sandbox(seed=11) as handle:
        yield handle


def write_sandbox_config(path: Path, sandbox_url: str, db_url: str, *, streams: list[str] | None = None,
                         **sync_overrides) -> Path:
    """The sandbox's configuration with fast sync settings; each shop reads only its ``orders`` stream unless
    ``streams`` says otherwise (tests of other streams ask for them)."""
    from sandbox.configuration import orderhub_config

    data = orderhub_config(sandbox_url, db_url)
    for shop in data["shops"]:
        shop["streams"] = streams or ["orders"]
        # a one-hour first lookback: two windows, not the 48 empty ones of the default day
        shop["sync"].update({"initial_lookback_hours": 1, **sync_overrides})
        shop["http"] = {"timeout_s": 3, "attempts": 4}
    for sink in data["sinks"]:
        sink["http"] = {"timeout_s": 3, "attempts": 4}
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def config_path(tmp_path, sandbox, db_url) -> Path:
    return write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url)


@pytest.fixture
def hub(config_path, engine):
    from hub.config import load_settings
    from hub.runtime import Hub

    return Hub(load_settings(config_path), engine)
