"""`orderhub config check` reports every problem with its line and a fix, and exits 3; credentials stay references."""

import json
import textwrap

import pytest
from typer.testing import CliRunner

from hub.cli import app
from hub.config import ConfigError, load_settings
from hub.errors import ConfigurationError

runner = CliRunner()

GOOD = textwrap.dedent("""\
    shops:
      - channel: tmall
        shop: tm-flagship
        gateway: http://127.0.0.1:1/top/router/rest
        app_key: {env: OH_TEST_TMALL_KEY}
        app_secret: {env: OH_TEST_TMALL_SECRET}
        session: {airflow_connection: tmall_tm_flagship, field: password}
    sinks:
      - kind: qimen_wms
        name: wms
        url: http://127.0.0.1:1/qimen/router
        app_key: {value: "23456789"}
        app_secret: {env: OH_TEST_WMS_SECRET}
        customer_id: C001
    """)


def write(tmp_path, text):
    path = tmp_path / "orderhub.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_file_loads_and_credentials_resolve_only_when_asked(tmp_path, monkeypatch):
    path = write(tmp_path, GOOD)
    settings = load_settings(path)  # no env set yet: loading does not resolve anything
    shop = settings.shop("tmall", "tm-flagship")
    monkeypatch.setenv("OH_TEST_TMALL_SECRET", "s3cr3t-value")
    assert shop.app_secret.reveal() == "s3cr3t-value"
    monkeypatch.setenv("AIRFLOW_CONN_TMALL_TM_FLAGSHIP", json.dumps({"conn_type": "generic",
                                                                     "password": "session-token-1"}))
    assert shop.session.reveal() == "session-token-1"


def test_an_airflow_connection_given_as_a_uri_in_the_environment_is_read_without_airflow(tmp_path, monkeypatch):
    settings = load_settings(write(tmp_path, GOOD))
    monkeypatch.setenv("AIRFLOW_CONN_TMALL_TM_FLAGSHIP", "generic://seller:tok%2Fen@host")
    assert settings.shop("tmall", "tm-flagship").session.reveal() == "tok/en"


def test_a_missing_environment_variable_says_which_and_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.delenv("OH_TEST_TMALL_SECRET", raising=False)
    settings = load_settings(write(tmp_path, GOOD))
    with pytest.raises(ConfigurationError) as info:
        settings.shop("tmall", "tm-flagship").app_secret.reveal()
    assert "OH_TEST_TMALL_SECRET" in str(info.value) and "export" in info.value.how_to_fix


def test_config_check_lists_each_problem_with_its_line_and_exits_3(tmp_path):
    bad = GOOD.replace("shop: tm-flagship", "shop: tm-flagship\n    colour: red").replace(
        "customer_id: C001", "customer_idd: C001").replace("channel: tmall", "channel: tmall")
    result = runner.invoke(app, ["config", "check", "--config", str(write(tmp_path, bad))])
    assert result.exit_code == 3
    out = result.output
    assert "orderhub.yaml:4: shops[0].colour: Extra inputs are not permitted" in out
    assert "sinks[0].customer_id: Field required" in out
    assert "sinks[0].customer_idd" in out and "check its spelling" in out


def test_config_check_reports_credentials_that_cannot_be_resolved(tmp_path, monkeypatch):
    for name in ("OH_TEST_TMALL_KEY", "OH_TEST_TMALL_SECRET", "OH_TEST_WMS_SECRET", "AIRFLOW_CONN_TMALL_TM_FLAGSHIP"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(app, ["config", "check", "--config", str(write(tmp_path, GOOD))])
    assert result.exit_code == 3
    assert "shops[0].app_secret: environment variable OH_TEST_TMALL_SECRET is not set" in result.output
    assert "sinks[0].app_secret" in result.output


def test_an_unknown_channel_names_the_known_ones(tmp_path):
    result = runner.invoke(app, ["config", "check", "--config",
                                 str(write(tmp_path, GOOD.replace("channel: tmall", "channel: tmal")))])
    assert result.exit_code == 3
    assert "unknown channel 'tmal'" in result.output and "tmall" in result.output


def test_a_missing_file_tells_how_to_create_one(tmp_path):
    with pytest.raises(ConfigurationError) as info:
        load_settings(tmp_path / "nope.yaml")
    assert "orderhub init --sandbox" in info.value.how_to_fix


def test_broken_yaml_is_reported_with_its_line(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, "shops:\n  - channel: [tmall\n"))
    assert info.value.problems[0].line is not None
