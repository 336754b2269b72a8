"""Fixtures for the sandbox tests: a fresh in-process sandbox per test and small signed-request helpers.

The helpers sign with ``connectors.top_signing`` exactly as a connector would, so these tests exercise the wire
(HTTP, form encoding, signature) rather than calling the handlers directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import requests

from connectors.top_signing import sign
from sandbox import clock
from sandbox.server import SandboxHandle, running_sandbox

# Every HTTP call in these tests uses a short timeout so a hung sandbox fails fast instead of stalling the suite.
TIMEOUT_S = 5


@pytest.fixture
def sbx() -> Iterator[SandboxHandle]:
    with running_sandbox(seed=1) as handle:
        yield handle


@pytest.fixture
def creds(sbx: SandboxHandle) -> dict:
    return requests.get(f"{sbx.url}/_sandbox/credentials", timeout=TIMEOUT_S).json()


def wire_time(delta: timedelta = timedelta()) -> str:
    return clock.format_wire(clock.now() + delta)


@pytest.fixture
def admin(sbx: SandboxHandle) -> Callable[..., dict]:
    """``admin("POST", "orders", json={...})`` -> decoded JSON; asserts HTTP 200."""

    def call(verb: str, path: str, **kwargs: object) -> dict:
        response = requests.request(verb, f"{sbx.url}/_sandbox/{path}", timeout=TIMEOUT_S, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    return call


@pytest.fixture
def top_params(creds: dict) -> Callable[..., dict]:
    """Build a signed TOP parameter dict: system params + business params, signed with the app secret."""

    def build(method: str, shop: str | None = "tm-flagship", sign_method: str = "md5", **business: object) -> dict:
        params = {
            "method": method,
            "app_key": creds["tmall"]["app_key"],
            "timestamp": wire_time(),
            "format": "json",
            "v": "2.0",
            "sign_method": sign_method,
        }
        if shop is not None:
            params["session"] = next(s["session"] for s in creds["tmall"]["shops"] if s["shop"] == shop)
        params.update({key: str(value) for key, value in business.items()})
        params["sign"] = sign(params, creds["tmall"]["app_secret"], sign_method)
        return params

    return build


@pytest.fixture
def top(sbx: SandboxHandle, top_params: Callable[..., dict]) -> Callable[..., dict]:
    """Signed call to the TOP gateway as a form POST; returns the decoded JSON body (HTTP 200 asserted)."""

    def call(method: str, shop: str | None = "tm-flagship", sign_method: str = "md5", **business: object) -> dict:
        response = requests.post(
            sbx.top_gateway_url, data=top_params(method, shop, sign_method, **business), timeout=TIMEOUT_S
        )
        assert response.status_code == 200, response.text
        return response.json()

    return call


@pytest.fixture
def qimen_params(creds: dict) -> Callable[..., dict]:
    """Signed Qimen query parameters for ``body`` (TOP md5 rule with the raw body appended, spec §6.1)."""

    def build(body: str, method: str = "deliveryorder.create", secret: str | None = None) -> dict:
        wms = creds["qimen_wms"]
        params = {
            "method": method,
            "app_key": wms["app_key"],
            "customerId": wms["customer_id"],
            "format": "xml",
            "sign_method": "md5",
            "timestamp": wire_time(),
            "v": "2.0",
        }
        params["sign"] = sign(params, secret or wms["app_secret"], "md5", body=body)
        return params

    return build


@pytest.fixture
def qimen(sbx: SandboxHandle, qimen_params: Callable[..., dict]) -> Callable[..., requests.Response]:
    def call(body: str, method: str = "deliveryorder.create", secret: str | None = None) -> requests.Response:
        return requests.post(
            sbx.qimen_router_url,
            params=qimen_params(body, method, secret),
            data=body.encode("utf-8"),
            headers={"Content-Type": "text/xml;charset=utf-8"},
            timeout=TIMEOUT_S,
        )

    return call


@pytest.fixture
def do_xml() -> Callable[..., str]:
    """``do_xml(code, tid=..., logistics="SF", item="SKU-001-RED-M")``: a §6.2 deliveryorder.create body."""
    return _delivery_order_xml


def _delivery_order_xml(
    code: str, tid: str = "3817000000000000001", logistics: str = "SF", item: str = "SKU-001-RED-M"
) -> str:
    return (
        "<request><deliveryOrder>"
        f"<deliveryOrderCode>{code}</deliveryOrderCode><orderType>JYCK</orderType>"
        "<warehouseCode>WH01</warehouseCode><sourcePlatformCode>TM</sourcePlatformCode>"
        "<shopNick>橙舍官方旗舰店</shopNick><totalAmount>158.00</totalAmount><itemAmount>158.00</itemAmount>"
        f"<discountAmount>0.00</discountAmount><freight>0.00</freight><logisticsCode>{logistics}</logisticsCode>"
        "<receiverInfo><name>张**</name><mobile>*******1234</mobile><province>浙江省</province><city>杭州市</city>"
        "<area>西湖区</area><detailAddress>文三路**</detailAddress><oaid>oaid-xyz</oaid></receiverInfo>"
        "</deliveryOrder><orderLines><orderLine><orderLineNo>1</orderLineNo>"
        f"<sourceOrderCode>{tid}</sourceOrderCode><subSourceOrderCode>3817000000000000002</subSourceOrderCode>"
        f"<ownerCode>C001</ownerCode><itemCode>{item}</itemCode><inventoryType>ZP</inventoryType>"
        "<planQty>2</planQty><actualPrice>79.00</actualPrice></orderLine></orderLines></request>"
    )
