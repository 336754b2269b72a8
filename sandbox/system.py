"""The shape of one simulated external system, so that each lives in a module of its own.

A ``System`` owns everything about one platform: its routes on the shared port (under its own path prefix) and at
the real platform's paths (for serving it alone on a port, so the platform's official SDK works against it by
changing only host and port), its fault knobs, its slice of the credentials and of the record of truth, and, for
sales channels, order creation. ``sandbox/registry.py`` lists the systems; ``SandboxApp`` composes them.

Rules for implementers:
- endpoint names are ``"<name>:<anything>"`` so the app can route to the owning system;
- knob names are ``"<name>.<knob>"`` and declared with a default and a validator (``sandbox.faults`` helpers);
- all state access goes through ``self.app.lock``; deliberate sleeps use ``self.app.pause`` / ``self.app.stall``
  outside the lock so a slow call never blocks others;
- data comes from ``random.Random`` seeded from ``self.app.seed`` and the system name, never the global RNG.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from sandbox.app import SandboxApp


class System:
    name: ClassVar[str]
    # knob name ("<name>.<knob>") -> default value, and -> validator (a callable(name, value) or a dict of them)
    knob_defaults: ClassVar[dict[str, object]] = {}
    knob_schema: ClassVar[dict[str, object]] = {}

    def __init__(self, app: SandboxApp) -> None:
        self.app = app
        self.rng = random.Random(f"{app.seed}:{self.name}")

    def rules(self) -> list[Rule]:
        """Routes on the shared port; paths start with ``/<prefix>/``."""
        return []

    def standalone_rules(self) -> list[Rule]:
        """Routes at the real platform's paths, for ``orderhub sandbox serve --system NAME``."""
        return self.rules()

    def handle(self, endpoint: str, request: Request, **args: str) -> Response:
        raise LookupError(f"{self.name} has no endpoint {endpoint}")

    def credentials(self) -> dict[str, Any]:
        return {}

    def truth(self) -> dict[str, Any]:
        """Merged (deeply) into ``GET /_sandbox/truth``: channels under ``channels.<name>``, write-backs under
        ``writebacks.<name>``, documents a sink received under ``sinks.<name>``."""
        return {}

    def reset(self) -> None:
        self.rng = random.Random(f"{self.app.seed}:{self.name}")

    def close(self) -> None:
        """Stop background threads (push senders)."""


class ChannelSystem(System):
    """A sales channel: the admin API creates and modifies its orders."""

    shops: ClassVar[tuple[str, ...]] = ()

    def create_orders(self, shop: str, count: int, at: datetime | None, malformed: str | None,
                      lines: list[dict] | None) -> list[str]:
        raise LookupError(f"{self.name} cannot create orders")

    def modify_order(self, order_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        raise LookupError(f"{self.name} cannot modify orders")


def deep_merge(into: dict[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            deep_merge(into[key], value)
        else:
            into[key] = value
    return into
