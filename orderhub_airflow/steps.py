"""What each Airflow task runs: build a Hub from the configuration file, call one of its methods, report counts.

No business logic here (the hub holds it); only the Airflow-side concerns: where the run's window ends (its data
interval), the error-kind translation, masking secrets in task logs, and turning hub reports into small XCom dicts.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from orderhub_airflow.errors import hub_errors

_REDACTION_INSTALLED = False


def install_redaction() -> None:
    """Inside an Airflow task: secrets the hub reveals are masked by Airflow's masker too, and the hub's structlog
    redaction processor (phone, address, signatures...) runs in Airflow's structlog chain. The hub's own
    ``configure_logging`` is not called: it would replace Airflow's task-log configuration."""
    global _REDACTION_INSTALLED
    if _REDACTION_INSTALLED:
        return
    import hub.logging

    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older layouts
        mask_secret = None
    if mask_secret is not None:
        hub.logging.add_secret_listener(mask_secret)
    processors = list(structlog.get_config().get("processors", []))
    if hub.logging.redact not in processors:
        at = next((i + 1 for i, p in enumerate(processors) if p is structlog.contextvars.merge_contextvars), 0)
        processors.insert(at, hub.logging.redact)
        structlog.configure(processors=processors)
    _REDACTION_INSTALLED = True


def open_hub(config_path: str | Path):
    from hub.config import load_settings
    from hub.heap import freeze_startup_heap
    from hub.runtime import Hub

    install_redaction()
    with hub_errors("load configuration"):
        hub = Hub(load_settings(config_path))
    freeze_startup_heap()
    return hub


def _plain(report: Any) -> Any:
    if is_dataclass(report):
        return {k: _plain(v) for k, v in asdict(report).items() if not k.endswith("hub_ids")}
    if isinstance(report, dict):
        return {k: _plain(v) for k, v in report.items() if not str(k).endswith("hub_ids")}
    if isinstance(report, (list, tuple)):
        return [_plain(v) for v in report]
    if isinstance(report, datetime):
        return report.isoformat()
    return report


def _with_start(hub: Any, channel: str, shop: str, start: datetime | None) -> None:
    """First run of a shop with no ``start_from`` and no cursor: begin at the run's data interval start, not at a
    fixed look-back. (The hub's cursor takes over from the second run on.)"""
    if start is None:
        return
    shop_settings = hub.settings.shop(channel, shop)
    if shop_settings.sync.start_from is None:
        from hub.store.db import reading
        from hub.sync import get_cursor

        with reading(hub.engine) as conn:
            known = any(get_cursor(conn, channel, shop, s) for s in shop_settings.streams)
        if not known:
            shop_settings.sync.start_from = start


def sync(config_path: str, channel: str, shop: str, stream: str, *, window_end: datetime | None = None,
         window_start: datetime | None = None) -> dict[str, Any]:
    """Pull one shop's stream up to ``window_end`` (the run's data interval end). The lower bound is the hub's
    cursor, so a run after an outage reads every window since the last one that landed: gaps are filled, nothing is
    read past the interval, and the cursor moves only with the data (hub.sync)."""
    hub = open_hub(config_path)
    with hub_errors(f"sync {channel}/{shop}/{stream}"):
        _with_start(hub, channel, shop, window_start)
        now = min(window_end, datetime.now(UTC)) if window_end else None
        reports = hub.sync(channel=channel, shop=shop, stream=stream, now=now)
    return {"reports": _plain(reports), "new": sum(r.result.new for r in reports),
            "changed": sum(r.result.changed for r in reports),
            "quarantined": sum(r.result.quarantined for r in reports)}


def dispatch(config_path: str, sink: str) -> dict[str, Any]:
    """Plan released orders (hub/processing) and deliver the outbox to one sink."""
    hub = open_hub(config_path)
    with hub_errors(f"dispatch {sink}"):
        reports = hub.dispatch(sink_name=sink)
    return {"reports": _plain(reports)}


def feedback(config_path: str) -> dict[str, Any]:
    hub = open_hub(config_path)
    with hub_errors("feedback"):
        reports = hub.feedback()
    return {"reports": _plain(reports), "recorded": sum(r.recorded for r in reports)}


def writeback(config_path: str) -> dict[str, Any]:
    hub = open_hub(config_path)
    with hub_errors("writeback"):
        report = hub.writeback()
    return {"report": _plain(report)}


def replay_quarantine(config_path: str, ids: list[int] | None, cause: str | None) -> dict[str, Any]:
    hub = open_hub(config_path)
    with hub_errors("quarantine replay"):
        return hub.replay_quarantine(ids=[int(i) for i in ids or []] or None, group_key=cause or None)


def optional_step(config_path: str, method: str) -> dict[str, Any]:
    """A hub step the factory found on Hub (stock push, compensation sweep, reconciliation...)."""
    hub = open_hub(config_path)
    with hub_errors(method):
        return {"report": _plain(getattr(hub, method)())}
