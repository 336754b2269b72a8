"""Statement downloads through the providers' own APIs (spec §9).

* WeChat Pay v2 ``POST /pay/downloadbill``: signed XML in (``sign`` = upper-case MD5, or HMAC-SHA256 keyed by the API
  key, of the sorted non-empty ``k=v`` pairs joined by ``&`` plus ``&key=<api key>``), the CSV out - or an XML error
  with HTTP 200. ``No Bill Exist`` (20002) is a day without movements, not a failure.
* Alipay ``alipay.data.dataservice.bill.downloadurl.query`` through the gateway answers a ``bill_download_url`` that
  serves the ZIP; ``40004 isp.bill_not_exist`` is an empty day. RSA2 request signing is out of scope (§9).

Errors are classified here and nowhere else: HTTP 5xx / connection problems are transient (retried by hub.retry),
a refused signature or an unknown account is a configuration error, a bill asked for too early says so.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import xml.etree.ElementTree as ET
from datetime import date, datetime
from typing import Any

import requests

from hub.errors import ConfigurationError, TransientError
from hub.finance.settings import AlipayAccount, FinanceSettings, WechatPayAccount
from hub.finance.statements import SHANGHAI
from hub.retry import call_with_retry


def wechat_pay_sign(params: dict[str, str], api_key: str, sign_type: str = "MD5") -> str:
    text = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if v and k != "sign") + f"&key={api_key}"
    if sign_type == "HMAC-SHA256":
        return hmac.new(api_key.encode(), text.encode(), hashlib.sha256).hexdigest().upper()
    return hashlib.md5(text.encode()).hexdigest().upper()


def _get(session: requests.Session, method: str, url: str, timeout: float, **kwargs: Any) -> requests.Response:
    try:
        response = session.request(method, url, timeout=timeout, **kwargs)
    except requests.RequestException as exc:
        raise TransientError(f"statement download failed: {exc.__class__.__name__}", endpoint=url) from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientError(f"statement server answered HTTP {response.status_code}", endpoint=url,
                             status=response.status_code)
    if response.status_code >= 400:
        raise ConfigurationError(f"statement server refused the request: HTTP {response.status_code}", endpoint=url,
                                 how_to_fix="check the statement URLs in finance.yaml")
    return response


class StatementClient:
    def __init__(self, settings: FinanceSettings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.session = session or requests.Session()

    def _retry(self, fn):
        return call_with_retry(fn, attempts=self.settings.http.attempts)

    def download(self, source: str, day: date) -> bytes:
        """The raw statement file of ``day``; ``b""`` when the provider has no bill (a day without movements)."""
        if source == "alipay" and self.settings.alipay:
            return self._retry(lambda: self._alipay(self.settings.alipay, day))
        if source == "wechatpay" and self.settings.wechatpay:
            return self._retry(lambda: self._wechat(self.settings.wechatpay, day))
        raise ConfigurationError(f"no {source} account is configured", source=source,
                                 how_to_fix=f"add a '{source}:' block to finance.yaml")

    def _wechat(self, account: WechatPayAccount, day: date) -> bytes:
        params = {"appid": account.appid, "mch_id": account.mch_id, "nonce_str": secrets.token_hex(16),
                  "bill_date": f"{day:%Y%m%d}", "bill_type": "ALL", "sign_type": account.sign_type}
        params["sign"] = wechat_pay_sign(params, account.api_key.reveal(), account.sign_type)
        body = "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in params.items()) + "</xml>"
        response = _get(self.session, "POST", account.downloadbill_url, self.settings.http.timeout_s,
                        data=body.encode(), headers={"Content-Type": "text/xml"})
        data = response.content
        if not data.lstrip().startswith(b"<xml>"):
            return data
        fields = {child.tag: (child.text or "") for child in ET.fromstring(data)}
        code, message = fields.get("error_code", ""), fields.get("return_msg", "")
        if code == "20002" or message == "No Bill Exist":
            return b""
        if message == "invalid bill_date":
            raise ConfigurationError(f"WeChat Pay has no bill for {day} yet", source="wechatpay", code=code,
                                     how_to_fix="a day's bill exists from 10:00 the next day; reconcile past days")
        raise ConfigurationError(f"WeChat Pay refused the bill download: {message}", source="wechatpay", code=code,
                                 how_to_fix="check appid, mch_id and the API key in finance.yaml")

    def _alipay(self, account: AlipayAccount, day: date) -> bytes:
        params = {"app_id": account.app_id, "method": "alipay.data.dataservice.bill.downloadurl.query",
                  "charset": "utf-8", "sign_type": "RSA2", "version": "1.0",
                  "timestamp": datetime.now(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S"),
                  "biz_content": json.dumps({"bill_type": "trade", "bill_date": day.isoformat()})}
        response = _get(self.session, "POST", account.gateway, self.settings.http.timeout_s, data=params)
        try:
            answer = response.json()
        except ValueError:
            raise TransientError("Alipay gateway answered no JSON", endpoint=account.gateway) from None
        inner = answer.get("alipay_data_dataservice_bill_downloadurl_query_response") or answer.get(
            "error_response") or {}
        if inner.get("code") == "10000" and inner.get("bill_download_url"):
            return _get(self.session, "GET", inner["bill_download_url"], self.settings.http.timeout_s).content
        if inner.get("sub_code") == "isp.bill_not_exist":
            return b""
        if str(inner.get("code", "")).startswith("20"):  # 20000 service unavailable
            raise TransientError(f"Alipay gateway: {inner.get('msg')}", code=inner.get("code"))
        raise ConfigurationError(f"Alipay refused the bill download: {inner.get('sub_msg') or inner.get('msg')}",
                                 source="alipay", code=inner.get("code"), sub_code=inner.get("sub_code"),
                                 how_to_fix="check app_id and the gateway in finance.yaml")
