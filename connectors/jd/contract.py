"""Contract profile of the JD connector: which JOS sandbox knob provokes each fault (sandbox/docs/jd.md)."""

from connectors.contract import ContractProfile, Fault

CONTRACT = ContractProfile(
    shop="jd-flagship",
    # jd.late_index_s: orders written while set stay out of order.search for this long (order.get sees them)
    late_index=Fault({"jd.late_index_s": 2}, wait_s=2.5, first_pass_misses=True),
    # jd.page_shift by 1: page > 1 starts one record later, as if one moved to an earlier page (a forward reader
    # loses it); by the time the sweep re-reads, nothing may be missing
    page_shift=Fault({"jd.page_shift": {"calls": 2, "by": 1}}, count=7),
    # code 90 "app call limited" (throttling code UNCONFIRMED in the spec; the sandbox answers 90)
    throttle=Fault({"jd.throttle": {"calls": 2, "code": "90"}}),
    # answer 19; without a refresh token it cannot be refreshed, so it must surface as a configuration error
    token_expiry=Fault({"jd.expire_tokens": True}, shop={"refresh_token": None}),
)
