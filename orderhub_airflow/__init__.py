"""OrderHub under Airflow: the DAG factory, the task wrappers, pools, alerts and the UI plugin.

Everything Airflow-specific lives here, outside hub/, connectors/ and sandbox/ (which import and run without Airflow).
The DAG file (``dags/orderhub_dags.py``) only calls :func:`orderhub_airflow.factory.dags_from_environment`; the
tasks call :class:`hub.runtime.Hub` methods and hold no business logic of their own.

Modules: ``options`` (the Airflow-only knobs, from the environment), ``pools`` (one pool per platform app key),
``errors`` (hub error kinds -> fail fast or retry), ``steps`` (what each task runs), ``state`` (read-only business
state for the UI page and the SLA watch), ``alerts`` (DingTalk/WeCom webhook callbacks), ``factory`` (the DAGs),
``web`` + ``plugin`` (the hub page inside the Airflow UI), ``launcher`` (``make airflow`` and the tests).
"""
