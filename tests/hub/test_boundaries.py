"""hub/, connectors/, mappings/ and sandbox/ import without Airflow and do no I/O at import time; windows are planned
without ever reaching past the data that can be read."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from hub.sync import plan_windows

IMPORT_EVERYTHING = """
import builtins, socket, sys
sys.modules["airflow"] = None  # any `import airflow` now fails
def no_network(*args, **kwargs):
    raise AssertionError("network I/O at import time")
socket.socket.connect = no_network
socket.create_connection = no_network
import pkgutil, importlib
import hub, connectors, mappings, sandbox
for package in (hub, connectors, sandbox):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if ".migrations." in info.name:
            continue  # alembic env.py runs migrations when imported: only alembic imports it
        importlib.import_module(info.name)
print("ok")
"""


def test_the_library_imports_without_airflow_and_without_network_io():
    result = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


NOW = datetime(2026, 11, 11, 12, 0, 0, 500000, tzinfo=UTC)
PLAN = dict(now=NOW, start_from=None, lookback=timedelta(hours=1), window=timedelta(minutes=30),
            overlap=timedelta(minutes=2), lag=timedelta(seconds=10), max_window=timedelta(days=1),
            history_limit=timedelta(days=90))


def test_windows_are_bounded_contiguous_and_stop_before_the_lag():
    windows = plan_windows(None, **PLAN)
    assert windows[0][0] == datetime(2026, 11, 11, 11, 0, 0, tzinfo=UTC)
    assert windows[-1][1] == datetime(2026, 11, 11, 11, 59, 50, tzinfo=UTC)  # now - lag, whole seconds
    assert all(end - start <= timedelta(minutes=30) for start, end in windows)
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))


def test_a_cursor_is_re_read_with_the_overlap_and_after_an_outage_every_gap_is_filled():
    # five hours down: no fixed "last 24 h", the cursor fills the gap
    cursor = NOW.replace(microsecond=0) - timedelta(hours=5)
    windows = plan_windows(cursor, **PLAN)
    assert windows[0][0] == cursor - timedelta(minutes=2)
    assert len(windows) == 11 and windows[-1][1] == datetime(2026, 11, 11, 11, 59, 50, tzinfo=UTC)


def test_windows_respect_the_api_span_and_history_limits():
    windows = plan_windows(NOW - timedelta(days=200), **{**PLAN, "window": timedelta(days=3),
                                                           "max_window": timedelta(days=1)})
    assert windows[0][0] > NOW - timedelta(days=90)  # never older than the API serves
    assert all(end - start <= timedelta(days=1) for start, end in windows)


def test_nothing_is_planned_when_the_cursor_is_already_at_the_lag_edge():
    assert plan_windows(NOW - timedelta(seconds=10), **{**PLAN, "overlap": timedelta(0)}) == []
