"""`orderhub connector new NAME` writes a connector that imports, validates, maps its recorded case and lints clean."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import connectors
from connectors.contract import ContractProfile
from hub.cli import app
from hub.connector import SourceConnector
from hub.errors import ConfigurationError, TransientError
from hub.mapping import load_mapping
from hub.models import Order

runner = CliRunner()


@pytest.fixture
def generated(tmp_path):
    """Generate ``pinduoduo`` into a temp tree and make ``connectors.pinduoduo`` importable from there."""
    result = runner.invoke(app, ["connector", "new", "pinduoduo", "--root", str(tmp_path), "--title", "Pinduoduo"])
    assert result.exit_code == 0, result.output
    extra = str(tmp_path / "connectors")
    connectors.__path__.append(extra)
    try:
        yield tmp_path, result.output, importlib.import_module("connectors.pinduoduo")
    finally:
        connectors.__path__.remove(extra)
        for name in [m for m in sys.modules if m == "connectors.pinduoduo" or m.startswith("connectors.pinduoduo.")]:
            del sys.modules[name]


def test_connector_new_writes_one_folder_a_mapping_and_a_case_and_prints_the_registry_line(generated):
    root, output, _package = generated
    folder = root / "connectors" / "pinduoduo"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "__init__.py", "client.py", "contract.py",
                                                        "settings.py", "streams.py", "writeback.py"]
    assert (root / "mappings" / "pinduoduo.yaml").exists() and (root / "mappings" / "cases" / "pinduoduo.yaml").exists()
    assert "import connectors.pinduoduo as pinduoduo" in output and '"pinduoduo": pinduoduo.SOURCE,' in output
    assert "$" not in "".join(p.read_text(encoding="utf-8") for p in folder.iterdir())  # every placeholder filled


def test_the_generated_connector_imports_validates_and_maps_its_recorded_case(generated):
    root, _output, package = generated
    source = package.SOURCE
    assert isinstance(source, SourceConnector) and source.channel == "pinduoduo"
    settings = source.settings_type.model_validate({
        "shop": "pdd-flagship", "base_url": "http://127.0.0.1:9/api", "access_token": {"value": "t0k3n"}})
    streams = source.open_streams(settings)
    assert streams["orders"].entity == "order" and streams["orders"].external_id({"order_id": 7}) == "7"
    mapper = load_mapping(root / "mappings" / source.mapping_file, Order, transforms=source.transforms,
                          computes=source.computes)
    cases = yaml.safe_load((root / "mappings" / "cases" / "pinduoduo.yaml").read_text(encoding="utf-8"))["cases"]
    for case in cases:
        record = json.loads((root / "mappings" / "cases" / case["payload"]).read_text(encoding="utf-8"))
        order = mapper.to_model(record, {"channel": "pinduoduo", "shop": case["shop"]})
        assert order.platform == "pinduoduo" and order.paid_total == sum(line.line_paid for line in order.lines)
    contract = importlib.import_module("connectors.pinduoduo.contract").CONTRACT
    assert isinstance(contract, ContractProfile)
    client = importlib.import_module("connectors.pinduoduo.client")
    with pytest.raises(ConfigurationError):
        client.classify("orders", 401, {}, shop="pdd-flagship")
    with pytest.raises(TransientError):
        client.classify("orders", 429, {}, shop="pdd-flagship")
    with pytest.raises(TransientError):  # an unreachable platform is transient, retried, then reported
        settings.http.attempts = 1
        streams["orders"].fetch_one("1")


def test_the_generated_code_passes_the_project_lint(generated):
    root, _output, _package = generated
    project = Path(__file__).resolve().parents[2]
    ruff = Path(sys.executable).with_name("ruff")
    done = subprocess.run([str(ruff), "check", "--no-cache", "--config", str(project / "pyproject.toml"),
                           "--config", "lint.isort.known-first-party = ['connectors', 'hub', 'mappings']",
                           str(root / "connectors" / "pinduoduo")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_connector_new_refuses_a_bad_name_and_never_overwrites(tmp_path):
    bad = runner.invoke(app, ["connector", "new", "Pin-Duo", "--root", str(tmp_path)])
    assert bad.exit_code == 2 and not (tmp_path / "connectors").exists()
    assert runner.invoke(app, ["connector", "new", "douyin", "--root", str(tmp_path)]).exit_code == 0
    before = (tmp_path / "connectors" / "douyin" / "client.py").read_text(encoding="utf-8")
    (tmp_path / "connectors" / "douyin" / "client.py").write_text(before + "# edited\n", encoding="utf-8")
    again = runner.invoke(app, ["connector", "new", "douyin", "--root", str(tmp_path)])
    assert again.exit_code == 3 and "would overwrite" in again.output
    assert (tmp_path / "connectors" / "douyin" / "client.py").read_text(encoding="utf-8").endswith("# edited\n")


def test_a_connector_without_a_contract_profile_fails_the_suite_saying_what_to_add(generated):
    from tests.contract.test_contract import profile_of

    root, _output, package = generated
    assert profile_of("pinduoduo", package.SOURCE).shop == "pinduoduo-shop"
    (root / "connectors" / "pinduoduo" / "contract.py").unlink()
    sys.modules.pop("connectors.pinduoduo.contract", None)
    with pytest.raises(pytest.fail.Exception, match=r"add connectors/pinduoduo/contract\.py with CONTRACT"):
        profile_of("pinduoduo", package.SOURCE)
