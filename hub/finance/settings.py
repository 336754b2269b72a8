"""Finance settings: which payment accounts to reconcile and which channels settle through each.

The hub's main configuration (hub/config.py ``Settings``) has no finance section yet, so these settings are read from
a ``finance:`` block of a separate YAML file: ``$ORDERHUB_FINANCE_CONFIG``, else ``finance.yaml`` next to the main
configuration file. Credentials are ``SecretRef`` like everywhere else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field

from hub.config import HttpSettings, SecretRef, StrictModel
from hub.errors import ConfigurationError


class AlipayAccount(StrictModel):
    """An Alipay merchant account: ``alipay.data.dataservice.bill.downloadurl.query`` through ``gateway``."""

    gateway: str = Field(description="https://openapi.alipay.com/gateway.do")
    app_id: str
    # RSA2 request signing is not implemented (the sandbox does not check it, spec §9): a private key is accepted
    # here so that production configuration has its place, but it is not used yet.
    private_key: SecretRef | None = None
    channels: list[str] = Field(default_factory=lambda: ["tmall"], description="channels settling through it")


class WechatPayAccount(StrictModel):
    """A WeChat Pay merchant: v2 ``/pay/downloadbill`` (signed XML in, CSV out)."""

    downloadbill_url: str = Field(description="https://api.mch.weixin.qq.com/pay/downloadbill")
    appid: str
    mch_id: str
    api_key: SecretRef
    sign_type: Literal["MD5", "HMAC-SHA256"] = "MD5"
    channels: list[str] = Field(default_factory=lambda: ["wechat_shop"], description="channels settling through it")


class FinanceSettings(StrictModel):
    alipay: AlipayAccount | None = None
    wechatpay: WechatPayAccount | None = None
    cod_channels: list[str] = Field(default_factory=lambda: ["tmall", "jd"],
                                    description="channels whose cash-on-delivery orders carriers remit")
    http: HttpSettings = Field(default_factory=HttpSettings)


def finance_config_path(config_path: Path | None) -> Path | None:
    env = os.environ.get("ORDERHUB_FINANCE_CONFIG")
    if env:
        return Path(env)
    if config_path is not None:
        return Path(config_path).with_name("finance.yaml")
    return None


def load_finance_settings(config_path: Path | None, inline: FinanceSettings | None = None) -> FinanceSettings:
    """The ``finance:`` block of the main configuration when it has one (``inline``), else the finance file; an
    absent file means no payment accounts (COD imports only)."""
    if inline is not None:
        return inline
    path = finance_config_path(config_path)
    if path is None or not path.exists():
        return FinanceSettings()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return FinanceSettings.model_validate(data.get("finance", data))
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigurationError(f"{path}: invalid finance settings: {exc}",
                                 how_to_fix="see the README section 'Finance, reviews and reports' for the keys"
                                 ) from exc
