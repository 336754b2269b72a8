"""OrderHub's Airflow DAGs: thin, built by orderhub_airflow.factory from $ORDERHUB_CONFIG (the CLI's YAML).

Parse time reads that file and the environment only; every task calls a hub.runtime.Hub method. The list of DAGs
and what each does: orderhub_airflow/factory.py and README.md, "Running under Airflow".
"""

from orderhub_airflow.factory import dags_from_environment

globals().update(dags_from_environment())
