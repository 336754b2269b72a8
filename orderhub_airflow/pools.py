"""One Airflow pool per platform app key: every shop (or sink) calling a platform with the same key shares its slots.

A platform limits calls per *app key*, not per shop, so two shops on one Tmall app must queue behind one limit. The
pool name is derived from the key's *reference* in the configuration, never from resolving it (no I/O and no
secret at DAG-parse time): ``{value: "12345678"}`` -> ``orderhub-tmall-12345678``, ``{env: TMALL_APP_KEY}`` ->
``orderhub-tmall-env-tmall_app_key``, ``{airflow_connection: tm, field: login}`` -> ``orderhub-tmall-conn-tm-login``.

A task whose pool does not exist stays "scheduled" forever without an error (measured, spec §3.5), so the pools are
created by deployment code: ``python -m orderhub_airflow pools`` (run by ``make airflow`` and the compose file).
"""

from __future__ import annotations

import re
from typing import Any

from orderhub_airflow.options import AirflowOptions


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-")[:80] or "default"


def _key_label(ref: Any) -> str:
    if ref is None:
        return "default"
    if getattr(ref, "env", None):
        return f"env-{ref.env}"
    if getattr(ref, "airflow_connection", None):
        return f"conn-{ref.airflow_connection}-{ref.field}"
    value = getattr(ref, "value", None)
    if value is not None:
        # an app key identifies the application, it is not its secret (the app_secret is)
        return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
    return str(ref)


# what each platform calls the application's id (Tmall/JD app_key, WeChat appid); a secret api key never names a pool
APP_ID_FIELDS = ("app_key", "appid", "app_id")


def _app_id(owner: Any) -> Any:
    return next((getattr(owner, f) for f in APP_ID_FIELDS if getattr(owner, f, None) is not None), None)


def pool_for_shop(shop: Any) -> str:
    """Shops of one application share its pool; a channel without application ids (a store POS) gets one per shop."""
    ref = _app_id(shop)
    label = _key_label(ref) if ref is not None else f"shop-{shop.shop}"
    return f"orderhub-{_slug(shop.channel)}-{_slug(label)}"


def pool_for_sink(sink: Any) -> str:
    return f"orderhub-{_slug(sink.kind)}-{_slug(_key_label(_app_id(sink)))}"


def required_pools(settings: Any, options: AirflowOptions) -> dict[str, tuple[int, str]]:
    """Pool name -> (slots, description) for every enabled shop and sink of the configuration."""
    pools: dict[str, tuple[int, str]] = {}
    users: dict[str, list[str]] = {}
    for shop in settings.enabled_shops():
        users.setdefault(pool_for_shop(shop), []).append(f"{shop.channel}/{shop.shop}")
    for sink in settings.enabled_sinks():
        users.setdefault(pool_for_sink(sink), []).append(f"sink {sink.name}")
    for name, who in users.items():
        pools[name] = (options.pool_slots, "OrderHub: one platform app key, shared by " + ", ".join(who))
    return pools


def ensure_pools(settings: Any, options: AirflowOptions) -> dict[str, int]:
    """Create or update the pools in Airflow's metadata database (needs Airflow and a migrated DB)."""
    from airflow.models.pool import Pool

    done = {}
    for name, (slots, description) in required_pools(settings, options).items():
        Pool.create_or_update_pool(name=name, slots=slots, description=description, include_deferred=False)
        done[name] = slots
    return done
