"""Simulated payment statement files (对账单) of Alipay and WeChat Pay, per specs/platform-apis.md §9.

The bills are not invented: they are generated, per calendar day in Asia/Shanghai, from the money the sandbox's own
channels took and gave back - paid Tmall trades (``alipay_no``) and their successful refunds, paid WeChat Channels
orders (``transaction_id``) and their completed after-sales, and POS receipts paid or refunded by Alipay / WeChat Pay.
Those systems are read defensively (a missing or differently shaped system contributes nothing), so a bill always
reflects whatever channels are registered. A reconciliation test then injects the mismatch kinds it wants with the
``payments.*`` knobs, each applied to the first N eligible rows of every file served (rows in time order), and reads
the exact rows and amounts affected from the record of truth (``bills.<provider>.<date>``).

Layouts (§9):
* **Alipay** business detail (业务明细): GBK, 4 ``#`` title lines, the 25-column header, rows whose id-like values end
  with a tab, refund rows (业务类型 退款) with negative amounts, ``#`` footer lines (wording UNCONFIRMED). The real
  download is a ZIP holding that file and a summary file (业务明细(汇总)); both forms are served.
* **WeChat Pay** ``ALL`` bill: UTF-8, the 27-column header, every value prefixed with a back-tick, amounts in yuan
  (fee with 5 decimals), then the 7-column summary header and one summary row. ``bill_type`` SUCCESS / REFUND filter
  the rows. The v2 API ``/pay/downloadbill`` (XML, MD5 or HMAC-SHA256 signed) answers XML errors instead of CSV.

Alipay OpenAPI requests are RSA2-signed in production; that signature is out of scope (§9) and is not checked.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import hmac
import io
import json
import string
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox import clock
from sandbox.faults import _TIMEOUT_FIELDS, FaultError, _count, _number
from sandbox.system import System

if TYPE_CHECKING:
    from sandbox.app import SandboxApp

NAME = "payments"
PREFIX = "/payments"
PROVIDERS = ("alipay", "wechat")
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# Service fee / 手续费 rate the sandbox charges on every payment (refunded pro rata): 0.6 %, the common rate.
FEE_RATE = Decimal("0.006")

ALIPAY_HEADER = [
    "支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号", "门店名称", "操作员",
    "终端号", "对方账户", "订单金额（元）", "商家实收（元）", "支付宝红包（元）", "集分宝（元）", "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）", "券名称", "商家红包消费金额（元）", "卡消费金额（元）", "退款批次号/请求号", "服务费（元）",
    "分润（元）", "备注",
]
ALIPAY_SUMMARY_HEADER = [
    "门店编号", "门店名称", "交易订单总笔数", "退款订单总笔数", "订单金额（元）", "商家实收（元）", "支付宝优惠（元）",
    "商家优惠（元）", "卡消费金额（元）", "服务费（元）", "分润（元）", "实收净额（元）",
]
WECHAT_HEADER = [
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号", "用户标识", "交易类型",
    "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额", "微信退款单号", "商户退款单号", "退款金额",
    "充值券退款金额", "退款类型", "退款状态", "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额",
    "费率备注",
]
WECHAT_SUMMARY_HEADER = ["总交易单数", "应结订单总金额", "退款总金额", "充值券退款总金额", "手续费总金额", "订单总金额",
                         "申请退款总金额"]
WECHAT_BILL_TYPES = ("ALL", "SUCCESS", "REFUND")

MISMATCH_KNOBS = ("missing_payment", "extra_payment", "amount_differs", "refund_unsettled")


@dataclass(frozen=True)
class PayRow:
    """One money movement as the payment provider books it; ``amount`` is always positive."""

    provider: str
    kind: str  # payment | refund
    at: datetime
    trade_no: str  # 支付宝交易号 / 微信订单号 of the payment (refunds carry the original one)
    out_trade_no: str  # 商户订单号
    amount: Decimal
    title: str
    buyer: str
    source: str  # tmall | wechat_shop | pos | extra
    refund_no: str = ""  # 退款批次号 / 商户退款单号
    trade_type: str = "JSAPI"

    @property
    def fee(self) -> Decimal:
        return (self.amount * FEE_RATE).quantize(CENT, ROUND_HALF_UP)

    def as_json(self) -> dict:
        return {"movement": self.kind, "trade_no": self.trade_no, "out_trade_no": self.out_trade_no,
                "refund_no": self.refund_no or None, "amount": str(self.amount), "source": self.source,
                "at": clock.format_wire(self.at)}


def _providers(name: str, value: object) -> list[str]:
    if not isinstance(value, list) or not value or any(item not in PROVIDERS for item in value):
        raise FaultError(f"{name} must be a non-empty list of {', '.join(PROVIDERS)}, got {value!r}")
    return list(value)


def _fen(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value == 0:
        raise FaultError(f"{name} must be a non-zero integer number of fen, got {value!r}")
    return value


def _positive_fen(name: str, value: object) -> int:
    if _fen(name, value) < 0:
        raise FaultError(f"{name} must be a positive integer number of fen, got {value!r}")
    return value  # type: ignore[return-value]


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT, ROUND_HALF_UP))


def _parse_date(text: str | None, compact: bool = False) -> date:
    if not text:
        raise ValueError("date is required (yyyy-MM-dd)")
    return datetime.strptime(text, "%Y%m%d" if compact else "%Y-%m-%d").date()


class PaymentsSystem(System):
    """Daily statement files of one Alipay merchant account and one WeChat Pay merchant."""

    name = NAME
    knob_defaults: ClassVar[dict[str, object]] = {
        f"{NAME}.latency_ms": 0,
        f"{NAME}.http_500": {"calls": 0},
        f"{NAME}.timeout_after_success": {"calls": 0, "methods": [], "sleep_s": 5.0, "mode": "sleep"},
        f"{NAME}.missing_payment": {"count": 0, "providers": list(PROVIDERS)},
        f"{NAME}.extra_payment": {"count": 0, "providers": list(PROVIDERS), "amount_fen": 8888},
        f"{NAME}.amount_differs": {"count": 0, "providers": list(PROVIDERS), "delta_fen": -1},
        f"{NAME}.refund_unsettled": {"count": 0, "providers": list(PROVIDERS)},
    }
    knob_schema: ClassVar[dict[str, object]] = {
        f"{NAME}.latency_ms": _number,
        f"{NAME}.http_500": {"calls": _count},
        f"{NAME}.timeout_after_success": _TIMEOUT_FIELDS,
        f"{NAME}.missing_payment": {"count": _count, "providers": _providers},
        f"{NAME}.extra_payment": {"count": _count, "providers": _providers, "amount_fen": _positive_fen},
        f"{NAME}.amount_differs": {"count": _count, "providers": _providers, "delta_fen": _fen},
        f"{NAME}.refund_unsettled": {"count": _count, "providers": _providers},
    }

    def __init__(self, app: SandboxApp) -> None:
        super().__init__(app)
        self._build()

    def _build(self) -> None:
        rng = self.rng
        self.alipay_app_id = "2021" + "".join(rng.choices(string.digits, k=12))
        self.alipay_pid = "2088" + "".join(rng.choices(string.digits, k=12))
        self.wechat_appid = "wx" + "".join(rng.choices("0123456789abcdef", k=16))
        self.wechat_mch_id = "19" + "".join(rng.choices(string.digits, k=8))
        self.wechat_api_key = "".join(rng.choices(string.ascii_letters + string.digits, k=32))
        self.served: dict[str, dict[str, dict]] = {provider: {} for provider in PROVIDERS}

    def reset(self) -> None:
        super().reset()
        self._build()

    # ------------------------------------------------------------------------------------------- wiring

    def _rules(self, prefix: str) -> list[Rule]:
        return [
            Rule(f"{prefix}/alipay/bill", endpoint=f"{NAME}:alipay", methods=["GET"]),
            Rule(f"{prefix}/wechat/bill", endpoint=f"{NAME}:wechat", methods=["GET"]),
            Rule(f"{prefix}/pay/downloadbill", endpoint=f"{NAME}:downloadbill", methods=["POST"]),
            Rule(f"{prefix}/gateway.do", endpoint=f"{NAME}:gateway", methods=["GET", "POST"]),
        ]

    def rules(self) -> list[Rule]:
        return self._rules(PREFIX)

    def standalone_rules(self) -> list[Rule]:
        return self._rules("")

    def credentials(self) -> dict[str, Any]:
        with self.app.lock:
            return {
                "alipay": {"app_id": self.alipay_app_id, "pid": self.alipay_pid,
                           "gateway_path": f"{PREFIX}/gateway.do", "bill_path": f"{PREFIX}/alipay/bill"},
                "wechat": {"appid": self.wechat_appid, "mch_id": self.wechat_mch_id, "api_key": self.wechat_api_key,
                           "downloadbill_path": f"{PREFIX}/pay/downloadbill", "bill_path": f"{PREFIX}/wechat/bill"},
                "standalone_prefix": "",
            }

    def truth(self) -> dict[str, Any]:
        with self.app.lock:
            return {"bills": {provider: {day: dict(info) for day, info in sorted(days.items())}
                              for provider, days in self.served.items()}}

    def handle(self, endpoint: str, request: Request, **args: str) -> Response:
        what = endpoint.split(":", 1)[1]
        app = self.app
        with app.lock:
            latency = float(app.faults.get(f"{NAME}.latency_ms"))  # type: ignore[arg-type]
        if latency:
            app.pause(latency / 1000)
        stall = None
        with app.lock:
            if app.faults.consume(f"{NAME}.http_500"):
                return Response("<html><body><h1>500 Internal Server Error</h1></body></html>", status=500,
                                mimetype="text/html")
            handler: Callable[[Request], tuple[Response, bool]] = getattr(self, f"_{what}")
            response, ok = handler(request)
            if ok:
                stall = app.faults.consume_timeout(f"{NAME}.timeout_after_success", what)
        if stall:
            app.stall(stall, request.environ)
        return response

    # ------------------------------------------------------------------------------------------- endpoints

    def _alipay(self, request: Request) -> tuple[Response, bool]:
        try:
            day = _parse_date(request.args.get("date"))
        except ValueError:
            return _error_json("date must be yyyy-MM-dd"), False
        fmt = request.args.get("format", "csv")
        if fmt not in ("csv", "zip", "summary"):
            return _error_json("format must be csv, zip or summary"), False
        rows = self.bill_rows("alipay", day)
        detail, summary = self.alipay_detail(rows, day), self.alipay_summary(rows, day)
        if fmt == "zip":
            stem = f"{self.alipay_pid}{day:%Y%m%d}"
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(f"{stem}_业务明细.csv", detail.encode("gbk"))
                archive.writestr(f"{stem}_业务明细(汇总).csv", summary.encode("gbk"))
            return Response(buffer.getvalue(), mimetype="application/zip",
                            headers={"Content-Disposition": f"attachment; filename={stem}.csv.zip"}), True
        text = detail if fmt == "csv" else summary
        return Response(text.encode("gbk"), content_type="text/csv;charset=GBK"), True

    def _wechat(self, request: Request) -> tuple[Response, bool]:
        try:
            day = _parse_date(request.args.get("date"))
        except ValueError:
            return _error_json("date must be yyyy-MM-dd"), False
        bill_type = request.args.get("bill_type", "ALL")
        if bill_type not in WECHAT_BILL_TYPES:
            return _error_json(f"bill_type must be one of {', '.join(WECHAT_BILL_TYPES)}"), False
        text = self.wechat_bill(self.bill_rows("wechat", day), bill_type)
        return Response(text.encode("utf-8"), content_type="text/csv;charset=utf-8"), True

    def _downloadbill(self, request: Request) -> tuple[Response, bool]:
        """WeChat Pay v2 ``POST /pay/downloadbill``: signed XML in, CSV (or gzip) out, XML on errors."""
        try:
            root = ET.fromstring(request.get_data())
            params = {child.tag: (child.text or "").strip() for child in root}
        except ET.ParseError:
            return _wechat_fail("XML格式错误", "20001"), False
        for name in ("appid", "mch_id", "nonce_str", "bill_date", "sign"):
            if not params.get(name):
                return _wechat_fail(f"缺少参数 {name}", "20001"), False
        if params["appid"] != self.wechat_appid or params["mch_id"] != self.wechat_mch_id:
            return _wechat_fail("appid和mch_id不匹配", "20001"), False
        if params["sign"] != wechat_pay_sign(params, self.wechat_api_key, params.get("sign_type", "MD5")):
            return _wechat_fail("签名错误", "20001"), False
        bill_type = params.get("bill_type") or "ALL"
        if bill_type not in WECHAT_BILL_TYPES:
            return _wechat_fail("bill_type 参数错误", "20001"), False
        try:
            day = _parse_date(params["bill_date"], compact=True)
        except ValueError:
            return _wechat_fail("bill_date 格式错误", "20001"), False
        if day >= self.app.now().date():
            return _wechat_fail("invalid bill_date", "20001"), False  # today's bill is generated tomorrow
        rows = self.bill_rows("wechat", day)
        if not rows:
            return _wechat_fail("No Bill Exist", "20002"), False
        body = self.wechat_bill(rows, bill_type).encode("utf-8")
        if params.get("tar_type") == "GZIP":
            return Response(gzip.compress(body, mtime=0), mimetype="application/x-gzip"), True
        return Response(body, content_type="text/plain;charset=utf-8"), True

    def _gateway(self, request: Request) -> tuple[Response, bool]:
        """Alipay ``alipay.data.dataservice.bill.downloadurl.query`` (RSA2 sign not checked, §9)."""
        params = {**{k: request.args[k] for k in request.args}, **{k: request.form[k] for k in request.form}}
        key = "alipay_data_dataservice_bill_downloadurl_query_response"
        if params.get("method") != "alipay.data.dataservice.bill.downloadurl.query":
            return _alipay_answer("error_response", "40004", "Business Failed", "isv.invalid-method",
                                  "sandbox implements only alipay.data.dataservice.bill.downloadurl.query"), False
        if params.get("app_id") != self.alipay_app_id:
            return _alipay_answer(key, "40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID参数"), False
        try:
            biz = json.loads(params.get("biz_content") or "{}")
            bill_type, day = biz.get("bill_type"), _parse_date(biz.get("bill_date"))
        except (ValueError, AttributeError):
            return _alipay_answer(key, "40002", "Invalid Arguments", "isv.invalid-parameter",
                                  "biz_content 需要 bill_type 和 bill_date (yyyy-MM-dd)"), False
        if bill_type != "trade":  # signcustomer (fund flow) is not simulated
            return _alipay_answer(key, "40002", "Invalid Arguments", "isv.invalid-parameter",
                                  "bill_type 只支持 trade (sandbox)"), False
        if day >= self.app.now().date() or not self.bill_rows("alipay", day):
            return _alipay_answer(key, "40004", "Business Failed", "isp.bill_not_exist", "账单不存在"), False
        base = request.host_url.rstrip("/") + request.path.rsplit("/gateway.do", 1)[0]
        url = f"{base}/alipay/bill?" + urlencode({"date": day.isoformat(), "format": "zip"})
        return _alipay_answer(key, "10000", "Success", bill_download_url=url), True

    # ------------------------------------------------------------------------------------------- rows

    def bill_rows(self, provider: str, day: date) -> list[PayRow]:
        """The rows of ``provider``'s bill for ``day`` (caller holds the app lock), mismatch knobs applied; also
        records the file in the truth."""
        start = datetime.combine(day, time(), tzinfo=clock.shanghai())
        end = start + timedelta(days=1)
        genuine = sorted((row for row in self._collect(provider) if start <= row.at < end),
                         key=lambda r: (r.at, r.kind != "payment", r.out_trade_no, r.refund_no))
        rows, mismatches = self._inject(provider, day, genuine)
        payments = [r for r in rows if r.kind == "payment"]
        refunds = [r for r in rows if r.kind == "refund"]
        record = self.served[provider].setdefault(day.isoformat(), {"downloads": 0})
        record.update({
            "downloads": record["downloads"] + 1,
            "payments": len(payments), "refunds": len(refunds),
            "payment_total": _money(sum((r.amount for r in payments), ZERO)),
            "refund_total": _money(sum((r.amount for r in refunds), ZERO)),
            "genuine_payment_total": _money(sum((r.amount for r in genuine if r.kind == "payment"), ZERO)),
            "genuine_refund_total": _money(sum((r.amount for r in genuine if r.kind == "refund"), ZERO)),
            "mismatches": mismatches,
        })
        return rows

    def _inject(self, provider: str, day: date, rows: list[PayRow]) -> tuple[list[PayRow], list[dict]]:
        knobs = {kind: self.app.faults.get(f"{NAME}.{kind}") for kind in MISMATCH_KNOBS}
        active = {kind: knob for kind, knob in knobs.items()
                  if knob["count"] and provider in knob["providers"]}  # type: ignore[index]
        mismatches: list[dict] = []
        if not active:
            return rows, mismatches
        out = list(rows)

        def first(kind: str, count: int, exclude: set[int]) -> list[int]:
            return [i for i, r in enumerate(out) if r.kind == kind and i not in exclude][:count]

        dropped: set[int] = set()
        if "missing_payment" in active:
            for i in first("payment", active["missing_payment"]["count"], dropped):
                dropped.add(i)
                mismatches.append({**out[i].as_json(), "kind": "missing_payment"})
        if "refund_unsettled" in active:
            for i in first("refund", active["refund_unsettled"]["count"], dropped):
                dropped.add(i)
                mismatches.append({**out[i].as_json(), "kind": "refund_unsettled"})
        if "amount_differs" in active:
            delta = Decimal(active["amount_differs"]["delta_fen"]) / 100
            for i in first("payment", active["amount_differs"]["count"], dropped):
                changed = replace(out[i], amount=max(out[i].amount + delta, CENT))
                mismatches.append({**changed.as_json(), "kind": "amount_differs", "expected": str(out[i].amount)})
                out[i] = changed
        out = [r for i, r in enumerate(out) if i not in dropped]
        if "extra_payment" in active:
            knob = active["extra_payment"]
            amount = (Decimal(knob["amount_fen"]) / 100).quantize(CENT)
            for n in range(1, knob["count"] + 1):
                stamp = datetime.combine(day, time(12, 0, n % 60), tzinfo=clock.shanghai())
                trade_no = (f"{day:%Y%m%d}2200{9000000000000000 + n}" if provider == "alipay"
                            else f"4200{9000000000 + n}{day:%Y%m%d}{n:04d}")
                row = PayRow(provider, "payment", stamp, trade_no, f"SBX-EXTRA-{day:%Y%m%d}-{n:03d}", amount,
                             "未知来源收款", "unknown", "extra")
                out.append(row)
                mismatches.append({**row.as_json(), "kind": "extra_payment"})
            out.sort(key=lambda r: (r.at, r.kind != "payment", r.out_trade_no, r.refund_no))
        return out, mismatches

    def _collect(self, provider: str) -> Iterable[PayRow]:
        # Each source is read defensively: other systems evolve independently, and a bill must never fail because
        # one of them changed shape. A source that cannot be read contributes nothing.
        sources = (self._tmall_rows, self._pos_rows) if provider == "alipay" else (self._wechat_shop_rows,
                                                                                   self._pos_rows)
        for source in sources:
            try:
                yield from list(source(provider))
            except (AttributeError, KeyError, TypeError, ValueError, ArithmeticError):
                continue

    def _tmall_rows(self, provider: str) -> Iterable[PayRow]:
        world = self.app.world
        for trade in getattr(world, "trades", {}).values():
            data = trade.data
            if not data.get("pay_time") or data.get("type") == "cod":
                continue
            # Recomputed from the lines so a trade whose wire payment is malformed ("bad_amount") still settles
            # for what the buyer really paid.
            amount = sum((Decimal(line["divide_order_fee"]) for line in trade.lines), ZERO) + Decimal(
                data.get("post_fee") or "0")
            title = trade.lines[0]["title"] if trade.lines else ""
            paid_at = clock.parse_wire(data["pay_time"])
            yield PayRow("alipay", "payment", paid_at, data["alipay_no"], str(trade.tid), amount, title,
                         trade.buyer.masked_nick, "tmall")
        for refund in getattr(world, "refunds", {}).values():
            if refund.status != "SUCCESS":
                continue
            trade = world.trades[refund.tid]
            line = next((ln for ln in trade.lines if ln["oid"] == refund.oid), trade.lines[0])
            yield PayRow("alipay", "refund", refund.modified, trade.data["alipay_no"], str(trade.tid),
                         Decimal(refund.refund_fee), line["title"], trade.buyer.masked_nick, "tmall",
                         refund_no=str(refund.refund_id))

    def _wechat_shop_rows(self, provider: str) -> Iterable[PayRow]:
        shop = self.app.systems.get("wechat_shop")
        if shop is None:
            return
        appid_rows = []
        for order in getattr(shop, "orders", {}).values():
            detail = order.data["order_detail"]
            pay = detail.get("pay_info") or {}
            if not pay.get("pay_time") or not pay.get("transaction_id"):
                continue
            price = detail["price_info"]
            # order_price may be malformed on the wire ("bad_amount"); rebuild it from its parts, in fen.
            fen = (int(price["product_price"]) - int(price["merchant_discounted_price"])
                   - int(price["finder_discounted_price"]) + int(price["freight"]))
            lines = detail.get("product_infos") or [{}]
            appid_rows.append(PayRow("wechat", "payment", _from_unix(pay["pay_time"]), pay["transaction_id"],
                                     order.order_id, Decimal(fen) / 100, lines[0].get("title", ""),
                                     order.data.get("openid", ""), "wechat_shop"))
        for aftersale in getattr(shop, "aftersales", {}).values():
            data = aftersale.data
            if data["status"] not in ("MERCHANT_REFUND_SUCCESS", "MERCHANT_RETURN_SUCCESS"):
                continue
            order = shop.orders[data["order_id"]]
            pay = order.data["order_detail"]["pay_info"]
            appid_rows.append(PayRow("wechat", "refund", _from_unix(data["update_time"]), pay["transaction_id"],
                                     order.order_id, Decimal(int(data["refund_info"]["amount"])) / 100,
                                     aftersale.line.get("title", ""), data.get("openid", ""), "wechat_shop",
                                     refund_no=str(data["after_sale_order_id"])))
        yield from appid_rows

    def _pos_rows(self, provider: str) -> Iterable[PayRow]:
        pos = self.app.systems.get("pos")
        if pos is None:
            return
        method = "ALIPAY" if provider == "alipay" else "WECHAT_PAY"
        for receipt in getattr(pos, "receipts", {}).values():
            data = receipt.data
            for payment in data.get("payments") or []:
                if payment.get("method") != method or not payment.get("trace_no"):
                    continue
                refund = data.get("type") == "RETURN"
                amount = abs(Decimal(payment["amount"]))
                out_trade_no = data["original_receipt_no"] if refund else receipt.receipt_no
                title = (data.get("lines") or [{}])[0].get("item_name", "门店消费")
                yield PayRow(provider, "refund" if refund else "payment", receipt.sale_time, payment["trace_no"],
                             out_trade_no, amount, title, data.get("member_id") or "", "pos",
                             refund_no=receipt.receipt_no if refund else "", trade_type="MICROPAY")

    # ------------------------------------------------------------------------------------------- files

    def alipay_detail(self, rows: list[PayRow], day: date) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        buffer.write("#支付宝业务明细查询\r\n")
        buffer.write(f"#账号：[{self.alipay_pid}0156]\r\n")
        buffer.write(f"#起始日期：[{day:%Y年%m月%d日} 00:00:00]   终止日期：[{day + timedelta(days=1):%Y年%m月%d日} "
                     "00:00:00]\r\n")
        buffer.write("#-----------------------------------------业务明细列表----------------------------------------\r\n")
        writer.writerow(ALIPAY_HEADER)
        for row in rows:
            sign = -1 if row.kind == "refund" else 1
            stamp = clock.format_wire(row.at)
            # 服务费 is charged on payments (negative) and given back on refunds (positive).
            writer.writerow([
                row.trade_no + "\t", row.out_trade_no + "\t", "退款" if row.kind == "refund" else "交易", row.title,
                stamp, stamp, "", "", "", "", row.buyer, _money(sign * row.amount), _money(sign * row.amount),
                "0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00", "0.00",
                (row.refund_no + "\t") if row.refund_no else "", _money(-sign * row.fee), "0.00", "",
            ])
        buffer.write("#-----------------------------------------业务明细列表结束------------------------------------\r\n")
        payments = [r for r in rows if r.kind == "payment"]
        refunds = [r for r in rows if r.kind == "refund"]
        paid = sum((r.amount for r in payments), ZERO)
        back = sum((r.amount for r in refunds), ZERO)
        fees = sum((r.fee for r in refunds), ZERO) - sum((r.fee for r in payments), ZERO)
        buffer.write(f"#交易合计：{len(payments)}笔，商家实收：{_money(paid)}元，退款合计：{len(refunds)}笔，"
                     f"商家实收退款：{_money(-back)}元，服务费：{_money(fees)}元\r\n")
        buffer.write(f"#导出时间：[{day + timedelta(days=1):%Y年%m月%d日} 09:00:00]\r\n")
        return buffer.getvalue()

    def alipay_summary(self, rows: list[PayRow], day: date) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        buffer.write("#支付宝业务汇总查询\r\n")
        buffer.write(f"#账号：[{self.alipay_pid}0156]\r\n")
        buffer.write(f"#起始日期：[{day:%Y年%m月%d日} 00:00:00]   终止日期：[{day + timedelta(days=1):%Y年%m月%d日} "
                     "00:00:00]\r\n")
        buffer.write("#-----------------------------------------业务汇总列表----------------------------------------\r\n")
        writer.writerow(ALIPAY_SUMMARY_HEADER)
        payments = [r for r in rows if r.kind == "payment"]
        refunds = [r for r in rows if r.kind == "refund"]
        net = sum((r.amount for r in payments), ZERO) - sum((r.amount for r in refunds), ZERO)
        fees = sum((r.fee for r in refunds), ZERO) - sum((r.fee for r in payments), ZERO)
        writer.writerow(["合计", "", len(payments), len(refunds), _money(net), _money(net), "0.00", "0.00", "0.00",
                         _money(fees), "0.00", _money(net + fees)])
        buffer.write("#-----------------------------------------业务汇总列表结束------------------------------------\r\n")
        buffer.write(f"#导出时间：[{day + timedelta(days=1):%Y年%m月%d日} 09:00:00]\r\n")
        return buffer.getvalue()

    def wechat_bill(self, rows: list[PayRow], bill_type: str) -> str:
        if bill_type == "SUCCESS":
            rows = [r for r in rows if r.kind == "payment"]
        elif bill_type == "REFUND":
            rows = [r for r in rows if r.kind == "refund"]
        buffer = io.StringIO()
        buffer.write(",".join(WECHAT_HEADER) + "\r\n")
        settle = refunded = fees = ordered = asked = ZERO
        for row in rows:
            refund = row.kind == "refund"
            fee = -row.fee if refund else row.fee
            settle_amount = ZERO if refund else row.amount
            refund_amount = row.amount if refund else ZERO
            values = [
                clock.format_wire(row.at), self.wechat_appid, self.wechat_mch_id, "0", "", row.trade_no,
                row.out_trade_no, row.buyer, row.trade_type, "REFUND" if refund else "SUCCESS", "OTHERS", "CNY",
                _money(settle_amount), "0.00", _wechat_refund_id(row) if refund else "0",
                row.refund_no if refund else "0", _money(refund_amount), "0.00", "ORIGINAL" if refund else "",
                "SUCCESS" if refund else "", row.title, "", f"{fee:.5f}", "0.60%", _money(settle_amount),
                _money(refund_amount), "",
            ]
            buffer.write(",".join("`" + value.replace(",", "，") for value in values) + "\r\n")
            settle += settle_amount
            refunded += refund_amount
            fees += fee
            ordered += settle_amount
            asked += refund_amount
        buffer.write(",".join(WECHAT_SUMMARY_HEADER) + "\r\n")
        summary = [str(len(rows)), _money(settle), _money(refunded), "0.00", f"{fees:.5f}", _money(ordered),
                   _money(asked)]
        buffer.write(",".join("`" + value for value in summary) + "\r\n")
        return buffer.getvalue()


def wechat_pay_sign(params: dict[str, str], api_key: str, sign_type: str = "MD5") -> str:
    """§9 v2 signature: sorted non-empty ``k=v`` joined by ``&``, ``&key=<apiKey>`` appended; MD5 (or
    HMAC-SHA256 keyed by the API key when ``sign_type`` says so), upper-case hex."""
    text = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if v and k != "sign") + f"&key={api_key}"
    if sign_type == "HMAC-SHA256":
        return hmac.new(api_key.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest().upper()
    return hashlib.md5(text.encode("utf-8")).hexdigest().upper()


def _wechat_refund_id(row: PayRow) -> str:
    # WeChat's own refund id (50...) - derived from the merchant refund number so it is stable across downloads.
    digest = int(hashlib.sha256(f"{row.trade_no}:{row.refund_no}".encode()).hexdigest(), 16)
    return f"50{digest % 10**26:026d}"


def _from_unix(value: int) -> datetime:
    return datetime.fromtimestamp(int(value), clock.shanghai())


def _error_json(message: str) -> Response:
    return Response(json.dumps({"error": message}, ensure_ascii=False), status=400,
                    content_type="application/json")


def _wechat_fail(message: str, code: str) -> Response:
    body = (f"<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[{message}]]></return_msg>"
            f"<error_code><![CDATA[{code}]]></error_code></xml>")
    return Response(body, content_type="text/xml;charset=utf-8")


def _alipay_answer(key: str, code: str, msg: str, sub_code: str | None = None, sub_msg: str | None = None,
                   **fields: str) -> Response:
    inner: dict[str, str] = {"code": code, "msg": msg}
    if sub_code:
        inner.update(sub_code=sub_code, sub_msg=sub_msg or "")
    inner.update(fields)
    # The response signature (RSA2) is out of scope; a fixed marker tells clients not to verify it.
    return Response(json.dumps({key: inner, "sign": "SANDBOX-UNSIGNED"}, ensure_ascii=False),
                    content_type="application/json;charset=utf-8")
