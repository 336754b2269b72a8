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
        "seller_nick": s.get("seller_nick"), "streams": ["orders", "refunds"],
        # the sandbox indexes instantly; a real shop wants lag_seconds of 10-60
        "sync": {"window_minutes": 30, "overlap_seconds": 120, "lag_seconds": 0, "initial_lookback_hours": 24},
        "http": {"timeout_s": 10, "attempts": 5},
    } for s in tm["shops"]]


# channel -> shops of that channel the sandbox simulates; each source connector adds its builder here
SHOP_BUILDERS: dict[str, Callable[[str, dict[str, Any]], list[dict[str, Any]]]] = {
    "tmall": _tmall_shops,
}


def orderhub_config(url: str, database_url: str | None = None, *, kingdee: bool = False,
                    channels: tuple[str, ...] = ("tmall",)) -> dict[str, Any]:
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
    config: dict[str, Any] = {"shops": shops, "sinks": sinks}
    if database_url:
        config = {"database_url": database_url, **config}
    return config
