"""JSON text for the store: orjson where it can, the standard library where orjson refuses.

Every ingested record is serialised at least four times (its raw payload, the canonical document, the outbox event
and the audit detail), which made ``json.dumps`` the largest single cost of the write path. orjson writes the same
bytes as ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` four times faster. It refuses some inputs the
standard library takes (integers beyond 64 bits, non-string keys, nesting deeper than 254, lone surrogates); those
fall back to the standard library, so they keep their old form and their old errors.

One difference remains: NaN and infinities, which JSON does not have, become ``null`` (the standard library writes
the non-JSON ``NaN``). A channel record carrying one fails validation on the parsed value either way.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_SORTED = orjson.OPT_SORT_KEYS


def canonical(record: Any) -> str:
    """Keys sorted, no spaces, non-ASCII as is, unknown types as ``str()``: the form that raw payloads are hashed
    in, so the same record always hashes the same."""
    try:
        return orjson.dumps(record, option=_SORTED, default=str).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def compact(value: Any) -> str:
    """The store's serializer for JSON columns (``create_engine(json_serializer=...)``): types JSON cannot hold
    fail as they would with ``json.dumps``."""
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
