"""The knobs only Airflow needs, read from the environment at DAG-parse time (reading variables is not I/O).

They live apart from ``orderhub.yaml`` because ``hub.config.Settings`` forbids unknown keys and the CLI must not
care about them; the YAML's ``schedules:`` section (sync, dispatch, feedback) is read from the configuration itself.

| variable | default | meaning |
|---|---|---|
| ``ORDERHUB_CONFIG`` | ``orderhub.yaml`` | the configuration file the CLI reads; the DAGs are built from it |
| ``ORDERHUB_AIRFLOW_NRT_SECONDS`` | 15 | near-real-time pull + dispatch interval per shop; 0 turns those DAGs off |
| ``ORDERHUB_AIRFLOW_POOL_SLOTS`` | 4 | slots of each per-app-key pool (concurrent calls all shops on a key share) |
| ``ORDERHUB_AIRFLOW_SLA_MINUTES`` | 30 | a paid order not in the WMS after this many minutes is an SLA breach |
| ``ORDERHUB_AIRFLOW_QUARANTINE_GROWTH`` | 1 | alert when open quarantine grew by this many since the last check |
| ``ORDERHUB_AIRFLOW_WATCH_SCHEDULE`` | ``*/5 * * * *`` | how often the SLA / quarantine watch runs |
| ``ORDERHUB_AIRFLOW_RETRIES`` | 3 | task retries for transient errors (configuration/fatal errors never retry) |
| ``ORDERHUB_AIRFLOW_RETRY_DELAY_SECONDS`` | 60 | first retry delay; doubles each time (exponential backoff) |
| ``ORDERHUB_ALERT_WEBHOOK`` | (none) | webhook URL for alerts, when no ``orderhub_alerts`` Airflow connection exists |
| ``ORDERHUB_ALERT_FORMAT`` | ``dingtalk`` | ``dingtalk`` or ``wecom`` (message body shape) |
| ``ORDERHUB_ALERT_SECRET`` | (none) | DingTalk "加签" secret: the URL is signed with timestamp + HMAC-SHA256 |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


@dataclass(frozen=True)
class AirflowOptions:
    config_path: Path
    nrt_seconds: int = 15
    pool_slots: int = 4
    sla_minutes: int = 30
    quarantine_growth: int = 1
    watch_schedule: str = "*/5 * * * *"
    retries: int = 3
    retry_delay_seconds: int = 60

    @classmethod
    def from_env(cls, config_path: str | os.PathLike[str] | None = None) -> AirflowOptions:
        path = Path(config_path or os.environ.get("ORDERHUB_CONFIG") or "orderhub.yaml").resolve()
        return cls(
            config_path=path,
            nrt_seconds=_int("ORDERHUB_AIRFLOW_NRT_SECONDS", 15),
            pool_slots=_int("ORDERHUB_AIRFLOW_POOL_SLOTS", 4),
            sla_minutes=_int("ORDERHUB_AIRFLOW_SLA_MINUTES", 30),
            quarantine_growth=_int("ORDERHUB_AIRFLOW_QUARANTINE_GROWTH", 1),
            watch_schedule=os.environ.get("ORDERHUB_AIRFLOW_WATCH_SCHEDULE") or "*/5 * * * *",
            retries=_int("ORDERHUB_AIRFLOW_RETRIES", 3),
            retry_delay_seconds=_int("ORDERHUB_AIRFLOW_RETRY_DELAY_SECONDS", 60),
        )
