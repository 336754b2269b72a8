"""Tests of the local simulators in ``sandbox/`` (TOP gateway, Qimen WMS, admin API), spoken to over HTTP."""
