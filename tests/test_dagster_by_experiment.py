"""The sync partitioned by experiment (dagster_project/by_experiment.py): the sensor
discovers the simulator's experiments as partitions; their runs, on the
multiprocess executor with 2 workers and into a bucket warehouse, equal the
API's data in the Iceberg tables and the local DuckDB database, and upload the
media; a partition's run downloads the media of its experiment, and only that."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from dagster import (
    DagsterInstance,
    build_sensor_context,
    execute_job,
    materialize,
    reconstructable,
)

from dagster_project import by_experiment
from dagster_project.resources import HyperStudyResource, WarehouseResource
from hs_sync import registry
from hs_sync.warehouse import Warehouse
from tests.media_helpers import TYPES, served, sha256
from tests.objstore_helpers import BUCKET, iceberg_rows, objects
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
):  # and upload every experiment's media
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
    media = _media_files(local)
    assert media == _complete_media(sim)
    assert {k: sha256(v) for k, v in objects(s3, "dagster/media/").items()} == media


def _media_files(root) -> dict[str, str]:
    """The verified media files under the warehouse: path below media/ -> sha256."""
    return {
        p.relative_to(root / "media").as_posix(): sha256(p.read_bytes())
        for p in (root / "media").rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def _complete_media(sim, experiment: str | None = None) -> dict[str, str]:
    """The files the simulator's completed recordings (of one experiment) should give."""
    return {
        f"{r['experimentId']}/{r['roomId']}/{r['participantId']}/{rid}.{r['format']}": sha256(
            sim.dataset.media_bytes(rid)
        )
        for rid, r in served(sim, experiment).items()
        if r["status"] == "complete"
    }


def test_a_partition_run_downloads_the_media_of_its_experiment_only(sim, tmp_path):
    settings = tmp_path / "hs_sync.toml"
    settings.write_text(TEST_SETTINGS + f"types = {list(TYPES)!r}\n".replace("'", '"'))
    root = tmp_path / "wh"
    resources = {
        "hyperstudy": HyperStudyResource(api_key=sim.api_key, base_url=sim.base_url),
        "warehouse": WarehouseResource(root=str(root), config_file=str(settings)),
    }
    by_experiment_media = {e: _complete_media(sim, e) for e in sim.dataset.experiment_ids}
    experiment = max(by_experiment_media, key=lambda e: len(by_experiment_media[e]))
    expected = by_experiment_media.pop(experiment)
    assert expected and any(by_experiment_media.values())  # other experiments have media too
    assets = [by_experiment.raw, by_experiment.tables, by_experiment.media]
    with DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(by_experiment.EXPERIMENTS.name, [experiment])

        def run():
            result = materialize(
                assets, partition_key=experiment, instance=instance, resources=resources
            )
            assert result.success
            (event,) = [
                e.materialization
                for e in result.get_asset_materialization_events()
                if e.asset_key == by_experiment.MEDIA_KEY
            ]
            return {k: v.value for k, v in event.metadata.items()}

        first = run()
        assert _media_files(root) == expected
        assert first["downloaded"] == len(expected) and first["errors"] == {}
        again = run()  # every file is verified on disk: nothing is fetched twice
        assert (again["downloaded"], again["up_to_date"]) == (0, len(expected))
