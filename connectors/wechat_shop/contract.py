"""Contract profile of the WeChat shop connector: which sandbox knob provokes each fault (sandbox/docs/
wechat_shop.md)."""

from connectors.contract import ContractProfile, Fault, NotApplicable

CONTRACT = ContractProfile(
    shop="wx-store",
    # wechat_shop.late_index_s: orders written while set stay out of order/list/get (order/get sees them)
    late_index=Fault({"wechat_shop.late_index_s": 2}, wait_s=2.5, first_pass_misses=True),
    page_shift=NotApplicable("order/list/get pages with a keyset next_key (last key served), not page numbers: a "
                             "record cannot shift into a page already read, and the sandbox has no page-shift knob "
                             "for it (sandbox/docs/wechat_shop.md §3.2)"),
    # errcode 45011: API minute quota; waited out, then the read goes on
    throttle=Fault({"wechat_shop.throttle": {"calls": 2, "errcode": 45011}}),
    # 42001 on every token of the shop, also on tokens fetched while set: the connector cannot fetch its way out
    token_expiry=Fault({"wechat_shop.expire_tokens": True}),
)
