"""The simulated TOP OAuth (spec §1.3): codes, token.create / token.refresh, the OAuth token endpoint, expiry -> 27,
and the gateway served alone at TOP's real path."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import requests

from connectors.top_signing import sign
from sandbox import clock
from sandbox.server import running_sandbox

INCREMENT = "taobao.trades.sold.increment.get"


def window() -> dict:
    now = clock.now()
    return {"fields": "tid", "start_modified": clock.format_wire(now - timedelta(hours=1)),
            "end_modified": clock.format_wire(now)}


def signed(creds: dict, method: str, session: str | None = None, **business: object) -> dict:
    params = {"method": method, "app_key": creds["tmall"]["app_key"], "timestamp": clock.format_wire(clock.now()),
              "format": "json", "v": "2.0", "sign_method": "md5", **{k: str(v) for k, v in business.items()}}
    if session:
        params["session"] = session
    params["sign"] = sign(params, creds["tmall"]["app_secret"], "md5")
    return params


def call(url: str, creds: dict, method: str, session: str | None = None, **business: object) -> dict:
    return requests.post(url, data=signed(creds, method, session, **business), timeout=5).json()


def token_from(top, admin, shop: str = "tm-flagship") -> dict:
    code = admin("POST", "tmall/auth_code", json={"shop": shop})["code"]
    body = top("taobao.top.auth.token.create", shop=None, code=code)["top_auth_token_create_response"]
    return json.loads(body["token_result"])


def test_token_create_turns_a_code_into_a_working_session_with_the_spec_token_fields(sbx, top, admin, creds):
    token = token_from(top, admin)
    assert {"access_token", "token_type", "expires_in", "refresh_token", "re_expires_in", "r1_expires_in",
            "r2_expires_in", "w1_expires_in", "w2_expires_in", "taobao_user_id", "taobao_user_nick"} <= set(token)
    assert token["taobao_user_nick"] == "橙舍官方旗舰店"
    assert token["access_token"].startswith("6100") and token["expires_in"] > 86400
    body = call(sbx.top_gateway_url, creds, INCREMENT, token["access_token"], **window())
    assert "trades_sold_increment_get_response" in body, body
    # the newest grant is what the credentials show
    shops = admin("GET", "credentials")["tmall"]["shops"]
    assert shops[0]["session"] == token["access_token"]


def test_a_code_works_once_and_an_unknown_code_is_refused(top, admin):
    code = admin("POST", "tmall/auth_code", json={"shop": "tm-outlet"})["code"]
    assert "top_auth_token_create_response" in top("taobao.top.auth.token.create", shop=None, code=code)
    error = top("taobao.top.auth.token.create", shop=None, code=code)["error_response"]
    assert (error["code"], error["sub_code"]) == (15, "isv.invalid-auth-code")
    assert top("taobao.top.auth.token.create", shop=None)["error_response"]["code"] == 40


def test_session_ttl_knob_makes_new_tokens_expire_then_27_then_refresh_recovers(sbx, top, admin, creds):
    admin("POST", "faults", json={"top.session_ttl_s": 1})
    token = token_from(top, admin)
    assert token["expires_in"] <= 1
    time.sleep(1.1)
    error = call(sbx.top_gateway_url, creds, INCREMENT, token["access_token"], **window())["error_response"]
    assert (error["code"], error["msg"], error["sub_code"]) == (27, "Invalid session", "invalid-sessionkey")

    admin("POST", "faults", json={"top.session_ttl_s": 0})
    refreshed = json.loads(top("taobao.top.auth.token.refresh", shop=None, refresh_token=token["refresh_token"])
                           ["top_auth_token_refresh_response"]["token_result"])
    assert refreshed["access_token"] != token["access_token"]
    assert "trades_sold_increment_get_response" in call(sbx.top_gateway_url, creds, INCREMENT,
                                                        refreshed["access_token"], **window())
    # a refresh token is single-use
    error = top("taobao.top.auth.token.refresh", shop=None, refresh_token=token["refresh_token"])["error_response"]
    assert (error["code"], error["sub_code"]) == (15, "isv.invalid-refresh-token")


def test_admin_expires_a_shops_seed_session_soon_and_only_that_shop(sbx, top, admin, creds):
    answer = admin("POST", "tmall/sessions/tm-flagship/expire", json={"in_s": 60})
    assert answer["shop"] == "tm-flagship" and answer["expires_at"] < "2099"
    assert "trades_sold_increment_get_response" in top(INCREMENT, **window())
    admin("POST", "tmall/sessions/tm-flagship/expire", json={"in_s": 0})
    assert top(INCREMENT, **window())["error_response"]["code"] == 27
    assert "trades_sold_increment_get_response" in top(INCREMENT, shop="tm-outlet", **window())
    # the seed refresh token still works
    refresh_token = creds["tmall"]["shops"][0]["refresh_token"]
    body = top("taobao.top.auth.token.refresh", shop=None, refresh_token=refresh_token)
    session = json.loads(body["top_auth_token_refresh_response"]["token_result"])["access_token"]
    assert "trades_sold_increment_get_response" in call(sbx.top_gateway_url, creds, INCREMENT, session, **window())
    assert requests.post(f"{sbx.url}/_sandbox/tmall/sessions/tm-nowhere/expire", json={}, timeout=5
                         ).status_code == 400


def test_oauth_token_endpoint_form_serves_both_grants_and_checks_the_client(sbx, admin, creds):
    app = creds["tmall"]
    code = admin("POST", "tmall/auth_code", json={"shop": "tm-outlet"})["code"]
    form = {"grant_type": "authorization_code", "code": code, "client_id": app["app_key"],
            "client_secret": app["app_secret"], "redirect_uri": "urn:ietf:wg:oauth:2.0:oob"}
    token = requests.post(f"{sbx.url}/top/oauth/token", data=form, timeout=5).json()
    assert token["taobao_user_nick"] == "橙舍奥莱店"
    again = requests.post(f"{sbx.url}/top/oauth/token", data=form, timeout=5)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    refreshed = requests.post(f"{sbx.url}/top/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"], "client_id": app["app_key"],
        "client_secret": app["app_secret"]}, timeout=5)
    assert refreshed.status_code == 200 and refreshed.json()["access_token"] != token["access_token"]
    wrong = requests.post(f"{sbx.url}/top/oauth/token", data={**form, "client_secret": "x"}, timeout=5)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"


def test_tmall_served_alone_answers_at_router_rest_and_token_with_the_admin_api():
    with running_sandbox(seed=1, system="tmall") as handle:
        creds = requests.get(f"{handle.url}/_sandbox/credentials", timeout=5).json()
        assert (creds["tmall"]["gateway_path"], creds["tmall"]["oauth_path"]) == ("/router/rest", "/token")
        session = creds["tmall"]["shops"][0]["session"]
        body = call(f"{handle.url}/router/rest", creds, INCREMENT, session, **window())
        assert body["trades_sold_increment_get_response"]["total_results"] == 0
        assert requests.post(f"{handle.url}/top/router/rest", timeout=5).status_code == 404
        assert requests.post(f"{handle.url}/token", data={}, timeout=5).status_code == 401
