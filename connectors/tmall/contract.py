"""Contract profile of the Tmall connector: which TOP sandbox knob provokes each fault (sandbox/docs/top.md)."""

from connectors.contract import ContractProfile, Fault

CONTRACT = ContractProfile(
    shop="tm-flagship",
    # TOP's search index lags its writes: the first pass cannot see the orders, the sweep's re-read must
    late_index=Fault({"top.index_lag_s": 2}, wait_s=2.5, first_pass_misses=True),
    # a trade modified while we page moves the others up one place; last-to-first paging must lose none
    page_shift=Fault({"top.page_shift": {"calls": 3}}, count=7),
    # code 7 "This ban will last for 1 more seconds": retried after the ban, not failed
    throttle=Fault({"top.throttle": {"calls": 2, "ban_seconds": 1}}),
    # code 27 invalid session; the sandbox config carries no refresh token, so nothing can refresh it away
    token_expiry=Fault({"top.expire_sessions": True}, shop={"refresh_token": None}),
)
