"""An OrderHub configuration for a running sandbox: every shop and sink it simulates, with its credentials.

Used by ``orderhub init --sandbox URL``, the demo and the tests; the sandbox is the one that knows what it offers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests

from hub.errors import ConfigurationError


def _tmall_shops(url: str, creds: dict[str, Any]) -> list[dict[str, Any]]:
    tm = creds["tmall"]
    return [{
        "channel": "tmall", "shop": s["shop"], "gateway": url + tm.get("gateway_path", "/top/router/rest"),
        "app_key": {"value": tm["app_key"]}, "app_secret": {"value": tm["app_secret"]},
        "session": {"value": s["session"]}, "sign_method": tm.get("sign_method", "md5"),
        "seller_nick": s.get("seller_nick"), "streams": ["orders", "refunds", "reviews"],
        # the sandbox indexes instantly; a real shop wants lag_seconds of 10-60
        "sync": {"window_minutes": 30, "overlap_seconds": 120, "lag_seconds": 0, "initial_lookback_hours": 24},
        "http": {"timeout_s": 10, "attempts": 5},
    } for s in tm["shops"]]


def _pos_shops(url: str, creds: dict[str, Any]) -> list[dict[str, Any]]:
    pos = creds["pos"]
    return [{
        "channel": "pos", "shop": s["store"], "base_url": url + pos.get("base_path", "/pos/api"),
        "api_key": {"value": pos["api_key"]}, "streams": ["orders", "refunds", "stock_levels"],
        # receipts are windowed on their upload time, which the sandbox stamps at once: no lag needed
        "sync": {"window_minutes": 60, "overlap_seconds": 120, "lag_seconds": 0, "initial_lookback_hours": 24},
        "http": {"timeout_s": 10, "attempts": 5},
    } for s in pos["stores"]]


def _jd_shops(url: str, creds: dict[str, Any]) -> list[dict[str, Any]]:
    jd = creds["jd"]
    return [{
        "channel": "jd", "shop": s["shop"], "gateway": url + jd.get("router_path", "/jd/routerjson"),
        "refresh_url": url + jd.get("refresh_path", "/jd/oauth2/refresh_token"),
        "app_key": {"value": jd["app_key"]}, "app_secret": {"value": jd["app_secret"]},
        "access_token": {"value": s["access_token"]}, "refresh_token": {"value": s["refresh_token"]},
        # JOS answers in GMT+8 wall time
        "token_expires_at": s["expires_at"].replace(" ", "T") + "+08:00", "vender_id": s.get("vender_id"),
        "streams": ["orders", "refunds", "reviews"], "throttle_wait_s": 0.2,
        "sync": {"window_minutes": 30, "overlap_seconds": 120, "lag_seconds": 0, "initial_lookback_hours": 24},
        "http": {"timeout_s": 10, "attempts": 5},
    } for s in jd["shops"]]


def _wechat_shop_shops(url: str, creds: dict[str, Any]) -> list[dict[str, Any]]:
    wx = creds["wechat_shop"]
    return [{
        "channel": "wechat_shop", "shop": s["shop"], "api_base": url + wx.get("api_base", "/wechat"),
        "appid": s["appid"], "secret": {"value": s["secret"]}, "username": s.get("username"),
        "callback_token": {"value": s["callback_token"]}, "encoding_aes_key": {"value": s["encoding_aes_key"]},
        "streams": ["orders", "refunds"], "throttle_wait_s": 0.2,
        # update times are stamped at once; push_inbox (the callback inbox file) is set where a receiver runs
        "sync": {"window_minutes": 30, "overlap_seconds": 120, "lag_seconds": 0, "initial_lookback_hours": 24},
        "http": {"timeout_s": 10, "attempts": 5},
    } for s in wx["shops"]]


def _pdd_shops(url: str, creds: dict[str, Any]) -> list[dict[str, Any]]:
    pdd = creds["pdd"]
    return [{
        "channel": "pdd", "shop": s["shop"], "gateway": url + pdd.get("router_path", "/pdd/api/router"),
        "client_id": pdd["client_id"], "client_secret": {"value": pdd["client_secret"]},
        "access_token": {"value": s["access_token"]}, "refresh_token": {"value": s["refresh_token"]},
        "streams": ["orders", "refunds"], "throttle_wait_s": 0.2,
        # windows of at most 30 minutes (spec §4); the sandbox indexes at once unless pdd.late_index_s is set
        "sync": {"window_minutes": 30, "overlap_seconds": 120, "lag_seconds": 0, "initial_lookback_hours": 24},
        "http": {"timeout_s": 10, "attempts": 5},
    } for s in pdd["shops"]]


# channel -> shops of that channel the sandbox simulates; each source connector adds its builder here
SHOP_BUILDERS: dict[str, Callable[[str, dict[str, Any]], list[dict[str, Any]]]] = {
    "tmall": _tmall_shops,
    "jd": _jd_shops,
    "pos": _pos_shops,
    "wechat_shop": _wechat_shop_shops,
    "pdd": _pdd_shops,
}


def orderhub_config(url: str, database_url: str | None = None, *, kingdee: bool = False,
                    channels: tuple[str, ...] = ("tmall",), logistics: str | None = None,
                    logistics_shops: tuple[str, ...] = ("tm-outlet",)) -> dict[str, Any]:
    """``kingdee=True`` adds the sandbox's Kingdee tenant as a second sink (``erp``). It is opt-in: the demo, the
    Airflow DAG set and the WMS-only tests are built from the default. ``channels`` picks the source channels
    (``SHOP_BUILDERS``); ``channels="all"`` takes every one."""
    url = url.rstrip("/")
    try:
        creds = requests.get(f"{url}/_sandbox/credentials", timeout=10).json()
    except (requests.RequestException, ValueError) as exc:
        raise ConfigurationError(f"cannot read {url}/_sandbox/credentials: {exc}",
                                 how_to_fix="start it with `orderhub sandbox serve --port PORT` and pass its URL"
                                 ) from exc
    wanted = tuple(SHOP_BUILDERS) if channels == "all" else channels
    unknown = [c for c in wanted if c not in SHOP_BUILDERS]
    if unknown:
        raise ConfigurationError(f"the sandbox configuration has no shops for {', '.join(unknown)}",
                                 how_to_fix=f"use some of: {', '.join(SHOP_BUILDERS)}")
    shops = [shop for channel in wanted for shop in SHOP_BUILDERS[channel](url, creds)]
    wms = creds["qimen_wms"]
    sinks = [{
        "kind": "qimen_wms", "name": "wms", "url": url + wms.get("router_path", "/qimen/router"),
        "app_key": {"value": wms["app_key"]}, "app_secret": {"value": wms["app_secret"]},
        "customer_id": wms["customer_id"], "warehouse_code": wms["warehouses"][0], "logistics_code": "SF",
        "confirms": {"mode": "poll", "feed_url": url + wms.get("confirms_path", "/qimen/_confirms")},
        "http": {"timeout_s": 10, "attempts": 5},
    }]
    if kingdee and "kingdee" in creds:
        kd = creds["kingdee"]
        sinks.append({
            "kind": "kingdee", "name": "erp", "server": url + kd.get("server_path", "/kingdee"),
            "acct_id": kd["acct_id"], "username": kd["username"], "password": {"value": kd["password"]},
            "lcid": kd.get("lcid", 2052), "org_number": kd.get("org_number", "100"), "customer_by": "shop",
            "http": {"timeout_s": 10, "attempts": 5},
        })
    if logistics in ("sf", "cainiao") and logistics in creds:
        # opt-in: the hub ships ``logistics_shops`` itself with SF or Cainiao waybills (sink ``waybills``); the WMS
        # leaves those shops' documents alone
        sinks[0]["exclude_shops"] = list(logistics_shops)
        sinks.append(_waybill_sink(url, logistics, creds[logistics], list(logistics_shops)))
    config: dict[str, Any] = {"shops": shops, "sinks": sinks}
    if database_url:
        config = {"database_url": database_url, **config}
    return config


def _waybill_sink(url: str, provider: str, creds: dict[str, Any], shops: list[str]) -> dict[str, Any]:
    sender = {"name": "OrderHub 仓", "mobile": "13800000000", "province": "浙江省", "city": "杭州市",
              "district": "余杭区", "address": "文一西路 969 号"}
    sink: dict[str, Any] = {"kind": "logistics", "name": "waybills", "provider": provider, "shops": shops,
                            "sender": sender, "http": {"timeout_s": 10, "attempts": 5}}
    if provider == "sf":
        sink.update(url=url + creds.get("service_path", "/sf/std/service"), partner_id=creds["partner_id"],
                    check_word={"value": creds["check_word"]}, monthly_card=creds.get("monthly_card"))
    else:
        sink.update(url=url + creds.get("link_path", "/cainiao/gateway/link.do"), cp_code="YTO",
                    logistic_provider_id={"value": creds["logistic_provider_id"]},
                    app_secret={"value": creds["app_secret"]})
    return sink


def finance_config(url: str) -> dict[str, Any]:
    """Opt-in: a ``finance.yaml`` body (hub/finance/settings.py) for the sandbox's Alipay and WeChat Pay accounts."""
    url = url.rstrip("/")
    pay = requests.get(f"{url}/_sandbox/credentials", timeout=10).json()["payments"]
    return {"finance": {
        "alipay": {"gateway": url + pay["alipay"]["gateway_path"], "app_id": pay["alipay"]["app_id"]},
        "wechatpay": {"downloadbill_url": url + pay["wechat"]["downloadbill_path"], "appid": pay["wechat"]["appid"],
                      "mch_id": pay["wechat"]["mch_id"], "api_key": {"value": pay["wechat"]["api_key"]}},
        "http": {"timeout_s": 10, "attempts": 3},
    }}
