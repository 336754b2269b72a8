"""TMC (Taobao Message Channel) in its HTTP-pull form (spec §1.10 mode 1), as the sandbox world publishes it.

The world calls :meth:`TmcBroker.publish` on every change of a trade or refund; the TOP gateway serves
``taobao.tmc.user.permit``, ``taobao.tmc.messages.consume`` and ``taobao.tmc.messages.confirm`` from here.

Delivery is **at least once**, as on TOP: a consumed message stays in flight until it is confirmed; if no confirm
arrives within the redelivery timeout (knob ``top.tmc_redelivery_s``; production's value is UNCONFIRMED) it is
delivered again. Two more knobs rehearse what a consumer must survive: ``top.tmc_duplicate`` (a message comes back
once more even after it was confirmed) and ``top.tmc_out_of_order`` (each batch is shuffled, so a ship message may
precede the create message of the same trade). TMC is a notification only; a consumer re-reads the trade.

Only permitted shops get messages (``taobao.tmc.user.permit`` with the seller's session), and only messages published
after the permit, as on TOP. Groups (``group_name``) are not modelled: every group reads the one default queue.

Not thread-safe on its own; ``SandboxApp`` holds its lock around every call.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sandbox import clock

# TMC message ids are int64 like every TOP id; start above 2**53 so a double-parsing consumer shows its bug.
FIRST_MESSAGE_ID = 9007199254740993 + 1_000_000

TRADE_TOPICS = (
    "taobao_trade_TradeCreate", "taobao_trade_TradeBuyerPay", "taobao_trade_TradeSellerShip",
    "taobao_trade_TradePartlySellerShip", "taobao_trade_TradeSuccess", "taobao_trade_TradeClose",
    "taobao_trade_TradeCloseAndModifyDetailOrder", "taobao_trade_TradeModifyFee", "taobao_trade_TradeChanged",
    "taobao_trade_TradeMemoModified", "taobao_trade_TradeLogisticsAddressChanged", "taobao_trade_TradeRated",
    "taobao_trade_TradeDelayConfirmPay", "taobao_trade_TradePartlyRefund", "taobao_trade_TradePartlyConfirmPay",
    "taobao_trade_TradeAlipayCreate", "taobao_trade_TradeTimeoutRemind",
)
REFUND_TOPICS = (
    "taobao_refund_RefundCreated", "taobao_refund_RefundSellerAgreeAgreement",
    "taobao_refund_RefundSellerRefuseAgreement", "taobao_refund_RefundBuyerModifyAgreement",
    "taobao_refund_RefundBuyerReturnGoods", "taobao_refund_RefundCreateMessage", "taobao_refund_RefundBlockMessage",
    "taobao_refund_RefundTimeoutRemind", "taobao_refund_RefundClosed", "taobao_refund_RefundSuccess",
)
ITEM_TOPICS = (
    "taobao_item_ItemAdd", "taobao_item_ItemUpdate", "taobao_item_ItemDelete", "taobao_item_ItemUpshelf",
    "taobao_item_ItemDownshelf", "taobao_item_ItemZeroStock",
)
ALL_TOPICS = frozenset(TRADE_TOPICS + REFUND_TOPICS + ITEM_TOPICS)

MIN_QUANTITY, MAX_QUANTITY, DEFAULT_QUANTITY = 10, 200, 100
MAX_CONFIRM_IDS = 200


@dataclass
class TmcMessage:
    id: int
    topic: str
    pub_time: str
    user_id: int
    user_nick: str
    shop: str
    content: dict
    delivered_at: datetime | None = None
    deliveries: int = 0
    confirmed: bool = False

    def wire(self, app_key: str) -> dict:
        # ``content`` travels as a JSON *string* (spec §1.10); int64 ids stay JSON numbers inside it.
        return {
            "id": self.id,
            "topic": self.topic,
            "pub_time": self.pub_time,
            "pub_app_key": app_key,
            "user_id": self.user_id,
            "user_nick": self.user_nick,
            "content": json.dumps(self.content, ensure_ascii=False, separators=(",", ":")),
        }


@dataclass
class TmcBroker:
    """The app's TMC queue: permits per shop, every message ever published, and delivery bookkeeping."""

    rng: random.Random
    next_id: int = FIRST_MESSAGE_ID
    # shop slug -> permitted topics (None = every topic the app subscribed, i.e. all)
    permits: dict[str, frozenset[str] | None] = field(default_factory=dict)
    messages: dict[int, TmcMessage] = field(default_factory=dict)
    # unconfirmed messages in publication order: what consume scans, so confirmed history costs nothing
    pending: dict[int, TmcMessage] = field(default_factory=dict)
    # messages owed once more because of the top.tmc_duplicate knob (delivered even if confirmed meanwhile)
    duplicates: list[int] = field(default_factory=list)
    published: int = 0

    def permit(self, shop: str, topics: frozenset[str] | None) -> None:
        self.permits[shop] = topics

    def cancel(self, shop: str) -> None:
        self.permits.pop(shop, None)

    def publish(self, shop: str, user_id: int, user_nick: str, topic: str, content: dict, at: datetime) -> None:
        if shop not in self.permits:
            return
        topics = self.permits[shop]
        if topics is not None and topic not in topics:
            return
        message = TmcMessage(self.next_id, topic, clock.format_wire(at), user_id, user_nick, shop, content)
        self.next_id += 1
        self.messages[message.id] = message
        self.pending[message.id] = message
        self.published += 1

    def consume(self, now: datetime, quantity: int, redelivery_s: float, duplicate: bool, shuffle: bool
                ) -> list[TmcMessage]:
        """Hand out up to ``quantity`` messages: never-delivered ones and in-flight ones whose timeout passed."""
        batch: list[TmcMessage] = []
        while self.duplicates and len(batch) < quantity:
            batch.append(self.messages[self.duplicates.pop(0)])
        due = now - timedelta(seconds=redelivery_s)
        taken = {message.id for message in batch}
        for message in self.pending.values():
            if len(batch) >= quantity:
                break
            if message.id in taken:
                continue
            if message.delivered_at is None or message.delivered_at <= due:
                batch.append(message)
        for message in batch:
            message.delivered_at = now
            message.deliveries += 1
        if duplicate and batch:
            # top.tmc_duplicate: the first message will come once more on the next consume, confirmed or not.
            self.duplicates.append(batch[0].id)
        if shuffle and len(batch) > 1:
            original = list(batch)
            self.rng.shuffle(batch)
            if batch == original:
                batch.reverse()
        return batch

    def confirm(self, ids: list[int]) -> int:
        done = 0
        for message_id in ids:
            message = self.messages.get(message_id)
            if message is not None and not message.confirmed:
                message.confirmed = True
                del self.pending[message_id]
                done += 1
        return done

    def fail(self, ids: list[int]) -> None:
        """``f_message_ids``: the consumer could not handle these; make them due again at once."""
        for message_id in ids:
            message = self.messages.get(message_id)
            if message is not None and not message.confirmed:
                message.delivered_at = None

    def truth(self) -> dict:
        pending = list(self.pending.values())
        return {
            "permits": {shop: sorted(topics) if topics is not None else None for shop, topics in self.permits.items()},
            "published": self.published,
            "confirmed": self.published - len(pending),
            "unconfirmed": len(pending),
            "in_flight": sum(1 for m in pending if m.delivered_at is not None),
            "redelivered": sum(max(m.deliveries - 1, 0) for m in self.messages.values()),
        }
