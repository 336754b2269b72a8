"""TMC push intake (taobao.tmc.*, specs §1.10, HTTP pull mode): which trades the platform says have changed.

A TMC message is a *notification*: the hub re-reads each trade it names with ``trade.fullinfo.get`` and ingests
that, never the message content. One queue per app key (every shop authorised on the app shares it); each shop must
have called ``taobao.tmc.user.permit`` once with its own session. Delivery is at least once: a message is confirmed
only after the trades it names are committed in the hub, so a crash in between means a redelivery, which the
version guard makes harmless (as it does duplicates and out-of-order batches). Pushes speed things up; they never
replace the windowed pull and its sweep.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from connectors.tmall.client import TopClient
from connectors.tmall.streams import unwrap_list
from hub.logging import get_logger

log = get_logger(__name__)
CONSUME_QUANTITY = 100  # 10..200


@dataclass(frozen=True)
class Notice:
    """One consumed message: its id (to confirm), the configured shop it belongs to and the trade id it names
    (None for messages the hub does not take in: item topics, shops not configured here)."""

    message_id: int
    topic: str
    shop: str | None
    external_id: str | None


class TmcQueue:
    """The TMC queue of one app key, shared by the configured shops that use it."""

    def __init__(self, shops: Sequence[Any], client: TopClient | None = None) -> None:
        self.shops = list(shops)
        # consume/confirm need no session; any shop's client signs for the app
        self.client = client or TopClient(self.shops[0])
        # named by its shops, not by the app key (a credential, kept out of logs and reports)
        self.key = f"tmc:{'+'.join(s.shop for s in self.shops)}"
        self._by_nick = {s.seller_nick: s.shop for s in self.shops if s.seller_nick}

    def permit(self, shop_settings: Any) -> None:
        """``taobao.tmc.user.permit`` with the seller's session: the shop's changes start flowing into the queue."""
        TopClient(shop_settings).call("taobao.tmc.user.permit")

    def consume(self) -> list[Notice]:
        body = self.client.call("taobao.tmc.messages.consume", quantity=CONSUME_QUANTITY)
        return [self._notice(m) for m in unwrap_list(body.get("messages"), "tmc_message")]

    def confirm(self, message_ids: Sequence[int]) -> None:
        ids = list(dict.fromkeys(message_ids))
        for start in range(0, len(ids), 200):  # s_message_ids takes at most 200
            self.client.call("taobao.tmc.messages.confirm", write=True,
                             s_message_ids=",".join(str(i) for i in ids[start:start + 200]))

    def _notice(self, message: dict[str, Any]) -> Notice:
        topic = str(message.get("topic") or "")
        try:
            content = json.loads(message.get("content") or "{}")
        except ValueError:
            content = {}
        nick = message.get("user_nick") or content.get("seller_nick")
        shop = self._by_nick.get(nick)
        if shop is None and len(self.shops) == 1 and not self.shops[0].seller_nick:
            shop = self.shops[0].shop
        tid = content.get("tid") if topic.startswith(("taobao_trade_", "taobao_refund_")) else None
        return Notice(int(message["id"]), topic, shop, str(tid) if tid not in (None, "") else None)


def open_queues(shops: Sequence[Any]) -> list[TmcQueue]:
    """One queue per (gateway, app key) among the given enabled Tmall shops."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for shop in shops:
        groups.setdefault((shop.gateway, shop.app_key.reveal()), []).append(shop)
    return [TmcQueue(group) for group in groups.values()]
