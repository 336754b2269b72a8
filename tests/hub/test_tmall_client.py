"""The TOP client turns TOP's answers into the hub's error kinds (errors arrive as HTTP 200 bodies)."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from connectors.tmall.client import classify
from hub.cli import app
from hub.config import SecretRef
from hub.errors import ConfigurationError, RecordError, TransientError
from tests.hub.helpers import create_orders, set_faults, versions


def error(code, sub_code="", sub_msg="", msg="x"):
    return {"error_response": {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg,
                               "request_id": "r1"}}


def test_classify_reads_the_ban_length_from_a_throttling_answer():
    with pytest.raises(TransientError) as info:
        classify("taobao.trades.sold.increment.get", 200,
                 error(7, "accesscontrol.limited-by-api-access-count", "This ban will last for 71 more seconds"))
    assert info.value.retry_after == 71 and info.value.attributes["code"] == 7


def test_classify_turns_the_daily_quota_into_a_wait_until_it_resets():
    with pytest.raises(TransientError) as info:
        classify("m", 200, error(7, "accesscontrol.limited-by-app-access-count"))
    assert 0 < info.value.retry_after <= 86400 and info.value.attributes["quota"] is True


@pytest.mark.parametrize("code, kind", [(25, ConfigurationError), (27, ConfigurationError), (29, ConfigurationError),
                                        (10, TransientError), (15, RecordError)])
def test_classify_maps_top_codes_to_who_must_act(code, kind):
    with pytest.raises(kind):
        classify("m", 200, error(code, "isv.something"))


def test_isp_sub_codes_are_the_platforms_trouble_and_retried():
    with pytest.raises(TransientError):
        classify("m", 200, error(15, "isp.top-remote-connection-timeout"))


def test_http_5xx_is_transient_and_the_wrapped_response_is_unwrapped():
    with pytest.raises(TransientError):
        classify("m", 502, None)
    assert classify("taobao.trade.fullinfo.get", 200, {"trade_fullinfo_get_response": {"trade": {"tid": 1}}}) == {
        "trade": {"tid": 1}}


def test_throttling_is_waited_out_and_the_sync_completes(hub, sandbox):
    tids = create_orders(sandbox.url, count=3)
    set_faults(sandbox.url, top__throttle={"calls": 2, "ban_seconds": 1})
    started = time.monotonic()
    hub.sync(shop="tm-flagship")
    assert time.monotonic() - started >= 1.0  # honoured "ban will last for 1 more seconds"
    assert set(tids) <= set(versions(hub.engine))


def test_an_expired_session_is_a_configuration_error_naming_the_shop_and_the_cure(hub, sandbox, config_path):
    set_faults(sandbox.url, top__expire_sessions=True)
    with pytest.raises(ConfigurationError) as info:
        hub.sync(shop="tm-flagship")
    assert "tm-flagship" in str(info.value) and "re-authorise" in info.value.how_to_fix
    result = CliRunner().invoke(app, ["sync", "--config", str(config_path)])
    assert result.exit_code == 3 and "re-authorise shop tm-flagship" in result.output


def test_a_wrong_app_secret_is_rejected_by_the_gateway_and_reported_as_configuration(hub, sandbox):
    shop = hub.settings.shop("tmall", "tm-flagship")
    shop.app_secret = SecretRef(value="not-the-secret")
    with pytest.raises(ConfigurationError, match="signature") as info:
        hub.sync(shop="tm-flagship")
    assert info.value.attributes["code"] == 25
