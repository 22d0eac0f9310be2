"""`status()` and `hs-sync status` on a warehouse synced from the simulator."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import timedelta

import orjson
import pytest
from click.testing import CliRunner

from hs_sync import registry
from hs_sync.cli import main
from hs_sync.errors import ConfigError
from hs_sync.export import time_column
from hs_sync.load.transform import transform
from hs_sync.run import sync
from hs_sync.status import status
from hs_sync.timeutil import parse_time
from hs_sync.warehouse import Warehouse
from tests.extract_helpers import served_rows
from tests.warehouse_helpers import event, land


@pytest.fixture(scope="module")
def synced(_synced_once, tmp_path_factory):
    """A copy of the run's synced warehouse synced once more (the second sync finds
    nothing new), both syncs' summaries, and the served records."""
    sim, first = _synced_once.sim, _synced_once.summary
    config = _synced_once.copy(tmp_path_factory.mktemp("status"))
    second = sync(config)
    assert first.exit_code == second.exit_code == 0
    records = {dt.name: served_rows(sim, dt) for dt in registry.DATA_TYPES}
    return Warehouse(config.warehouse), (first, second), records


def test_row_counts_per_type_and_experiment_match_what_the_api_served(synced):
    wh, _, records = synced
    report = status(wh)
    assert report["rows"] == {name: len(rs) for name, rs in records.items()}
    by_pair = {(t["data_type"], t["experiment_id"]): t for t in report["tables"]}
    for dt in registry.DATA_TYPES:
        exp_field = "id" if dt.name == "experiments" else "experimentId"
        served = Counter(r[exp_field] for r in records[dt.name])
        assert {e: by_pair[(dt.name, e)]["rows"] for e in served} == dict(served), dt.name
        tcol = time_column(dt)
        for exp in served:
            newest = by_pair[(dt.name, exp)]["newest"]
            if tcol is None:
                assert newest is None
            else:
                times = [parse_time(r.get(tcol)) for r in records[dt.name] if r[exp_field] == exp]
                assert parse_time(newest) == max(t for t in times if t), (dt.name, exp)
    assert len(by_pair) == len(report["tables"])


def test_runs_newest_first_with_their_figures(synced):
    wh, (first, second), _ = synced
    runs = status(wh)["runs"]
    assert [r["run_id"] for r in runs] == [second.run_id, first.run_id]
    assert [r["status"] for r in runs] == ["ok", "ok"]
    assert runs[1]["total_rows"] == first.total_rows > 0
    assert runs[0]["total_rows"] == second.total_rows
    assert runs[1]["requests"] == first.requests
    assert sorted(runs[1]["experiments"]) == sorted(first.experiments)
    assert status(wh, last_runs=1)["runs"] == runs[:1]


def test_watermarks_for_every_time_type_and_experiment(synced):
    wh, (_, second), records = synced
    marks = status(wh)["watermarks"]
    have = {(m["data_type"], m["experiment_id"]) for m in marks}
    for dt in registry.DATA_TYPES:
        if dt.mode is registry.Mode.TIME:
            served = {r["experimentId"] for r in records[dt.name]}
            assert {(dt.name, e) for e in served} <= have, dt.name
    for mark in marks:
        assert parse_time(mark["watermark"]) <= parse_time(second.window_end)
        assert mark["age_hours"] is not None


def test_freshness_against_the_threshold(synced):
    wh, (_, second), _ = synced
    report = status(wh)
    fresh = report["freshness"]
    assert fresh["last_success_at"] == report["runs"][0]["finished_at"]
    assert fresh["last_run_status"] == "ok" and fresh["stale"] is False
    assert fresh["threshold_hours"] == 26.0
    assert fresh["newest_row_at"] == max(t["newest"] for t in report["tables"] if t["newest"])
    later = parse_time(fresh["last_success_at"]) + timedelta(hours=27)
    aged = status(wh, now=later)["freshness"]
    assert aged["stale"] is True and 26.9 < aged["hours_since_success"] < 27.1
    assert status(wh, now=later, freshness_hours=48)["freshness"]["stale"] is False


def test_drift_and_quarantine_are_reported(synced, tmp_path):
    wh = Warehouse(tmp_path / "wh")
    shutil.copytree(synced[0].root, wh.root)
    assert status(wh)["quarantined_rows"] == 0
    land(
        wh,
        "events",
        [event(1, surpriseField={"a": 1}), event(2, onset="soon"), b"{not json", event(3)],
    )
    transform(wh, [registry.get("events")])
    report = status(wh)
    # onset "soon" is a row (onset NULL, kept in _extra); only the non-JSON line is not
    assert report["quarantine"] == {"events": 1} and report["quarantined_rows"] == 1
    drift = {(d["data_type"], d["kind"], d["field"]): d for d in report["drift"]}
    assert drift[("events", "new_field", "surpriseField")]["rows"] == 1
    assert drift[("events", "type_change", "onset")]["seen"] == "string"
    assert {"experiment_id": "exp_test", "data_type": "events"}.items() <= next(
        t for t in report["tables"] if t["experiment_id"] == "exp_test"
    ).items()


def test_an_empty_warehouse_is_stale_and_status_creates_nothing(tmp_path):
    root = tmp_path / "wh"
    root.mkdir()
    report = status(root)
    assert report["runs"] == [] and report["tables"] == [] and report["rows"] == {}
    assert report["database"]["exists"] is False
    assert report["freshness"]["stale"] is True
    assert list(root.iterdir()) == []
    with pytest.raises(ConfigError) as err:
        status(tmp_path / "missing")
    assert err.value.setting == "warehouse" and err.value.exit_code == 2


def test_status_command_json_and_tables(synced):
    wh, (_, second), _ = synced
    runner = CliRunner()
    result = runner.invoke(main, ["status", "--warehouse", str(wh.root), "--json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    expected_keys = {"warehouse", "database", "freshness", "runs", "watermarks", "rows"}
    expected_keys |= {"tables", "drift", "quarantine", "quarantined_rows"}
    assert set(report) == expected_keys
    assert report["rows"] == status(wh)["rows"]
    assert report["runs"][0]["run_id"] == second.run_id

    shown = runner.invoke(main, ["status", "--warehouse", str(wh.root)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert "Rows per type and experiment" in text and "fresh" in text
    assert second.run_id in text and "Watermarks" in text
    for table in report["tables"]:
        assert table["data_type"] in text and table["experiment_id"] in text


def test_status_command_uses_the_configured_freshness(synced, tmp_path):
    wh = synced[0]
    (tmp_path / "hs_sync.toml").write_text(
        f'warehouse = "{wh.root}"\nfreshness_hours = 0.000001\n', encoding="utf-8"
    )
    result = CliRunner().invoke(
        main, ["status", "--json", "--config", str(tmp_path / "hs_sync.toml")]
    )
    assert result.exit_code == 0, result.output
    fresh = orjson.loads(result.stdout)["freshness"]
    assert fresh["threshold_hours"] == 0.000001 and fresh["stale"] is True
