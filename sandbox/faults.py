"""Fault knobs: the misbehaviour an integration engineer can switch on to rehearse what production will do.

Knobs are addressed by flat dotted names (``top.throttle``, ``wms.auto_ship`` ...) and changed by a JSON merge
(``POST /_sandbox/faults``): object-valued knobs merge key by key, scalars replace, ``{"reset": true}`` restores the
defaults first. Counted knobs (``{"calls": N}``) are consumed one per affected call and read back with the remaining
count, so a test can see that its fault fired.

Every value is validated on the way in: a typo in a knob name must fail loudly instead of silently testing nothing.
The object is not thread-safe by itself; ``SandboxApp`` holds its lock around every use.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

THROTTLE_SUB_CODES = (
    "accesscontrol.limited-by-api-access-count",
    "accesscontrol.limited-by-app-access-count",
    "accesscontrol.limited-by-dynamic-access-count",
)
TIMEOUT_MODES = ("sleep", "drop")

DEFAULTS: dict[str, object] = {
    # TOP gateway (/top/router/rest)
    "top.throttle": {"calls": 0, "ban_seconds": 60, "sub_code": THROTTLE_SUB_CODES[0]},
    "top.http_500": {"calls": 0},
    "top.latency_ms": 0,
    "top.expire_sessions": False,
    "top.timeout_after_success": {"calls": 0, "methods": [], "sleep_s": 5.0, "mode": "sleep"},
    "top.index_lag_s": 0,
    "top.session_ttl_s": 0,
    "top.daily_quota": 0,
    "top.qps_limit": 0,
    "top.isp_error": {"calls": 0, "sub_code": "isp.top-remote-connection-timeout", "methods": []},
    "top.page_shift": {"calls": 0},
    "top.degraded_list": {"calls": 0, "ratio": 0.5, "drop": ["orders", "receiver"]},
    "top.tmc_redelivery_s": 60,
    "top.tmc_duplicate": {"calls": 0},
    "top.tmc_out_of_order": False,
    # Qimen WMS (/qimen/router)
    "wms.auto_ship": True,
    "wms.fail_create": {"calls": 0},
    "wms.latency_ms": 0,
    "wms.timeout_after_success": {"calls": 0, "methods": [], "sleep_s": 5.0, "mode": "sleep"},
    "wms.http_500": {"calls": 0},
    "wms.duplicate_confirm": {"calls": 0},
    "wms.out_of_order_confirm": False,
    "wms.stock_report_lag_s": 0,
}


class FaultError(ValueError):
    """An invalid knob name or value in a ``POST /_sandbox/faults`` body."""


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FaultError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise FaultError(f"{name} must be a non-negative number, got {value!r}")
    return value


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise FaultError(f"{name} must be true or false, got {value!r}")
    return value


def _strings(name: str, value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise FaultError(f"{name} must be a list of strings, got {value!r}")
    return list(value)


def _choice(options: tuple[str, ...]) -> Callable[[str, object], str]:
    def check(name: str, value: object) -> str:
        if value not in options:
            raise FaultError(f"{name} must be one of {', '.join(options)}, got {value!r}")
        return value  # type: ignore[return-value]

    return check


def _expire_sessions(name: str, value: object) -> bool | list[str]:
    # true = every session is invalid; a list of shop slugs = only those shops' sessions.
    if isinstance(value, bool):
        return value
    return _strings(name, value)


# Nodes top.degraded_list may leave out of list responses ("receiver" = every receiver_* field and oaid).
DEGRADABLE_NODES = ("orders", "receiver", "buyer_message", "seller_memo", "pay_time")


def _isp_sub_code(name: str, value: object) -> str:
    # isp.* = a platform back-end problem the caller should retry (spec §1.5)
    if not isinstance(value, str) or not value.startswith("isp."):
        raise FaultError(f"{name} must be a sub_code starting with 'isp.', got {value!r}")
    return value


def _ratio(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise FaultError(f"{name} must be a number in (0, 1], got {value!r}")
    return value


def _nodes(name: str, value: object) -> list[str]:
    nodes = _strings(name, value)
    unknown = [node for node in nodes if node not in DEGRADABLE_NODES]
    if unknown or not nodes:
        raise FaultError(f"{name} must be a non-empty list of {', '.join(DEGRADABLE_NODES)}, got {value!r}")
    return nodes


_TIMEOUT_FIELDS = {"calls": _count, "methods": _strings, "sleep_s": _number, "mode": _choice(TIMEOUT_MODES)}

# knob -> validator for a scalar knob, or {field: validator} for an object knob.
_SCHEMA: dict[str, object] = {
    "top.throttle": {"calls": _count, "ban_seconds": _count, "sub_code": _choice(THROTTLE_SUB_CODES)},
    "top.http_500": {"calls": _count},
    "top.latency_ms": _number,
    "top.expire_sessions": _expire_sessions,
    "top.timeout_after_success": _TIMEOUT_FIELDS,
    "top.index_lag_s": _number,
    "top.session_ttl_s": _number,
    "top.daily_quota": _count,
    "top.qps_limit": _number,
    "top.isp_error": {"calls": _count, "sub_code": _isp_sub_code, "methods": _strings},
    "top.page_shift": {"calls": _count},
    "top.degraded_list": {"calls": _count, "ratio": _ratio, "drop": _nodes},
    "top.tmc_redelivery_s": _number,
    "top.tmc_duplicate": {"calls": _count},
    "top.tmc_out_of_order": _flag,
    "wms.auto_ship": _flag,
    "wms.fail_create": {"calls": _count},
    "wms.latency_ms": _number,
    "wms.timeout_after_success": _TIMEOUT_FIELDS,
    "wms.http_500": {"calls": _count},
    "wms.duplicate_confirm": {"calls": _count},
    "wms.out_of_order_confirm": _flag,
    "wms.stock_report_lag_s": _number,
}


class Faults:
    """The current knob values, with helpers the gateways call to consume them."""

    def __init__(self, defaults: Mapping[str, object] | None = None, schema: Mapping[str, object] | None = None
                 ) -> None:
        # Systems of sandbox/registry.py bring their own knobs; the built-in TOP and WMS ones are always there.
        self._defaults: dict[str, object] = {**DEFAULTS, **(defaults or {})}
        self._schema: dict[str, object] = {**_SCHEMA, **(schema or {})}
        self._knobs: dict[str, object] = copy.deepcopy(self._defaults)

    def snapshot(self) -> dict[str, object]:
        return copy.deepcopy(self._knobs)

    def reset(self) -> None:
        self._knobs = copy.deepcopy(self._defaults)

    def merge(self, changes: Mapping[str, object]) -> None:
        """Validate all of ``changes`` first, then apply them, so a bad body changes nothing."""
        if not isinstance(changes, Mapping):
            raise FaultError("the body must be a JSON object of knob -> value")
        staged = copy.deepcopy(self._defaults) if changes.get("reset") is True else copy.deepcopy(self._knobs)
        for name, value in changes.items():
            if name == "reset":
                if not isinstance(value, bool):
                    raise FaultError(f"reset must be true or false, got {value!r}")
                continue
            schema = self._schema.get(name)
            if schema is None:
                raise FaultError(f"unknown fault knob {name!r}; known: {', '.join(self._schema)}")
            if isinstance(schema, dict):
                if not isinstance(value, Mapping):
                    raise FaultError(f"{name} takes an object with keys {', '.join(schema)}")
                target = staged[name]
                assert isinstance(target, dict)
                for key, sub_value in value.items():
                    if key not in schema:
                        raise FaultError(f"unknown field {name}.{key}; known: {', '.join(schema)}")
                    target[key] = schema[key](f"{name}.{key}", sub_value)
            else:
                staged[name] = schema(name, value)  # type: ignore[operator]
        self._knobs = staged

    def get(self, name: str) -> object:
        return copy.deepcopy(self._knobs[name])

    def consume(self, name: str) -> dict | None:
        """If the counted knob ``name`` has calls left, use one and return its settings; else ``None``."""
        knob = self._knobs[name]
        assert isinstance(knob, dict)
        if knob["calls"] <= 0:
            return None
        knob["calls"] -= 1
        return dict(knob)

    def consume_timeout(self, name: str, *method_names: str) -> dict | None:
        """Like :meth:`consume` for a ``*.timeout_after_success`` knob, counting only calls to its ``methods``.

        ``method_names`` are the spellings of the current call (Qimen has a short and a ``taobao.qimen.`` form);
        an empty ``methods`` list matches every method.
        """
        knob = self._knobs[name]
        assert isinstance(knob, dict)
        if knob["calls"] <= 0 or (knob["methods"] and not set(method_names) & set(knob["methods"])):
            return None
        return self.consume(name)
