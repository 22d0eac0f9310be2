"""The sync partitioned by experiment (dagster_project/by_experiment.py): the sensor
discovers the simulator's experiments as partitions; their runs, on the
multiprocess executor with 2 workers and into a bucket warehouse, equal the
API's data in the Iceberg tables and the local DuckDB database."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from dagster import DagsterInstance, build_sensor_context, execute_job, reconstructable

from dagster_project import by_experiment
from dagster_project.resources import HyperStudyResource, WarehouseResource
from hs_sync import registry
from hs_sync.warehouse import Warehouse
from tests.objstore_helpers import BUCKET, iceberg_rows
from tests.test_dagster_materialize import TEST_SETTINGS
from tests.test_warehouse_sim import comparable, truth
from tests.warehouse_helpers import db_rows

WORKERS = 2


@pytest.fixture
def sim(sim_factory):
    return sim_factory(seed=5, scale=0.1)


@pytest.mark.slow
def test_two_workers_sync_every_experiment_partition_to_ground_truth(
    s3,
    sim,
    tmp_path,
    monkeypatch,
):
    local = tmp_path / "local"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hs_sync.toml").write_text(TEST_SETTINGS)  # read by every step's process
    monkeypatch.setenv("HYPERSTUDY_API_KEY", sim.api_key)
    monkeypatch.setenv("HYPERSTUDY_BASE_URL", sim.base_url)
    monkeypatch.setenv("HS_SYNC_WAREHOUSE", f"s3://{BUCKET}/dagster")
    monkeypatch.setenv("HS_SYNC_LOCAL_DIR", str(local))
    (tmp_path / "dagster").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster")) as instance:
        context = build_sensor_context(
            instance=instance,
            resources={
                "hyperstudy": HyperStudyResource(api_key=sim.api_key),
                "warehouse": WarehouseResource(),
            },
        )
        result = by_experiment.discover_experiments(context)
        experiments = [r.partition_key for r in result.run_requests]
        assert sorted(experiments) == sorted(sim.dataset.experiment_ids)
        assert len(experiments) >= 2
        instance.add_dynamic_partitions(by_experiment.EXPERIMENTS.name, experiments)
        again = by_experiment.discover_experiments(context)  # known partitions: no new runs
        assert again.run_requests == []

        job = reconstructable(by_experiment.resolved_job)
        run_config = {"execution": {"config": {"max_concurrent": WORKERS}}}

        def run(experiment: str) -> bool:
            with execute_job(
                job,
                instance=instance,
                run_config=run_config,
                tags={"dagster/partition": experiment},
            ) as outcome:
                return outcome.success

        with ThreadPoolExecutor(WORKERS) as pool:
            assert all(pool.map(run, experiments))
    wh = Warehouse(local)
    assert wh.storage.uri == f"s3://{BUCKET}/dagster"
    for dt in registry.DATA_TYPES:
        expected = truth(sim, dt)
        assert {r["_key"]: comparable(dt, r) for r in db_rows(wh, dt.name)} == expected, dt.name
        rows = iceberg_rows(wh, dt)
        assert len(rows) == len(expected), dt.name
        assert {r["_key"]: comparable(dt, r) for r in rows} == expected, dt.name
