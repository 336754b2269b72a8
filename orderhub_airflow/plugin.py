"""The Airflow 3 plugin: mounts the hub page (``orderhub_airflow.web``) in the API server at ``/orderhub`` and adds
"OrderHub" to the UI's navigation as an external view rendered inside Airflow (``/plugin/orderhub``).

Registered through the ``airflow.plugins`` entry point in pyproject.toml, so installing the package is enough.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from orderhub_airflow.web import app


class OrderHubPlugin(AirflowPlugin):
    name = "orderhub"
    fastapi_apps = [{"app": app, "url_prefix": "/orderhub", "name": "OrderHub"}]
    external_views = [{"name": "OrderHub", "href": "/orderhub/", "destination": "nav", "url_route": "orderhub",
                       "category": "browse"}]
