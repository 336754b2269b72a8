"""The hub at run time: configuration + database + mappings + connectors, and the steps a run is made of.

    sync       pull every enabled shop's streams (windowed, cursor with the data)
    process    plan new and changed orders (SKU mapping, rules, allocation) and release them (hub/processing)
    dispatch   deliver outbox events to every enabled sink (processing first, so nothing released waits)
    feedback   take in ship confirmations from sinks that send them
    writeback  write shipments back to their channels
    run_once   all five, in that order: what a cron user without Airflow runs

The CLI and the Airflow DAGs both call these methods; neither holds logic of its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

import mappings
from hub import crypto, tokens
from hub.config import Settings
from hub.connector import SourceConnector
from hub.dispatch import DispatchReport, dispatch_sink
from hub.entities import ENTITIES, ingest_page, model_for
from hub.errors import ConfigurationError, RecordError
from hub.feedback import ChannelWriteback, load_carriers, record_confirm
from hub.ingest import IngestResult, Source, load_order
from hub.logging import bind_run, get_logger
from hub.mapping import Mapper, load_mapping
from hub.models import Order
from hub.processing.rules import load_rules
from hub.processing.skus import load_skus
from hub.processing.step import QUARANTINE_ENTITY, ProcessReport, Tables, imported_skus, process, replan
from hub.store import create_engine_for, database_url
from hub.store import schema as t
from hub.store.db import reading
from hub.store.schema import utcnow
from hub.sync import SweepReport, SyncReport, sweep_stream, sync_stream

log = get_logger(__name__)


@dataclass
class FeedbackReport:
    sink: str
    received: int = 0
    recorded: int = 0
    duplicates: int = 0
    rejected: int = 0


@dataclass
class PushReport:
    queue: str
    permitted: int = 0
    messages: int = 0
    fetched: int = 0
    ignored: int = 0
    confirmed: int = 0
    result: IngestResult = field(default_factory=IngestResult)


@dataclass
class RunReport:
    pushes: list[PushReport] = field(default_factory=list)
    syncs: list[SyncReport] = field(default_factory=list)
    sweeps: list[SweepReport] = field(default_factory=list)
    processing: ProcessReport | None = None
    dispatches: list[DispatchReport] = field(default_factory=list)
    feedback: list[FeedbackReport] = field(default_factory=list)
    writebacks: list[DispatchReport] = field(default_factory=list)


class Hub:
    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or create_engine_for(database_url(settings.database_url))
        crypto.configure(settings.personal_data.encryption_key)  # also for settings built in code, not loaded
        # refreshed channel sessions go to this database, where every later process finds them (hub/tokens.py)
        tokens.use_store(tokens.TokenStore(self.engine))
        self._mappers: dict[str, Mapper] = {}

    # -- wiring ---------------------------------------------------------------------------------------------------

    @staticmethod
    def source_connector(channel: str) -> SourceConnector:
        from connectors.registry import SOURCES

        return SOURCES[channel]

    def mapper(self, channel: str, entity: str = "order") -> Mapper:
        """The field map of one channel's entity: ``mapping_file`` for orders, ``mapping_files[entity]`` else."""
        if (channel, entity) not in self._mappers:
            connector = self.source_connector(channel)
            file = connector.mapping_file if entity == "order" else connector.mapping_files.get(entity)
            if file is None:
                raise ConfigurationError(f"channel {channel} has no mapping for {entity} records",
                                         how_to_fix=f"add mapping_files={{{entity!r}: ...}} to its SourceConnector")
            path = mappings.path(file, self.settings.mappings_dir)
            self._mappers[(channel, entity)] = load_mapping(path, model_for(entity), transforms=connector.transforms,
                                                            computes=connector.computes)
        return self._mappers[(channel, entity)]

    def source(self, shop_settings: Any, stream: Any | None = None) -> Source:
        external_id = stream.external_id if stream is not None else _order_external_id
        entity = getattr(stream, "entity", "order") if stream is not None else "order"
        return Source(shop_settings.channel, shop_settings.shop, self.mapper(shop_settings.channel, entity),
                      external_id, entity=entity)

    @cached_property
    def carriers(self) -> dict[str, dict[str, str]]:
        return load_carriers(mappings.path("carriers.yaml", self.settings.mappings_dir))

    def sinks(self) -> list[Any]:
        from connectors.registry import SINKS

        sinks = [SINKS[s.kind].open(s) for s in self.settings.enabled_sinks()]
        for sink in sinks:  # sinks that read the hub's records (WMS intercept, logistics waybills) get its engine
            if hasattr(sink, "attach_engine"):
                sink.attach_engine(self.engine)
        return sinks

    def writeback_sink(self) -> ChannelWriteback:
        def ship_for(order: Order, shipment, company_code: str):
            shop = self.settings.shop(order.platform, order.shop_id)
            return self.source_connector(order.platform).ship(shop, order, shipment, company_code)

        return ChannelWriteback(self.carriers, ship_for)

    # -- steps ----------------------------------------------------------------------------------------------------

    def sync(self, channel: str | None = None, shop: str | None = None, stream: str | None = None,
             now: datetime | None = None) -> list[SyncReport]:
        run_id = uuid.uuid4().hex[:12]
        reports = []
        for shop_settings in self.settings.enabled_shops():
            if (channel and shop_settings.channel != channel) or (shop and shop_settings.shop != shop):
                continue
            streams = self.source_connector(shop_settings.channel).open_streams(shop_settings)
            for name in shop_settings.streams:
                if stream and name != stream:
                    continue
                s = streams[name]
                reports.append(sync_stream(self.engine, self.source(shop_settings, s), s, shop_settings.sync,
                                           now=now, run_id=run_id))
        return reports

    def sweep(self, channel: str | None = None, shop: str | None = None, now: datetime | None = None
              ) -> list[SweepReport]:
        """Compensation sweep (补单): re-read the open windows that have settled and close those that agree
        (hub/sync.py). Runs on its own schedule; a push intake never replaces it."""
        run_id = uuid.uuid4().hex[:12]
        reports = []
        for shop_settings in self.settings.enabled_shops():
            if (channel and shop_settings.channel != channel) or (shop and shop_settings.shop != shop):
                continue
            streams = self.source_connector(shop_settings.channel).open_streams(shop_settings)
            for name in shop_settings.streams:
                s = streams[name]
                reports.append(sweep_stream(self.engine, self.source(shop_settings, s), s, shop_settings.sync,
                                            now=now, run_id=run_id))
        return reports

    def intake_pushes(self, max_batches: int = 50) -> list[PushReport]:
        """Take in what the channels pushed (TMC...): re-read each notified order by id, ingest it, and confirm the
        messages only after that transaction committed (at least once; duplicates and out-of-order messages are
        no-ops thanks to the version guard). Each shop is permitted once (remembered in ``subscriptions``). A push
        never replaces the windowed pull and its sweep: a message lost upstream is found by them."""
        by_channel: dict[str, list[Any]] = {}
        for shop_settings in self.settings.enabled_shops():
            by_channel.setdefault(shop_settings.channel, []).append(shop_settings)
        reports = []
        for channel, shops in by_channel.items():
            open_queues = self.source_connector(channel).open_push_queues
            if open_queues is None:
                continue
            for queue in open_queues(shops):
                with bind_run(step="push-intake", queue=queue.key):
                    reports.append(self._intake_queue(channel, queue, max_batches))
        return reports

    def _intake_queue(self, channel: str, queue: Any, max_batches: int) -> PushReport:
        report = PushReport(queue.key)
        for shop_settings in queue.shops:
            marker = f"push-permit:{channel}/{shop_settings.shop}"
            with reading(self.engine) as conn:
                permitted = conn.execute(sa.select(t.subscriptions.c.name)
                                         .where(t.subscriptions.c.name == marker)).first()
            if not permitted:
                queue.permit(shop_settings)
                self._set_feed_position(marker, 1)
                report.permitted += 1
        for _ in range(max_batches):
            notices = queue.consume()
            if not notices:
                break
            report.messages += len(notices)
            wanted: dict[str, list[str]] = {}
            refunds_wanted: dict[str, list[str]] = {}
            for notice in notices:
                if notice.shop is None or notice.external_id is None:
                    report.ignored += 1
                    continue
                ids = wanted.setdefault(notice.shop, [])
                if notice.external_id not in ids:
                    ids.append(notice.external_id)
                # an after-sales notice names its refund too: read it after its order, so its event follows
                refund_ref = getattr(notice, "refund_id", None) or getattr(notice, "after_sale_order_id", None)
                if refund_ref and refund_ref not in refunds_wanted.setdefault(notice.shop, []):
                    refunds_wanted[notice.shop].append(refund_ref)
            for shop, order_ids in wanted.items():
                shop_settings = self.settings.shop(channel, shop)
                streams = self.source_connector(channel).open_streams(shop_settings)
                stream = streams["orders"]
                records = []
                for order_id in order_ids:
                    try:
                        record = stream.fetch_one(order_id)
                    except RecordError as exc:  # e.g. gone on the channel: nothing to take in; the sweep stays
                        log.warning("pushed order cannot be read", order_id=order_id, error=exc.to_dict())
                        report.ignored += 1
                        continue
                    if record:
                        records.append(record)
                report.fetched += len(records)
                report.result.add(ingest_page(self.engine, self.source(shop_settings, stream), records,
                                              actor="push"))
                refund_stream = streams.get("refunds")
                if refund_stream is not None and refunds_wanted.get(shop):
                    report.result.add(self._fetch_and_ingest(shop_settings, refund_stream, refunds_wanted[shop],
                                                             report))
            # only now, with every notified order committed: a crash before this line means a redelivery
            queue.confirm([n.message_id for n in notices])
            report.confirmed += len(notices)
        log.info("push intake finished", messages=report.messages, fetched=report.fetched, new=report.result.new,
                 changed=report.result.changed, unchanged=report.result.unchanged, ignored=report.ignored)
        return report

    def _fetch_and_ingest(self, shop_settings: Any, stream: Any, ids: list[str], report: PushReport) -> IngestResult:
        records = []
        for external_id in ids:
            try:
                record = stream.fetch_one(external_id)
            except RecordError as exc:  # no by-id read on this channel, or gone: the windowed pull stays the net
                log.warning("pushed record cannot be read", entity=stream.entity, external_id=external_id,
                            error=exc.to_dict())
                report.ignored += 1
                continue
            if record:
                records.append(record)
        report.fetched += len(records)
        return ingest_page(self.engine, self.source(shop_settings, stream), records, actor="push")

    def sync_order_ids(self, channel: str, shop: str, order_ids: list[str]) -> Any:
        """Fetch single orders by id (a buyer complains, a push arrives): same ingest path, no cursor move."""
        shop_settings = self.settings.shop(channel, shop)
        stream = self.source_connector(channel).open_streams(shop_settings)["orders"]
        records = [stream.fetch_one(order_id) for order_id in order_ids]
        return ingest_page(self.engine, self.source(shop_settings, stream), records, actor="sync-by-id")

    def processing_tables(self, now: datetime | None = None) -> Tables:
        """SKU tables (skus.yaml + imported mappings) and rules, read fresh: an import or an edited file counts
        from the next run on, in every process."""
        skus = load_skus(mappings.path("skus.yaml", self.settings.mappings_dir), imported_skus(self.engine))
        rules = load_rules(mappings.path("rules.yaml", self.settings.mappings_dir), known_sku=skus.is_known)
        # the stock ledger (hub/stock): free units per warehouse; empty until a stock feed ran, and then routing
        # `by: stock` falls back to priority order and says so in its decision
        from hub.stock.ats import pool_stock_for_routing

        with reading(self.engine) as conn:
            stock = pool_stock_for_routing(conn)
        return Tables(skus=skus, rules=rules, stock=stock, now=now or utcnow())

    def push_stock(self, channel: str | None = None, shop: str | None = None, *, resync: bool = False,
                   policy_path: Any = None, only_skus: list[str] | None = None) -> Any:
        """WMS stock changes into the ledger, then available-to-sell to every channel that changed (hub/stock)."""
        from hub.stock import service

        return service.push(self, channel, shop, resync=resync, policy_path=policy_path, only_skus=only_skus)

    def stock_count(self, skus: list[str] | None = None) -> dict[str, int]:
        """Ask the WMS for the stock of every master SKU (inventory.query) and record it in the ledger."""
        from hub.stock import service

        return service.count(self, skus)

    def process(self, now: datetime | None = None) -> ProcessReport:
        from hub.aftersales import link_pending_refunds

        with bind_run(step="process"):
            link_pending_refunds(self.engine)  # refunds read before their order: their events follow the order's
            return process(self.engine, self.processing_tables(now))

    def dispatch(self, sink_name: str | None = None, *, process_first: bool = True) -> list[DispatchReport]:
        if process_first:
            self.process()
        reports = []
        for sink in self.sinks():
            if sink_name and sink.name != sink_name:
                continue
            reports.append(dispatch_sink(self.engine, sink))
        return reports

    def feedback(self) -> list[FeedbackReport]:
        """Poll what sinks send back (ship confirmations); each item is recorded once, bad ones quarantined."""
        from connectors.registry import SINKS

        reports = []
        for sink_settings in self.settings.enabled_sinks():
            poll = SINKS[sink_settings.kind].poll_feedback
            if poll is None:
                continue
            report = FeedbackReport(sink_settings.name)
            feed = f"feed:{sink_settings.name}"
            with bind_run(sink=sink_settings.name, step="feedback"):
                while True:
                    with reading(self.engine) as conn:
                        after = int(conn.execute(sa.select(t.subscriptions.c.position)
                                                 .where(t.subscriptions.c.name == feed)).scalar() or 0)
                    items = poll(sink_settings, after)
                    if not items:
                        break
                    for item in items:
                        report.received += 1
                        outcome = None
                        if item.error is None:
                            try:
                                outcome = record_confirm(self.engine, item.confirm)
                            except RecordError as exc:
                                item = replace(item, error=exc)
                        if item.error is not None:
                            report.rejected += 1
                            self._quarantine_message(sink_settings.name, "feedback", item.raw, item.error)
                        else:
                            report.recorded += outcome == "recorded"
                            report.duplicates += outcome == "duplicate"
                        self._set_feed_position(feed, item.position)
            log.info("feedback finished", sink=sink_settings.name, received=report.received,
                     recorded=report.recorded, duplicates=report.duplicates, rejected=report.rejected)
            reports.append(report)
        for sink in self.sinks():  # other messages a sink takes in itself (a WMS's return receipts)
            if hasattr(sink, "take_feedback"):
                with bind_run(sink=sink.name, step="feedback"):
                    log.info("sink feedback taken", **sink.take_feedback())
        return reports

    def writeback(self) -> DispatchReport:
        return dispatch_sink(self.engine, self.writeback_sink())

    def run_once(self, now: datetime | None = None) -> RunReport:
        """One tick of everything, for a cron user without Airflow: pushes, the windowed pull, the sweep of settled
        windows, processing, dispatch, feedback, write-back (the DAGs run the same steps on their own schedules)."""
        report = RunReport()
        report.pushes = self.intake_pushes()
        report.syncs = self.sync(now=now)
        report.sweeps = self.sweep(now=now)
        report.processing = self.process()
        report.dispatches = self.dispatch(process_first=False)
        report.feedback = self.feedback()
        report.writebacks = [self.writeback()]
        return report

    # -- quarantine -----------------------------------------------------------------------------------------------

    def replay_quarantine(self, ids: list[int] | None = None, group_key: str | None = None) -> dict[str, int]:
        """Re-run open quarantined records through the *current* mapping; fixed ones land, others stay with the new
        reason. Returns counts."""
        q = sa.select(t.quarantine).where(t.quarantine.c.status == "open", t.quarantine.c.shop != "-",
                                          t.quarantine.c.entity.in_((*ENTITIES, QUARANTINE_ENTITY)))
        if ids:
            q = q.where(t.quarantine.c.id.in_(ids))
        if group_key:
            q = q.where(t.quarantine.c.group_key == group_key)
        with reading(self.engine) as conn:
            rows = list(conn.execute(q.order_by(t.quarantine.c.id)))
        self._mappers.clear()  # pick up a mapping fixed since this process started
        counts = {"replayed": 0, "still_bad": 0}
        blocked = [r for r in rows if r.entity == QUARANTINE_ENTITY]
        if blocked:
            # orders processing blocked (an unmapped SKU...): they are in the hub; planning them again is the replay
            replan(self.engine, self.processing_tables(), [r.attributes["hub_id"] for r in blocked],
                   actor="quarantine-replay")
            with reading(self.engine) as conn:
                still = conn.execute(sa.select(sa.func.count()).select_from(t.quarantine).where(
                    t.quarantine.c.id.in_([r.id for r in blocked]), t.quarantine.c.status == "open")).scalar()
            counts["replayed"] += len(blocked) - still
            counts["still_bad"] += still
            rows = [r for r in rows if r.entity != QUARANTINE_ENTITY]
        by_source: dict[tuple[str, str, str], list[Any]] = {}
        for row in rows:
            by_source.setdefault((row.channel, row.shop, row.entity), []).append(row)
        import json

        for (channel, shop, entity), group in by_source.items():
            source = Source(channel, shop, self.mapper(channel, entity),
                            self._external_id_reader(channel, shop, entity), entity=entity)
            records = [crypto.open_all(json.loads(r.payload)) for r in group]  # sealed at rest
            result = ingest_page(self.engine, source, records, actor="quarantine-replay",
                                 quarantine_ids={i: r.id for i, r in enumerate(group)})
            counts["still_bad"] += result.quarantined
            counts["replayed"] += result.received - result.quarantined
        return counts

    def _external_id_reader(self, channel: str, shop: str, entity: str) -> Any:
        """How the channel's stream of ``entity`` reads a record's id (for quarantine rows of replayed records)."""
        try:
            streams = self.source_connector(channel).open_streams(self.settings.shop(channel, shop))
        except Exception:  # noqa: BLE001 - a shop gone from the configuration still replays, with the generic reader
            return _order_external_id
        stream = next((s for s in streams.values() if getattr(s, "entity", "order") == entity), None)
        return stream.external_id if stream is not None else _order_external_id

    def _quarantine_message(self, channel: str, entity: str, payload: str, exc: RecordError) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(sa.insert(t.quarantine).values(
                channel=channel, shop="-", entity=entity, external_id=None, error_kind=exc.kind, reason=exc.message,
                group_key=str(exc.attributes.get("group_key") or exc.message)[:191],
                attributes={k: v for k, v in exc.attributes.items() if k != "group_key"}, payload=payload,
                status="open", attempts=1, created_at=now, updated_at=now))

    def _set_feed_position(self, name: str, position: int) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            if conn.execute(sa.select(t.subscriptions.c.name).where(t.subscriptions.c.name == name)).first():
                conn.execute(sa.update(t.subscriptions).where(t.subscriptions.c.name == name,
                                                              t.subscriptions.c.position < position)
                             .values(position=position, updated_at=now))
            else:
                conn.execute(sa.insert(t.subscriptions).values(name=name, position=position, updated_at=now))

    def reconcile(self, day: Any = None) -> dict[str, Any]:
        """Daily payment reconciliation (hub/finance): statements of ``day`` (a date; default yesterday in
        Asia/Shanghai) against orders and refunds; matched receipts become ``receipt.matched`` events once."""
        from hub.finance.run import reconcile, summary
        from hub.finance.settings import load_finance_settings

        with bind_run(step="reconcile"):
            return summary(reconcile(self.engine, self.settings.source_path, day,
                                     settings=load_finance_settings(self.settings.source_path, self.settings.finance)))

    def order(self, hub_id: str) -> Order | None:
        with reading(self.engine) as conn:
            loaded = load_order(conn, hub_id)
        return loaded[0] if loaded else None


def _order_external_id(record: Any) -> str | None:
    if not isinstance(record, dict):
        return None
    value = record.get("tid_str") or record.get("tid") or record.get("order_id")
    return str(value) if value not in (None, "") else None
