"""`hs-sync check`: JSON output and exit codes, against the simulator."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from hs_simulator import Simulator
from hs_sync.cli import main
from tests.checks_helpers import planted


@pytest.fixture
def world(sim, synced_copy) -> tuple[Simulator, object]:
    """The planted-defect dataset and a copy of its synced warehouse (`check` records
    its results in the warehouse)."""
    return sim, synced_copy


def check(config, *args: str, key: str | None = None):
    env = {"HYPERSTUDY_API_KEY": key if key is not None else config.api_key}
    argv = ["check", "--warehouse", str(config.warehouse), "--base-url", config.base_url, *args]
    return CliRunner().invoke(main, argv, env=env, catch_exceptions=False)


def test_json_lists_every_check_and_exits_1_on_error_level_failures(world):
    sim, config = world
    result = check(config, "--json")
    assert result.exit_code == 1, result.output
    out = orjson.loads(result.stdout)
    assert out["exit_code"] == 1 and out["recorded"] is True
    checks = {c["name"]: c for c in out["checks"]}
    expected = planted(sim.defects)
    for name, want in expected.items():
        assert checks[name]["count"] == len(want), name
        assert set(checks[name]["sample"]) <= want
    assert checks["missing_sessions"]["severity"] == "error"
    assert checks["missing_sessions"]["status"] == "failed"
    assert "hs-sync sync --room" in checks["missing_sessions"]["hint"]
    assert checks["count_reconciliation"]["status"] == "passed"


def test_no_api_skips_reconciliation_without_a_key(world):
    sim, config = world
    sim.reset_requests()
    result = check(config, "--json", "--no-api", key="")
    out = orjson.loads(result.stdout)
    checks = {c["name"]: c for c in out["checks"]}
    assert checks["count_reconciliation"]["status"] == "skipped"
    assert not [r for r in sim.requests if "/data/" in str(r.get("path", ""))]
    assert result.exit_code == 1  # missing sessions are still an error


def test_clean_warehouse_exits_0_and_prints_a_table(clean_synced_copy):
    config = clean_synced_copy  # synced from a simulator without planted defects
    result = check(config, "--json")
    assert result.exit_code == 0, result.output
    assert all(c["passed"] for c in orjson.loads(result.stdout)["checks"])
    table = check(config)
    assert table.exit_code == 0
    assert "missing_sessions" in table.stdout and "passed" in table.stdout


def test_warnings_alone_exit_0(world):
    from tests.checks_helpers import execute

    sim, config = world  # a copy of its own
    rooms = sorted({r["roomId"] for r in sim.defects["missingDataRooms"]})
    execute(config, "DELETE FROM participants WHERE list_contains(?, roomId)", [rooms])
    execute(config, "DELETE FROM rooms WHERE list_contains(?, id)", [rooms])
    # offline: the API would rightly notice the deleted snapshot rows
    out = orjson.loads(check(config, "--json", "--no-api").stdout)
    failed = {c["name"]: c["severity"] for c in out["checks"] if not c["passed"]}
    assert failed and set(failed.values()) == {"warning"}
    assert out["exit_code"] == 0


def test_config_errors_exit_2(world, tmp_path):
    sim, config = world
    nowhere = CliRunner().invoke(
        main, ["check", "--warehouse", str(tmp_path / "none"), "--no-api"], env={}
    )
    assert nowhere.exit_code == 2 and "run `hs-sync sync` first" in nowhere.stderr
    no_key = check(config, key="")
    assert no_key.exit_code == 2 and "HYPERSTUDY_API_KEY" in no_key.stderr
    wrong_key = check(config, "--json", key="hst_test_" + "x" * 64)
    assert wrong_key.exit_code == 2
    assert "x" * 64 not in wrong_key.output + wrong_key.stderr
    bad_file = check(config, "--config", str(tmp_path / "missing.toml"))
    assert bad_file.exit_code == 2 and "config" in bad_file.stderr
