#!/bin/bash
# Runs once, on an empty MySQL data volume: one database and user for Airflow's metadata, one for the hub.
set -euo pipefail
mysql -uroot -p"${MYSQL_ROOT_PASSWORD}" <<SQL
CREATE DATABASE IF NOT EXISTS airflow CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE DATABASE IF NOT EXISTS orderhub CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'airflow'@'%' IDENTIFIED BY '${AIRFLOW_DB_PASSWORD}';
CREATE USER IF NOT EXISTS 'orderhub'@'%' IDENTIFIED BY '${ORDERHUB_DB_PASSWORD}';
GRANT ALL PRIVILEGES ON airflow.* TO 'airflow'@'%';
GRANT ALL PRIVILEGES ON orderhub.* TO 'orderhub'@'%';
SQL
