"""Kingdee sink: each released fulfilment group becomes one sales order (SAL_SaleOrder) whose ``FBillNo`` is the
group's stable document code (``TMALL-<tid>``, ``TMALL-<tid>-2``), after the customer (BD_Customer) it is sold to
exists; then Submit and Audit; then, unless ``receivable: false``, the AR_receivable (应收单) of the same lines,
numbered ``AR-<code>``, through the same Save / Submit / Audit. A ``receipt.matched`` event (hub finance: a payment
provider's transaction matched to the order) becomes one balanced GL_VOUCHER (bank + fee debit, receivable credit)
numbered from the provider's transaction id (``RC-ALIPAY-<txn>``).

Idempotency rests on ``FBillNo``: Kingdee refuses a second Save of the same number (MsgCode 11) and changes
nothing, so a Save whose answer was lost and is sent again cannot create a second bill (the same holds for each
form). ``deliver`` is a small
state machine that can start over at any point: a duplicate on Save means "ours, from an earlier attempt"; Submit and
Audit look at ``FDocumentStatus`` when Kingdee says the state is wrong (A created -> B submitted -> C audited).
``probe`` (hub.dispatch calls it before re-sending an event in doubt) is an ExecuteBillQuery by ``FBillNo``; it reports
the order as found only once it reached its final state, otherwise ``deliver`` finishes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from connectors.kingdee.client import DuplicateNumberError, KingdeeClient, WrongStateError, quoted
from connectors.kingdee.settings import KingdeeSettings
from hub.connector import Delivery
from hub.errors import FatalError
from hub.models import Order

SALE_ORDER, CUSTOMER, RECEIVABLE, VOUCHER = "SAL_SaleOrder", "BD_Customer", "AR_receivable", "GL_VOUCHER"
RECEIPT_EVENT = "receipt.matched"  # hub finance (payment reconciliation): one voucher per matched receipt
CREATED, SUBMITTED, AUDITED = "A", "B", "C"
CST = ZoneInfo("Asia/Shanghai")


def _money(fen: int) -> float:
    return float(Decimal(fen) / 100)


def _ref(number: str) -> dict[str, str]:
    return {"FNumber": number}


class KingdeeSink:
    event_types = ("order.released", RECEIPT_EVENT)

    def __init__(self, settings: KingdeeSettings, client: KingdeeClient | None = None) -> None:
        self.settings = settings
        self.name = settings.name
        self.client = client or KingdeeClient(settings)
        self._known_customers: set[str] = set()

    @property
    def final_status(self) -> str:
        return AUDITED if self.settings.audit else CREATED

    def idempotency_key(self, order: Order, event: Mapping[str, Any]) -> str:
        if event.get("event_type") == RECEIPT_EVENT:
            return f"{self.name}:{voucher_number({'txn_id': order.order_id, **(event.get('payload') or {})})}"
        code = ((event.get("payload") or {}).get("document") or {}).get("document_code") or order.order_id
        return f"{self.name}:{order.platform}:{order.shop_id}:{code}:r{event['version']}"

    # -- customer ---------------------------------------------------------------------------------------------

    def customer(self, order: Order) -> tuple[str, str]:
        """(number, name) of the customer the order is sold to. Per buyer, the number is a digest of the channel's
        buyer reference (no personal data in the ERP's key), and the name says which shop it came from."""
        s = self.settings
        if s.customer_by == "buyer" and order.buyer_ref:
            digest = hashlib.sha256(f"{order.platform}:{order.buyer_ref}".encode()).hexdigest()[:16].upper()
            return f"{order.platform.upper()}-B-{digest}", f"{order.platform} buyer {digest} ({order.shop_id})"
        if order.shop_id in s.customers:
            return s.customers[order.shop_id], order.shop_id
        return f"{order.platform}-{order.shop_id}".upper(), f"{order.platform} {order.shop_id}"

    def ensure_customer(self, order: Order) -> str:
        number, name = self.customer(order)
        if number in self._known_customers or number in self.settings.customers.values():
            return number
        if not self.client.query(CUSTOMER, ["FNumber"], f"FNumber={quoted(number)}"):
            try:
                self.client.save(CUSTOMER, {"FNumber": number, "FName": name,
                                            "FCreateOrgId": _ref(self.settings.org_number),
                                            "FUseOrgId": _ref(self.settings.org_number)})
            except DuplicateNumberError:
                pass  # created by our own earlier attempt whose answer was lost, or by another dispatcher
        self._known_customers.add(number)
        return number

    # -- sales order ------------------------------------------------------------------------------------------

    def document(self, order: Order, group: Mapping[str, Any], customer: str) -> dict[str, Any]:
        """The SAL_SaleOrder model for one fulfilment group: lines at the group's allocated (paid) amounts, so the
        orders of a split add up to the paid total; FAllAmount carries each line's exact total."""
        s = self.settings
        day = (order.paid_at or order.created_at).astimezone(CST).date().isoformat()
        org = _ref(s.org_number)
        model: dict[str, Any] = {
            "FID": 0, "FBillNo": group["document_code"], "FBillTypeID": {"FNUMBER": s.bill_type}, "FDate": day,
            "FSaleOrgId": org, "FCustId": _ref(customer), "FReceiveId": _ref(customer),
            "FSettleId": _ref(customer), "FChargeId": _ref(customer),
            "FNote": f"{order.platform} {order.shop_id} {order.order_id}",
            "FSaleOrderFinance": {"FSettleCurrId": _ref(s.currency), "FIsIncludedTax": True,
                                  "FExchangeTypeId": _ref(s.exchange_type)},
            "FSaleOrderEntry": [
                {"FMaterialId": _ref(line["master_sku"]), "FUnitID": _ref(s.unit), "FQty": line["qty"],
                 "FTaxPrice": round(line["allocated_paid_fen"] / 100 / line["qty"], 6),
                 "FAllAmount": _money(line["allocated_paid_fen"]), "FEntryTaxRate": s.tax_rate,
                 "FIsFree": bool(line.get("is_gift")), "FDeliveryDate": day, "FStockOrgId": org,
                 "FSettleOrgIds": org, "FOwnerTypeId": "BD_OwnerOrg", "FOwnerId": org, "FReserveType": "1",
                 "FOUTLMTUNIT": "SAL", "FEntryNote": f"oid {line['line_id']}"}
                for line in group["lines"]
            ],
        }
        if s.saler_number:
            model["FSalerId"] = _ref(s.saler_number)
        if s.dept_number:
            model["FSaleDeptId"] = _ref(s.dept_number)
        return model

    def documents(self, order: Order, groups: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        number, _ = self.customer(order)
        return {g["document_code"]: self.document(order, g, number) for g in groups}

    def receivable(self, order: Order, group: Mapping[str, Any], customer: str) -> dict[str, Any]:
        """The AR_receivable (应收单) of one released document: what the customer owes for exactly the lines of the
        sales order, at their allocated (paid) amounts; its number is ``AR-<document code>``."""
        s = self.settings
        day = (order.paid_at or order.created_at).astimezone(CST).date().isoformat()
        org = _ref(s.org_number)
        return {
            "FID": 0, "FBillNo": receivable_number(group["document_code"]), "FDate": day, "FEndDate_H": day,
            "FCustomerID": _ref(customer), "FSettleOrgID": org, "FSaleOrgID": org, "FPayOrgID": org,
            "FCurrencyID": _ref(s.currency), "FIsIncludedTax": True,
            "FRemark": f"{order.platform} {order.shop_id} {order.order_id} {group['document_code']}",
            "FEntityDetail": [
                {"FMaterialID": _ref(line["master_sku"]), "FPriceUnitId": _ref(s.unit), "FPriceQty": line["qty"],
                 "FTaxPrice": round(line["allocated_paid_fen"] / 100 / line["qty"], 6),
                 "FALLAMOUNTFOR_D": _money(line["allocated_paid_fen"]), "FEntryTaxRate": s.tax_rate,
                 "FSourceBillNo": group["document_code"], "FComment": f"oid {line['line_id']}"}
                for line in group["lines"]
            ],
        }

    def voucher(self, order: Order, receipt: Mapping[str, Any], customer: str) -> dict[str, Any]:
        """The GL_VOUCHER of one matched receipt: debit the bank with what was paid out and the fee account with the
        provider's fee, credit the receivable with the gross amount (balanced to the fen)."""
        s = self.settings
        amount, fee = int(receipt["amount"]), int(receipt.get("fee") or 0)
        paid = str(receipt.get("paid_at") or "")
        day = (datetime.fromisoformat(paid) if paid else order.paid_at or order.created_at).astimezone(CST)
        text = f"{receipt.get('source')} {receipt.get('txn_id')} {order.platform} {order.order_id}"[:200]
        entries = [{"FEXPLANATION": text, "FAccountID": _ref(s.bank_account), "FDEBIT": _money(amount - fee),
                    "FCREDIT": 0}]
        if fee:
            entries.append({"FEXPLANATION": text, "FAccountID": _ref(s.fee_account), "FDEBIT": _money(fee),
                            "FCREDIT": 0})
        entries.append({"FEXPLANATION": text, "FAccountID": _ref(s.receivable_account), "FDEBIT": 0,
                        "FCREDIT": _money(amount), "FDetailID": {"FFLEX6": _ref(customer)}})
        return {"FID": 0, "FBillNo": voucher_number(receipt), "FDate": day.date().isoformat(),
                "FAccountBookID": _ref(s.account_book), "FVOUCHERGROUPID": _ref(s.voucher_group),
                "FCurrencyID": _ref(s.currency), "FEntity": entries}

    def lookup(self, code: str, form: str = SALE_ORDER) -> tuple[int, str] | None:
        rows = self.client.query(form, ["FID", "FBillNo", "FDocumentStatus"], f"FBillNo={quoted(code)}")
        if not rows:
            return None
        fid, _number, status = rows[0][:3]
        return fid, status

    def _advance(self, code: str, fid: int | None = None, status: str | None = None,
                 form: str = SALE_ORDER) -> tuple[int, str]:
        """Submit and Audit until the bill is in its final state; safe to run again from any point. The status is
        read only when it is not known (after a duplicate Save or a wrong-state answer): three calls per bill in
        the normal case (Save, Submit, Audit)."""
        for _ in range(6):
            if status is None or fid is None:
                found = self.lookup(code, form)
                if found is None:
                    raise FatalError(f"Kingdee {form} {code} was saved but cannot be found", sink=self.name)
                fid, status = found
            if status == self.final_status or status == AUDITED:
                return fid, status
            try:
                if status in (CREATED, "D"):
                    self.client.submit(form, [code])
                    status = SUBMITTED
                elif status == SUBMITTED:
                    self.client.audit(form, [code])
                    status = AUDITED
                else:
                    status = None
            except WrongStateError:
                status = None  # our own earlier call took effect and its answer was lost: read the status again
        raise FatalError(f"Kingdee {form} {code} does not reach status {self.final_status}", sink=self.name)

    def _bill(self, form: str, model: dict[str, Any]) -> tuple[int, str, bool]:
        """Save (a duplicate number means an earlier attempt's Save took effect) and advance: (id, status, existed)."""
        code = model["FBillNo"]
        existed, fid, status = False, None, None
        try:
            saved = self.client.save(form, model, ["FBillNo"])
            fid, status = saved.get("Id"), CREATED
        except DuplicateNumberError:
            existed = True  # carry on from where the earlier attempt left the bill
        fid, status = self._advance(code, fid, status, form)
        return fid, status, existed

    def deliver(self, order: Order, event: Mapping[str, Any]) -> Delivery:
        if event.get("event_type") == RECEIPT_EVENT:
            return self._deliver_voucher(order, (event.get("payload") or {}))
        group = (event.get("payload") or {}).get("document")
        if not group:
            return Delivery(None, skipped_reason=f"{event.get('event_type')} carries no fulfilment group")
        code = group["document_code"]
        customer = self.ensure_customer(order)
        fid, status, existed = self._bill(SALE_ORDER, self.document(order, group, customer))
        detail: dict[str, Any] = {"kingdee_id": fid, "status": status, "customer": customer,
                                  **({"existed": True} if existed else {})}
        if self.settings.receivable:
            ar_id, ar_status, ar_existed = self._bill(RECEIVABLE, self.receivable(order, group, customer))
            detail.update(receivable=receivable_number(code), receivable_id=ar_id, receivable_status=ar_status,
                          **({"receivable_existed": True} if ar_existed else {}))
        return Delivery(code, detail=detail)

    def _deliver_voucher(self, order: Order, receipt: Mapping[str, Any]) -> Delivery:
        if not self.settings.vouchers:
            return Delivery(None, skipped_reason="vouchers are off for this sink")
        customer = self.ensure_customer(order)
        fid, status, existed = self._bill(VOUCHER, self.voucher(order, receipt, customer))
        return Delivery(voucher_number(receipt), detail={"kingdee_id": fid, "status": status,
                                                         **({"existed": True} if existed else {})})

    def _final(self, code: str, form: str) -> tuple[int, str] | None:
        found = self.lookup(code, form)
        return found if found is not None and found[1] in (self.final_status, AUDITED) else None

    def probe(self, order: Order, event: Mapping[str, Any]) -> Delivery | None:
        """Found only when every bill of the event reached its final state; otherwise ``deliver`` finishes them."""
        payload = event.get("payload") or {}
        if event.get("event_type") == RECEIPT_EVENT:
            if not payload.get("txn_id"):
                return None
            found = self._final(voucher_number(payload), VOUCHER)
            return Delivery(voucher_number(payload), detail={"kingdee_id": found[0], "status": found[1]}
                            ) if found else None
        group = payload.get("document")
        if not group:
            return None
        found = self._final(group["document_code"], SALE_ORDER)
        if found is None:
            return None  # absent, or saved but not yet submitted/audited: deliver finishes it
        detail: dict[str, Any] = {"kingdee_id": found[0], "status": found[1]}
        if self.settings.receivable:
            ar = self._final(receivable_number(group["document_code"]), RECEIVABLE)
            if ar is None:
                return None
            detail.update(receivable=receivable_number(group["document_code"]), receivable_id=ar[0])
        return Delivery(group["document_code"], detail=detail)


def receivable_number(code: str) -> str:
    return f"AR-{code}"


def voucher_number(receipt: Mapping[str, Any]) -> str:
    """One voucher per provider transaction: the number is built from it, so a re-sent event finds its voucher."""
    return f"RC-{str(receipt.get('source') or 'pay').upper()}-{receipt['txn_id']}"[:80]
