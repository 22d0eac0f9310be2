"""Materializing the Dagster graph against the simulator builds the same warehouse as a sync."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from dagster import AssetCheckSeverity, AssetKey, ExecuteInProcessResult, materialize

from dagster_project import factory, schedules
from dagster_project.definitions import defs
from dagster_project.resources import HyperStudyResource, WarehouseResource, hs_config
from hs_sync.checks import CHECKS, run_check
from hs_sync.media import download_media
from hs_sync.registry import DEFAULT_TYPES, Mode
from hs_sync.warehouse import DB_FILE
from tests.warehouse_helpers import content_rows

# Fast retries and a budget the tests never reach; read through WarehouseResource.config_file.
TEST_SETTINGS = """\
retry_floor_seconds = 0.01
retry_max_wait_seconds = 2.0
budget_per_hour = 100000
budget_per_minute = 100000
"""


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Path:
    """An hs_sync.toml with test settings; no HS_SYNC/HYPERSTUDY variables leak in."""
    for var in ("HYPERSTUDY_API_KEY", "HYPERSTUDY_BASE_URL", "HYPERSTUDY_ORG_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("HS_SYNC_WAREHOUSE", raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "settings.toml"
    path.write_text(TEST_SETTINGS)
    return path


def _resources(sim, root: Path, settings: Path, **api) -> dict:
    return {
        "hyperstudy": HyperStudyResource(
            api_key=api.pop("api_key", sim.api_key), base_url=sim.base_url, **api
        ),
        "warehouse": WarehouseResource(root=str(root), config_file=str(settings)),
    }


def _everything():
    return [*defs.assets, *(defs.asset_checks or [])]


def _views(root: Path) -> list[str]:
    con = duckdb.connect(str(root / DB_FILE), read_only=True)
    try:
        query = "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1"
        return [r[0] for r in con.execute(query).fetchall()]
    finally:
        con.close()


def _parquet(root: Path, name: str) -> list[tuple]:
    files = sorted((root / "parquet" / name).rglob("*.parquet"))
    if not files:
        return []
    con = duckdb.connect()
    try:
        paths = [str(f) for f in files]
        rel = con.execute(
            "SELECT * EXCLUDE (_synced_at, _raw_file) FROM read_parquet(?, hive_partitioning = true)"
            " ORDER BY _key",
            [paths],
        )
        return [tuple(map(str, row)) for row in rel.fetchall()]
    finally:
        con.close()


def _media(root: Path) -> dict[str, str]:
    """Every media file under the warehouse, by relative path, with its content digest."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((root / "media").rglob("*"))
        if p.is_file()
    }


def _media_manifest(root: Path) -> list[tuple]:
    con = duckdb.connect(str(root / DB_FILE), read_only=True)
    try:
        query = (
            "SELECT * EXCLUDE (last_attempt, downloaded_at) FROM media_files ORDER BY recording_id"
        )
        return con.execute(query).fetchall()
    finally:
        con.close()


def _metadata(result, key: AssetKey) -> dict:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    assert len(events) == 1, key
    return {k: v.value for k, v in events[0].materialization.metadata.items()}


@dataclass(frozen=True)
class JobRun:
    result: ExecuteInProcessResult
    root: Path  # the warehouse it built: read it, or copy it to change it


@pytest.fixture(scope="module")
def first_run(_clean_sim, tmp_path_factory) -> Iterator[JobRun]:
    """The deployed job's first run on the clean simulator, shared by the tests below."""
    sim, folder = _clean_sim, tmp_path_factory.mktemp("job")
    with pytest.MonkeyPatch.context() as mp:
        # The job exactly as deployed: resources from the environment, like `dagster dev`.
        for var in ("HYPERSTUDY_ORG_ID", "HS_SYNC_WAREHOUSE"):
            mp.delenv(var, raising=False)
        mp.setenv("HYPERSTUDY_API_KEY", sim.api_key)
        mp.setenv("HYPERSTUDY_BASE_URL", sim.base_url)
        mp.setenv("HS_SYNC_WAREHOUSE", str(folder / "dagster"))
        mp.chdir(folder)
        (folder / "hs_sync.toml").write_text(TEST_SETTINGS)  # read from the working folder
        yield JobRun(
            defs.resolve_job_def(schedules.JOB_NAME).execute_in_process(), folder / "dagster"
        )


def test_job_builds_the_same_warehouse_as_hs_sync_sync(first_run, clean_synced_copy):
    result = first_run.result
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} >= {c.name for c in CHECKS}
    assert all(e.passed for e in evaluations if e.severity is AssetCheckSeverity.ERROR)

    # The reference: what `hs-sync sync` and `hs-sync media` build from the same simulator.
    config = clean_synced_copy
    assert download_media(config).exit_code == 0
    a, b = first_run.root, Path(config.warehouse)
    for dt in DEFAULT_TYPES:
        rows = content_rows(a, dt.name)
        assert rows == content_rows(b, dt.name), dt.name
        assert _parquet(a, dt.name) == _parquet(b, dt.name), dt.name
    assert _views(a) == _views(b) and _views(a)
    assert _media(a) == _media(b) and _media(a)
    assert _media_manifest(a) == _media_manifest(b)
    assert sum(len(content_rows(a, dt.name)) for dt in DEFAULT_TYPES) > 1000


def test_runs_report_rows_requests_windows_and_skips_as_metadata(
    first_run, clean_sim, settings, tmp_path
):
    sim, result = clean_sim, first_run.result
    assert result.success
    root = first_run.root

    total = 0
    for dt in DEFAULT_TYPES:
        raw = _metadata(result, AssetKey(["raw", dt.name]))
        assert raw["windows"] >= 1 and raw["requests"] >= 1, dt.name
        assert raw["skipped"] == "" and raw["errors"] == {} and raw["run_skipped_types"] == {}
        assert raw["rows"] == sum(raw["rows_by_experiment"].values())
        duck = _metadata(result, AssetKey(["duckdb", dt.name]))
        assert duck["dagster/row_count"] == len(content_rows(root, dt.name))
        assert duck["rows_written"] == duck["dagster/row_count"]  # first run: every row is new
        parquet = _metadata(result, AssetKey(["parquet", dt.name]))
        assert parquet["rows_written"] == duck["dagster/row_count"]
        total += raw["requests"]
        run_requests = raw["run_requests"]
    assert total <= run_requests  # the run also spent requests on discovery
    views = _metadata(result, factory.VIEWS_KEY)
    assert views["views"] == _views(root) and views["view_count"] > 0
    checks = {(e.asset_key, e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert checks[(AssetKey(["raw", "events"]), factory.PULL_CHECK)] is True
    media = _metadata(result, factory.MEDIA_KEY)
    assert media["downloaded"] > 0 and media["errors"] == {}
    assert media["downloaded"] == len(_media(root))

    # A second run is incremental: nothing new is landed or written, and the tables stay.
    root = tmp_path / "wh"
    shutil.copytree(first_run.root, root, symlinks=True)  # the published Parquet links
    before = {dt.name: content_rows(root, dt.name) for dt in DEFAULT_TYPES}
    again = materialize(_everything(), resources=_resources(sim, root, settings))
    assert again.success
    for dt in DEFAULT_TYPES:
        assert _metadata(again, AssetKey(["duckdb", dt.name]))["rows_written"] == 0, dt.name
        assert content_rows(root, dt.name) == before[dt.name]
        raw_again = _metadata(again, AssetKey(["raw", dt.name]))
        landed_again = raw_again["rows"]
        if dt.mode is Mode.TIME:  # merge and snapshot types are re-read whole
            assert landed_again == 0, dt.name
        elif dt.mode is Mode.ROOM:
            # only rooms still collecting data are read again, each by itself; nothing
            # happened in them since the first run's experiment-scope read
            collecting = {
                r["id"] for r in sim.dataset.records("rooms") if r["status"] != "completed"
            }
            assert collecting
            assert raw_again["requests"] >= len(collecting) and landed_again == 0, dt.name
    media_again = _metadata(again, factory.MEDIA_KEY)
    assert media_again["downloaded"] == 0 and media_again["up_to_date"] == media["downloaded"]


def test_a_type_the_key_may_not_read_is_reported_as_skipped(sim, settings, tmp_path):
    from hs_simulator.auth import ALL_SCOPES

    sim.add_key("no-chat-key", set(ALL_SCOPES) - {"read:chat"})
    root = tmp_path / "wh"
    selection = [AssetKey(["raw", "chat"]), AssetKey(["raw", "events"])]

    result = materialize(
        _everything(),
        selection=selection,
        resources=_resources(sim, root, settings, api_key="no-chat-key"),
    )

    assert result.success
    chat = _metadata(result, AssetKey(["raw", "chat"]))
    assert "missing scope" in chat["skipped"] and chat["rows"] == 0
    assert "chat" in _metadata(result, AssetKey(["raw", "events"]))["run_skipped_types"]
    # Only the selected types were pulled: nothing else was landed.
    assert sorted(p.name for p in (root / "raw").iterdir()) == ["events"]


def test_study_findings_are_warnings_and_the_run_succeeds_with_the_librarys_findings(
    sim, settings, tmp_path
):
    root = tmp_path / "wh"
    resources = _resources(sim, root, settings)

    result = materialize(_everything(), resources=resources, raise_on_error=False)

    assert result.success  # planted defects are findings about the study, not faults
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    failed = {name: e for name, e in evaluations.items() if not e.passed}
    assert "missing_sessions" in failed
    assert {e.severity for e in failed.values()} == {AssetCheckSeverity.WARN}
    for fault in ("duplicate_keys", "count_reconciliation", "recordings_on_disk"):
        assert evaluations[fault].passed and evaluations[fault].severity is AssetCheckSeverity.ERROR
    built = {e.asset_key for e in result.get_asset_materialization_events()}
    assert built == set(defs.resolve_asset_graph().get_all_asset_keys())
    # Same findings as the library call behind `hs-sync check`.
    config = hs_config(resources["warehouse"], resources["hyperstudy"])
    direct = run_check(config, "missing_sessions")
    meta = {k: v.value for k, v in failed["missing_sessions"].metadata.items()}
    assert meta["count"] == direct.count > 0 and meta["sample"] == direct.sample
    assert meta["hint"] == direct.hint
    # and recorded in the warehouse, where the open_issues view lists them
    con = duckdb.connect(str(root / DB_FILE), read_only=True)
    try:
        listed = con.execute(
            "SELECT count(*) FROM open_issues WHERE check_name = ?", ["missing_sessions"]
        ).fetchone()[0]
    finally:
        con.close()
    assert listed == direct.count


def test_a_pull_that_runs_out_of_budget_fails_its_pull_check_but_keeps_what_landed(
    sim, settings, tmp_path
):
    settings.write_text(TEST_SETTINGS.replace("budget_per_hour = 100000", "budget_per_hour = 12"))
    root = tmp_path / "wh"
    raw = [AssetKey(["raw", dt.name]) for dt in DEFAULT_TYPES]

    result = materialize(_everything(), selection=raw, resources=_resources(sim, root, settings))

    assert result.success  # like `hs-sync sync`: partial, progress saved, not a crash
    checks = {e.asset_key: e for e in result.get_asset_check_evaluations()}
    assert set(checks) == set(raw)
    for key in raw:
        assert not checks[key].passed
        assert "budget" in checks[key].metadata["errors"].value
    events = _metadata(result, AssetKey(["raw", "events"]))
    assert "budget" in events["errors"]
    assert events["run_requests"] <= 12
