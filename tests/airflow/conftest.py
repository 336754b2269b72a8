"""Airflow test environment. Airflow reads its configuration when first imported, so everything here is set at
import time, before any test module imports airflow (spec §1.5). Run these tests in their own pytest invocation
(`make test-airflow`); they need the `airflow` extra and, for the UI tests, /usr/bin/chromium.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="orderhub_af_test_")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__PARALLELISM"] = "4"
os.environ.setdefault("ORDERHUB_CONFIG", str(ROOT / "tests" / "airflow" / "no-such-config.yaml"))

pytest.importorskip("airflow", reason="the airflow extra is not installed: pip install -e '.[airflow,test]'")

SCREENSHOT_DIR = Path(os.environ.get("ORDERHUB_SCREENSHOT_DIR", ROOT / ".artifacts" / "airflow"))


@pytest.fixture(scope="session")
def airflow_db():
    """A fresh Airflow metadata DB (SQLite in the temporary AIRFLOW_HOME): dag.test() needs it, DagBag does not."""
    from airflow.utils import db

    db.resetdb()
    yield


@pytest.fixture
def af_config(tmp_path, sandbox, db_url, monkeypatch):
    """An OrderHub configuration against the in-process sandbox, exported as ORDERHUB_CONFIG for the DAG file."""
    from tests.conftest import write_sandbox_config

    path = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url)
    monkeypatch.setenv("ORDERHUB_CONFIG", str(path))
    return path
