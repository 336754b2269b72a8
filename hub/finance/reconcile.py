"""Daily reconciliation: a statement day against the hub's orders and refunds.

    import   statement lines stored once (natural key: source, movement, txn id, refund no)
    match    payment line -> order by 商户订单号 (= the channel order id), else by the provider's transaction id
             (支付宝交易号 / 微信订单号) among the payments of the orders paid that day (an account whose 商户订单号 is
             not the order id still matches); refund line -> refund by refund number
    findings paid_no_order       the statement has money for no hub order
             order_no_payment    a hub order paid that day (settling through this account) is not in the statement
             amount_differs      both exist, the amounts differ (payments and refunds)
             refund_not_settled  a hub refund that succeeded that day is not in the statement
             refund_no_hub_refund the statement refunds something the hub has no refund for
             cod_differs         a carrier remitted a COD amount other than the order's total
    receipts every matched payment becomes one ``receipt.matched`` outbox event, exactly once: the ``receipts`` row
             (primary key source + txn id) is the claim and is written in the same transaction as the event (and an
             audit row, for the order's lineage)

Findings of a (day, source) are replaced by each run, so the latest run is the truth for that day; totals are
integers of fen, summed, never rounded.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub.errors import TransientError
from hub.finance.statements import SHANGHAI, StatementLine
from hub.logging import get_logger
from hub.store import schema as t
from hub.store.db import reading
from hub.store.schema import utcnow
from hub.store.schema_aftersales import refunds as refunds_t
from hub.store.schema_finance import receipts, reconciliation_findings, statement_lines

log = get_logger(__name__)

KINDS = ("paid_no_order", "order_no_payment", "amount_differs", "refund_not_settled", "refund_no_hub_refund",
         "cod_differs")


@dataclass(frozen=True)
class Finding:
    source: str
    kind: str
    movement: str
    txn_id: str | None
    out_trade_no: str | None
    refund_no: str | None = None
    hub_id: str | None = None
    channel: str | None = None
    expected: int | None = None  # fen the hub expects
    actual: int | None = None  # fen the statement holds

    @property
    def difference(self) -> int:
        return (self.actual or 0) - (self.expected or 0)


@dataclass
class SourceReport:
    source: str
    day: date
    imported: int = 0
    payments: int = 0
    payment_total: int = 0
    refunds: int = 0
    refund_total: int = 0
    fees: int = 0
    matched: int = 0
    matched_total: int = 0
    new_receipts: int = 0
    findings: list[Finding] = field(default_factory=list)

    def totals(self) -> dict[str, tuple[int, int]]:
        """kind -> (count, Σ difference in fen: statement minus hub)."""
        out: dict[str, tuple[int, int]] = {}
        for f in self.findings:
            n, s = out.get(f.kind, (0, 0))
            out[f.kind] = (n + 1, s + f.difference)
        return out


@dataclass
class ReconcileReport:
    day: date
    sources: list[SourceReport] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [f for s in self.sources for f in s.findings]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), tzinfo=SHANGHAI)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def import_lines(engine: Engine, day: date, lines: Iterable[StatementLine]) -> int:
    """Store the lines not stored yet; a re-downloaded statement adds nothing."""
    lines = list(lines)
    if not lines:
        return 0
    now = utcnow()
    with engine.begin() as conn:
        known = set()
        for source in {line.source for line in lines}:
            known.update(conn.execute(sa.select(statement_lines.c.movement, statement_lines.c.txn_id,
                                                statement_lines.c.refund_no)
                                      .where(statement_lines.c.source == source,
                                             statement_lines.c.txn_id.in_({ln.txn_id for ln in lines}))).all())
        fresh, seen = [], set()
        for line in lines:
            key = (line.movement, line.txn_id, line.refund_no)
            if key in known or key in seen:
                continue
            seen.add(key)
            fresh.append({"source": line.source, "bill_date": day, "movement": line.movement, "txn_id": line.txn_id,
                          "out_trade_no": line.out_trade_no, "refund_no": line.refund_no, "amount": line.amount,
                          "fee": line.fee, "currency": line.currency, "occurred_at": line.occurred_at,
                          "raw": line.raw, "imported_at": now})
        if fresh:
            conn.execute(sa.insert(statement_lines), fresh)
    return len(fresh)


def _orders_by_id(conn, order_ids: set[str], channels: list[str] | None) -> dict[str, sa.Row]:
    found: dict[str, sa.Row] = {}
    ids = sorted(order_ids)
    for start in range(0, len(ids), 500):
        q = sa.select(t.orders.c.hub_id, t.orders.c.channel, t.orders.c.shop, t.orders.c.order_id,
                      t.orders.c.paid_total, t.orders.c.currency).where(t.orders.c.order_id.in_(ids[start:start + 500]))
        for row in conn.execute(q):
            # an order id of a channel settling through this account wins over a same-numbered one elsewhere
            if row.order_id not in found or (channels and row.channel in channels):
                found[row.order_id] = row
    return found


def _orders_by_txn(orders: Iterable[sa.Row]) -> dict[str, sa.Row]:
    """channel_txn_id of each payment of the canonical order documents -> the order."""
    out: dict[str, sa.Row] = {}
    for order in orders:
        document = order.document if isinstance(order.document, dict) else {}
        for payment in document.get("payments") or []:
            txn = payment.get("channel_txn_id") if isinstance(payment, dict) else None
            if txn:
                out.setdefault(str(txn), order)
    return out


def reconcile_day(engine: Engine, source: str, day: date, channels: list[str]) -> SourceReport:
    """Match the stored statement lines of (source, day) to the hub; store the findings; emit receipts."""
    report = SourceReport(source, day)
    start, end = day_bounds(day)
    with reading(engine) as conn:
        lines = list(conn.execute(sa.select(statement_lines).where(statement_lines.c.source == source,
                                                                   statement_lines.c.bill_date == day)
                                  .order_by(statement_lines.c.occurred_at, statement_lines.c.id)))
        payments = [ln for ln in lines if ln.movement == "payment"]
        refund_lines = [ln for ln in lines if ln.movement == "refund"]
        orders = _orders_by_id(conn, {ln.out_trade_no for ln in payments}, channels)
        hub_refunds = {}
        if refund_lines:
            for row in conn.execute(sa.select(refunds_t).where(
                    refunds_t.c.refund_id.in_({ln.refund_no for ln in refund_lines}))):
                # a refund number of a channel settling through this account wins over one of another channel
                if row.refund_id not in hub_refunds or row.channel in channels:
                    hub_refunds[row.refund_id] = row
        expected_orders, expected_refunds = [], []
        if source != "cod" and channels:
            expected_orders = list(conn.execute(
                sa.select(t.orders.c.hub_id, t.orders.c.channel, t.orders.c.shop, t.orders.c.order_id,
                          t.orders.c.paid_total, t.orders.c.currency, t.orders.c.document)
                .where(t.orders.c.channel.in_(channels), t.orders.c.paid_at >= start, t.orders.c.paid_at < end)))
            expected_refunds = list(conn.execute(
                sa.select(refunds_t).where(refunds_t.c.channel.in_(channels), refunds_t.c.status == "SUCCESS",
                                           refunds_t.c.updated_at >= start, refunds_t.c.updated_at < end)))
        done = set(conn.execute(sa.select(receipts.c.txn_id).where(
            receipts.c.source == source, receipts.c.txn_id.in_({ln.txn_id for ln in payments}))).scalars())

    differs = "cod_differs" if source == "cod" else "amount_differs"
    by_txn = _orders_by_txn(expected_orders)
    matched: list[tuple[sa.Row, sa.Row]] = []
    settled_ids = {ln.out_trade_no for ln in payments}
    for ln in payments:
        report.payments += 1
        report.payment_total += ln.amount
        report.fees += ln.fee
        order = orders.get(ln.out_trade_no)
        if order is None or (channels and order.channel not in channels):
            # the transaction id the channel's order carries is the surer key; an order id alone may be another
            # channel's same-numbered order
            order = by_txn.get(ln.txn_id) or order
        if order is not None:
            settled_ids.add(order.order_id)
        if order is None:
            report.findings.append(Finding(source, "paid_no_order", "payment", ln.txn_id, ln.out_trade_no,
                                           actual=ln.amount))
        elif order.paid_total != ln.amount:
            report.findings.append(Finding(source, differs, "payment", ln.txn_id, ln.out_trade_no, None,
                                           order.hub_id, order.channel, order.paid_total, ln.amount))
        else:
            report.matched += 1
            report.matched_total += ln.amount
            matched.append((ln, order))
    for order in expected_orders:
        document = order.document if isinstance(order.document, dict) else {}
        if order.order_id in settled_ids or document.get("is_cod"):
            continue
        report.findings.append(Finding(source, "order_no_payment", "payment", None, order.order_id, None,
                                       order.hub_id, order.channel, order.paid_total, None))
    for ln in refund_lines:
        report.refunds += 1
        report.refund_total += ln.amount
        report.fees += ln.fee
        refund = hub_refunds.get(ln.refund_no)
        if refund is None:
            report.findings.append(Finding(source, "refund_no_hub_refund", "refund", ln.txn_id, ln.out_trade_no,
                                           ln.refund_no, actual=ln.amount))
            continue
        expected = refund.refunded_amount or refund.requested_amount
        if expected != ln.amount:
            report.findings.append(Finding(source, "amount_differs", "refund", ln.txn_id, ln.out_trade_no,
                                           ln.refund_no, refund.hub_id, refund.channel, expected, ln.amount))
    settled_refunds = {ln.refund_no for ln in refund_lines}
    for refund in expected_refunds:
        if refund.refund_id not in settled_refunds:
            report.findings.append(Finding(source, "refund_not_settled", "refund", None, refund.order_id,
                                           refund.refund_id, refund.hub_id, refund.channel,
                                           refund.refunded_amount or refund.requested_amount, None))
    report.new_receipts = _store(engine, source, day, report.findings, [m for m in matched if m[0].txn_id not in done])
    log.info("reconciled", source=source, day=day.isoformat(), payments=report.payments, refunds=report.refunds,
             matched=report.matched, findings=len(report.findings), new_receipts=report.new_receipts)
    return report


def _store(engine: Engine, source: str, day: date, findings: list[Finding],
           matched: list[tuple[sa.Row, sa.Row]]) -> int:
    now = utcnow()
    new = 0
    with engine.begin() as conn:
        conn.execute(sa.delete(reconciliation_findings).where(reconciliation_findings.c.bill_date == day,
                                                              reconciliation_findings.c.source == source))
        if findings:
            conn.execute(sa.insert(reconciliation_findings), [
                {"bill_date": day, "source": source, "kind": f.kind, "movement": f.movement, "txn_id": f.txn_id,
                 "out_trade_no": f.out_trade_no, "refund_no": f.refund_no, "hub_id": f.hub_id,
                 "channel": f.channel, "expected": f.expected, "actual": f.actual, "found_at": now}
                for f in findings])
        if matched:
            # the claims: a concurrent run that stored the same receipts first makes this insert fail on the primary
            # key, the whole transaction (events included) rolls back, and the retry finds them done
            try:
                conn.execute(sa.insert(receipts), [
                    {"source": source, "txn_id": line.txn_id, "hub_id": order.hub_id, "channel": order.channel,
                     "shop": order.shop, "order_id": order.order_id, "amount": line.amount, "fee": line.fee,
                     "currency": line.currency, "paid_at": line.occurred_at, "bill_date": day, "created_at": now}
                    for line, order in matched])
            except sa.exc.IntegrityError as exc:
                raise TransientError("another reconciliation stored some of these receipts first", source=source,
                                     day=day.isoformat()) from exc
            conn.execute(sa.insert(t.outbox), [
                {"event_type": "receipt.matched", "entity": "receipt", "hub_id": order.hub_id, "version": 1,
                 "created_at": now, "payload": {
                     "source": source, "txn_id": line.txn_id, "order_id": order.order_id, "channel": order.channel,
                     "shop": order.shop, "amount": line.amount, "fee": line.fee, "currency": line.currency,
                     "paid_at": line.occurred_at.isoformat()}}
                for line, order in matched])
            conn.execute(sa.insert(t.audit_trail), [
                {"hub_id": order.hub_id, "at": now, "action": "receipt.matched", "actor": f"reconcile:{source}",
                 "detail": {"txn_id": line.txn_id, "amount": line.amount, "fee": line.fee,
                            "bill_date": day.isoformat()}}
                for line, order in matched])
            new = len(matched)
    return new


def stored_findings(engine: Engine, day: date) -> dict[str, list[Finding]]:
    with reading(engine) as conn:
        rows = conn.execute(sa.select(reconciliation_findings).where(reconciliation_findings.c.bill_date == day)
                            .order_by(reconciliation_findings.c.id)).all()
    out: dict[str, list[Finding]] = defaultdict(list)
    for r in rows:
        out[r.source].append(Finding(r.source, r.kind, r.movement, r.txn_id, r.out_trade_no, r.refund_no, r.hub_id,
                                     r.channel, r.expected, r.actual))
    return dict(out)
