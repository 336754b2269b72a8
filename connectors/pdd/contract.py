"""Contract profile of the Pinduoduo connector: which sandbox knob provokes each fault (sandbox/docs/pdd.md)."""

from connectors.contract import ContractProfile, Fault

CONTRACT = ContractProfile(
    shop="pdd-flagship",
    # pdd.late_index_s: orders written while set stay out of the increment list for this long
    late_index=Fault({"pdd.late_index_s": 2}, wait_s=2.5, first_pass_misses=True),
    # pdd.page_shift by 1: pages > 1 start one record later (a reader loses one); the re-read pass must find it
    page_shift=Fault({"pdd.page_shift": {"calls": 2, "by": 1}}, count=7),
    # code 70031 with "This ban will last for 1 more seconds"
    throttle=Fault({"pdd.throttle": {"calls": 2, "ban_seconds": 1}}),
    # code 10019; without a refresh token it cannot be refreshed, so it must surface as a configuration error
    token_expiry=Fault({"pdd.expire_tokens": True}, shop={"refresh_token": None}),
)
