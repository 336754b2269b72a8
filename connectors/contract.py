"""Contract profiles: what the connector contract suite (tests/contract/) needs to know about one source connector.

The suite runs the same promises against every source in ``connectors.registry.SOURCES`` with the sandbox: every
mapping case maps to a valid model, pagination ends, the cursor never moves back, replaying a window changes nothing,
a late-indexed order is found by the sweep, a page shift loses nothing, token expiry surfaces as a configuration
error, throttling is waited out. What differs per channel is only *how the sandbox provokes* each fault (which knob,
how long to wait), so each connector ships a small profile next to its code, ``connectors/<name>/contract.py``::

    from connectors.contract import ContractProfile, Fault, NotApplicable

    CONTRACT = ContractProfile(
        shop="tm-flagship",
        late_index=Fault({"top.index_lag_s": 2}, wait_s=2.5, first_pass_misses=True),
        page_shift=Fault({"top.page_shift": {"calls": 3}}),
        throttle=Fault({"top.throttle": {"calls": 2, "ban_seconds": 1}}),
        token_expiry=Fault({"top.expire_sessions": True}),
    )

A capability that does not apply to a channel is ``NotApplicable("why")``: the suite skips that test *with that
reason*, so a not-applicable is documented, never silent. A connector without a profile fails the suite with a
message that says what to add. Plain data, no I/O, no test framework: importing it is free.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NotApplicable:
    """The capability does not exist on this channel; ``reason`` is shown as the skip reason."""

    reason: str


@dataclass(frozen=True)
class Fault:
    """How the sandbox provokes one fault class for this channel.

    ``knobs``: the body of ``POST /_sandbox/faults`` switched on before the orders are created (empty: the scenario
    needs no knob, e.g. an offline till is just an old sale time). ``ago_s``: how long ago the orders were placed
    (their ``at``). ``wait_s``: how long the platform needs before a re-read can see them (index lag). ``sync``:
    overrides of the shop's ``sync`` block for this scenario. ``first_pass_misses``: the first sync is expected to
    miss the orders (proves the knob bites; the sweep must then find them). ``shop``: overrides of the shop's
    settings (``None`` removes a key, e.g. a refresh token, so that an expired token cannot be refreshed away).
    """

    knobs: Mapping[str, Any] = field(default_factory=dict)
    ago_s: int = 60
    wait_s: float = 0.0
    count: int = 3
    sync: Mapping[str, Any] = field(default_factory=dict)
    shop: Mapping[str, Any] = field(default_factory=dict)
    first_pass_misses: bool = False
    note: str = ""


def counts_every_order(entry: Mapping[str, Any]) -> bool:
    """Default: every well-formed record under the truth's ``orders`` is an order the hub must hold."""
    return not entry.get("malformed")


@dataclass(frozen=True)
class ContractProfile:
    """One connector's answers to the suite. ``shop``: the sandbox shop the suite drives (its config comes from
    ``sandbox.configuration.SHOP_BUILDERS``). ``orders_stream``: the stream name of orders. ``is_order``: which
    entries of the sandbox truth ``channels.<channel>.<shop>.orders`` are orders (POS lists returns there too).
    ``page_size``: a page size small enough that a handful of orders spans several pages. ``create_body``: extra
    fields of ``POST /_sandbox/orders``. ``shop_settings``: overrides applied to the shop in every contract run."""

    shop: str
    late_index: Fault | NotApplicable
    page_shift: Fault | NotApplicable
    throttle: Fault | NotApplicable
    token_expiry: Fault | NotApplicable
    orders_stream: str = "orders"
    page_size: int = 2
    is_order: Callable[[Mapping[str, Any]], bool] = counts_every_order
    create_body: Mapping[str, Any] = field(default_factory=dict)
    shop_settings: Mapping[str, Any] = field(default_factory=dict)

    def capability(self, name: str) -> Fault | NotApplicable:
        value = getattr(self, name)
        if not isinstance(value, (Fault, NotApplicable)):
            raise TypeError(f"{name} must be a Fault or NotApplicable, got {type(value).__name__}")
        return value
