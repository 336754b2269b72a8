"""Qimen wire client (specs §6): system parameters in the query string, the XML document as the raw body,
signed with TOP's md5 rule with the body appended; every answer is ``<response><flag>…</flag>…</response>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import requests

from connectors.tmall.client import top_time
from connectors.top_signing import sign, verify
from hub.errors import ConfigurationError, InDoubtError, RecordError, TransientError
from hub.retry import call_with_retry


def to_xml(root: str, document: dict[str, Any]) -> str:
    """Build ``<root>…</root>`` from nested dicts; lists repeat the element named by their singular key."""
    def build(parent: ET.Element, data: Any) -> None:
        for key, value in data.items():
            if value is None:
                continue
            if isinstance(value, list):
                holder = ET.SubElement(parent, key)
                singular = key[:-1] if key.endswith("s") else key
                for item in value:
                    build(ET.SubElement(holder, singular), item)
            elif isinstance(value, dict):
                build(ET.SubElement(parent, key), value)
            else:
                ET.SubElement(parent, key).text = str(value)

    element = ET.Element(root)
    build(element, document)
    return ET.tostring(element, encoding="unicode")


def parse_response(text: str) -> dict[str, str]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise TransientError(f"WMS answered something that is not XML: {exc}") from exc
    return {child.tag: (child.text or "") for child in root if len(child) == 0}


def classify(method: str, status_code: int, text: str) -> dict[str, str]:
    attrs = {"sink": "qimen_wms", "endpoint": method}
    if status_code >= 500:
        raise TransientError(f"WMS answered HTTP {status_code}", status=status_code, **attrs)
    if status_code != 200:
        raise TransientError(f"WMS answered HTTP {status_code}", status=status_code, **attrs)
    body = parse_response(text)
    if body.get("flag") == "success":
        return body
    code, message = body.get("code", ""), body.get("message", "")
    details = {**attrs, "code": code or None, "sub_msg": message or None}
    if "sign" in code.lower():
        raise ConfigurationError("the WMS rejected our signature",
                                 how_to_fix="check app_key/app_secret of this sink against the WMS's registration",
                                 **details)
    if code.lower().startswith("system") or code.lower() in ("", "isp.error"):
        raise TransientError(f"WMS failure: {message or code}", **details)
    raise RecordError(f"WMS refused the document: {message or code}", **details)


class QimenClient:
    def __init__(self, settings, *, http: requests.Session | None = None) -> None:
        self.settings = settings
        self.http = http or requests.Session()
        self._app_key = settings.app_key.reveal()
        self._secret = settings.app_secret.reveal()

    def signed_params(self, method: str, body: str) -> dict[str, str]:
        params = {"method": method, "app_key": self._app_key, "customerId": self.settings.customer_id,
                  "format": "xml", "sign_method": "md5", "timestamp": top_time(datetime.now(UTC)), "v": "2.0"}
        params["sign"] = sign(params, self._secret, "md5", body)
        return params

    def verify_incoming(self, params: dict[str, str], body: str) -> bool:
        """Check a WMS->hub callback (deliveryorder.confirm...) was signed with this sink's secret."""
        return verify(params, self._secret, body)

    def call_once(self, method: str, body: str, *, write: bool) -> dict[str, str]:
        params = self.signed_params(method, body)
        try:
            resp = self.http.post(self.settings.url, params=params, data=body.encode("utf-8"),
                                  headers={"Content-Type": "text/xml;charset=utf-8"},
                                  timeout=self.settings.http.timeout_s)
        except requests.ConnectTimeout as exc:
            raise TransientError("cannot reach the WMS", sink=self.settings.name, endpoint=method) from exc
        except (requests.Timeout, requests.ConnectionError) as exc:
            cls = InDoubtError if write else TransientError
            raise cls(f"WMS call {method} did not answer", sink=self.settings.name, endpoint=method) from exc
        return classify(method, resp.status_code, resp.text)

    def call(self, method: str, body: str, *, write: bool = False) -> dict[str, str]:
        return call_with_retry(lambda: self.call_once(method, body, write=write),
                               attempts=self.settings.http.attempts)
