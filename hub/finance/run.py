"""The reconciliation step as the CLI and the daily Airflow DAG run it (``Hub.reconcile``).

For each configured payment account: download the day's statement through the provider's API, parse it, store its
lines, then match them to the hub. COD remittance files come in by ``orderhub reconcile --cod FILE`` (carriers mail
them), each line reconciled on the day it was collected.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from hub.finance.client import StatementClient
from hub.finance.reconcile import ReconcileReport, SourceReport, import_lines, reconcile_day
from hub.finance.settings import FinanceSettings, load_finance_settings
from hub.finance.statements import COD, SHANGHAI, bill_day, parse_alipay, parse_cod_remittance, parse_wechatpay

PARSERS = {"alipay": parse_alipay, "wechatpay": parse_wechatpay}


def default_day() -> date:
    """Yesterday in Asia/Shanghai: the providers publish a day's bill the next morning."""
    return (datetime.now(SHANGHAI) - timedelta(days=1)).date()


def accounts(settings: FinanceSettings) -> dict[str, list[str]]:
    """source -> channels settling through it, for the accounts configured."""
    out = {}
    if settings.alipay:
        out["alipay"] = settings.alipay.channels
    if settings.wechatpay:
        out["wechatpay"] = settings.wechatpay.channels
    return out


def reconcile(engine: Engine, config_path: Path | None, day: date | None = None, *,
              settings: FinanceSettings | None = None, client: StatementClient | None = None) -> ReconcileReport:
    settings = settings or load_finance_settings(config_path)
    day = day or default_day()
    client = client or StatementClient(settings)
    report = ReconcileReport(day)
    for source, channels in accounts(settings).items():
        data = client.download(source, day)
        lines = PARSERS[source](data) if data else []
        imported = import_lines(engine, day, lines)
        one = reconcile_day(engine, source, day, channels)
        one.imported = imported
        report.sources.append(one)
    return report


def import_cod(engine: Engine, data: bytes, cod_channels: list[str]) -> list[SourceReport]:
    lines = parse_cod_remittance(data)
    by_day: dict[date, list] = {}
    for line in lines:
        by_day.setdefault(bill_day(line), []).append(line)
    reports = []
    for day, group in sorted(by_day.items()):
        imported = import_lines(engine, day, group)
        one = reconcile_day(engine, COD, day, cod_channels)
        one.imported = imported
        reports.append(one)
    return reports


def summary(report: ReconcileReport) -> dict:
    """Plain values (strings and ints) for Airflow's XCom and JSON output."""
    return {"day": report.day.isoformat(), "sources": [
        {"source": s.source, "imported": s.imported, "payments": s.payments, "payment_total_fen": s.payment_total,
         "refunds": s.refunds, "refund_total_fen": s.refund_total, "fees_fen": s.fees, "matched": s.matched,
         "matched_total_fen": s.matched_total, "new_receipts": s.new_receipts,
         "findings": {k: {"count": n, "difference_fen": d} for k, (n, d) in s.totals().items()}}
        for s in report.sources]}
