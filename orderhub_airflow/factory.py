"""The DAG factory: every OrderHub DAG, built from the same ``orderhub.yaml`` the CLI reads.

Parse time only reads the YAML file and environment variables: no network, no database, no credential (credential
references are resolved inside tasks). DAG ids, one line each (``__`` separates the parts):

    orderhub_sync__<channel>__<shop>__<stream>  batch pull per shop and stream; the run's data interval end bounds
                                                the read, the hub's cursor its start (an outage's gap is read by the
                                                next run, and catch-up runs fill it interval by interval when
                                                ``sync.start_from`` is set); pool of the shop's app key
    orderhub_nrt__<channel>__<shop>             near-real-time: short-interval pull of the orders stream, then
                                                dispatch to every sink in the same run
    orderhub_dispatch__<sink>                   outbox -> one sink, on its schedule and whenever a sync produced events
    orderhub_feedback                           ship confirmations from the sinks -> shipments
    orderhub_writeback                          shipments -> "shipped + waybill" on the channel
    orderhub_quarantine_replay                  manual, with parameters ``ids`` and ``cause``
    orderhub_watch                              SLA (paid -> WMS) and quarantine growth -> webhook alert
    orderhub_stock_push, orderhub_compensation_sweep, orderhub_reconciliation, orderhub_push_intake
                                                appear when ``hub.runtime.Hub`` offers ``push_stock``, ``sweep``,
                                                ``reconcile``, ``intake_pushes`` (see OPTIONAL_STEPS)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import (
    DAG,
    Asset,
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    Param,
    dag,
    task,
)

from orderhub_airflow import alerts
from orderhub_airflow.options import AirflowOptions
from orderhub_airflow.pools import pool_for_shop, pool_for_sink

DEFAULT_START = pendulum.datetime(2026, 1, 1, tz="UTC")
OUTBOX = Asset(name="orderhub_outbox", uri="orderhub://hub/outbox")          # a sync produced outbox events
SHIPMENTS = Asset(name="orderhub_shipments", uri="orderhub://hub/shipments")  # feedback recorded shipments
PUSH_INBOX = Asset(name="orderhub_push_inbox", uri="orderhub://hub/push-inbox")  # a push receiver got messages
PRESETS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *"}


@dataclass(frozen=True)
class OptionalStep:
    """A hub step that other issues add; its DAG appears once ``Hub`` has the method (called without arguments)."""

    method: str
    dag_id: str
    schedule: Any
    description: str


OPTIONAL_STEPS = (
    OptionalStep("push_stock", "orderhub_stock_push", "*/10 * * * *", "available-to-sell stock -> every channel"),
    OptionalStep("sweep", "orderhub_compensation_sweep", "17 * * * *",
                 "re-scan unclosed sync windows after the platform's index lag; close the ones that agree"),
    OptionalStep("reconcile", "orderhub_reconciliation", "30 2 * * *",
                 "daily: orders vs platform settlements, for finance"),
    # TMC is pulled over HTTP, so the intake needs a clock as well as the inbox asset a push receiver may raise
    OptionalStep("intake_pushes", "orderhub_push_intake", ("* * * * *", [PUSH_INBOX]),
                 "TMC / WeChat push messages into the hub: every minute, and whenever the push inbox asset fires"),
)


def _cron(expr: str) -> str:
    return PRESETS.get(expr, expr)


def _default_args(options: AirflowOptions) -> dict[str, Any]:
    return {
        "owner": "orderhub",
        "retries": options.retries,
        "retry_delay": timedelta(seconds=options.retry_delay_seconds),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "on_failure_callback": alerts.on_task_failure,
    }


def _dag_id(*parts: str) -> str:
    return "__".join(parts)


def build_dags(settings: Any, options: AirflowOptions) -> dict[str, DAG]:
    """Every DAG for one configuration, keyed by dag_id."""
    config = str(options.config_path)
    dags: dict[str, DAG] = {}
    default_args = _default_args(options)
    sinks = settings.enabled_sinks()

    for shop in settings.enabled_shops():
        for stream in shop.streams:
            d = _sync_dag(config, shop, stream, settings.schedules.sync, default_args)
            dags[d.dag_id] = d
        if options.nrt_seconds > 0 and "orders" in shop.streams:
            d = _nrt_dag(config, shop, sinks, options, default_args)
            dags[d.dag_id] = d
    for sink in sinks:
        d = _dispatch_dag(config, sink, settings.schedules.dispatch, default_args)
        dags[d.dag_id] = d
    for d in (_feedback_dag(config, settings, default_args), _writeback_dag(config, settings, default_args),
              _replay_dag(config, default_args), _watch_dag(config, options, default_args)):
        dags[d.dag_id] = d
    from hub.runtime import Hub

    for step in OPTIONAL_STEPS:
        if callable(getattr(Hub, step.method, None)):
            d = _optional_dag(config, step, default_args)
            dags[d.dag_id] = d
    return dags


def dags_from_environment() -> dict[str, DAG]:
    """What ``dags/orderhub_dags.py`` calls. A missing or invalid configuration raises, so Airflow lists it as an
    import error (with every problem and its line) instead of silently showing no DAGs."""
    from hub.config import ConfigError, load_settings

    options = AirflowOptions.from_env()
    try:
        settings = load_settings(options.config_path)
    except ConfigError as exc:  # list every problem with file:line, as `orderhub config check` prints them
        raise ValueError("OrderHub configuration has problems:\n" + "\n".join(
            p.render(exc.path) for p in exc.problems)) from None
    return build_dags(settings, options)


# -- the DAGs --------------------------------------------------------------------------------------------------------

def _sync_dag(config: str, shop: Any, stream: str, schedule: str, default_args: dict[str, Any]) -> DAG:
    channel, slug = shop.channel, shop.shop
    start_from = shop.sync.start_from

    @dag(dag_id=_dag_id("orderhub_sync", channel, slug, stream),
         schedule=CronDataIntervalTimetable(_cron(schedule), timezone="UTC"),
         start_date=pendulum.instance(start_from).in_tz("UTC") if start_from else DEFAULT_START,
         catchup=start_from is not None, max_active_runs=1, default_args=default_args,
         tags=["orderhub", "sync", channel, slug], description=f"windowed pull of {channel}/{slug} {stream}",
         doc_md=f"Pulls **{channel}/{slug}** `{stream}` up to the run's data interval end, starting from the hub's "
                f"cursor (minus the overlap). A run after an outage reads every window the outage left; the "
                f"cursor moves only with the data. Pool: `{pool_for_shop(shop)}` (the shop's app key).")
    def sync_dag() -> None:
        @task(task_id="pull", pool=pool_for_shop(shop), outlets=[OUTBOX])
        def pull(data_interval_start=None, data_interval_end=None) -> dict[str, Any]:
            from orderhub_airflow import steps

            return steps.sync(config, channel, slug, stream, window_end=data_interval_end,
                              window_start=data_interval_start)

        pull()

    return sync_dag()


def _nrt_dag(config: str, shop: Any, sinks: list[Any], options: AirflowOptions,
             default_args: dict[str, Any]) -> DAG:
    channel, slug = shop.channel, shop.shop

    @dag(dag_id=_dag_id("orderhub_nrt", channel, slug), schedule=timedelta(seconds=options.nrt_seconds),
         start_date=DEFAULT_START, catchup=False, max_active_runs=1,
         default_args={**default_args, "retries": 1, "retry_delay": timedelta(seconds=10)},
         dagrun_timeout=timedelta(minutes=10), tags=["orderhub", "near-real-time", channel, slug],
         description=f"every {options.nrt_seconds}s: pull {channel}/{slug} orders, dispatch to the sinks",
         doc_md="Near-real-time path: a short `timedelta` schedule (measured ~1 s from run creation to task start; "
                "no triggerer, no parse-delayed activation like an AssetWatcher) pulls from the cursor to now, "
                "then dispatches to every sink in the same run (one task handoff, ~1 s).")
    def nrt_dag() -> None:
        @task(task_id="pull", pool=pool_for_shop(shop))
        def pull() -> dict[str, Any]:
            from orderhub_airflow import steps

            return steps.sync(config, channel, slug, "orders")

        pulled = pull()
        for sink in sinks:
            pulled >> _dispatch_task(config, sink)

    return nrt_dag()


def _dispatch_task(config: str, sink: Any):
    name = sink.name

    @task(task_id=f"dispatch_{name}", pool=pool_for_sink(sink))
    def dispatch_one() -> dict[str, Any]:
        from orderhub_airflow import steps

        return steps.dispatch(config, name)

    return dispatch_one()


def _dispatch_dag(config: str, sink: Any, schedule: str, default_args: dict[str, Any]) -> DAG:
    @dag(dag_id=_dag_id("orderhub_dispatch", sink.name),
         schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(_cron(schedule), timezone="UTC"),
                                      assets=[OUTBOX]),
         start_date=DEFAULT_START, catchup=False, max_active_runs=1, default_args=default_args,
         tags=["orderhub", "dispatch", sink.name], description=f"outbox -> {sink.kind} {sink.name}",
         doc_md=f"Plans released orders and delivers outbox events to sink **{sink.name}** ({sink.kind}); runs on "
                f"`{schedule}` and after every sync that produced events (asset `orderhub_outbox`). Claims per "
                f"(sink, event) make concurrent runs safe; parked events wait for `orderhub dispatch --replay`.")
    def dispatch_dag() -> None:
        _dispatch_task(config, sink)

    return dispatch_dag()


def _single_pool(pools: set[str]) -> str | None:
    return next(iter(pools)) if len(pools) == 1 else None


def _feedback_dag(config: str, settings: Any, default_args: dict[str, Any]) -> DAG:
    @dag(dag_id="orderhub_feedback",
         schedule=CronTriggerTimetable(_cron(settings.schedules.feedback), timezone="UTC"),
         start_date=DEFAULT_START, catchup=False, max_active_runs=1, default_args=default_args,
         tags=["orderhub", "feedback"], description="ship confirmations from the sinks -> shipments")
    def feedback_dag() -> None:
        @task(task_id="feedback", pool=_single_pool({pool_for_sink(s) for s in settings.enabled_sinks()})
              or "default_pool", outlets=[SHIPMENTS])
        def feedback() -> dict[str, Any]:
            from orderhub_airflow import steps

            return steps.feedback(config)

        feedback()

    return feedback_dag()


def _writeback_dag(config: str, settings: Any, default_args: dict[str, Any]) -> DAG:
    pool = _single_pool({pool_for_shop(s) for s in settings.enabled_shops()}) or "default_pool"

    @dag(dag_id="orderhub_writeback",
         schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable(_cron(settings.schedules.feedback),
                                                                     timezone="UTC"), assets=[SHIPMENTS]),
         start_date=DEFAULT_START, catchup=False, max_active_runs=1, default_args=default_args,
         tags=["orderhub", "writeback"], description="shipments -> shipped + waybill on the channels",
         doc_md="Writes recorded shipments back to their channels; runs after every feedback run that recorded "
                "shipments (asset `orderhub_shipments`) and on the feedback schedule.")
    def writeback_dag() -> None:
        @task(task_id="writeback", pool=pool)
        def writeback() -> dict[str, Any]:
            from orderhub_airflow import steps

            return steps.writeback(config)

        writeback()

    return writeback_dag()


def _replay_dag(config: str, default_args: dict[str, Any]) -> DAG:
    @dag(dag_id="orderhub_quarantine_replay", schedule=None, start_date=DEFAULT_START, catchup=False,
         default_args={**default_args, "retries": 0}, tags=["orderhub", "quarantine"],
         params={"ids": Param([], type="array", items={"type": "integer"},
                              description="quarantine row ids; empty = every open row (filtered by cause)"),
                 "cause": Param(None, type=["null", "string"],
                                description="group key as `orderhub quarantine list` shows it, e.g. "
                                            "'unmapped trade_status=X'")},
         description="re-map quarantined records through the current mapping (trigger with parameters)",
         doc_md="Trigger with `{\"ids\": [12, 13]}` or `{\"cause\": \"unmapped trade_status=X\"}` after fixing the "
                "mapping; fixed records land, others stay with their new reason.")
    def replay_dag() -> None:
        @task(task_id="replay")
        def replay(params=None) -> dict[str, Any]:
            from orderhub_airflow import steps

            params = params or {}
            return steps.replay_quarantine(config, params.get("ids"), params.get("cause"))

        replay()

    return replay_dag()


def _watch_dag(config: str, options: AirflowOptions, default_args: dict[str, Any]) -> DAG:
    minutes, growth = options.sla_minutes, options.quarantine_growth

    @dag(dag_id="orderhub_watch", schedule=CronTriggerTimetable(_cron(options.watch_schedule), timezone="UTC"),
         start_date=DEFAULT_START, catchup=False, max_active_runs=1,
         default_args={**default_args, "retries": 0}, tags=["orderhub", "sla"],
         description=f"alert: orders paid > {minutes} min ago not in the WMS; quarantine growing")
    def watch_dag() -> None:
        @task(task_id="check")
        def check() -> dict[str, Any]:
            from airflow.sdk import Variable

            from orderhub_airflow import state, steps

            hub = steps.open_hub(config)
            wms = [s.name for s in hub.settings.enabled_sinks() if "wms" in s.kind]
            breaches = state.sla_breaches(hub.engine, wms, minutes)
            if breaches:
                alerts.send("OrderHub SLA breach: paid -> WMS", alerts.sla_lines(breaches, minutes))
            from hub import status

            open_now = status.collect(hub.engine)["quarantine_open"]
            before = int(Variable.get("orderhub_quarantine_open", default=open_now))
            if open_now - before >= growth > 0:
                groups = status.quarantine_groups(hub.engine)[:5]
                alerts.send("OrderHub quarantine growing",
                            [f"open records {before} -> {open_now}"]
                            + [f"{n} x {cause} ({shops})" for cause, n, shops in groups])
            Variable.set("orderhub_quarantine_open", str(open_now))
            return {"sla_breaches": len(breaches), "quarantine_open": open_now, "quarantine_before": before}

        check()

    return watch_dag()


def _optional_dag(config: str, step: OptionalStep, default_args: dict[str, Any]) -> DAG:
    schedule = step.schedule
    if isinstance(schedule, str):
        schedule = CronTriggerTimetable(_cron(schedule), timezone="UTC")
    elif isinstance(schedule, tuple):  # (cron, assets): whichever comes first
        cron, assets = schedule
        schedule = AssetOrTimeSchedule(timetable=CronTriggerTimetable(_cron(cron), timezone="UTC"), assets=assets)

    @dag(dag_id=step.dag_id, schedule=schedule, start_date=DEFAULT_START, catchup=False, max_active_runs=1,
         default_args=default_args, tags=["orderhub", step.method], description=step.description)
    def optional_dag() -> None:
        @task(task_id=step.method)
        def run_step() -> dict[str, Any]:
            from orderhub_airflow import steps

            return steps.optional_step(config, step.method)

        run_step()

    return optional_dag()
