"""The Dagster code location loads, and its graph is exactly what the registry implies."""

from __future__ import annotations

import pytest
from dagster import AssetKey, DefaultScheduleStatus, Definitions

from dagster_project import checks as dagster_checks
from dagster_project import factory, schedules
from dagster_project.definitions import defs
from hs_sync.checks import CHECKS
from hs_sync.errors import ConfigError
from hs_sync.registry import DEFAULT_TYPES


def _graph():
    return defs.resolve_asset_graph()


def test_definitions_load_and_validate():
    Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    assert repo.has_job(schedules.JOB_NAME)
    assert {s.name for s in repo.schedule_defs} == {schedules.SCHEDULE_NAME}
    assert set(defs.resources) == {"hyperstudy", "warehouse"}


def test_asset_keys_are_exactly_what_the_registry_implies():
    expected = {factory.VIEWS_KEY, factory.MEDIA_KEY}
    for dt in DEFAULT_TYPES:
        expected |= {AssetKey([layer, dt.name]) for layer in ("raw", "parquet", "duckdb")}

    assert set(_graph().get_all_asset_keys()) == expected


def test_each_type_flows_raw_to_parquet_to_duckdb_grouped_by_layer_with_kinds():
    graph = _graph()
    for dt in DEFAULT_TYPES:
        raw, parquet, duck = (AssetKey([layer, dt.name]) for layer in ("raw", "parquet", "duckdb"))
        assert graph.get(raw).parent_keys == set()
        assert graph.get(parquet).parent_keys == {raw}
        assert graph.get(duck).parent_keys == {parquet}
        for key, group in ((raw, "raw"), (parquet, "parquet"), (duck, "duckdb")):
            node = graph.get(key)
            assert node.group_name == group
            assert node.kinds, key
        columns = graph.get(duck).metadata["dagster/column_schema"].columns
        assert [c.name for c in columns][: len(dt.columns)] == [c.name for c in dt.columns]
        # every column carries the data dictionary's description
        assert all(c.description for c in columns), dt.name
        described = {c.name: c.description for c in columns}
        assert described["_synced_at"] == dt.describe("_synced_at").text
    tables = {AssetKey(["duckdb", dt.name]) for dt in DEFAULT_TYPES}
    assert graph.get(factory.VIEWS_KEY).parent_keys == tables
    assert graph.get(factory.MEDIA_KEY).parent_keys == {AssetKey(["duckdb", "recordings"])}


def test_api_steps_share_one_pool_and_duckdb_writers_another():
    pools = {}
    for assets_def in defs.assets:
        for key in assets_def.keys:
            pools[key] = assets_def.op.pool
    api = {k for k, p in pools.items() if p == factory.API_POOL}
    writers = {k for k, p in pools.items() if p == factory.DUCKDB_POOL}

    assert api == {AssetKey(["raw", dt.name]) for dt in DEFAULT_TYPES} | {factory.MEDIA_KEY}
    assert writers == set(pools) - api  # every Parquet/DuckDB/views step
    for check_def in defs.asset_checks or []:
        assert check_def.op.pool == factory.API_POOL  # checks may ask the API for totals


def test_pull_check_on_every_raw_asset():
    check_keys = set(_graph().asset_check_keys)
    for dt in DEFAULT_TYPES:
        assert any(
            k.asset_key == AssetKey(["raw", dt.name]) and k.name == factory.PULL_CHECK
            for k in check_keys
        )


def test_job_covers_the_whole_graph():
    job = defs.resolve_job_def(schedules.JOB_NAME)
    assert set(job.asset_layer.selected_asset_keys) == set(_graph().get_all_asset_keys())


def test_schedule_is_stopped_by_default_and_hourly():
    schedule = schedules.sync_schedule({})
    assert schedule.default_status is DefaultScheduleStatus.STOPPED
    assert schedule.cron_schedule == schedules.DEFAULT_CRON
    assert schedule.job_name == schedules.JOB_NAME


def test_schedule_cron_timezone_and_status_come_from_the_environment():
    schedule = schedules.sync_schedule(
        {
            schedules.CRON_VAR: "15 */6 * * *",
            schedules.TIMEZONE_VAR: "Europe/Berlin",
            schedules.RUNNING_VAR: "1",
        }
    )
    assert schedule.cron_schedule == "15 */6 * * *"
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.default_status is DefaultScheduleStatus.RUNNING


def test_a_bad_cron_names_the_variable():
    with pytest.raises(ConfigError) as info:
        schedules.sync_schedule({schedules.CRON_VAR: "every hour"})
    assert schedules.CRON_VAR in str(info.value)


def test_every_integrity_check_is_an_asset_check_and_only_pipeline_faults_block():
    specs = {spec.name: spec for check_def in defs.asset_checks for spec in check_def.check_specs}
    for check in CHECKS:
        spec = specs[check.name]
        assert spec.blocking is (check.name in dagster_checks.PIPELINE_FAULTS), check.name
        assert spec.asset_key in {factory.VIEWS_KEY, factory.MEDIA_KEY}
    blocking = {name for name, spec in specs.items() if spec.blocking}
    assert blocking == {"duplicate_keys", "count_reconciliation", "orphans", "recordings_on_disk"}
    assert not specs["missing_sessions"].blocking and not specs["rating_gaps"].blocking
    assert specs["recordings_on_disk"].asset_key == factory.MEDIA_KEY
    assert specs["missing_sessions"].asset_key == factory.VIEWS_KEY


def test_which_checks_block_is_a_setting():
    env = {dagster_checks.BLOCKING_VAR: "missing_sessions, duplicate_keys"}
    chosen = dagster_checks.blocking_checks(env)
    assert chosen == {"missing_sessions", "duplicate_keys"}
    [step] = dagster_checks.build_checks(blocking=chosen)
    assert {s.name for s in step.check_specs if s.blocking} == chosen
    assert dagster_checks.blocking_checks({}) == set(dagster_checks.PIPELINE_FAULTS)
    with pytest.raises(ConfigError) as info:
        dagster_checks.blocking_checks({dagster_checks.BLOCKING_VAR: "missing_session"})
    assert dagster_checks.BLOCKING_VAR in str(info.value) and "missing_sessions" in str(info.value)


def test_runs_execute_in_one_process():
    job = defs.resolve_job_def(schedules.JOB_NAME)
    assert job.executor_def.name == "in_process"
