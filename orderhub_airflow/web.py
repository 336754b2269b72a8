"""The hub page inside the Airflow UI: a read-only FastAPI app mounted by the plugin at ``/orderhub``.

``GET /orderhub/`` renders the business state next to the runs (unclosed windows per shop, quarantine by cause,
outbox backlog and parked items per sink, orders breaching the paid -> WMS SLA, last stock push per channel);
``GET /orderhub/api/state`` returns the same as JSON. Both sit behind Airflow's own login: the caller must present
the UI's ``_token`` cookie or an ``Authorization: Bearer`` JWT, checked by Airflow's auth manager.
"""

from __future__ import annotations

import html
from datetime import datetime
from functools import lru_cache
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse

try:  # inside the API server; the module stays importable (for unit tests of the rendering) without it
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view

    _ACCESS = [Depends(requires_access_view(AccessView.WEBSITE))]
except ImportError:  # pragma: no cover
    _ACCESS = []

app = FastAPI(title="OrderHub", description="The hub's business state, read-only", dependencies=_ACCESS)


@lru_cache(maxsize=1)
def _hub_context() -> tuple[Any, Any, int]:
    from hub.config import load_settings
    from hub.store import create_engine_for, database_url
    from orderhub_airflow.options import AirflowOptions

    options = AirflowOptions.from_env()
    settings = load_settings(options.config_path)
    return settings, create_engine_for(database_url(settings.database_url)), options.sla_minutes


def current_state() -> dict[str, Any]:
    from orderhub_airflow.state import business_state

    settings, engine, minutes = _hub_context()
    return business_state(engine, settings, minutes)


@app.get("/api/state")
def api_state() -> JSONResponse:
    return JSONResponse(jsonable_encoder(current_state()))


@app.get("/", response_class=HTMLResponse)
def page() -> HTMLResponse:
    try:
        body = render(current_state())
    except Exception as exc:  # show the reason on the page rather than a bare 500 inside the Airflow frame
        body = f"<h1>OrderHub</h1><p class='bad'>cannot read the hub: {html.escape(str(exc))}</p>"
    return HTMLResponse(PAGE.format(body=body))


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    return html.escape("-" if value is None else str(value))


def _table(title: str, rows: list[dict[str, Any]], columns: list[str], empty: str, bad: bool = False) -> str:
    head = f"<h2>{html.escape(title)} <span class='n'>{len(rows)}</span></h2>"
    if not rows:
        return head + f"<p class='ok'>{html.escape(empty)}</p>"
    out = [head, f"<table class='{'bad' if bad else ''}'><tr>"
           + "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in columns) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>")
    out.append("</table>")
    return "".join(out)


def render(state: dict[str, Any]) -> str:
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(state["orders_by_status"].items())) or "none"
    parts = [
        "<h1>OrderHub: business state</h1>",
        f"<p class='meta'>{_cell(state['generated_at'])} &middot; {state['orders']} orders ({html.escape(statuses)})"
        f" &middot; {state['shipments']} shipments &middot; SLA paid &rarr; WMS {state['sla_minutes']} min</p>",
        _table(f"Orders breaching the paid → WMS SLA ({state['sla_minutes']} min)", state["sla_breaches"],
               ["shop", "order_id", "status", "plan", "paid_at", "waiting_minutes"],
               "every paid order is in the WMS within the SLA", bad=True),
        _table("Quarantine by reason", state["quarantine_groups"], ["cause", "records", "shops"],
               "quarantine is empty", bad=True),
        _table("Outbox per sink", state["sinks"],
               ["sink", "backlog", "done", "skipped", "parked", "in_doubt", "in_flight"], "no sinks configured"),
        _table("Unclosed sync windows per shop", state["unclosed_windows"],
               ["shop", "stream", "unclosed", "oldest_start", "newest_end", "cursor"], "every window is closed"),
        _table("Last stock push per channel", state["stock_pushes"],
               ["channel", "last_push", "skus", "pushes", "unacknowledged", "rejected", "version", "acked_version"],
               "no stock push recorded yet"),
    ]
    return "\n".join(parts)


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>OrderHub</title>
<meta http-equiv="refresh" content="30">
<style>
body {{ font-family: system-ui, sans-serif; margin: 16px 24px; color: #1a202c; }}
h1 {{ font-size: 20px; margin: 0 0 4px; }} h2 {{ font-size: 15px; margin: 18px 0 6px; }}
.meta {{ color: #4a5568; margin: 0 0 8px; }} .n {{ background: #edf2f7; border-radius: 9px; padding: 0 8px; }}
table {{ border-collapse: collapse; font-size: 13px; }} th, td {{ border: 1px solid #cbd5e0; padding: 3px 8px; }}
th {{ background: #f7fafc; text-align: left; }} table.bad th {{ background: #fff5f5; }}
.ok {{ color: #276749; margin: 2px 0; }} .bad {{ color: #9b2c2c; }}
</style></head><body>
{body}
</body></html>"""
