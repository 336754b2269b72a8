"""Fixtures for the ERP sinks: a Hub whose configuration adds the sandbox's Kingdee tenant (sink ``erp``)."""

from __future__ import annotations

import pytest
import yaml


@pytest.fixture
def kd_config(tmp_path, sandbox, db_url):
    from sandbox.configuration import orderhub_config

    def make(**erp_overrides):
        data = orderhub_config(sandbox.url, db_url, kingdee=True)
        for shop in data["shops"]:
            shop["sync"].update({"initial_lookback_hours": 1})
            shop["http"] = {"timeout_s": 3, "attempts": 4}
        for sink in data["sinks"]:
            sink["http"] = {"timeout_s": 3, "attempts": 4}
            if sink["kind"] == "kingdee":
                sink.update(erp_overrides)
        path = tmp_path / "orderhub-kingdee.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return path

    return make


@pytest.fixture
def kd_hub(kd_config, engine):
    from hub.config import load_settings
    from hub.runtime import Hub

    def make(**erp_overrides):
        return Hub(load_settings(kd_config(**erp_overrides)), engine)

    return make


@pytest.fixture(scope="session")
def _tryton_template():
    import os

    from tests.sinks import tryton_server

    if os.environ.get("ORDERHUB_SKIP_TRYTON"):
        pytest.skip("Tryton tests skipped on request (ORDERHUB_SKIP_TRYTON)")
    return tryton_server.template()  # fails, not skips, when .venv-tryton is missing


@pytest.fixture
def tryton(_tryton_template, tmp_path):
    """A real trytond on a fresh copy of the template database (about 1 s), for one test."""
    from tests.sinks import tryton_server

    with tryton_server.running(tmp_path) as server:
        yield server


@pytest.fixture
def tryton_hub(tryton, tmp_path, sandbox, db_url, engine):
    """A Hub whose sinks are the sandbox WMS and the Tryton server (sink ``erp``)."""
    from hub.config import load_settings
    from hub.runtime import Hub
    from sandbox.configuration import orderhub_config

    def make(**erp_overrides):
        data = orderhub_config(sandbox.url, db_url)
        for shop in data["shops"]:
            shop["sync"].update({"initial_lookback_hours": 1})
            shop["http"] = {"timeout_s": 3, "attempts": 4}
        data["sinks"][0]["http"] = {"timeout_s": 3, "attempts": 4}
        data["sinks"].append({"kind": "tryton", "name": "erp", "url": tryton.url, "database": tryton.database,
                              "username": tryton.username, "password": {"value": tryton.password},
                              "http": {"timeout_s": 30, "attempts": 3}, **erp_overrides})
        path = tmp_path / "orderhub-tryton.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
        return Hub(load_settings(path), engine)

    return make
