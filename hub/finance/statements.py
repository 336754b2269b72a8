"""Parsers of the payment statement files, in the real files' layouts (spec §9, sandbox/docs/payments.md).

Pure functions: bytes in, ``StatementLine`` out, money as integer fen (never floats), times aware (the files speak
Asia/Shanghai). What each layout needs:

* **Alipay 业务明细** (GBK, CRLF): ``#`` title and footer lines (footer wording is UNCONFIRMED, so every ``#`` line is
  skipped rather than parsed), one header, id-like values ending with a tab, refund rows (业务类型 退款) with negative
  amounts. The API download is a ZIP holding the detail file and a summary file; the detail is the one whose name
  does not contain 汇总.
* **WeChat Pay** (UTF-8): one header, every value prefixed by a back-tick, then a summary header (总交易单数...) and
  one summary row. 交易状态 SUCCESS rows are payments (应结订单金额), REFUND rows refunds (退款金额).
* **COD remittance**: a carrier's collection list as CSV ``waybill_no,order_id,collected,collected_at`` (yuan,
  ``yyyy-MM-dd HH:mm:ss``); carriers' own layouts differ, so this is the hub's import format.

A row that cannot be read raises ``RecordError`` naming the line: a statement is all or nothing, since a silently
skipped row would turn into a false "order but no payment".
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from hub.errors import RecordError

SHANGHAI = ZoneInfo("Asia/Shanghai")
ALIPAY, WECHATPAY, COD = "alipay", "wechatpay", "cod"


@dataclass(frozen=True)
class StatementLine:
    source: str  # alipay | wechatpay | cod
    movement: str  # payment | refund
    txn_id: str
    out_trade_no: str
    amount: int  # fen, positive
    fee: int  # fen charged (negative when given back on a refund)
    occurred_at: datetime
    refund_no: str = ""
    currency: str = "CNY"
    raw: dict = field(default_factory=dict, compare=False)


def to_fen(text: str, *, where: str) -> int:
    """Yuan as written in a statement ("1235.10", "-7.41", "0.00740") -> fen, half-up for the 5-decimal fees."""
    try:
        value = Decimal(text.strip().replace(",", ""))
    except InvalidOperation:
        raise RecordError(f"{where}: not an amount: {text!r}", group_key="statement amount unreadable") from None
    return int((value * 100).quantize(Decimal(1), ROUND_HALF_UP))


def _time(text: str, *, where: str) -> datetime:
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
    except ValueError:
        raise RecordError(f"{where}: not a time: {text!r}", group_key="statement time unreadable") from None


def _clean(value: str) -> str:
    # Alipay ends id-like cells with a tab (so spreadsheets keep them as text); WeChat starts every cell with `.
    return value.strip().lstrip("`").strip()


def alipay_detail_text(data: bytes) -> str:
    """The detail CSV's text, from either the ZIP the API points at or the bare CSV."""
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [n for n in archive.namelist() if "汇总" not in n]
            if not names:
                raise RecordError("Alipay bill ZIP holds no detail file", group_key="alipay bill layout")
            data = archive.read(names[0])
    return data.decode("gbk")


def _alipay_summary(data: bytes) -> dict[str, str] | None:
    """The 合计 row of the ZIP's summary file (业务明细(汇总)), or None for a bare detail CSV."""
    if data[:2] != b"PK":
        return None
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = [n for n in archive.namelist() if "汇总" in n]
        if not names:
            return None
        text = archive.read(names[0]).decode("gbk")
    rows = list(csv.reader(line for line in text.splitlines() if line and not line.startswith("#")))
    if len(rows) < 2:
        return None
    header = [_clean(h) for h in rows[0]]
    total = next((r for r in rows[1:] if r and _clean(r[0]) == "合计"), None)
    return dict(zip(header, (_clean(c) for c in total), strict=False)) if total else None


def parse_alipay(data: bytes) -> list[StatementLine]:
    """The detail rows; when the ZIP carries its summary file, the rows must add up to it (a truncated download
    or a misread row would otherwise show up as false mismatches)."""
    lines = _parse_alipay_detail(data)
    summary = _alipay_summary(data)
    if summary:
        payments = [ln for ln in lines if ln.movement == "payment"]
        refunds = [ln for ln in lines if ln.movement == "refund"]
        net = sum(ln.amount for ln in payments) - sum(ln.amount for ln in refunds)
        want = (int(summary.get("交易订单总笔数") or -1), int(summary.get("退款订单总笔数") or -1),
                to_fen(summary.get("商家实收（元）") or "0", where="alipay summary"))
        if (len(payments), len(refunds), net) != want:
            raise RecordError(f"Alipay detail ({len(payments)} payments, {len(refunds)} refunds, net {net} fen) does "
                              f"not add up to its summary {want}", group_key="alipay bill incomplete")
    return lines


def _parse_alipay_detail(data: bytes) -> list[StatementLine]:
    text = alipay_detail_text(data)
    rows = list(csv.reader(line for line in text.splitlines() if line and not line.startswith("#")))
    if not rows:
        return []
    header = [_clean(h) for h in rows[0]]
    need = ("支付宝交易号", "商户订单号", "业务类型", "完成时间", "订单金额（元）", "退款批次号/请求号", "服务费（元）")
    missing = [n for n in need if n not in header]
    if missing:
        raise RecordError(f"Alipay bill header lacks {', '.join(missing)}", group_key="alipay bill layout")
    col = {name: header.index(name) for name in need}
    lines = []
    for number, row in enumerate(rows[1:], start=2):
        where = f"alipay bill row {number}"
        cells = {name: _clean(row[i]) if i < len(row) else "" for name, i in col.items()}
        kind = cells["业务类型"]
        if kind not in ("交易", "退款"):
            continue  # other business types (e.g. 转账) are not order money
        refund = kind == "退款"
        lines.append(StatementLine(
            ALIPAY, "refund" if refund else "payment", cells["支付宝交易号"], cells["商户订单号"],
            abs(to_fen(cells["订单金额（元）"], where=where)),
            -to_fen(cells["服务费（元）"] or "0", where=where),  # the file shows the fee as money out (negative)
            _time(cells["完成时间"], where=where), refund_no=cells["退款批次号/请求号"] if refund else "",
            raw=dict(zip(header, (_clean(c) for c in row), strict=False))))
    return lines


def parse_wechatpay(data: bytes) -> list[StatementLine]:
    text = data.decode("utf-8-sig")
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        return []
    header = [_clean(h) for h in rows[0]]
    need = ("交易时间", "微信订单号", "商户订单号", "交易状态", "应结订单金额", "商户退款单号", "退款金额", "手续费")
    missing = [n for n in need if n not in header]
    if missing:
        raise RecordError(f"WeChat Pay bill header lacks {', '.join(missing)}", group_key="wechatpay bill layout")
    col = {name: header.index(name) for name in need}
    lines = []
    for number, row in enumerate(rows[1:], start=2):
        if row and _clean(row[0]) == "总交易单数":
            break  # the summary block
        if not row:
            continue
        where = f"wechatpay bill row {number}"
        cells = {name: _clean(row[i]) if i < len(row) else "" for name, i in col.items()}
        state = cells["交易状态"]
        if state not in ("SUCCESS", "REFUND"):
            continue  # REVOKED, NOTPAY...: no money moved
        refund = state == "REFUND"
        amount = to_fen(cells["退款金额" if refund else "应结订单金额"], where=where)
        lines.append(StatementLine(
            WECHATPAY, "refund" if refund else "payment", cells["微信订单号"], cells["商户订单号"], abs(amount),
            to_fen(cells["手续费"] or "0", where=where), _time(cells["交易时间"], where=where),
            refund_no=cells["商户退款单号"] if refund else "",
            raw=dict(zip(header, (_clean(c) for c in row), strict=False))))
    return lines


def parse_cod_remittance(data: bytes) -> list[StatementLine]:
    reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
    need = {"waybill_no", "order_id", "collected", "collected_at"}
    if not need <= set(reader.fieldnames or ()):
        raise RecordError(f"COD remittance needs columns {', '.join(sorted(need))}", group_key="cod file layout")
    lines = []
    for number, row in enumerate(reader, start=2):
        where = f"cod remittance row {number}"
        lines.append(StatementLine(COD, "payment", row["waybill_no"].strip(), row["order_id"].strip(),
                                   to_fen(row["collected"], where=where), 0, _time(row["collected_at"], where=where),
                                   raw=dict(row)))
    return lines


def bill_day(line: StatementLine) -> date:
    return line.occurred_at.astimezone(SHANGHAI).date()
