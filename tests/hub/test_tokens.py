"""Refreshed channel sessions in the hub's database: single flight across processes, even for the first refresh."""

from __future__ import annotations

import threading
import time

from hub.tokens import Grant, TokenStore


def test_two_refreshers_of_an_account_with_no_stored_grant_take_turns_and_the_second_finds_the_first_grant(engine):
    store = TokenStore(engine)
    inside: list[int] = []
    overlaps: list[int] = []
    seen: list[str | None] = []

    def refresher() -> None:
        with store.refreshing("tmall", "gateway app shop") as slot:
            inside.append(1)
            if len(inside) > 1:
                overlaps.append(1)
            seen.append(slot.current.access_token if slot.current else None)
            time.sleep(0.3)  # the refresh call to the platform
            if slot.current is None:
                slot.save(Grant("new-access", "new-refresh", None, None))
            inside.pop()

    threads = [threading.Thread(target=refresher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not overlaps and seen == [None, "new-access"]
    assert store.load("tmall", "gateway app shop").refresh_token == "new-refresh"
