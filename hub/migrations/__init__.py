"""Alembic migrations of the hub's store (run with ``orderhub db upgrade``)."""
