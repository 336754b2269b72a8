"""Scenario files: a YAML description of a rehearsal (fault knobs, starting orders, a peak) applied in one go.

```yaml
# double11.yaml - orderhub sandbox serve --scenario double11.yaml
faults:                      # merged exactly like POST /_sandbox/faults (validated first, all or nothing)
  top.index_lag_s: 20
  top.degraded_list: {calls: 1000, ratio: 0.3}
  top.tmc_redelivery_s: 5
orders:                      # created at start, each entry like POST /_sandbox/orders
  - {channel: tmall, shop: tm-flagship, count: 200, kind: mixed}
peak:                        # like POST /_sandbox/peak
  rate: 500
  duration_s: 120
  channels: {tmall: 0.6, jd: 0.4}
```

Entry points: ``load_scenario(path)`` reads and validates a file (use it before binding a port, so a typo fails at
start-up), ``apply_scenario(app, scenario)`` applies a path or an already-loaded mapping, and
``POST /_sandbox/scenario`` takes the same document as a JSON object or as YAML text. The parts are applied in the
order faults -> orders -> peak; knobs are validated before anything changes, a bad order entry stops there with the
knobs already set (the error says which entry).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from werkzeug.wrappers import Request

from sandbox.faults import FaultError
from sandbox.world import WorldError

if TYPE_CHECKING:
    from sandbox.app import SandboxApp

SECTIONS = ("faults", "orders", "peak")
ORDER_FIELDS = {"channel", "shop", "count", "at", "malformed", "lines", "kind"}


class ScenarioError(WorldError):
    """A scenario that cannot be read or applied; the admin API answers it with HTTP 400."""


def load_scenario(path: str | Path) -> dict[str, Any]:
    """Read and validate a scenario YAML file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario file {path}: {exc}") from None
    return parse_scenario(text, str(path))


def parse_scenario(text: str, source: str = "scenario") -> dict[str, Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source} is not valid YAML: {exc}") from None
    return validate(document if document is not None else {}, source)


def validate(document: object, source: str = "scenario") -> dict[str, Any]:
    """Check the document's shape (not the knob values: Faults.merge does that when applying)."""
    if not isinstance(document, Mapping):
        raise ScenarioError(f"{source}: the document must be a mapping with keys {', '.join(SECTIONS)}")
    unknown = sorted(set(document) - set(SECTIONS))
    if unknown:
        raise ScenarioError(f"{source}: unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    faults = document.get("faults") or {}
    if not isinstance(faults, Mapping):
        raise ScenarioError(f"{source}: faults must be a mapping of knob -> value")
    orders = document.get("orders") or []
    if not isinstance(orders, list):
        raise ScenarioError(f"{source}: orders must be a list of order batches")
    for number, entry in enumerate(orders, start=1):
        if not isinstance(entry, Mapping) or "channel" not in entry:
            raise ScenarioError(f"{source}: orders[{number}] must be a mapping with at least 'channel'")
        extra = sorted(set(entry) - ORDER_FIELDS)
        if extra:
            raise ScenarioError(f"{source}: orders[{number}] has unknown field(s) {', '.join(extra)}")
    peak = document.get("peak")
    if peak is not None and not isinstance(peak, Mapping):
        raise ScenarioError(f"{source}: peak must be a mapping (rate, duration_s, channels, kind)")
    return {"faults": dict(faults), "orders": [dict(entry) for entry in orders],
            "peak": dict(peak) if peak is not None else None}


def apply_scenario(app: SandboxApp, scenario: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """Apply a scenario (a file path or a mapping) to a running app; returns what was done."""
    from sandbox import clock
    from sandbox.peak import start_from

    document = load_scenario(scenario) if isinstance(scenario, (str, Path)) else validate(scenario)
    with app.lock:
        try:
            app.faults.merge(document["faults"])
        except FaultError as exc:
            raise ScenarioError(f"faults: {exc}") from None
    created: dict[str, int] = {}
    for number, entry in enumerate(document["orders"], start=1):
        channel = str(entry["channel"])
        count = entry.get("count", 1)
        try:
            at = clock.parse_wire(entry["at"]) if entry.get("at") else None
            if channel == "tmall":
                shop = entry.get("shop") or next(iter(app.world.shops))
                ids = app.create_tmall_orders(str(shop), count, at=at, malformed=entry.get("malformed"),
                                              lines=entry.get("lines"), kind=entry.get("kind"))
            else:
                system = app.channel(channel)
                shop = entry.get("shop") or (system.shops[0] if system.shops else "")
                ids = system.create_orders(str(shop), count, at, entry.get("malformed"), entry.get("lines"))
        except (WorldError, ValueError, TypeError) as exc:
            raise ScenarioError(f"orders[{number}]: {exc}") from None
        created[channel] = created.get(channel, 0) + len(ids)
    peak = start_from(app, document["peak"]) if document["peak"] is not None else None
    return {"faults": sorted(document["faults"]), "orders": created, "peak": peak}


def _admin_scenario(app: SandboxApp, request: Request) -> dict:
    text = request.get_data(as_text=True)
    if not text.strip():
        raise ScenarioError("send a scenario as a JSON object or YAML text")
    try:
        document: object = json.loads(text)
    except ValueError:
        return {"applied": apply_scenario(app, parse_scenario(text, "request body"))}
    return {"applied": apply_scenario(app, validate(document, "request body"))}


ADMIN_ROUTES = [
    (("POST",), "/scenario", "admin_scenario", _admin_scenario,
     "apply a scenario (faults, orders, peak) given as JSON or YAML"),
]
