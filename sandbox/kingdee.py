"""Simulated Kingdee Cloud Galaxy (金蝶云星空) WebAPI, per specs/platform-apis.md §7.1.

Every call is ``POST {server}/k3cloud/{ServiceName}.common.kdsvc`` with a JSON body. On the shared port the server
root is ``/kingdee`` (so ``{server}`` = ``http://127.0.0.1:<port>/kingdee``); served alone
(``--system kingdee``) the paths are the real ``/k3cloud/...`` ones, so a client needs only host and port changed.

Authentication, both ways of §7.1:
- classic session: ``AuthService.ValidateUser`` / ``LoginByAppSecret`` answer ``LoginResultType`` 1 and set the
  cookies ``kdservice-sessionid`` and ``ASP.NET_SessionId``; later calls carry one of them (cookie or header). A lost
  session answers ``ErrorCode 500`` with ``会话信息已丢失，请重新登录`` (the text clients detect to re-login
  and replay);
- SDK 8.x header signing: ``X-Kd-Appkey`` + ``X-Kd-Appdata`` + ``X-Kd-Signature`` (base64 of the **hex** HMAC-SHA256,
  the odd encoding of the SDK). ``X-Api-Signature`` is not checked: its key is derived inside the SDK (§7.1).

Business services (``DynamicFormService``): Save, Submit, Audit, View, ExecuteBillQuery for customers
(``BD_Customer``, keyed by ``FNumber``), sales orders (``SAL_SaleOrder``), receivables (``AR_receivable``) and
vouchers (``GL_VOUCHER``), all keyed by ``FBillNo``. A Save without ``FID`` that repeats an existing number is
**rejected as a duplicate** (``MsgCode`` 11, as the spec's example says), the way a real tenant with unique bill
numbers answers; a hub that lost a Save reply must therefore probe with ``ExecuteBillQuery`` on ``FBillNo`` before
retrying. The record of truth counts every Save that named a number (``received``) against the bills created.

MsgCode values other than 11 are UNCONFIRMED (§11); the sandbox's choices are in ``sandbox/docs/kingdee.md``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from sandbox.faults import _TIMEOUT_FIELDS, _count, _number
from sandbox.system import System

if TYPE_CHECKING:
    from sandbox.app import SandboxApp

NAME = "kingdee"
PREFIX = "/kingdee"
SUFFIX = ".common.kdsvc"
AUTH = "Kingdee.BOS.WebApi.ServicesStub.AuthService."
FORM = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService."
SESSION_COOKIES = ("kdservice-sessionid", "ASP.NET_SessionId")
SESSION_LOST = "会话信息已丢失，请重新登录"
LCID = 2052

# MsgCode choices (UNCONFIRMED except 11, which the spec gives as "duplicate number").
MSG_OK = 0
MSG_SESSION_LOST = 1
MSG_NO_PERMISSION = 2
MSG_EXCEPTION = 4
MSG_DUPLICATE = 11
MSG_BAD_STATE = 12
MSG_VALIDATION = 13

# FDocumentStatus letters: Z 暂存, A 创建, B 审核中, C 已审核, D 重新审核 (only C is confirmed by the spec).
CREATED, SUBMITTED, AUDITED = "A", "B", "C"

# Preset base data of the simulated tenant. Customers can be added with BD_Customer Save; materials are the world's
# catalogue SKUs; the voucher chart is the standard PRC chart's first-level codes (accept "code.sub" too).
PRESET_CUSTOMERS = {
    "CUST-TMALL": "天猫零售客户", "CUST-JD": "京东零售客户", "CUST-WECHAT": "微信小店零售客户",
    "CUST-POS": "门店零售客户", "CUST-PDD": "拼多多零售客户", "CUST-DOUYIN": "抖店零售客户",
}
ACCOUNTS = {
    "1001": "库存现金", "1002": "银行存款", "1012": "其他货币资金", "1122": "应收账款", "1405": "库存商品",
    "2202": "应付账款", "2203": "预收账款", "2221": "应交税费", "6001": "主营业务收入", "6401": "主营业务成本",
    "6601": "销售费用", "6603": "财务费用",
}
ORG = "100"
ACCOUNT_BOOK = "001"


@dataclass(frozen=True)
class FormDef:
    """What the sandbox checks on Save for one form: key field, auto-number prefix, required fields, entry table."""

    key: str
    prefix: str
    required: tuple[str, ...]
    entry: str | None = None
    entry_required: tuple[str, ...] = ()
    customer: str | None = None  # header field that references a customer
    material: str | None = None  # entry field that references a material


FORMS = {
    "BD_Customer": FormDef(key="FNumber", prefix="CUST", required=("FName",)),
    "SAL_SaleOrder": FormDef(key="FBillNo", prefix="XSDD", required=("FDate", "FSaleOrgId", "FCustId"),
                             entry="FSaleOrderEntry", entry_required=("FMaterialId", "FQty"),
                             customer="FCustId", material="FMaterialId"),
    "AR_receivable": FormDef(key="FBillNo", prefix="AR", required=("FDate", "FCustomerID", "FSettleOrgID"),
                             entry="FEntityDetail", entry_required=("FMaterialID", "FPriceQty"),
                             customer="FCustomerID", material="FMaterialID"),
    "GL_VOUCHER": FormDef(key="FBillNo", prefix="PZ", required=("FDate", "FAccountBookID"),
                          entry="FEntity", entry_required=("FAccountID",)),
}
FIRST_ID = 100001


class KingdeeError(Exception):
    """A failed operation: becomes ``IsSuccess false`` with one entry in ``Errors``."""

    def __init__(self, msg_code: int, message: str, field_name: str | None = None, index: int = 0) -> None:
        super().__init__(message)
        self.msg_code = msg_code
        self.message = message
        self.field_name = field_name
        self.index = index

    def error(self) -> dict:
        return {"FieldName": self.field_name, "Message": self.message, "DIndex": self.index}


@dataclass
class Bill:
    """A saved document (or customer) as the tenant holds it."""

    form_id: str
    id: int
    number: str
    model: dict
    status: str
    created_at: datetime
    modified_at: datetime


@dataclass
class Receipt:
    """Truth about one document number: how often it was sent, whether it exists, where it is in its lifecycle."""

    received: int = 0
    created: int = 0
    duplicates: int = 0
    updates: int = 0
    bill: Bill | None = None

    def as_json(self) -> dict:
        return {"received": self.received, "created": self.created, "duplicates": self.duplicates,
                "updates": self.updates, "status": self.bill.status if self.bill else None,
                "id": self.bill.id if self.bill else None}


@dataclass
class Session:
    id: str
    user: str
    issued_at: float


@dataclass
class Tenant:
    """The simulated data center: credentials, sessions and the bills saved so far."""

    acct_id: str
    username: str
    password: str
    app_id: str
    app_secret: str
    sessions: dict[str, Session] = field(default_factory=dict)
    bills: dict[str, dict[str, Bill]] = field(default_factory=dict)  # form -> number -> bill
    receipts: dict[str, dict[str, Receipt]] = field(default_factory=dict)  # form -> number -> receipt
    next_id: int = FIRST_ID
    numbers: dict[str, int] = field(default_factory=dict)  # form -> last auto number


def _ci(mapping: Mapping[str, Any], key: str) -> Any:
    """Case-insensitive lookup: the server treats JSON keys case-insensitively (``FNumber``/``FNUMBER``, §7.1)."""
    if key in mapping:
        return mapping[key]
    lower = key.lower()
    for name, value in mapping.items():
        if name.lower() == lower:
            return value
    return None


def _ref(value: Any) -> str | None:
    """A base-data reference ``{"FNumber": code}`` (or a bare code) -> the code."""
    if isinstance(value, Mapping):
        code = _ci(value, "FNumber")
        return str(code) if code not in (None, "") else None
    if value in (None, ""):
        return None
    return str(value)


def _resolve(model: Mapping[str, Any], path: str) -> Any:
    """``FCustId.FNumber`` -> the code; a plain reference object resolves to its number too."""
    head, _, rest = path.partition(".")
    value = _ci(model, head)
    if rest:
        return _ci(value, rest) if isinstance(value, Mapping) else None
    if isinstance(value, Mapping):
        return _ref(value)
    return value


def _session_id(request: Request) -> str | None:
    """The session a call carries: either cookie, or the same name as a header (the SDK sends the header)."""
    return next((value for name in SESSION_COOKIES
                 for value in (request.cookies.get(name), request.headers.get(name)) if value), None)


def x_kd_signature(app_id: str, app_data: str, app_secret: str) -> str:
    """SDK 8.x ``X-Kd-Signature``: base64 of the hex HMAC-SHA256 of ``appId + appData`` keyed by appSecret (§7.1)."""
    digest = hmac.new(app_secret.encode("utf-8"), (app_id + app_data).encode("utf-8"), hashlib.sha256).hexdigest()
    return base64.b64encode(digest.encode("ascii")).decode("ascii")


def _status(success: bool, msg_code: int = MSG_OK, errors: list[dict] | None = None,
            entities: list[dict] | None = None) -> dict:
    return {"ErrorCode": 0 if success else 500, "IsSuccess": success, "Errors": errors or [],
            "SuccessEntitys": entities or [], "SuccessMessages": [], "MsgCode": msg_code}


def _json(payload: object, cookies: Mapping[str, str] | None = None) -> Response:
    response = Response(json.dumps(payload, ensure_ascii=False), content_type="application/json; charset=utf-8")
    for name, value in (cookies or {}).items():
        response.set_cookie(name, value, path="/", httponly=True)
    return response


def _wire_date(value: Any) -> str | None:
    """Dates come back as ``yyyy-MM-ddTHH:mm:ss`` (§7.1)."""
    if not isinstance(value, str):
        return None
    match = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}:\d{2}:\d{2}))?", value.strip())
    if not match:
        return None
    return f"{match.group(1)}T{match.group(2) or '00:00:00'}"


class KingdeeSystem(System):
    """One Kingdee Cloud Galaxy data center with one API user and one third-party app."""

    name = NAME
    knob_defaults: ClassVar[dict[str, object]] = {
        f"{NAME}.latency_ms": 0,
        f"{NAME}.http_500": {"calls": 0},
        f"{NAME}.timeout_after_success": {"calls": 0, "methods": [], "sleep_s": 5.0, "mode": "sleep"},
        f"{NAME}.expire_sessions": {"calls": 0},
        f"{NAME}.session_ttl_s": 0,
    }
    knob_schema: ClassVar[dict[str, object]] = {
        f"{NAME}.latency_ms": _number,
        f"{NAME}.http_500": {"calls": _count},
        f"{NAME}.timeout_after_success": _TIMEOUT_FIELDS,
        f"{NAME}.expire_sessions": {"calls": _count},
        f"{NAME}.session_ttl_s": _number,
    }

    def __init__(self, app: SandboxApp) -> None:
        super().__init__(app)
        self.tenant = self._build()
        self._issued: str | None = None  # session issued during the current call (always under app.lock)

    def _build(self) -> Tenant:
        rng = self.rng
        hex_digits = "0123456789abcdef"
        alnum = string.ascii_letters + string.digits
        return Tenant(
            acct_id="".join(rng.choices(hex_digits, k=14)),
            username="orderhub_api",
            password="".join(rng.choices(alnum, k=16)),
            app_id=f"{rng.randint(100000, 999999)}_" + "".join(rng.choices(alnum, k=32)),
            app_secret="".join(rng.choices(hex_digits, k=32)),
        )

    def reset(self) -> None:
        super().reset()
        self.tenant = self._build()

    # ------------------------------------------------------------------------------------------- wiring

    def rules(self) -> list[Rule]:
        return [Rule(f"{PREFIX}/k3cloud/<service>", endpoint=f"{NAME}:call", methods=["POST"])]

    def standalone_rules(self) -> list[Rule]:
        return [Rule("/k3cloud/<service>", endpoint=f"{NAME}:call", methods=["POST"])]

    def credentials(self) -> dict[str, Any]:
        with self.app.lock:
            t = self.tenant
            return {"server_path": PREFIX, "standalone_server_path": "", "acct_id": t.acct_id,
                    "username": t.username, "password": t.password, "app_id": t.app_id, "app_secret": t.app_secret,
                    "lcid": LCID, "org_number": ORG, "account_book": ACCOUNT_BOOK,
                    "customers": sorted(PRESET_CUSTOMERS)}

    def truth(self) -> dict[str, Any]:
        with self.app.lock:
            return {"sinks": {NAME: {form: {number: receipt.as_json() for number, receipt in receipts.items()}
                                     for form, receipts in self.tenant.receipts.items()}}}

    # ------------------------------------------------------------------------------------------- transport

    def handle(self, endpoint: str, request: Request, **args: str) -> Response:
        service = args.get("service", "")
        app = self.app
        with app.lock:
            latency = float(app.faults.get(f"{NAME}.latency_ms"))  # type: ignore[arg-type]
        if latency:
            app.pause(latency / 1000)
        with app.lock:
            if app.faults.consume(f"{NAME}.http_500"):
                # IIS in front of the tenant failing: an HTML page, not the JSON envelope.
                return Response("<html><body><h1>500 - Internal server error.</h1></body></html>", status=500,
                                mimetype="text/html")
        if not service.endswith(SUFFIX):
            return Response("<html><body><h1>404 - File or directory not found.</h1></body></html>", status=404,
                            mimetype="text/html")
        service = service[: -len(SUFFIX)]
        operation = service.rsplit(".", 1)[-1]
        try:
            body = json.loads(request.get_data(as_text=True) or "{}")
        except ValueError:
            body = None
        stall = None
        with app.lock:
            if service.startswith(AUTH):
                payload, ok, cookies = self._login(operation, body)
            else:
                payload, ok, cookies = self._business(service, operation, body, request)
            if ok:
                stall = app.faults.consume_timeout(f"{NAME}.timeout_after_success", operation)
        if stall:
            app.stall(stall, request.environ)
        return _json(payload, cookies)

    # ------------------------------------------------------------------------------------------- login

    def _login(self, operation: str, body: Any) -> tuple[dict, bool, dict[str, str]]:
        t = self.tenant
        params = body.get("parameters") if isinstance(body, Mapping) else None
        if isinstance(params, str):
            try:
                params = json.loads(params)
            except ValueError:
                params = None
        if not isinstance(params, list) and isinstance(body, Mapping):
            # Some clients post the fields by name instead of the positional "parameters" array.
            params = [_ci(body, "acctID"), _ci(body, "username"),
                      *([_ci(body, "appId"), _ci(body, "appSecret")] if operation == "LoginByAppSecret"
                        else [_ci(body, "password")]), _ci(body, "lcid")]
        if operation == "ValidateUser" and isinstance(params, list) and len(params) >= 3:
            acct, user, secret_ok = params[0], params[1], params[2] == t.password
        elif operation == "LoginByAppSecret" and isinstance(params, list) and len(params) >= 4:
            acct, user, secret_ok = params[0], params[1], (params[2], params[3]) == (t.app_id, t.app_secret)
        elif operation in ("ValidateUser", "LoginByAppSecret"):
            return self._login_failure("登录参数不完整 (parameters)"), False, {}
        else:
            return self._login_failure(f"不支持的登录方式 {operation} (not implemented by the sandbox)"), False, {}
        if acct != t.acct_id:
            return self._login_failure("数据中心不存在或已停用 (acctId)"), False, {}
        if user != t.username or not secret_ok:
            return self._login_failure("用户名或密码错误！"), False, {}
        session = self._new_session(user)
        payload = {
            "Message": None, "MessageCode": "CheckPasswordPolicy", "LoginResultType": 1,
            "Context": {"UserLocale": "zh-CN", "LogLocale": "zh-CN", "DBid": t.acct_id, "DatabaseType": 3,
                        "SessionId": session.id, "UserId": 100008, "UserName": user, "CustomName": "橙舍商贸",
                        "DisplayVersion": "8.2.0 (sandbox)", "DataCenterName": "OrderHub Sandbox", "Lcid": LCID},
            "KDSVCSessionId": session.id, "FormId": None, "RedirectFormParam": None, "FormInputObject": None,
            "ErrorStackTrace": None, "Lcid": 0, "AccessToken": None, "KdAccessResult": None, "IsSuccessByAPI": True,
        }
        # Both cookies carry the session: clients replay whichever their cookie jar keeps.
        return payload, True, {name: session.id for name in SESSION_COOKIES}

    @staticmethod
    def _login_failure(message: str) -> dict:
        return {"Message": message, "MessageCode": None, "LoginResultType": 0, "Context": None,
                "KDSVCSessionId": None, "IsSuccessByAPI": False}

    # ------------------------------------------------------------------------------------------- auth of calls

    def _authorize(self, request: Request) -> str | None:
        """A valid session (cookie or header) or a valid SDK 8.x ``X-Kd-Signature``; else a KingdeeError.

        Returns the id of a session issued to a header-signed caller that did not send one yet (§7.1: "the server
        also returns ``kdservice-sessionid``"), to be set as a cookie; otherwise None."""
        t = self.tenant
        signature = request.headers.get("X-Kd-Signature")
        if signature:
            app_id = request.headers.get("X-Kd-Appkey", "")
            try:
                # The header carries base64("acctId,userName,lcid,orgNum"); the signature covers the plain text.
                app_data = base64.b64decode(request.headers.get("X-Kd-Appdata", ""), validate=True).decode("utf-8")
                acct, user = app_data.split(",")[:2]
            except ValueError:  # bad base64, bad UTF-8 (UnicodeDecodeError is a ValueError) or too few fields
                raise KingdeeError(MSG_NO_PERMISSION, "X-Kd-Appdata 格式错误") from None
            if app_id != t.app_id or not hmac.compare_digest(signature, x_kd_signature(app_id, app_data,
                                                                                      t.app_secret)):
                raise KingdeeError(MSG_NO_PERMISSION, "签名验证失败 (X-Kd-Signature)")
            if (acct, user) != (t.acct_id, t.username):
                raise KingdeeError(MSG_NO_PERMISSION, "数据中心或用户不存在 (X-Kd-Appdata)")
            if _session_id(request) in t.sessions:
                return None
            return self._new_session(user).id
        sid = _session_id(request)
        session = t.sessions.get(sid or "")
        if session is None:
            raise KingdeeError(MSG_SESSION_LOST, SESSION_LOST)
        ttl = float(self.app.faults.get(f"{NAME}.session_ttl_s"))  # type: ignore[arg-type]
        if ttl and self.app.now().timestamp() - session.issued_at > ttl:
            del t.sessions[session.id]
            raise KingdeeError(MSG_SESSION_LOST, SESSION_LOST)
        if self.app.faults.consume(f"{NAME}.expire_sessions"):
            # The server dropped the session (app pool recycle): this and every later call with it fail.
            del t.sessions[session.id]
            raise KingdeeError(MSG_SESSION_LOST, SESSION_LOST)
        return None

    def _new_session(self, user: str) -> Session:
        session = Session(id=f"{self.rng.getrandbits(128):032x}", user=user, issued_at=self.app.now().timestamp())
        self.tenant.sessions[session.id] = session
        return session

    # ------------------------------------------------------------------------------------------- business

    def _business(self, service: str, operation: str, body: Any, request: Request
                  ) -> tuple[Any, bool, dict[str, str]]:
        """(payload, success, cookies to set)."""
        payload, ok = self._operation(service, operation, body, request)
        issued, self._issued = self._issued, None
        return payload, ok, ({name: issued for name in SESSION_COOKIES} if issued else {})

    def _operation(self, service: str, operation: str, body: Any, request: Request) -> tuple[Any, bool]:
        query = operation == "ExecuteBillQuery"
        try:
            if not service.startswith(FORM):
                raise KingdeeError(MSG_EXCEPTION, f"服务 {service} 不存在")
            self._issued = self._authorize(request)
            if not isinstance(body, Mapping):
                raise KingdeeError(MSG_EXCEPTION, "请求内容不是有效的 JSON 对象")
            data = _ci(body, "data")
            if isinstance(data, str):
                # The legacy clients send data as a JSON string.
                try:
                    data = json.loads(data)
                except ValueError:
                    raise KingdeeError(MSG_EXCEPTION, "data 不是有效的 JSON") from None
            if not isinstance(data, Mapping):
                raise KingdeeError(MSG_EXCEPTION, "缺少 data")
            if query:
                return self._query(data), True
            form_id = _ci(body, "formid")
            if form_id not in FORMS:
                raise KingdeeError(MSG_EXCEPTION, f"业务对象 {form_id} 不存在或不被 sandbox 支持", "formid")
            if operation == "Save":
                return self._save(form_id, data)
            if operation in ("Submit", "Audit"):
                return self._transition(form_id, data, operation)
            if operation == "View":
                return self._view(form_id, data), True
            raise KingdeeError(MSG_EXCEPTION, f"操作 {operation} 未被 sandbox 实现")
        except (ValueError, TypeError) as exc:
            # e.g. StartRow "abc": the real server answers with an exception status, not an HTTP error
            envelope = {"Result": {"ResponseStatus": _status(False, MSG_EXCEPTION, [
                {"FieldName": None, "Message": f"请求参数错误: {exc}", "DIndex": 0}])}}
            return ([[envelope]] if query else envelope), False
        except KingdeeError as exc:
            envelope = {"Result": {"ResponseStatus": _status(False, exc.msg_code, [exc.error()])}}
            return ([[envelope]] if query else envelope), False

    def _save(self, form_id: str, data: Mapping[str, Any]) -> tuple[dict, bool]:
        t = self.tenant
        form = FORMS[form_id]
        model = _ci(data, "Model")
        if not isinstance(model, Mapping):
            raise KingdeeError(MSG_VALIDATION, "缺少 Model", "Model")
        fid = _ci(model, "FID") or (_ci(model, "FCUSTID") if form_id == "BD_Customer" else 0)
        number = _ref(_ci(model, form.key))
        bills = t.bills.setdefault(form_id, {})
        receipts = t.receipts.setdefault(form_id, {})
        receipt = receipts.setdefault(number, Receipt()) if number else None
        if receipt is not None:
            receipt.received += 1

        existing: Bill | None = None
        if fid not in (0, "0", None, ""):
            existing = next((bill for bill in bills.values() if str(bill.id) == str(fid)), None)
            if existing is None:
                raise KingdeeError(MSG_VALIDATION, f"单据内码 FID={fid} 不存在", "FID")
            if existing.status not in (CREATED, "D"):
                raise KingdeeError(MSG_BAD_STATE, f"单据 {existing.number} 已提交或已审核，不允许修改", "FID")
            if number and number != existing.number and number in bills:
                raise KingdeeError(MSG_DUPLICATE, f"{form.key}[{number}]已经存在!", form.key)
        elif number and (number in bills or (form_id == "BD_Customer" and number in PRESET_CUSTOMERS)):
            # FBillNo is unique per form: a repeated create is refused, never silently merged (see module doc).
            receipt.duplicates += 1  # type: ignore[union-attr]
            raise KingdeeError(MSG_DUPLICATE, f"编码/单据编号[{number}]已经存在!", form.key)

        self._validate(form_id, form, model)
        now = self.app.now()
        if existing is not None:
            merged = dict(existing.model)
            merged.update(model)
            if number and number != existing.number:
                del bills[existing.number]
                existing.number = number
                bills[number] = existing
            existing.model = merged
            existing.modified_at = now
            receipt = receipts.setdefault(existing.number, Receipt(created=1))
            if not number:
                receipt.received += 1  # an update by FID alone still reached this document
            receipt.updates += 1
            receipt.bill = existing
            bill = existing
        else:
            if not number:
                seq = t.numbers.get(form_id, 0) + 1
                while f"{form.prefix}{seq:06d}" in bills:
                    seq += 1
                t.numbers[form_id] = seq
                number = f"{form.prefix}{seq:06d}"
                receipt = receipts.setdefault(number, Receipt(received=1))
            bill = Bill(form_id=form_id, id=t.next_id, number=number, model=dict(model), status=CREATED,
                        created_at=now, modified_at=now)
            t.next_id += 1
            bills[number] = bill
            assert receipt is not None
            receipt.created = 1
            receipt.bill = bill
        needed = _ci(data, "NeedReturnFields") or []
        returned = {name: self._field(bill, name) for name in needed if isinstance(name, str)}
        entity = {"Id": bill.id, "Number": bill.number, "DIndex": 0}
        result = {"ResponseStatus": _status(True, entities=[entity]), "Id": bill.id, "Number": bill.number,
                  "NeedReturnData": [returned]}
        return {"Result": result}, True

    def _validate(self, form_id: str, form: FormDef, model: Mapping[str, Any]) -> None:
        for name in form.required:
            value = _ci(model, name)
            if value in (None, "", {}) or (isinstance(value, Mapping) and not _ref(value)):
                raise KingdeeError(MSG_VALIDATION, f"字段“{name}”是必填项", name)
            if name.lower().endswith("date") and _wire_date(value) is None:
                raise KingdeeError(MSG_VALIDATION, f"字段“{name}”日期格式错误: {value!r}", name)
        if form.customer:
            code = _ref(_ci(model, form.customer))
            if code not in PRESET_CUSTOMERS and code not in self.tenant.bills.get("BD_Customer", {}):
                raise KingdeeError(MSG_VALIDATION, f"客户编码[{code}]不存在或未审核", form.customer)
        if form.entry is None:
            return
        entries = _ci(model, form.entry)
        if not isinstance(entries, list) or not entries:
            raise KingdeeError(MSG_VALIDATION, f"单据体“{form.entry}”至少需要一行", form.entry)
        debit = credit = 0.0
        for row, entry in enumerate(entries, start=1):
            if not isinstance(entry, Mapping):
                raise KingdeeError(MSG_VALIDATION, f"{form.entry} 第{row}行格式错误", form.entry)
            for name in form.entry_required:
                if _ref(_ci(entry, name)) is None:
                    raise KingdeeError(MSG_VALIDATION, f"{form.entry} 第{row}行字段“{name}”是必填项", name)
            if form.material:
                code = _ref(_ci(entry, form.material))
                if self.app.world.sku(code or "") is None:
                    raise KingdeeError(MSG_VALIDATION, f"第{row}行物料编码[{code}]不存在", form.material)
            qty_field = next((name for name in form.entry_required if "qty" in name.lower()), None)
            if qty_field is not None:
                qty = _ci(entry, qty_field)
                if isinstance(qty, bool) or not isinstance(qty, (int, float)) or qty <= 0:
                    raise KingdeeError(MSG_VALIDATION, f"第{row}行数量必须大于0", qty_field)
            if form_id == "GL_VOUCHER":
                account = _ref(_ci(entry, "FAccountID")) or ""
                if account.split(".")[0] not in ACCOUNTS:
                    raise KingdeeError(MSG_VALIDATION, f"第{row}行科目[{account}]不存在", "FAccountID")
                try:
                    debit += float(_ci(entry, "FDEBIT") or 0)
                    credit += float(_ci(entry, "FCREDIT") or 0)
                except (TypeError, ValueError):
                    raise KingdeeError(MSG_VALIDATION, f"第{row}行借贷金额不是数字", "FDEBIT") from None
        if form_id == "GL_VOUCHER" and round(debit - credit, 2) != 0:
            raise KingdeeError(MSG_VALIDATION, f"借贷不平衡: 借方 {debit:.2f} 贷方 {credit:.2f}", "FEntity")

    def _targets(self, form_id: str, data: Mapping[str, Any]) -> list[tuple[str, Bill | None]]:
        """Bills named by ``Numbers`` (list) and/or ``Ids`` (comma string or list), in request order."""
        bills = self.tenant.bills.get(form_id, {})
        numbers = _ci(data, "Numbers") or []
        ids = _ci(data, "Ids") or []
        if isinstance(ids, str):
            ids = [part for part in ids.split(",") if part.strip()]
        targets: list[tuple[str, Bill | None]] = [(str(n), bills.get(str(n))) for n in numbers]
        by_id = {str(bill.id): bill for bill in bills.values()}
        targets += [(str(i).strip(), by_id.get(str(i).strip())) for i in ids]
        if not targets:
            raise KingdeeError(MSG_VALIDATION, "Numbers 与 Ids 不能同时为空", "Numbers")
        return targets

    def _transition(self, form_id: str, data: Mapping[str, Any], operation: str) -> tuple[dict, bool]:
        # Submit: A/D -> B; Audit: B -> C. Each named bill succeeds or fails on its own, like the real batch.
        needed, target = ((CREATED, "D"), SUBMITTED) if operation == "Submit" else ((SUBMITTED,), AUDITED)
        entities, errors = [], []
        for index, (key, bill) in enumerate(self._targets(form_id, data)):
            if bill is None:
                errors.append({"FieldName": None, "Message": f"单据[{key}]不存在", "DIndex": index})
            elif bill.status not in needed:
                verb = "提交" if operation == "Submit" else "审核"
                errors.append({"FieldName": None, "DIndex": index,
                               "Message": f"单据[{bill.number}]状态为{bill.status}，不能{verb}"})
            else:
                bill.status = target
                bill.modified_at = self.app.now()
                entities.append({"Id": bill.id, "Number": bill.number, "DIndex": index})
        success = not errors
        status = _status(success, MSG_OK if success else MSG_BAD_STATE, errors, entities)
        return {"Result": {"ResponseStatus": status}}, success

    def _view(self, form_id: str, data: Mapping[str, Any]) -> dict:
        bills = self.tenant.bills.get(form_id, {})
        number, bill_id = _ci(data, "Number"), _ci(data, "Id")
        bill = bills.get(str(number)) if number else next(
            (b for b in bills.values() if str(b.id) == str(bill_id)), None)
        if bill is None:
            raise KingdeeError(MSG_BAD_STATE, f"单据[{number or bill_id}]不存在")
        full = {**bill.model, "Id": bill.id, "FID": bill.id, FORMS[form_id].key: bill.number,
                "DocumentStatus": bill.status, "FDocumentStatus": bill.status,
                "CreateDate": bill.created_at.strftime("%Y-%m-%dT%H:%M:%S"),
                "ModifyDate": bill.modified_at.strftime("%Y-%m-%dT%H:%M:%S")}
        return {"Result": {"ResponseStatus": _status(True), "Result": full}}

    # ------------------------------------------------------------------------------------------- query

    def _field(self, bill: Bill, key: str, entry: Mapping[str, Any] | None = None) -> Any:
        lower = key.lower()
        if lower in ("fid", "id"):
            return bill.id
        if lower == FORMS[bill.form_id].key.lower() or lower in ("fbillno", "fnumber"):
            return bill.number
        if lower == "fdocumentstatus":
            return bill.status
        for source in (entry, bill.model):
            if source is None:
                continue
            value = _resolve(source, key)
            if value is not None:
                if lower.endswith("date"):
                    return _wire_date(value) or value
                return value
        return None

    def _query(self, data: Mapping[str, Any]) -> list[list[Any]]:
        form_id = _ci(data, "FormId")
        if form_id not in FORMS:
            raise KingdeeError(MSG_EXCEPTION, f"业务对象 {form_id} 不存在或不被 sandbox 支持", "FormId")
        keys = [k.strip() for k in str(_ci(data, "FieldKeys") or "").split(",") if k.strip()]
        if not keys:
            raise KingdeeError(MSG_VALIDATION, "FieldKeys 不能为空", "FieldKeys")
        clauses = _parse_filter(str(_ci(data, "FilterString") or ""))
        form = FORMS[form_id]
        rows: list[tuple[Bill, Mapping[str, Any] | None]] = []
        for bill in sorted(self.tenant.bills.get(form_id, {}).values(), key=lambda b: b.id):
            entries = _ci(bill.model, form.entry) if form.entry else None
            # Selecting an entry field gives one row per entry, as a bill query on entry fields does.
            per_entry = isinstance(entries, list) and entries and any(
                isinstance(e, Mapping) and _resolve(e, k) is not None for e in entries for k in keys)
            for entry in (entries if per_entry else [None]):
                if all(_match(self._field(bill, f, entry), op, values) for f, op, values in clauses):
                    rows.append((bill, entry))
        order = str(_ci(data, "OrderString") or "").strip()
        if order:
            name, _, direction = order.split(",")[0].strip().partition(" ")
            rows.sort(key=lambda r: str(self._field(r[0], name, r[1]) or ""),
                      reverse=direction.strip().lower() == "desc")
        start = int(_ci(data, "StartRow") or 0)
        limit = int(_ci(data, "Limit") or 0) or int(_ci(data, "TopRowCount") or 0)
        rows = rows[start: start + limit] if limit else rows[start:]
        return [[self._field(bill, key, entry) for key in keys] for bill, entry in rows]


_CLAUSE = re.compile(
    r"^\s*([A-Za-z_][\w.]*)\s*(<>|!=|>=|<=|=|>|<|\bin\b|\blike\b)\s*(\(.*\)|'[^']*'|[-\d.]+)\s*$", re.I)


def _parse_filter(text: str) -> list[tuple[str, str, list[str]]]:
    """The subset of Kingdee filter syntax the sandbox understands: clauses joined by AND, each
    ``field op 'value'`` (ops = <> != >= <= > < LIKE) or ``field IN ('a','b')``. Anything else is an error, loudly."""
    if not text.strip():
        return []
    clauses = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.I):
        match = _CLAUSE.match(part)
        if not match:
            raise KingdeeError(MSG_EXCEPTION, f"FilterString 语法不被 sandbox 支持: {part!r}", "FilterString")
        name, op, raw = match.group(1), match.group(2).lower(), match.group(3)
        if op == "in":
            values = [v.strip().strip("'") for v in raw.strip("()").split(",")]
        else:
            values = [raw.strip("'")]
        clauses.append((name, op, values))
    return clauses


def _match(actual: Any, op: str, values: list[str]) -> bool:
    if actual is None:
        return False
    text = str(actual)
    if op == "in":
        return text in values
    value = values[0]
    if op == "like":
        return re.fullmatch(re.escape(value).replace("%", ".*").replace("_", "."), text) is not None
    if isinstance(actual, (int, float)) and not isinstance(actual, bool):
        try:
            left, right = float(actual), float(value)
        except ValueError:
            left, right = text, value  # type: ignore[assignment]
    else:
        left, right = text, _wire_date(value) or value if _wire_date(text) else value  # type: ignore[assignment]
    return {"=": left == right, "<>": left != right, "!=": left != right, ">=": left >= right,
            "<=": left <= right, ">": left > right, "<": left < right}[op]
