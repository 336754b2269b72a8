"""Small HTTP helpers every simulator and the admin API share: JSON answers, admin JSON bodies, the admin ``at``
field, and request parameters merged from the query string and the form (where SDKs put them differs)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox import clock
from sandbox.world import WorldError

JSON = "application/json"
JSON_UTF8 = "application/json;charset=utf-8"


def json_response(payload: object, status: int = 200, content_type: str = JSON) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status=status, content_type=content_type)


def admin_body(request: Request) -> dict:
    """The JSON object body of an admin call ({} when empty); bad JSON is a 400 (WorldError)."""
    raw = request.get_data(cache=True)
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise WorldError(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise WorldError("body must be a JSON object")
    return body


def admin_at(body: Mapping[str, Any], default: datetime | None = None) -> datetime | None:
    """The optional ``at`` of an admin call ('yyyy-MM-dd HH:mm:ss', GMT+8); ``default`` when it is absent."""
    raw = body.get("at")
    if raw is None:
        return default
    try:
        return clock.parse_wire(raw)
    except ValueError:
        raise WorldError("at must be 'yyyy-MM-dd HH:mm:ss' (GMT+8)") from None


def query_and_form(request: Request) -> dict[str, str]:
    """Query first, then form: SDKs differ in where they put system and business params; signatures cover both."""
    params: dict[str, str] = {}
    for source in (request.args, request.form):
        for key in source:
            params.setdefault(key, source[key])
    return params
