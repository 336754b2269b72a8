"""Fixtures of the finance tests: Tmall orders paid *yesterday* (Asia/Shanghai) in the sandbox and in the hub, since
the providers' APIs serve a day's bill only once the day is over."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
import yaml

from tests.conftest import write_sandbox_config

SH = ZoneInfo("Asia/Shanghai")


def yesterday_at(hour: int, minute: int = 0) -> datetime:
    day = (datetime.now(SH) - timedelta(days=1)).date()
    return datetime.combine(day, datetime.min.time(), tzinfo=SH) + timedelta(hours=hour, minutes=minute)


def wire(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S")


def create(url: str, count: int, at: datetime, shop: str = "tm-flagship", **extra) -> list[str]:
    resp = requests.post(f"{url}/_sandbox/orders", json={"channel": "tmall", "shop": shop, "count": count,
                                                         "at": wire(at), **extra}, timeout=30)
    resp.raise_for_status()
    return resp.json()["ids"]


def refund(url: str, tid: str, at: datetime) -> list[dict]:
    resp = requests.post(f"{url}/_sandbox/orders/tmall/{tid}/refund", json={"status": "SUCCESS", "at": wire(at)},
                         timeout=30)
    resp.raise_for_status()
    return resp.json()["refunds"]


def knobs(url: str, **values) -> None:
    requests.post(f"{url}/_sandbox/faults", json={f"payments.{k}": v for k, v in values.items()},
                  timeout=10).raise_for_status()


def bills(url: str) -> dict:
    return requests.get(f"{url}/_sandbox/truth", timeout=30).json()["bills"]


def fen(text: str) -> int:
    return int(round(float(text) * 100))


@pytest.fixture
def finance_hub(tmp_path, sandbox, db_url, engine):
    """A hub reading Tmall orders and refunds back to yesterday 19:00, with the sandbox's payment accounts."""
    from hub.config import load_settings
    from hub.runtime import Hub
    from sandbox.configuration import finance_config

    hours = (datetime.now(SH) - yesterday_at(19)).total_seconds() / 3600
    path = write_sandbox_config(tmp_path / "orderhub.yaml", sandbox.url, db_url, streams=["orders", "refunds"],
                                initial_lookback_hours=hours, window_minutes=1440)
    (tmp_path / "finance.yaml").write_text(yaml.safe_dump(finance_config(sandbox.url), allow_unicode=True),
                                           encoding="utf-8")
    return Hub(load_settings(path), engine)
