"""Running the sandbox: in-process start/stop, loopback-only binding, and an import that does nothing."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import threading
import time

import pytest
import requests

from sandbox.server import running_sandbox, serve

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_running_sandbox_starts_well_under_a_second_and_stops_cleanly():
    started = time.monotonic()
    with running_sandbox(seed=3) as sbx:
        assert sbx.url.startswith("http://127.0.0.1:")
        assert requests.get(f"{sbx.url}/_sandbox/health", timeout=5).json() == {"ok": True, "seed": 3}
        assert time.monotonic() - started < 1.0
        assert sbx.app.seed == 3
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sbx.url}/_sandbox/health", timeout=1)


def test_leaving_running_sandbox_wakes_a_handler_parked_in_a_fault_sleep():
    started = time.monotonic()
    with running_sandbox() as sbx:
        sbx.app.faults.merge({"top.latency_ms": 30_000})
        with pytest.raises(requests.Timeout):
            requests.get(sbx.top_gateway_url, timeout=0.2)
    assert time.monotonic() - started < 2.0


def test_serve_refuses_to_bind_anything_but_127_0_0_1():
    with pytest.raises(ValueError, match="127.0.0.1"):
        serve(host="0.0.0.0", port=0)


def test_the_package_exports_its_interface_and_importing_it_starts_nothing():
    code = (
        "import threading, sandbox\n"
        "assert {'SandboxApp', 'running_sandbox', 'serve'} <= set(sandbox.__all__)\n"
        "import sandbox.app, sandbox.top, sandbox.qimen, sandbox.admin, sandbox.world, sandbox.faults\n"
        "assert threading.active_count() == 1, threading.enumerate()\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=30)


def test_a_slow_gateway_call_does_not_block_other_requests():
    with running_sandbox() as sbx:
        sbx.app.faults.merge({"top.latency_ms": 400})
        slow = threading.Thread(target=lambda: requests.get(sbx.top_gateway_url, timeout=5))
        slow.start()
        time.sleep(0.05)
        started = time.monotonic()
        requests.get(f"{sbx.url}/_sandbox/truth", timeout=5)
        assert time.monotonic() - started < 0.3
        slow.join()


def test_sandbox_serve_applies_a_scenario_file_and_refuses_a_bad_one(tmp_path):
    import requests
    from typer.testing import CliRunner

    from hub.cli import app as cli
    from sandbox.scenario import load_scenario
    from sandbox.server import running_sandbox

    good = tmp_path / "peak-day.yaml"
    good.write_text("faults:\n  top.latency_ms: 5\n  wms.auto_ship: false\n", encoding="utf-8")
    with running_sandbox(seed=2, scenario=load_scenario(good)) as handle:
        knobs = requests.get(f"{handle.url}/_sandbox/faults", timeout=5).json()
    knobs = knobs.get("knobs", knobs)
    assert knobs["top.latency_ms"] == 5 and knobs["wms.auto_ship"] is False
    bad = tmp_path / "typo.yaml"
    bad.write_text("faults:\n  top.latencyms: 5\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["sandbox", "serve", "--port", "1", "--scenario", str(bad)])
    assert result.exit_code == 3 and "top.latencyms" in result.output
