"""Contract profile of the POS connector (sandbox/docs/pos.md): what applies to a store's receipt feed and what not.

The feed is an append-only upload sequence behind a static API key, with no rate limit: page shift, token expiry
and throttling do not exist there and are declared not applicable (the suite skips them with these reasons; the
POS-specific tests cover the faults the middleware does have: 500s, lost answers, a refused key).
"""

from collections.abc import Mapping
from typing import Any

from connectors.contract import ContractProfile, Fault, NotApplicable


def is_sale(entry: Mapping[str, Any]) -> bool:
    """Returns are receipts too (truth lists them under orders); they are refunds in the hub, not orders."""
    return entry.get("type") == "SALE" and not entry.get("malformed")


CONTRACT = ContractProfile(
    shop="store-sh-001",
    is_order=is_sale,
    # "late" at a till is an offline upload: a sale three hours old arrives now, long after the cursor passed its
    # sale time. Upload-time windows read it in the next pass; the sweep must not need to.
    late_index=Fault(ago_s=3 * 3600, note="offline till: old sale_time, uploaded now"),
    page_shift=NotApplicable("the POS feed is an append-only upload sequence read by an opaque cursor: receipts never "
                             "move between pages (sandbox/docs/pos.md, Feed semantics)"),
    throttle=NotApplicable("the POS middleware has no rate limit or quota (no throttling answer exists); its 500s "
                           "and lost answers are retried, see tests/sources/test_pos_connector.py"),
    token_expiry=NotApplicable("the POS middleware uses a static API key, no token that expires; a refused key is a "
                               "configuration error, see tests/sources/test_pos_connector.py"),
)
