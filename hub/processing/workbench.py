"""The mapping workbench: what operators do when orders stop for a missing mapping, as library functions the CLI
(hub/cli_workbench.py) and, later, Airflow UI views call.

- ``blocked_groups``: blocked orders grouped by what must be fixed ("unmapped sku 6901234567890: 312 orders across
  3 shops"), read from the quarantine rows processing keeps for them.
- ``import_mappings``: a CSV or YAML file of channel SKU -> master SKU rows, validated all-or-nothing against the
  catalogue, stored in ``sku_mappings``; then every blocked order is planned again and released if it now can be.
- ``release``: plan blocked / held / waiting orders again (one cause, some orders, or all), optionally approving
  their overridable holds.
- ``replay``: run orders (one, a shop-day, a quarantine cause) from their stored raw payload through the *current*
  channel mapping, SKU tables and rules, and show what would change in the canonical order, the plan, and each
  sink's documents. Nothing is written unless ``dispatch=True``.
- ``check`` and ``run_cases``: `orderhub mapping check` and `orderhub mapping test`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine

import mappings
from hub import crypto
from hub.config import ConfigError, ConfigProblem
from hub.errors import ConfigurationError, RecordError
from hub.ingest import _audit, _event, _line_rows, _order_row
from hub.mapping import SHANGHAI
from hub.models import Order
from hub.processing.plan import OrderPlan, fingerprint, physical_fingerprint, plan_order
from hub.processing.rules import load_rules
from hub.processing.skus import load_skus, parse_import, parse_sku_file
from hub.processing.step import QUARANTINE_ENTITY, ProcessReport, delivered, imported_skus, replan
from hub.store import schema as t
from hub.store.db import reading
from hub.store.schema import utcnow

RELEASABLE = ("blocked", "held", "waiting")


# -- grouping --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BlockedGroup:
    cause: str
    orders: int
    shops: tuple[str, ...]

    def sentence(self) -> str:
        shops = f"{len(self.shops)} shop{'s' if len(self.shops) != 1 else ''}"
        return f"{self.cause}: {self.orders} order{'s' if self.orders != 1 else ''} across {shops}"


def blocked_groups(engine: Engine) -> list[BlockedGroup]:
    q = t.quarantine
    with reading(engine) as conn:
        rows = conn.execute(sa.select(q.c.group_key, q.c.channel, q.c.shop, sa.func.count())
                            .where(q.c.entity == QUARANTINE_ENTITY, q.c.status == "open")
                            .group_by(q.c.group_key, q.c.channel, q.c.shop)).all()
    groups: dict[str, tuple[int, set[str]]] = {}
    for key, channel, shop, n in rows:
        total, shops = groups.get(key, (0, set()))
        groups[key] = (total + n, shops | {f"{channel}/{shop}"})
    return sorted((BlockedGroup(k, n, tuple(sorted(s))) for k, (n, s) in groups.items()),
                  key=lambda g: (-g.orders, g.cause))


def plan_counts(engine: Engine) -> dict[str, int]:
    with reading(engine) as conn:
        return dict(conn.execute(sa.select(t.order_plans.c.status, sa.func.count())
                                 .group_by(t.order_plans.c.status)).all())


# -- release ---------------------------------------------------------------------------------------------------------

@dataclass
class ReleaseResult:
    selected: int
    report: ProcessReport
    still: list[BlockedGroup] = field(default_factory=list)


def order_ids(engine: Engine, refs: Iterable[str]) -> list[str]:
    """``CHANNEL:ORDER_ID`` references -> hub ids (ConfigurationError for a malformed one)."""
    wanted = []
    for ref in refs:
        channel, sep, order_id = ref.partition(":")
        if not sep or not channel or not order_id:
            raise ConfigurationError(f"order reference {ref!r} is not CHANNEL:ORDER_ID",
                                     how_to_fix="write it like tmall:3817000000000000001")
        wanted.append((channel, order_id))
    with reading(engine) as conn:
        found = []
        for channel, order_id in wanted:
            found += [r.hub_id for r in conn.execute(sa.select(t.orders.c.hub_id).where(
                t.orders.c.channel == channel, t.orders.c.order_id == order_id))]
    return found


def release(hub, *, cause: str | None = None, orders: Iterable[str] = (), approve_by: str | None = None,
            actor: str = "release") -> ReleaseResult:
    """Plan stuck orders again with the current tables: the named ones, one cause, or every blocked, held and
    waiting order. ``approve_by`` also releases their overridable holds (and is recorded)."""
    p = t.order_plans
    if orders:
        ids = order_ids(hub.engine, orders)
    else:
        q = sa.select(p.c.hub_id).where(p.c.status.in_(RELEASABLE)).order_by(p.c.hub_id)
        if cause:
            q = q.where(p.c.group_key == cause)
        with reading(hub.engine) as conn:
            ids = [r.hub_id for r in conn.execute(q)]
    report = replan(hub.engine, hub.processing_tables(), ids, actor=actor, approved_by=approve_by)
    return ReleaseResult(len(ids), report, blocked_groups(hub.engine))


# -- import ----------------------------------------------------------------------------------------------------------

@dataclass
class ImportResult:
    imported: int
    replaced: int
    release: ReleaseResult | None


def import_mappings(hub, path: Path, *, release_after: bool = True) -> ImportResult:
    """Validate every row first (all or nothing), store them, then release what they unblock."""
    entries, problems = parse_import(path)
    tables = hub.processing_tables()
    for i, entry in enumerate(entries):
        if not tables.skus.is_known(entry.master):
            problems.append(ConfigProblem(where=f"entry {i + 1} ({entry.key[0]} {entry.key[1]})",
                                          message=f"{entry.master} is neither a master SKU nor a bundle",
                                          how_to_fix="use a code from masters: or bundles: in skus.yaml"))
    keys = [(e.channel, e.shop, *e.key) for e in entries]
    for key in sorted({k for k in keys if keys.count(k) > 1}):
        problems.append(ConfigProblem(where=f"{key[2]} {key[3]}", message=f"mapped {keys.count(key)} times "
                                      f"for {key[0]}/{key[1]} in this file", how_to_fix="keep one row"))
    if problems:
        raise ConfigError(str(path), problems)
    if not entries:
        raise ConfigurationError(f"{path} has no mappings", how_to_fix="add rows below the header")
    m = t.sku_mappings
    now = utcnow()
    replaced = 0
    with hub.engine.begin() as conn:
        for entry in entries:
            kind, value = entry.key
            replaced += conn.execute(sa.delete(m).where(m.c.channel == entry.channel, m.c.shop == entry.shop,
                                                        m.c.key_kind == kind, m.c.key_value == value)).rowcount
            conn.execute(sa.insert(m).values(channel=entry.channel, shop=entry.shop, key_kind=kind, key_value=value,
                                             master_sku=entry.master, source=path.name[:191], imported_at=now))
    result = release(hub, actor=f"import {path.name}") if release_after else None
    return ImportResult(len(entries), replaced, result)


def export_imports(engine: Engine) -> str:
    """Imported mappings as a ``channel_skus:`` YAML block, to fold them into the versioned skus.yaml."""
    rows = []
    for entry, source in imported_skus(engine):
        row = {k: v for k, v in entry.model_dump(exclude_none=True).items() if v != "*"}
        rows.append((source, row))
    lines = ["channel_skus:"]
    for source, row in rows:
        lines.append(f"  - {json.dumps(row, ensure_ascii=False)}   # {source}")
    return "\n".join(lines) + "\n"


# -- check and test --------------------------------------------------------------------------------------------------

@dataclass
class CheckResult:
    problems: list[tuple[str, ConfigProblem]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def check(hub) -> CheckResult:
    """Every mapping file loads and is consistent; imported rows point at real SKUs. Nothing is written."""
    from connectors.registry import SOURCES

    result = CheckResult()
    folder = hub.settings.mappings_dir

    def collect(path: Path, load) -> Any:
        try:
            return load()
        except ConfigError as exc:
            result.problems += [(str(path), p) for p in exc.problems]
        except ConfigurationError as exc:
            result.problems.append((str(path), ConfigProblem(where="(file)", message=exc.message,
                                                             how_to_fix=exc.how_to_fix)))
        return None

    for channel in sorted(SOURCES):
        path = mappings.path(SOURCES[channel].mapping_file, folder)
        if collect(path, lambda c=channel: hub.mapper(c)) is not None:
            result.summary[f"{channel} field map"] = "ok"
    skus_path, rules_path = mappings.path("skus.yaml", folder), mappings.path("rules.yaml", folder)
    imported = imported_skus(hub.engine)
    skus = collect(skus_path, lambda: load_skus(skus_path, imported))
    if skus is not None:
        result.summary["master SKUs"] = len(skus.masters)
        result.summary["bundles"] = len(skus.bundles)
        result.summary["channel SKUs in file"] = len(skus.spec.channel_skus)
        result.summary["imported channel SKUs"] = len(imported)
        in_file = {(e.channel, e.shop, *e.key): e.master for e in skus.spec.channel_skus}
        for entry, source in imported:
            where = f"{source}: {entry.key[0]} {entry.key[1]} -> {entry.master}"
            if not skus.is_known(entry.master):
                result.problems.append(("sku_mappings", ConfigProblem(
                    where=where, message=f"{entry.master} is no longer a master SKU or bundle",
                    how_to_fix="import a corrected row, or add the SKU back to skus.yaml")))
            other = in_file.get((entry.channel, entry.shop, *entry.key))
            if other and other != entry.master:
                result.notes.append(f"{where} overrides skus.yaml ({other}); `orderhub mapping export` to reconcile")
    else:
        collect(skus_path, lambda: parse_sku_file(skus_path))
    rules = collect(rules_path, lambda: load_rules(rules_path, known_sku=skus.is_known if skus else None))
    if rules is not None:
        result.summary["rules"] = ", ".join(f"{k} {n}" for k, n in sorted(Counter(r.kind for r in rules.rules)
                                                                            .items())) or "none"
    carriers = mappings.path("carriers.yaml", folder)
    if collect(carriers, lambda: hub.carriers) is not None:
        result.summary["carriers"] = len(hub.carriers)
    return result


@dataclass
class CaseResult:
    file: str
    name: str
    failures: list[str]
    status: str | None = None


def run_cases(hub, folder: Path | None = None) -> list[CaseResult]:
    """`orderhub mapping test`: each recorded payload in ``<mappings>/cases/*.yaml`` goes through the channel
    mapping, the SKU tables and the rules; its expectations must hold, and the allocation must sum to the paid
    total. A case file:

        cases:
          - name: a sentence about the behaviour
            channel: tmall
            shop: tm-flagship
            payload: payloads/some_trade.json       # relative to the case file (or `record:` inline)
            now: "2026-11-11T10:00:00+08:00"         # optional: the planning clock (review delays)
            stock: {WH01: {SKU-001-RED-M: 5}}        # optional stock snapshot
            expect:
              status: released                       # and/or: group_key, rules (must fire), cod_amount_fen,
              documents: {TMALL-…: {warehouse: WH01, items: {SKU-001-RED-M: 2}}}   # quarantine (ingest cause)
    """
    folder = folder or mappings.path("cases", hub.settings.mappings_dir)
    tables = hub.processing_tables()
    results = []
    for path in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for case in data.get("cases") or []:
            results.append(_run_case(hub, tables, path, case))
    return results


def _run_case(hub, tables, path: Path, case: Mapping[str, Any]) -> CaseResult:
    name = str(case.get("name") or "(unnamed)")
    result = CaseResult(path.name, name, [])
    expect = case.get("expect") or {}
    try:
        record = case.get("record")
        if record is None:
            record = json.loads((path.parent / str(case["payload"])).read_text(encoding="utf-8"))
        channel, shop = str(case.get("channel", "tmall")), str(case.get("shop", "case"))
        order = hub.mapper(channel).to_model(record, {"channel": channel, "shop": shop})
    except RecordError as exc:
        cause = exc.attributes.get("group_key")
        result.status = "quarantined"
        if expect.get("quarantine") != cause:
            result.failures.append(f"ingest quarantines it as {cause!r}: {exc.message}")
        return result
    except (OSError, KeyError, ValueError) as exc:
        result.failures.append(f"cannot read the case: {exc}")
        return result
    now = datetime.fromisoformat(str(case["now"])) if case.get("now") else utcnow()
    plan = plan_order(order, tables.skus, tables.rules, now=now, stock=case.get("stock") or {})
    result.status = plan.status
    fail = result.failures.append
    if "quarantine" in expect:
        fail(f"expected ingest to quarantine it as {expect['quarantine']!r}, it mapped")
    if "status" in expect and plan.status != expect["status"]:
        fail(f"status {plan.status}, expected {expect['status']} "
             f"({'; '.join(f'{d.rule}: {d.detail}' for d in plan.decisions) or 'no decisions'})")
    if "group_key" in expect and plan.group_key != expect["group_key"]:
        fail(f"group_key {plan.group_key!r}, expected {expect['group_key']!r}")
    for rule in expect.get("rules") or []:
        if rule not in plan.rules_fired():
            fail(f"rule {rule} did not fire (fired: {', '.join(plan.rules_fired()) or 'none'})")
    if "cod_amount_fen" in expect and plan.cod_amount_fen != expect["cod_amount_fen"]:
        fail(f"cod_amount_fen {plan.cod_amount_fen}, expected {expect['cod_amount_fen']}")
    if "documents" in expect:
        got = {code: {"warehouse": g.warehouse, "items": dict(_items(g.lines))} for code, g in plan.documents().items()}
        want = {str(code): {"warehouse": doc.get("warehouse"), "items": {str(k): int(v) for k, v in
                                                                          (doc.get("items") or {}).items()}}
                for code, doc in (expect["documents"] or {}).items()}
        if got != want:
            fail(f"documents {got}, expected {want}")
    if plan.allocation and sum(a.allocated_paid_fen for a in plan.allocation) != order.paid_total:
        fail(f"allocation sums to {sum(a.allocated_paid_fen for a in plan.allocation)} fen, "
             f"the order paid {order.paid_total} fen")
    return result


def _items(lines) -> Counter:
    counts: Counter = Counter()
    for line in lines:
        counts[line.master_sku] += line.qty
    return counts


# -- replay with diff ------------------------------------------------------------------------------------------------

@dataclass
class ReplayItem:
    hub_id: str
    channel: str
    shop: str
    order_id: str
    error: str | None = None
    order_diff: list[str] = field(default_factory=list)
    old_status: str | None = None
    new_status: str | None = None
    plan_diff: list[str] = field(default_factory=list)
    documents: dict[str, list[str]] = field(default_factory=dict)   # sink -> diff lines
    note: str | None = None
    new_order: Order | None = None
    new_plan: OrderPlan | None = None
    new_fingerprint: str | None = None
    old_fingerprint: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.order_diff or self.plan_diff or any(self.documents.values()) or self.error)


@dataclass
class ReplayResult:
    items: list[ReplayItem]
    dispatched: bool = False
    replanned: ProcessReport | None = None
    dispatch_reports: list[Any] = field(default_factory=list)


def select_orders(engine: Engine, *, order: str | None = None, shop_day: str | None = None,
                  cause: str | None = None) -> list[str]:
    """Hub ids for ``CHANNEL:ORDER_ID``, ``SHOP:YYYY-MM-DD`` (placed that day, Asia/Shanghai) or a quarantine cause."""
    if order:
        return order_ids(engine, [order])
    o = t.orders
    if shop_day:
        shop, _, day = shop_day.rpartition(":")
        try:
            start = datetime.combine(date.fromisoformat(day), time(), SHANGHAI).astimezone(UTC)
        except ValueError as exc:
            raise ConfigurationError(f"--shop-day {shop_day!r} is not SHOP:YYYY-MM-DD",
                                     how_to_fix="write it like tm-flagship:2026-11-11") from exc
        q = sa.select(o.c.hub_id).where(o.c.shop == shop, o.c.placed_at >= start,
                                        o.c.placed_at < start + timedelta(days=1)).order_by(o.c.placed_at)
        with reading(engine) as conn:
            return [r.hub_id for r in conn.execute(q)]
    if cause:
        q = t.quarantine
        with reading(engine) as conn:
            return [r.hub_id for r in conn.execute(
                sa.select(o.c.hub_id).join(q, sa.and_(q.c.channel == o.c.channel, q.c.shop == o.c.shop,
                                                      q.c.external_id == o.c.order_id))
                .where(q.c.entity == QUARANTINE_ENTITY, q.c.status == "open", q.c.group_key == cause)
                .order_by(o.c.placed_at))]
    raise ConfigurationError("replay needs --order, --shop-day or --cause")


def replay(hub, hub_ids: list[str], *, dispatch: bool = False, now: datetime | None = None) -> ReplayResult:
    """Re-run ``hub_ids`` from their stored raw payloads through the current mapping and rules; diff; and only with
    ``dispatch`` store the new canonical orders and plans and send what is released."""
    hub._mappers.clear()  # a mapping fixed since this process started counts
    tables = hub.processing_tables(now)
    sinks = [s for s in hub.sinks() if hasattr(s, "documents")]
    items = [_replay_one(hub, tables, sinks, hub_id) for hub_id in hub_ids]
    result = ReplayResult(items)
    if dispatch:
        changed = [i for i in items if i.changed and i.new_order is not None]
        for item in changed:
            if item.order_diff:
                _store_replayed_order(hub.engine, item.hub_id, item.new_order)
        result.replanned = replan(hub.engine, tables, [i.hub_id for i in changed], actor="replay")
        result.dispatch_reports = hub.dispatch(process_first=False)
        result.dispatched = True
    return result


def _replay_one(hub, tables, sinks, hub_id: str) -> ReplayItem:
    with reading(hub.engine) as conn:
        row = conn.execute(sa.select(t.orders).where(t.orders.c.hub_id == hub_id)).first()
        stored_plan = conn.execute(sa.select(t.order_plans).where(t.order_plans.c.hub_id == hub_id)).first()
        raw = conn.execute(sa.select(t.raw_payloads.c.payload).where(
            t.raw_payloads.c.channel == row.channel, t.raw_payloads.c.shop == row.shop,
            t.raw_payloads.c.entity == "order", t.raw_payloads.c.external_id == row.order_id)
            .order_by(t.raw_payloads.c.updated_at.desc(), t.raw_payloads.c.id.desc()).limit(1)).scalar()
        was_delivered = delivered(conn, [hub_id, stored_plan.merged_into if stored_plan else None])
    item = ReplayItem(hub_id, row.channel, row.shop, row.order_id)
    document = json.loads(row.document) if isinstance(row.document, str) else row.document
    old_order = Order.model_validate_json(json.dumps(crypto.open_all(document)))  # personal fields sealed at rest
    old_plan = OrderPlan.model_validate(stored_plan.plan) if stored_plan else None
    item.old_status = stored_plan.status if stored_plan else None
    item.old_fingerprint = stored_plan.fingerprint if stored_plan else None
    if raw is None:
        item.error = "no raw payload stored for this order"
        return item
    try:
        new_order = hub.mapper(row.channel).to_model(crypto.open_all(json.loads(raw)),
                                                     {"channel": row.channel, "shop": row.shop})
    except RecordError as exc:
        item.error = f"the current mapping refuses it ({exc.attributes.get('group_key')}): {exc.message}"
        return item
    new_plan = plan_order(new_order, tables.skus, tables.rules, now=tables.now, stock=tables.stock,
                          approved_by=stored_plan.approved_by if stored_plan else None)
    if old_plan is not None and old_plan.status == "released" and new_plan.status == "closed":
        # as the processing step does: shipped through the hub, the plan that did it stays the record
        new_plan = old_plan
        item.note = f"the channel reports {new_order.status.value}: the released plan stays as it was"
    item.new_order, item.new_plan, item.new_status = new_order, new_plan, new_plan.status
    item.new_fingerprint = fingerprint(new_plan)
    item.order_diff = diff(old_order.model_dump(mode="json"), new_order.model_dump(mode="json"))
    item.plan_diff = _plan_diff(old_plan, new_plan)
    if stored_plan is not None and stored_plan.released_fingerprint and was_delivered:
        if (new_plan.status == "released"
                and physical_fingerprint(new_plan, new_order.order_id) != stored_plan.released_fingerprint):
            item.note = ("the warehouse already has this order's delivery order and the new plan picks differently:"
                         " with --dispatch it is blocked as 'changed after delivery' for a person (nothing re-sent)")
        elif new_plan.status in ("cancelled", "held"):
            item.note = (f"the warehouse already has this order's delivery order: with --dispatch it is flagged as "
                         f"'{new_plan.status} after delivery' (stop it in the WMS)")
    for sink in sinks:
        old_docs = sink.documents(old_order, _groups(old_plan)) if old_plan else {}
        new_docs = sink.documents(new_order, _groups(new_plan))
        item.documents[sink.name] = _documents_diff(old_docs, new_docs)
    return item


def _groups(plan: OrderPlan) -> list[dict[str, Any]]:
    return [g.model_dump(mode="json") for g in plan.groups] if plan.status == "released" else []


def _plan_diff(old: OrderPlan | None, new: OrderPlan) -> list[str]:
    lines = []
    old_status = old.status if old else "(not planned)"
    if old_status != new.status or (old and old.group_key != new.group_key):
        lines.append(f"~ status: {old_status}{f' ({old.group_key})' if old and old.group_key else ''} -> "
                     f"{new.status}{f' ({new.group_key})' if new.group_key else ''}")
    old_decisions = {(d.rule, d.action, d.detail) for d in (old.decisions if old else [])}
    new_decisions = {(d.rule, d.action, d.detail) for d in new.decisions}
    lines += [f"- [{r}] {a}: {d}" for r, a, d in sorted(old_decisions - new_decisions)]
    lines += [f"+ [{r}] {a}: {d}" for r, a, d in sorted(new_decisions - old_decisions)]
    return lines


def _documents_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    lines = []
    for code in sorted(set(old) | set(new)):
        if code not in new:
            lines.append(f"- {code}: no longer sent")
        elif code not in old:
            doc = new[code]
            items = ", ".join(f"{ln['itemCode']} x{ln['planQty']}" for ln in doc["orderLines"])
            lines.append(f"+ {code}: new document to {doc['deliveryOrder']['warehouseCode']}: {items}; "
                         f"totalAmount {doc['deliveryOrder']['totalAmount']}")
        else:
            lines += [f"  {code} {change}" for change in diff(old[code], new[code])]
    return lines


def diff(old: Any, new: Any) -> list[str]:
    """Changed leaves of two JSON-like values, as ``~ path: old -> new`` / ``+ path: new`` / ``- path: old``."""
    a, b = _flatten(old), _flatten(new)
    out = []
    for key in sorted(set(a) | set(b), key=_natural):
        if key not in a:
            out.append(f"+ {key}: {_show(b[key])}")
        elif key not in b:
            out.append(f"- {key}: {_show(a[key])}")
        elif a[key] != b[key]:
            out.append(f"~ {key}: {_show(a[key])} -> {_show(b[key])}")
    return out


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out or {prefix: []}
    return {prefix: value}


def _natural(key: str) -> list[Any]:
    import re

    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]


def _show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _store_replayed_order(engine: Engine, hub_id: str, order: Order) -> None:
    """The canonical order the current mapping makes from the same raw payload becomes the next version (the
    channel's updated_at is unchanged, so only replay can do this), with an order.changed event like ingest's."""
    now = utcnow()
    with engine.begin() as conn:
        version = conn.execute(sa.select(t.orders.c.version).where(t.orders.c.hub_id == hub_id)).scalar() + 1
        row = _order_row(hub_id, order, version, now)
        conn.execute(sa.update(t.orders).where(t.orders.c.hub_id == hub_id)
                     .values(**{k: v for k, v in row.items() if k != "hub_id"}))
        conn.execute(sa.delete(t.order_lines).where(t.order_lines.c.hub_id == hub_id))
        conn.execute(sa.insert(t.order_lines), _line_rows(hub_id, order))
        conn.execute(sa.insert(t.outbox).values(**_event("order.changed", hub_id, version, order, now)))
        conn.execute(sa.insert(t.audit_trail).values(**_audit(hub_id, now, "order.replayed", "replay",
                                                              {"version": version, "reason": "current mapping"})))
