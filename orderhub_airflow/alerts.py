"""Alerts to a chat webhook (DingTalk or WeCom robot): task failures and SLA breaches.

Where the webhook is configured (read when an alert is sent, never at parse time):
  * Airflow connection ``orderhub_alerts`` (type ``http``): ``host`` = the full webhook URL, ``extra`` =
    ``{"format": "dingtalk" | "wecom", "secret": "<DingTalk signing secret, optional>"}``; or
  * environment: ``ORDERHUB_ALERT_WEBHOOK``, ``ORDERHUB_ALERT_FORMAT``, ``ORDERHUB_ALERT_SECRET``.
Without either, alerts are only logged. Both robots take ``{"msgtype": "markdown", ...}``: DingTalk wants
``markdown.title`` + ``markdown.text``, WeCom ``markdown.content``. DingTalk's signed mode appends
``timestamp`` and ``sign = base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}"))`` to the URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import requests

from orderhub_airflow.errors import error_kind

log = logging.getLogger(__name__)
CONNECTION_ID = "orderhub_alerts"


@dataclass(frozen=True)
class Webhook:
    url: str
    format: str = "dingtalk"
    secret: str | None = None


def webhook_from_environment() -> Webhook | None:
    url = os.environ.get("ORDERHUB_ALERT_WEBHOOK")
    fmt = os.environ.get("ORDERHUB_ALERT_FORMAT", "dingtalk")
    secret = os.environ.get("ORDERHUB_ALERT_SECRET")
    try:
        from airflow.sdk import Connection

        conn = Connection.get(CONNECTION_ID)
        extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else json.loads(conn.extra or "{}")
        url = conn.host or url
        if conn.host and not conn.host.startswith("http"):
            url = f"{conn.conn_type or 'https'}://{conn.host}"
        fmt = extra.get("format", fmt)
        secret = extra.get("secret", secret) or conn.password or secret
    except Exception:  # no such connection (the usual case in development) or Airflow not around
        pass
    return Webhook(url=url, format=fmt, secret=secret) if url else None


def message_body(fmt: str, title: str, lines: list[str]) -> dict[str, Any]:
    text = f"### {title}\n\n" + "\n".join(f"- {line}" for line in lines)
    if fmt == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": text}}
    if fmt == "dingtalk":
        return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    raise ValueError(f"alert format {fmt!r}: use dingtalk or wecom")


def signed_url(url: str, secret: str | None, now_ms: int | None = None) -> str:
    if not secret:
        return url
    timestamp = str(now_ms if now_ms is not None else int(time.time() * 1000))
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest).decode())
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp}&sign={sign}"


def send(title: str, lines: list[str], webhook: Webhook | None = None) -> bool:
    """Post one alert; never raises (an alert must not turn a result into another failure)."""
    webhook = webhook or webhook_from_environment()
    log.warning("ALERT %s: %s", title, " | ".join(lines))
    if webhook is None:
        return False
    try:
        url = signed_url(webhook.url, webhook.secret if webhook.format == "dingtalk" else None)
        body = message_body(webhook.format, title, lines)
        response = requests.post(url, json=body, timeout=10)
        ok = response.status_code == 200 and response.json().get("errcode", 0) == 0
        if not ok:
            log.error("alert webhook answered %s: %s", response.status_code, response.text[:300])
        return ok
    except Exception as exc:  # noqa: BLE001
        log.error("alert webhook failed: %s", exc)
        return False


def on_task_failure(context: dict[str, Any]) -> None:
    """``on_failure_callback`` of every OrderHub task: which DAG/task/run, the hub error kind, how to fix."""
    ti = context.get("task_instance") or context.get("ti")
    exc = context.get("exception")
    kind = error_kind(exc)
    lines = [f"DAG `{getattr(ti, 'dag_id', '?')}` task `{getattr(ti, 'task_id', '?')}` "
             f"run `{getattr(ti, 'run_id', '?')}` try {getattr(ti, 'try_number', '?')}",
             f"kind: **{kind}**" + (" (not retried: a person must act)" if kind in ("configuration", "fatal")
                                    else ""),
             f"error: {str(exc)[:500] if exc else '-'}"]
    how = getattr(exc, "how_to_fix", None)
    if how:
        lines.append(f"how to fix: {how}")
    send(f"OrderHub task failed ({kind})", lines)


def sla_lines(breaches: list[dict[str, Any]], minutes: int, limit: int = 10) -> list[str]:
    lines = [f"{len(breaches)} paid order(s) not in the WMS after {minutes} min"]
    for b in breaches[:limit]:
        lines.append(f"{b['shop']} {b['order_id']} paid {b['waiting_minutes']} min ago, status {b['status']}, "
                     f"plan {b['plan']}")
    return lines
